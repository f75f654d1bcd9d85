//! Property tests (issue 8, point 3): for random polygons and random points
//! the spatial index answers exactly what a brute-force scan answers.
//!
//! Scenes (each a set of `(key, MultiPolygon)`):
//!
//! * **tessellations**: a random box cut into a random grid of rectangles,
//!   some split into two triangles along a diagonal, keys owning one or more
//!   cells (multi-part), so neighbours share edges and vertices exactly;
//! * **stars**: star-shaped simple polygons with a star-shaped hole or not,
//!   from tiny (radius ~1e-7 degrees) to continent-sized, alone or as
//!   parts of one multipolygon;
//! * **junk**: random vertices (self-intersecting, repeated points,
//!   unclosed or short rings, overlapping parts): OGC-invalid input;
//! * **edges of the world**: rectangles and triangles touching or lying on
//!   longitude +-180 and latitude +-90, polygons reaching a pole, and "wide"
//!   rings whose longitudes jump across the antimeridian (taken planar, as
//!   the index does).
//!
//! Points: uniform over the world, uniform over the scene's extent, exact
//! vertices, points on edges, points nudged off vertices by 1e-9 (scaled)
//! and by one ulp, and the world's corners.
//!
//! Oracle: a key covers a point when any of its parts does. For an
//! OGC-valid part (`geo::Validation::is_valid`) the answer is
//! `geo::Intersects` (boundary inclusive, like `ST_Covers`), and the
//! independent even-odd brute force below must agree with it. For an
//! invalid part the oracle is that even-odd brute force (every edge of every
//! ring, exact orientation via geo's robust kernel), which is the rule the
//! index documents for invalid input (see `tests/index_oracle.rs`). Both
//! `SpatialIndex::query` (grid path) and `query_rtree_only` must equal it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/oracle.rs"]
mod oracle;

use geo::{Coord, Intersects, LineString, MultiPolygon, Point, Polygon, Validation};
use geowebdns::index::spatial::{prepare, SpatialIndex};
use oracle::even_odd_covers;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

// ------------------------------------------------------------------ oracle

/// Whether geo's answer is the reference for this part: OGC-valid, and not
/// an empty exterior with holes (geo calls that valid and empty, ignoring
/// the holes; the import paths never produce it: `check_rings` reports the
/// empty exterior and `repair` drops such a polygon).
fn ogc_meaningful(p: &Polygon<f64>) -> bool {
    (p.interiors().is_empty() || !p.exterior().0.is_empty()) && p.is_valid()
}

fn oracle(scene: &[(u32, MultiPolygon<f64>)], valid: &[Vec<bool>], p: Coord<f64>) -> Result<Vec<u32>, TestCaseError> {
    let mut keys = Vec::new();
    for ((key, mp), valid) in scene.iter().zip(valid) {
        let mut covered = false;
        for (part, &ok) in mp.0.iter().zip(valid) {
            let eo = even_odd_covers(part, p);
            if ok {
                let gi = part.intersects(&Point(p));
                prop_assert_eq!(eo, gi, "oracles disagree on a valid part at {:?}: {:?}", p, part);
                covered |= gi;
            } else {
                covered |= eo;
            }
        }
        if covered && !keys.contains(key) {
            keys.push(*key);
        }
    }
    keys.sort_unstable();
    Ok(keys)
}

// ------------------------------------------------------------------ scenes

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
    Polygon::new(LineString::from(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]), vec![])
}

fn tri(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> Polygon<f64> {
    Polygon::new(LineString::from(vec![a, b, c, a]), vec![])
}

/// Sorted distinct cut positions in `[lo, hi]` including both ends.
fn cuts(lo: f64, hi: f64, fractions: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = fractions.iter().map(|f| lo + (hi - lo) * f).collect();
    v.push(lo);
    v.push(hi);
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// A box cut into rectangles (some split into triangles) shared out between
/// a few keys.
fn tessellation() -> impl Strategy<Value = Vec<(u32, MultiPolygon<f64>)>> {
    (
        (-180.0f64..170.0, -90.0f64..80.0),
        prop_oneof![Just(1e-6), Just(0.01), Just(1.0), Just(10.0), Just(100.0)],
        prop::collection::vec(0.0f64..1.0, 0..5),
        prop::collection::vec(0.0f64..1.0, 0..5),
        prop::collection::vec((0u8..4, 0u32..6), 36),
    )
        .prop_map(|((x0, y0), size, fx, fy, cells)| {
            let x1 = (x0 + size).min(180.0);
            let y1 = (y0 + size).min(90.0);
            let xs = cuts(x0, x1, &fx);
            let ys = cuts(y0, y1, &fy);
            let mut out: Vec<(u32, MultiPolygon<f64>)> = Vec::new();
            let mut push = |key: u32, p: Polygon<f64>| match out.iter_mut().find(|(k, _)| *k == key) {
                Some((_, mp)) => mp.0.push(p),
                None => out.push((key, MultiPolygon(vec![p]))),
            };
            let mut n = 0;
            for w in xs.windows(2) {
                for h in ys.windows(2) {
                    let (split, owner) = cells[n % cells.len()];
                    n += 1;
                    let (a, b, c, d) = ((w[0], h[0]), (w[1], h[0]), (w[1], h[1]), (w[0], h[1]));
                    match split {
                        0 => {
                            push(owner, tri(a, b, c));
                            push(owner + 10, tri(a, c, d));
                        }
                        1 => {
                            push(owner, tri(a, b, d));
                            push(owner + 10, tri(b, c, d));
                        }
                        _ => push(owner, rect(w[0], h[0], w[1], h[1])),
                    }
                }
            }
            out
        })
}

/// A star-shaped simple ring around `c` with radii in `[rmin, rmax]`.
fn star_ring(c: (f64, f64), radii: &[f64], rmin: f64, rmax: f64, clockwise: bool) -> LineString<f64> {
    let n = radii.len();
    let mut pts: Vec<(f64, f64)> = radii
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let a = std::f64::consts::TAU * i as f64 / n as f64;
            let r = rmin + (rmax - rmin) * f;
            (c.0 + r * a.cos(), c.1 + r * a.sin())
        })
        .collect();
    if clockwise {
        pts.reverse();
    }
    pts.push(pts[0]);
    LineString::from(pts)
}

fn star() -> impl Strategy<Value = Polygon<f64>> {
    (
        prop_oneof![Just(1e-7), Just(1e-4), Just(0.5), Just(5.0), Just(40.0)],
        (0.0f64..1.0, 0.0f64..1.0),
        prop::collection::vec(0.0f64..1.0, 3..24),
        prop::option::of(prop::collection::vec(0.0f64..1.0, 3..10)),
        any::<bool>(),
    )
        .prop_map(|(r, (fx, fy), radii, hole, cw)| {
            // Keep the whole star inside the world.
            let c = (-180.0 + r + fx * (360.0 - 2.0 * r), -90.0 + r + fy * (180.0 - 2.0 * r));
            let exterior = star_ring(c, &radii, r * 0.5, r, cw);
            let interiors = hole.map(|h| vec![star_ring(c, &h, r * 0.1, r * 0.4, !cw)]).unwrap_or_default();
            Polygon::new(exterior, interiors)
        })
}

fn stars() -> impl Strategy<Value = Vec<(u32, MultiPolygon<f64>)>> {
    prop::collection::vec((prop::collection::vec(star(), 1..4), 0u32..5), 1..5)
        .prop_map(|v| v.into_iter().map(|(parts, key)| (key, MultiPolygon(parts))).collect())
}

/// Random vertices near each other: self-intersections, duplicates, short
/// and unclosed rings, holes outside the exterior, overlapping parts.
fn junk() -> impl Strategy<Value = Vec<(u32, MultiPolygon<f64>)>> {
    let coord = prop_oneof![
        4 => (-20i32..20, -20i32..20).prop_map(|(x, y)| (f64::from(x) / 4.0, f64::from(y) / 4.0)),
        1 => (-5.0f64..5.0, -5.0f64..5.0),
    ];
    let ring = (prop::collection::vec(coord, 0..9), any::<bool>()).prop_map(|(mut v, close)| {
        if close && !v.is_empty() {
            v.push(v[0]);
        }
        LineString::from(v)
    });
    let poly = (ring.clone(), prop::collection::vec(ring, 0..3)).prop_map(|(e, h)| Polygon::new(e, h));
    prop::collection::vec((prop::collection::vec(poly, 1..3), 0u32..4), 1..4)
        .prop_map(|v| v.into_iter().map(|(parts, key)| (key, MultiPolygon(parts))).collect())
}

/// Polygons on the world's edges: +-180 longitude, +-90 latitude.
fn world_edges() -> impl Strategy<Value = Vec<(u32, MultiPolygon<f64>)>> {
    let edge_x = prop_oneof![Just(-180.0), Just(180.0), Just(179.9999999), Just(-179.9999999), -180.0f64..180.0];
    let edge_y = prop_oneof![Just(-90.0), Just(90.0), Just(89.9999999), -90.0f64..90.0];
    let shape =
        (edge_x.clone(), edge_x, edge_y.clone(), edge_y, 0u8..5, 0u32..4).prop_map(|(xa, xb, ya, yb, kind, key)| {
            let (x0, x1) = (xa.min(xb), xa.max(xb));
            let (y0, y1) = (ya.min(yb), ya.max(yb));
            let p = match kind {
                // Rectangle (possibly degenerate: a line on the antimeridian).
                0 | 1 => rect(x0, y0, x1, y1),
                // Triangle with its apex on a pole.
                2 => tri((x0, y0), (x1, y0), ((x0 + x1) / 2.0, if kind % 2 == 0 { 90.0 } else { -90.0 })),
                // A "wide" ring whose longitudes jump across the antimeridian
                // (planar: it covers everything between them).
                3 => Polygon::new(
                    LineString::from(vec![(170.0, y0), (-170.0, y0), (-170.0, y1), (170.0, y1), (170.0, y0)]),
                    vec![],
                ),
                // A cap around the pole, edges along +-180.
                _ => rect(-180.0, y0, 180.0, 90.0),
            };
            (key, MultiPolygon(vec![p]))
        });
    prop::collection::vec(shape, 1..5)
}

fn scene() -> impl Strategy<Value = Vec<(u32, MultiPolygon<f64>)>> {
    let one = prop_oneof![3 => tessellation(), 3 => stars(), 2 => junk(), 2 => world_edges()];
    prop::collection::vec(one, 1..3).prop_map(|v| {
        // Keep keys of different families apart, so each key's parts come from one family.
        v.into_iter()
            .enumerate()
            .flat_map(|(i, s)| s.into_iter().map(move |(k, mp)| (k + 100 * i as u32, mp)))
            .collect()
    })
}

// ------------------------------------------------------------------ points

#[derive(Debug, Clone)]
enum PointRecipe {
    World(f64, f64),
    Extent(f64, f64),
    Vertex(usize),
    OnEdge(usize, f64),
    Nudged(usize, u8, f64),
    Ulp(usize, u8),
    Corner(u8),
}

fn recipes() -> impl Strategy<Value = Vec<PointRecipe>> {
    let r = prop_oneof![
        2 => (-180.0f64..=180.0, -90.0f64..=90.0).prop_map(|(x, y)| PointRecipe::World(x, y)),
        4 => (-0.1f64..1.1, -0.1f64..1.1).prop_map(|(x, y)| PointRecipe::Extent(x, y)),
        3 => any::<usize>().prop_map(PointRecipe::Vertex),
        3 => (any::<usize>(), prop_oneof![Just(0.5), 0.0f64..1.0]).prop_map(|(i, t)| PointRecipe::OnEdge(i, t)),
        2 => (any::<usize>(), 0u8..8, prop_oneof![Just(1e-9), Just(1e-12), Just(1e-6)]).prop_map(|(i, d, e)| PointRecipe::Nudged(i, d, e)),
        2 => (any::<usize>(), 0u8..8).prop_map(|(i, d)| PointRecipe::Ulp(i, d)),
        1 => (0u8..9).prop_map(PointRecipe::Corner),
    ];
    prop::collection::vec(r, 1..120)
}

fn next_toward(v: f64, up: bool) -> f64 {
    if up {
        v.next_up()
    } else {
        v.next_down()
    }
}

fn resolve(recipe: &PointRecipe, scene: &[(u32, MultiPolygon<f64>)]) -> Coord<f64> {
    let rings = || {
        scene.iter().flat_map(|(_, mp)| mp.0.iter()).flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
    };
    let vertices: Vec<Coord<f64>> = rings().flat_map(|r| r.0.iter().copied()).collect();
    let edges: Vec<(Coord<f64>, Coord<f64>)> = rings()
        .flat_map(|r| r.0.iter().copied().zip(r.0.iter().copied().cycle().skip(1)).collect::<Vec<_>>())
        .collect();
    let (mut min, mut max) = (Coord { x: -180.0, y: -90.0 }, Coord { x: 180.0, y: 90.0 });
    if !vertices.is_empty() {
        min = Coord { x: f64::INFINITY, y: f64::INFINITY };
        max = Coord { x: f64::NEG_INFINITY, y: f64::NEG_INFINITY };
        for v in &vertices {
            min = Coord { x: min.x.min(v.x), y: min.y.min(v.y) };
            max = Coord { x: max.x.max(v.x), y: max.y.max(v.y) };
        }
    }
    let vertex = |i: usize| vertices.get(i % vertices.len().max(1)).copied().unwrap_or(Coord { x: 0.0, y: 0.0 });
    const DIRS: [(f64, f64); 8] =
        [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)];
    match *recipe {
        PointRecipe::World(x, y) => Coord { x, y },
        PointRecipe::Extent(fx, fy) => Coord { x: min.x + (max.x - min.x) * fx, y: min.y + (max.y - min.y) * fy },
        PointRecipe::Vertex(i) => vertex(i),
        PointRecipe::OnEdge(i, t) => match edges.get(i % edges.len().max(1)) {
            Some(&(a, b)) => Coord { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t },
            None => vertex(i),
        },
        PointRecipe::Nudged(i, d, e) => {
            let v = vertex(i);
            let scale = (max.x - min.x).max(max.y - min.y).max(1e-300);
            let (dx, dy) = DIRS[d as usize % 8];
            Coord { x: v.x + dx * e * scale, y: v.y + dy * e * scale }
        }
        PointRecipe::Ulp(i, d) => {
            let v = vertex(i);
            let (dx, dy) = DIRS[d as usize % 8];
            Coord {
                x: if dx == 0.0 { v.x } else { next_toward(v.x, dx > 0.0) },
                y: if dy == 0.0 { v.y } else { next_toward(v.y, dy > 0.0) },
            }
        }
        PointRecipe::Corner(k) => {
            let xs = [-180.0, 0.0, 180.0];
            let ys = [-90.0, 0.0, 90.0];
            Coord { x: xs[k as usize % 3], y: ys[k as usize / 3 % 3] }
        }
    }
}

// ------------------------------------------------------------------- tests

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

fn index_equals_oracle(scene: &[(u32, MultiPolygon<f64>)], points: &[Coord<f64>]) -> Result<(), TestCaseError> {
    let index = SpatialIndex::build(scene.iter().map(|(k, mp)| (*k, prepare(mp))).collect());
    let valid: Vec<Vec<bool>> = scene.iter().map(|(_, mp)| mp.0.iter().map(ogc_meaningful).collect()).collect();
    let mut out = Vec::new();
    for &p in points {
        let want = oracle(scene, &valid, p)?;
        out.clear();
        index.query(p.x, p.y, &mut out);
        let grid = sorted(out.clone());
        out.clear();
        index.query_rtree_only(p.x, p.y, &mut out);
        let rtree = sorted(out.clone());
        prop_assert_eq!(&grid, &want, "grid path at {:?}", p);
        prop_assert_eq!(&rtree, &want, "R-tree path at {:?}", p);
    }
    Ok(())
}

fn run(name: &str, cases: u32, strategy: impl Strategy<Value = Vec<(u32, MultiPolygon<f64>)>>) {
    let scale: u32 = std::env::var("FUZZ_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x696e_6465_7870);
    let salt = name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let config = Config {
        cases: cases.saturating_mul(scale),
        rng_seed: RngSeed::Fixed(seed ^ salt),
        failure_persistence: None,
        max_shrink_iters: 4_096,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&(strategy, recipes()), |(scene, recipes)| {
        let points: Vec<Coord<f64>> = recipes.iter().map(|r| resolve(r, &scene)).collect();
        index_equals_oracle(&scene, &points)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

#[test]
fn index_equals_brute_force_on_tessellations() {
    run("tessellation", 96, tessellation());
}

#[test]
fn index_equals_brute_force_on_stars_with_holes_tiny_to_huge() {
    run("stars", 96, stars());
}

#[test]
fn index_equals_brute_force_on_invalid_polygons() {
    run("junk", 96, junk());
}

#[test]
fn index_equals_brute_force_on_the_antimeridian_and_poles() {
    run("world-edges", 96, world_edges());
}

#[test]
fn index_equals_brute_force_on_mixed_scenes() {
    run("mixed", 96, scene());
}

/// Shared borders, hand-picked: every point of a 3x3 grid of unit squares'
/// vertices and edge midpoints resolves to exactly the squares touching it.
#[test]
fn shared_borders_resolve_to_every_neighbour() {
    let mut scene = Vec::new();
    for i in 0..3u32 {
        for j in 0..3u32 {
            let (x, y) = (f64::from(i), f64::from(j));
            scene.push((i * 3 + j, MultiPolygon(vec![rect(x, y, x + 1.0, y + 1.0)])));
        }
    }
    let index = SpatialIndex::build(scene.iter().map(|(k, mp)| (*k, prepare(mp))).collect());
    let mut out = Vec::new();
    index.query(1.0, 1.0, &mut out);
    assert_eq!(sorted(out.clone()), vec![0, 1, 3, 4]);
    out.clear();
    index.query(1.5, 1.0, &mut out);
    assert_eq!(sorted(out.clone()), vec![3, 4]);
    out.clear();
    index.query(3.0, 3.0, &mut out);
    assert_eq!(sorted(out), vec![8]);
}
