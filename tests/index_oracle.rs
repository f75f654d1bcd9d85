//! Oracle test for the spatial index over ALL bundled boundary data.
//!
//! What is compared, and why:
//!
//! * The index answer (`SpatialIndex::query`, keys = feature numbers; the
//!   grid fast path, and `query_rtree_only` must agree with it) must
//!   equal, **exactly**, a brute-force scan over every feature (a cheap
//!   bounding-box check first, then every edge of every ring of every part)
//!   where a feature covers a point when ANY of its polygon parts does.
//! * Per part, the brute-force oracle is **geo's own** boundary-inclusive
//!   test, `geo::Intersects(part, point)` (= PostGIS `ST_Covers`), whenever
//!   the part is OGC-valid. For OGC-invalid parts (the bundled data has
//!   simplification artefacts: self-touching/self-intersecting rings,
//!   overlapping holes...) geo's answer is not well defined, and the index
//!   deliberately uses even-odd parity over all rings instead. There the
//!   oracle is an independent even-odd brute force written in this file
//!   (every edge of every ring, exact orientation via geo's robust kernel).
//! * For every (point, candidate part) pair both geo and the even-odd
//!   brute force are evaluated. If they disagree on a part that geo itself
//!   considers valid (`geo::Validation::is_valid`), the test fails: the
//!   even-odd rule is only allowed to differ from OGC semantics on invalid
//!   polygons. Disagreements on invalid parts are counted and printed.
//!
//! Point sets (ChaCha8 with a fixed seed): 10,000 uniform over the world,
//! 10,000 uniform in the bounding boxes of random features, 2,000 exact
//! vertices of random features (boundary cases; the feature itself must be
//! returned) and 2,000 points nudged by about 1e-9 degrees off such
//! vertices (near-boundary cases). Plus hand-picked real points.

use std::collections::HashMap;
use std::io::Read;

use flate2::read::GzDecoder;
#[path = "common/oracle.rs"]
mod oracle;

use geo::{BoundingRect, Coord, Intersects, MultiPolygon, Point, Polygon, Validation};
use geowebdns::index::spatial::{prepare, SpatialIndex};
use oracle::even_odd_covers;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LAYERS: [&str; 8] = [
    "us/states",
    "us/counties",
    "us/places",
    "us/special-districts-nyc",
    "world/countries",
    "world/admin1",
    "world/cities",
    "world/london-boroughs",
];

struct Feature {
    id: String,
    geometry: MultiPolygon<f64>,
    bbox: Option<geo::Rect<f64>>,
}

fn load_all() -> Vec<Feature> {
    let mut out = Vec::new();
    for layer in LAYERS {
        let path = format!("{}/boundaries/{layer}.geojson.gz", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut text = String::new();
        GzDecoder::new(file).read_to_string(&mut text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let gj: geojson::GeoJson = text.parse().unwrap_or_else(|e| panic!("{path}: {e}"));
        let fc = geojson::FeatureCollection::try_from(gj).expect("a FeatureCollection");
        for feature in fc.features {
            let id = feature
                .properties
                .as_ref()
                .and_then(|p| p.get("id"))
                .and_then(|v| v.as_str())
                .expect("properties.id")
                .to_string();
            let value = &feature.geometry.as_ref().expect("geometry").value;
            let geometry = match geo::Geometry::<f64>::try_from(value).expect("geometry") {
                geo::Geometry::Polygon(p) => MultiPolygon(vec![p]),
                geo::Geometry::MultiPolygon(mp) => mp,
                other => panic!("{id}: unexpected geometry {other:?}"),
            };
            let bbox = geometry.bounding_rect();
            out.push(Feature { id, geometry, bbox });
        }
    }
    out
}

fn build(features: &[Feature]) -> SpatialIndex {
    SpatialIndex::build(
        features.iter().enumerate().map(|(i, f)| (u32::try_from(i).expect("key"), prepare(&f.geometry))).collect(),
    )
}

#[derive(Default)]
struct Stats {
    points: usize,
    hits: usize,
    disagreements_invalid: usize,
    disagreeing_parts: Vec<(String, usize)>,
}

struct Oracle<'a> {
    features: &'a [Feature],
    validity: HashMap<(usize, usize), bool>,
    stats: Stats,
}

impl Oracle<'_> {
    /// Sorted keys of all features covering `p`, by brute force.
    fn answer(&mut self, p: Coord<f64>) -> Vec<u32> {
        let mut keys = Vec::new();
        let pt = Point(p);
        for (fi, f) in self.features.iter().enumerate() {
            let Some(bb) = f.bbox else { continue };
            if !(p.x >= bb.min().x && p.x <= bb.max().x && p.y >= bb.min().y && p.y <= bb.max().y) {
                continue;
            }
            let mut covered = false;
            for (pi, part) in f.geometry.0.iter().enumerate() {
                let eo = even_odd_covers(part, p);
                let gi = part.intersects(&pt);
                if eo != gi {
                    let valid = *self.validity.entry((fi, pi)).or_insert_with(|| part.is_valid());
                    assert!(
                        !valid,
                        "{} part {pi}: geo::Intersects={gi} but even-odd={eo} at {p:?} on a VALID part",
                        f.id
                    );
                    self.stats.disagreements_invalid += 1;
                    if !self.stats.disagreeing_parts.contains(&(f.id.clone(), pi)) {
                        self.stats.disagreeing_parts.push((f.id.clone(), pi));
                    }
                }
                // Valid part: eo == gi (checked above). Invalid part: eo.
                covered |= eo;
            }
            if covered {
                keys.push(u32::try_from(fi).expect("key"));
            }
        }
        keys
    }
}

fn query_sorted(index: &SpatialIndex, p: Coord<f64>) -> Vec<u32> {
    let mut out = Vec::new();
    index.query(p.x, p.y, &mut out);
    out.sort_unstable();
    out
}

fn ids(features: &[Feature], keys: &[u32]) -> Vec<String> {
    let mut v: Vec<String> = keys.iter().map(|&k| features[k as usize].id.clone()).collect();
    v.sort();
    v
}

#[test]
fn index_matches_brute_force_oracle_on_random_points() {
    let features = load_all();
    assert_eq!(features.len(), 8492, "bundled feature count changed");
    let index = build(&features);
    assert_eq!(index.len(), features.len());
    let parts: usize = features.iter().map(|f| f.geometry.0.len()).sum();
    assert_eq!(index.polygon_count(), parts);

    let mut rng = ChaCha8Rng::seed_from_u64(0x6765_6f77_6562);
    let mut points: Vec<(Coord<f64>, Option<usize>)> = Vec::new();
    for _ in 0..10_000 {
        let p = Coord { x: rng.gen_range(-180.0..=180.0), y: rng.gen_range(-90.0..=90.0) };
        points.push((p, None));
    }
    for _ in 0..10_000 {
        let f = &features[rng.gen_range(0..features.len())];
        let Some(bb) = f.bbox else { continue };
        let x = if bb.width() > 0.0 { rng.gen_range(bb.min().x..=bb.max().x) } else { bb.min().x };
        let y = if bb.height() > 0.0 { rng.gen_range(bb.min().y..=bb.max().y) } else { bb.min().y };
        points.push((Coord { x, y }, None));
    }
    for i in 0..4_000 {
        let fi = rng.gen_range(0..features.len());
        let f = &features[fi];
        let part = &f.geometry.0[rng.gen_range(0..f.geometry.0.len())];
        let ring = if part.interiors().is_empty() || rng.gen_bool(0.5) {
            part.exterior()
        } else {
            &part.interiors()[rng.gen_range(0..part.interiors().len())]
        };
        if ring.0.is_empty() {
            continue;
        }
        let v = ring.0[rng.gen_range(0..ring.0.len())];
        if i % 2 == 0 {
            // Exact vertex: the feature itself must be returned.
            points.push((v, Some(fi)));
        } else {
            let d = 1e-9;
            let p = Coord { x: v.x + rng.gen_range(-d..=d), y: v.y + rng.gen_range(-d..=d) };
            points.push((p, None));
        }
    }

    // The batch path answers all the points at once.
    let coords: Vec<Coord<f64>> = points.iter().map(|&(p, _)| p).collect();
    let (mut many, mut ends) = (Vec::new(), Vec::new());
    index.query_many(&coords, &mut many, &mut ends);
    assert_eq!(ends.len(), points.len());

    let mut oracle = Oracle { features: &features, validity: HashMap::new(), stats: Stats::default() };
    let mut mismatches = Vec::new();
    for (i, &(p, must_contain)) in points.iter().enumerate() {
        let expected = oracle.answer(p);
        let got = query_sorted(&index, p);
        let mut batch = many[if i == 0 { 0 } else { ends[i - 1] }..ends[i]].to_vec();
        batch.sort_unstable();
        assert_eq!(batch, got, "query_many and query disagree at {p:?}");
        oracle.stats.points += 1;
        oracle.stats.hits += usize::from(!expected.is_empty());
        if let Some(fi) = must_contain {
            assert!(
                got.contains(&u32::try_from(fi).expect("key")),
                "vertex {p:?} of {} not covered by its own feature",
                features[fi].id
            );
        }
        let mut tree_only = Vec::new();
        index.query_rtree_only(p.x, p.y, &mut tree_only);
        tree_only.sort_unstable();
        assert_eq!(tree_only, got, "grid and R-tree paths disagree at {p:?}");
        if expected != got {
            mismatches.push(format!(
                "{p:?}: index {:?} != oracle {:?}",
                ids(&features, &got),
                ids(&features, &expected)
            ));
        }
    }
    let s = &oracle.stats;
    println!(
        "{} points, {} with at least one hit; geo vs even-odd disagreed {} times on {} invalid parts: {:?}",
        s.points,
        s.hits,
        s.disagreements_invalid,
        s.disagreeing_parts.len(),
        s.disagreeing_parts
    );
    assert!(s.points >= 24_000);
    assert!(s.hits >= 10_000, "too few points hit any polygon: {}", s.hits);
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
}

fn find<'a>(features: &'a [Feature], id: &str) -> (usize, &'a Feature) {
    features.iter().enumerate().find(|(_, f)| f.id == id).unwrap_or_else(|| panic!("feature {id} not in data"))
}

fn resolve(features: &[Feature], index: &SpatialIndex, lat: f64, lon: f64) -> Vec<String> {
    ids(features, &query_sorted(index, Coord { x: lon, y: lat }))
}

/// A point strictly inside `ring` (taken as a simple polygon): tries the
/// ring's centroid, then midpoints between vertex pairs.
fn point_inside_ring(ring: &geo::LineString<f64>) -> Coord<f64> {
    use geo::{Centroid, Contains};
    let poly = Polygon::new(ring.clone(), vec![]);
    if let Some(c) = poly.centroid() {
        if poly.contains(&c) {
            return c.0;
        }
    }
    let n = ring.0.len();
    for i in 0..n {
        for j in (i + 2)..n {
            let c = Coord { x: (ring.0[i].x + ring.0[j].x) / 2.0, y: (ring.0[i].y + ring.0[j].y) / 2.0 };
            if poly.contains(&Point(c)) {
                return c;
            }
        }
    }
    panic!("no interior point found for ring");
}

#[test]
fn hand_picked_real_points() {
    let features = load_all();
    let index = build(&features);

    // Downtown Bloomington, Indiana. Verified against the data: only these
    // four features contain it (the world admin-1 layer has no US states,
    // and no city/district layer covers Indiana).
    assert_eq!(
        resolve(&features, &index, 39.1653, -86.5264),
        vec!["country:USA", "us-county:18105", "us-place:1805860", "us-state:18"]
    );

    // Open Atlantic.
    assert!(resolve(&features, &index, 30.0, -40.0).is_empty());

    // Islands of real MultiPolygons: the Big Island of Hawaii (us-state:15)
    // and Martha's Vineyard (Dukes County, us-county:25007).
    let (_, hawaii) = find(&features, "us-state:15");
    assert!(hawaii.geometry.0.len() > 1, "Hawaii is a MultiPolygon");
    let r = resolve(&features, &index, 19.6, -155.5);
    assert!(r.contains(&"us-state:15".to_string()), "{r:?}");
    assert!(r.contains(&"us-county:15001".to_string()), "{r:?}");
    let (_, dukes) = find(&features, "us-county:25007");
    assert!(dukes.geometry.0.len() > 1, "Dukes County is a MultiPolygon");
    let r = resolve(&features, &index, 41.39, -70.62);
    assert_eq!(r, vec!["country:USA", "us-county:25007", "us-state:25"]);
}

#[test]
fn points_in_real_holes_are_excluded() {
    let features = load_all();
    let index = build(&features);

    // South Africa has Lesotho as a hole; Fairfax County, VA has the
    // independent city of Fairfax (us-county:51600) as a hole.
    for (holder, filler) in [("country:ZAF", "country:LSO"), ("us-county:51059", "us-county:51600")] {
        let (_, f) = find(&features, holder);
        let mut checked = 0;
        for part in &f.geometry.0 {
            for hole in part.interiors() {
                let p = point_inside_ring(hole);
                let r = ids(&features, &query_sorted(&index, p));
                assert!(!r.contains(&holder.to_string()), "{holder} returned for {p:?} in its own hole: {r:?}");
                // Cross-check with geo on the same geometry.
                assert!(!f.geometry.intersects(&Point(p)));
                if r.contains(&filler.to_string()) {
                    checked += 1;
                }
                // The hole's own vertices are on the boundary: covered.
                let v = hole.0[0];
                let r = ids(&features, &query_sorted(&index, v));
                assert!(r.contains(&holder.to_string()), "hole vertex {v:?}: {r:?}");
            }
        }
        assert!(checked >= 1, "no hole of {holder} filled by {filler}");
    }
    // And a direct point in Maseru, Lesotho.
    let r = resolve(&features, &index, -29.31, 27.48);
    assert!(r.contains(&"country:LSO".to_string()), "{r:?}");
    assert!(!r.contains(&"country:ZAF".to_string()), "{r:?}");
}

#[test]
fn shared_county_border_resolves_to_both_sides() {
    let features = load_all();
    let index = build(&features);

    // Map every exact county vertex to the counties that use it.
    let mut owners: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    for (fi, f) in features.iter().enumerate() {
        if !f.id.starts_with("us-county:") {
            continue;
        }
        for part in &f.geometry.0 {
            for c in part.exterior().0.iter() {
                let e = owners.entry((c.x.to_bits(), c.y.to_bits())).or_default();
                if !e.contains(&fi) {
                    e.push(fi);
                }
            }
        }
    }
    // Monroe County, IN: every exterior vertex shared with exactly one
    // other county (not a triple junction) lies on their common border.
    let (monroe, f) = find(&features, "us-county:18105");
    let ring = &f.geometry.0[0].exterior().0;
    let other_of = |c: &Coord<f64>| -> Option<usize> {
        let o = owners.get(&(c.x.to_bits(), c.y.to_bits()))?;
        (o.len() == 2).then(|| o.iter().copied().find(|&x| x != monroe))?
    };
    let mut tested = 0;
    for v in ring {
        let Some(a) = other_of(v) else {
            continue;
        };
        let r = ids(&features, &query_sorted(&index, *v));
        assert!(r.contains(&"us-county:18105".to_string()), "{r:?}");
        assert!(r.contains(&features[a].id), "{r:?}");
        // Both are in Indiana, so the state shows up exactly once.
        assert_eq!(r.iter().filter(|s| s.as_str() == "us-state:18").count(), 1, "{r:?}");
        tested += 1;
    }
    assert!(tested >= 3, "too few shared-border vertices found: {tested}");
}
