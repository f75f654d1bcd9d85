//! Seeded synthetic boundary data for the scale benchmark (`benches/scale.rs`)
//! and its test (`tests/tessellation.rs`, which includes this file with
//! `#[path = "../benches/common/tessellation.rs"]`).
//!
//! # Layout
//!
//! Three tiers over a contiguous-US-sized box (lon -125..-66, lat 24..50),
//! all cut from ONE jittered quad mesh so that neighbours share their edges
//! exactly, like Census states, counties and places do:
//!
//! * `Place`: every fine cell of an `nx` x `ny` mesh (about 98 % of the
//!   polygons). Mesh nodes are jittered by up to 15 % of a cell; every mesh
//!   edge is a polyline with 1 to 4 extra vertices wiggled by up to 4 % of a
//!   cell across it. A cell's ring is made of its four edge polylines, so a
//!   cell has 8 to 20 vertices (about 14 on average) and its neighbour uses
//!   exactly the same coordinates along their shared edge.
//! * `County`: blocks of 8 x 8 fine cells, traced along the fine edges
//!   (about 110 vertices each).
//! * `State`: blocks of 32 x 32 fine cells (about 450 vertices each).
//!
//! So every point of the box is covered by exactly one state, one county and
//! one place (two or more of each on a shared edge or vertex), and a
//! point on a county border is also on a place border.
//!
//! Coordinates are multiples of 2^-20 degree (about 0.1 m), so that
//! `a + (b - a) * t` for `t` in {1/4, 1/2, 3/4} is computed exactly: such a
//! point lies exactly on the segment `a`-`b` (an exact shared-edge case, not
//! just a near miss), which [`sample_points`] uses.
//!
//! The geometry depends only on `(target, seed)`.

#![allow(dead_code)]

use geo::{Area, BoundingRect, Coord, LineString, Polygon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The box the mesh covers: `(min, max)` as `[lon, lat]`.
pub const EXTENT: ([f64; 2], [f64; 2]) = ([-125.0, 24.0], [-66.0, 50.0]);

/// Fine cells per county block side.
pub const COUNTY_BLOCK: usize = 8;
/// Fine cells per state block side.
pub const STATE_BLOCK: usize = 32;

/// Node jitter, as a fraction of a cell.
const NODE_JITTER: f64 = 0.15;
/// Largest offset of an edge's extra vertices across the edge, as a fraction of a cell.
const EDGE_WIGGLE: f64 = 0.04;
/// Coordinate quantum: 2^-20 degree.
const QUANTUM: f64 = 1.0 / 1_048_576.0;

/// Tier of a synthetic polygon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// 32 x 32 fine cells.
    State,
    /// 8 x 8 fine cells.
    County,
    /// One fine cell.
    Place,
}

/// One synthetic jurisdiction boundary.
#[derive(Clone, Debug)]
pub struct SynthPolygon {
    /// Stable id, e.g. `synth-place:12-7`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Tier.
    pub level: Level,
    /// The boundary (one exterior ring, counter-clockwise, closed).
    pub polygon: Polygon<f64>,
    /// Approximate area in km² (planar area scaled by the latitude).
    pub area_km2: f64,
}

/// A generated tessellation.
#[derive(Clone, Debug)]
pub struct Tessellation {
    /// States, then counties, then places.
    pub polygons: Vec<SynthPolygon>,
    /// Fine mesh size `[nx, ny]`.
    pub dims: [usize; 2],
}

impl Tessellation {
    /// Total number of coordinates over all rings (closing points included).
    pub fn vertices(&self) -> usize {
        self.polygons.iter().map(|p| p.polygon.exterior().0.len()).sum()
    }
}

fn quantize(v: f64) -> f64 {
    (v / QUANTUM).round() * QUANTUM
}

/// The mesh: jittered nodes and the extra vertices of every edge.
struct Mesh {
    nx: usize,
    ny: usize,
    /// `(nx + 1) * (ny + 1)` nodes, row-major by `j`.
    nodes: Vec<Coord<f64>>,
    /// Horizontal edge `(i, j)` (node `(i, j)` to `(i + 1, j)`), `i < nx`, `j <= ny`:
    /// its extra vertices are `h_pts[h_off[e]..h_off[e + 1]]`, in forward order.
    h_off: Vec<u32>,
    h_pts: Vec<Coord<f64>>,
    /// Vertical edge `(i, j)` (node `(i, j)` to `(i, j + 1)`), `i <= nx`, `j < ny`.
    v_off: Vec<u32>,
    v_pts: Vec<Coord<f64>>,
}

impl Mesh {
    fn new(nx: usize, ny: usize, rng: &mut ChaCha8Rng) -> Mesh {
        let (min, max) = EXTENT;
        let dx = (max[0] - min[0]) / nx as f64;
        let dy = (max[1] - min[1]) / ny as f64;
        let mut nodes = Vec::with_capacity((nx + 1) * (ny + 1));
        for j in 0..=ny {
            for i in 0..=nx {
                let mut x = min[0] + i as f64 * dx;
                let mut y = min[1] + j as f64 * dy;
                // Nodes on the outer border slide along it only.
                if j != 0 && j != ny {
                    y += rng.gen_range(-NODE_JITTER..NODE_JITTER) * dy;
                }
                if i != 0 && i != nx {
                    x += rng.gen_range(-NODE_JITTER..NODE_JITTER) * dx;
                }
                nodes.push(Coord { x: quantize(x), y: quantize(y) });
            }
        }
        let node = |i: usize, j: usize| nodes[j * (nx + 1) + i];
        let mut edge = |a: Coord<f64>,
                        b: Coord<f64>,
                        across: Coord<f64>,
                        straight: bool,
                        off: &mut Vec<u32>,
                        pts: &mut Vec<Coord<f64>>| {
            let k: usize = rng.gen_range(1..=4);
            for m in 1..=k {
                let t = m as f64 / (k + 1) as f64;
                let w = if straight { 0.0 } else { rng.gen_range(-EDGE_WIGGLE..EDGE_WIGGLE) };
                pts.push(Coord {
                    x: quantize(a.x + (b.x - a.x) * t + across.x * w),
                    y: quantize(a.y + (b.y - a.y) * t + across.y * w),
                });
            }
            off.push(pts.len() as u32);
        };
        let (mut h_off, mut h_pts) = (vec![0u32], Vec::new());
        for j in 0..=ny {
            for i in 0..nx {
                let straight = j == 0 || j == ny;
                edge(node(i, j), node(i + 1, j), Coord { x: 0.0, y: dy }, straight, &mut h_off, &mut h_pts);
            }
        }
        let (mut v_off, mut v_pts) = (vec![0u32], Vec::new());
        for j in 0..ny {
            for i in 0..=nx {
                let straight = i == 0 || i == nx;
                edge(node(i, j), node(i, j + 1), Coord { x: dx, y: 0.0 }, straight, &mut v_off, &mut v_pts);
            }
        }
        Mesh { nx, ny, nodes, h_off, h_pts, v_off, v_pts }
    }

    fn node(&self, i: usize, j: usize) -> Coord<f64> {
        self.nodes[j * (self.nx + 1) + i]
    }

    fn h(&self, i: usize, j: usize) -> &[Coord<f64>] {
        let e = j * self.nx + i;
        &self.h_pts[self.h_off[e] as usize..self.h_off[e + 1] as usize]
    }

    fn v(&self, i: usize, j: usize) -> &[Coord<f64>] {
        let e = j * (self.nx + 1) + i;
        &self.v_pts[self.v_off[e] as usize..self.v_off[e + 1] as usize]
    }

    /// The counter-clockwise ring around fine cells `[i0, i1) x [j0, j1)`,
    /// traced along the mesh edges (closed).
    fn block_ring(&self, i0: usize, i1: usize, j0: usize, j1: usize) -> LineString<f64> {
        let mut ring = Vec::new();
        for i in i0..i1 {
            ring.push(self.node(i, j0));
            ring.extend_from_slice(self.h(i, j0));
        }
        for j in j0..j1 {
            ring.push(self.node(i1, j));
            ring.extend_from_slice(self.v(i1, j));
        }
        for i in (i0..i1).rev() {
            ring.push(self.node(i + 1, j1));
            ring.extend(self.h(i, j1).iter().rev());
        }
        for j in (j0..j1).rev() {
            ring.push(self.node(i0, j + 1));
            ring.extend(self.v(i0, j).iter().rev());
        }
        ring.push(self.node(i0, j0));
        LineString::new(ring)
    }
}

/// Approximate area in km² of a lon/lat polygon.
fn area_km2(p: &Polygon<f64>) -> f64 {
    let lat = p.bounding_rect().map_or(0.0, |r| r.center().y);
    p.unsigned_area() * 111.32 * 111.32 * lat.to_radians().cos()
}

/// Fine mesh size for about `target` polygons in total (places + counties + states).
pub fn dims_for(target: usize) -> [usize; 2] {
    let per_fine = 1.0 + 1.0 / (COUNTY_BLOCK * COUNTY_BLOCK) as f64 + 1.0 / (STATE_BLOCK * STATE_BLOCK) as f64;
    let fine = (target as f64 / per_fine).max(1.0);
    let (min, max) = EXTENT;
    let aspect = (max[0] - min[0]) / (max[1] - min[1]);
    let nx = ((fine * aspect).sqrt().round() as usize).max(1);
    let ny = ((fine / nx as f64).round() as usize).max(1);
    [nx, ny]
}

/// Generates a tessellation of about `target` polygons (see the module docs).
pub fn generate(target: usize, seed: u64) -> Tessellation {
    let [nx, ny] = dims_for(target);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mesh = Mesh::new(nx, ny, &mut rng);
    let mut polygons = Vec::new();
    for (level, block, tag) in [(Level::State, STATE_BLOCK, "state"), (Level::County, COUNTY_BLOCK, "county")] {
        for bj in 0..ny.div_ceil(block) {
            for bi in 0..nx.div_ceil(block) {
                let (i0, j0) = (bi * block, bj * block);
                let (i1, j1) = ((i0 + block).min(nx), (j0 + block).min(ny));
                let polygon = Polygon::new(mesh.block_ring(i0, i1, j0, j1), Vec::new());
                polygons.push(SynthPolygon {
                    id: format!("synth-{tag}:{bi}-{bj}"),
                    name: format!("Synthetic {tag} {bi}-{bj}"),
                    level,
                    area_km2: area_km2(&polygon),
                    polygon,
                });
            }
        }
    }
    for j in 0..ny {
        for i in 0..nx {
            let polygon = Polygon::new(mesh.block_ring(i, i + 1, j, j + 1), Vec::new());
            polygons.push(SynthPolygon {
                id: format!("synth-place:{i}-{j}"),
                name: format!("Synthetic place {i}-{j}"),
                level: Level::Place,
                area_km2: area_km2(&polygon),
                polygon,
            });
        }
    }
    Tessellation { polygons, dims: [nx, ny] }
}

/// How a sample point was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointKind {
    /// Uniform in the bounding box of a random polygon (or of the whole set).
    Uniform,
    /// Exactly a vertex of a random polygon (on shared vertices and edges of its neighbours).
    Vertex,
    /// Exactly on a segment of a random polygon, at 1/4, 1/2 or 3/4 of it
    /// (exactly on it when coordinates are dyadic, as in [`generate`]).
    OnEdge,
    /// A vertex moved by about 1e-9 degree (near-boundary).
    NearVertex,
}

/// `n` seeded sample points over `polygons`: 40 % uniform in random polygons'
/// bounding boxes (a tenth of those in the bounding box of all, grown by 2 %),
/// 20 % exact vertices, 20 % points on segments, 20 % nudged vertices.
pub fn sample_points(polygons: &[&Polygon<f64>], n: usize, seed: u64) -> Vec<(Coord<f64>, PointKind)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    let rings: Vec<&[Coord<f64>]> =
        polygons.iter().map(|p| p.exterior().0.as_slice()).filter(|r| r.len() >= 2).collect();
    if rings.is_empty() {
        return out;
    }
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for r in &rings {
        for c in r.iter() {
            lo = [lo[0].min(c.x), lo[1].min(c.y)];
            hi = [hi[0].max(c.x), hi[1].max(c.y)];
        }
    }
    let margin = [(hi[0] - lo[0]) * 0.02, (hi[1] - lo[1]) * 0.02];
    while out.len() < n {
        let ring = rings[rng.gen_range(0..rings.len())];
        let kind = match out.len() % 5 {
            0 | 1 => PointKind::Uniform,
            2 => PointKind::Vertex,
            3 => PointKind::OnEdge,
            _ => PointKind::NearVertex,
        };
        let c = match kind {
            PointKind::Uniform => {
                let (a, b) = if rng.gen_range(0..10) == 0 {
                    ([lo[0] - margin[0], lo[1] - margin[1]], [hi[0] + margin[0], hi[1] + margin[1]])
                } else {
                    let (mut a, mut b) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
                    for c in ring {
                        a = [a[0].min(c.x), a[1].min(c.y)];
                        b = [b[0].max(c.x), b[1].max(c.y)];
                    }
                    (a, b)
                };
                if !(b[0] > a[0] && b[1] > a[1]) {
                    continue;
                }
                Coord { x: rng.gen_range(a[0]..b[0]), y: rng.gen_range(a[1]..b[1]) }
            }
            PointKind::Vertex => ring[rng.gen_range(0..ring.len())],
            PointKind::OnEdge => {
                let s = rng.gen_range(0..ring.len() - 1);
                let (a, b) = (ring[s], ring[s + 1]);
                let t = [0.25, 0.5, 0.75][rng.gen_range(0..3)];
                Coord { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t }
            }
            PointKind::NearVertex => {
                let v = ring[rng.gen_range(0..ring.len())];
                Coord { x: v.x + rng.gen_range(-1e-9..1e-9), y: v.y + rng.gen_range(-1e-9..1e-9) }
            }
        };
        out.push((c, kind));
    }
    out
}
