//! The resolve hot path: which keys' geometries cover a (lon, lat) point.
//!
//! # Structure
//!
//! A [`SpatialIndex`] is an [`rstar`] R-tree of axis-aligned bounding boxes,
//! one entry per polygon **part** (each `Polygon` of a `MultiPolygon` is its
//! own entry, so a country's far-flung islands do not inflate one giant
//! box). Each entry is a slot number: the index keeps, per slot, the
//! caller's `u32` key and a copy of the part's [`PreparedPolygon`] header
//! (y-stripe edge bands, see [`crate::index::prepared`]) that shares the
//! coordinate and band buffers of the caller's [`PreparedGeometry`]
//! (`Arc<[PreparedPolygon]>`), so an edge test reads the header and then
//! the buffers, with no hop through the caller's geometry.
//!
//! # Build steps
//!
//! 1. The caller prepares each geometry once with [`prepare`], which turns
//!    every polygon part into a [`PreparedPolygon`] (the expensive step).
//! 2. [`SpatialIndex::build`] takes `(key, PreparedGeometry)` pairs; the
//!    part headers are copied (80 bytes each), never the edges, so a
//!    rebuild only re-does steps 3-5. A write does not rebuild at all:
//!    the snapshot answers changed geometry from a small grid-less overlay
//!    ([`SpatialIndex::build_tree_only`]) until a new base is built in the
//!    background (see [`crate::index::Snapshot`]).
//! 3. For every part a slot is recorded (`key` and header copy) and
//!    an R-tree entry is made from the part's bounding box and slot number.
//! 4. The R-tree is bulk-loaded (`RTree::bulk_load`, OMT packing) in one go.
//!
//! 5. A hierarchical grid is built over the extent of all parts: a uniform
//!    top grid of about one cell per vertex (2^16 to 2^20 cells) and at
//!    least four cells a part (up to 2^22), whose
//!    boundary cells are then split into 4 x 4 children, best first, down
//!    to five levels (cells 1,024 times smaller per axis than a top cell),
//!    within a budget of four nodes a vertex (2^16 to 2^21 nodes), or one
//!    node per three vertices (up to 2^22 nodes) where the top grid holds
//!    eight vertices a cell or more (TIGER). "Best" is the expected number
//!    of edge tests a query saves: the node's boundary items times the
//!    summed share of each listed part's bounding box the node covers, a
//!    proxy for how likely queries land there (dense clusters of small
//!    jurisdictions are where people, and so queries, are). In every node,
//!    each part whose boundary reaches it (segments rasterised row by row)
//!    is listed as "boundary", each part that covers it wholly as
//!    "inside"; a split node keeps its "inside" items and hands its
//!    "boundary" items down. Cells no boundary reaches are decided one
//!    connected group at a time (one point test per group, not per cell).
//!    See `Grid` for why this is exact.
//!
//! # Query
//!
//! [`SpatialIndex::query`] maps the point to its top cell and walks down
//! the refined nodes to its leaf (one dependent load a level: a node holds
//! up to two items inline, longer lists are one more load): an "inside"
//! item yields its key with no edge test, a "boundary" item runs the
//! prepared banded point test, and a point outside the grid extent is
//! covered by nothing. [`SpatialIndex::query_many`] answers a batch
//! [`LANES`] points at a time, walking them down the grid side by side and
//! splitting their edge tests in passes, so that the cache misses of
//! different points overlap (the out-of-order core keeps ~10-16 loads in
//! flight, but a single walk is a chain of dependent ones).
//! [`SpatialIndex::query_rtree_only`] answers the same
//! through the R-tree (internal iteration, no heap allocation) and the
//! banded test of every part whose box contains the point. Neither
//! allocates when `out` has spare capacity; keys already pushed are
//! skipped.
//!
//! Measured with `cargo bench --bench scale` on the bundled data (all
//! 8,492 features, points uniform in the bounding boxes of random
//! features; 2-core machine, 2026-11-26, seventh session; BENCHMARKS.md has
//! the other sets, earlier machines and the noise): `Snapshot::resolve_into`
//! 108-113 ns/point single and 108-110 ns in a 10k batch, against 0.8-1.0 us
//! for the R-tree-only path. `Snapshot::resolve_many` (this module's
//! `query_many`) is 0.81-0.83x the one-at-a-time time here, and 0.3-0.5x
//! on TIGER and at 10^6 polygons, where the index no longer sits in cache.
//! Per lookup point the grid walks 1.5 levels below the top, takes 2.1
//! parts as covering without a test and edge-tests 0.54 (1.5 with a budget
//! of half a node a vertex, 3.8 with no refinement); 76 % of the points
//! need no edge test. The refinement costs build time: ~0.7 s on the
//! bundled data (prepared geometry is reused either way).
//!
//! # Boundary rule and invalid polygons
//!
//! A point on any edge or vertex of a part is covered (like PostGIS
//! `ST_Covers`), so a point on a border shared by two jurisdictions
//! resolves to both. Inside-ness uses even-odd crossing parity over all
//! rings of a part (exterior and holes together), which tolerates the
//! OGC-invalid rings found in simplified boundary data (wrong winding,
//! rings with fewer than 4 points, self-touching rings); see
//! [`crate::index::prepared`]. Parts of one key are tested independently
//! and a key is reported if any part covers the point (so overlapping parts
//! of one MultiPolygon union rather than cancel out).

use std::ops::ControlFlow;
use std::sync::Arc;

use geo::{Coord, MultiPolygon};
use rayon::prelude::*;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

use crate::index::prepared::{BandSpan, Location, PreparedPolygon};

/// A prepared geometry: one [`PreparedPolygon`] per polygon part, shared
/// between index generations.
pub type PreparedGeometry = Arc<[PreparedPolygon]>;

/// Prepares every polygon part of `mp` for point queries.
pub fn prepare(mp: &MultiPolygon<f64>) -> PreparedGeometry {
    mp.0.iter().map(PreparedPolygon::new).collect()
}

/// R-tree entry: a part's bounding box and its slot number in `polygons`.
type Entry = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// Work done by one grid lookup, see [`SpatialIndex::probe`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// Refined levels walked below the top cell.
    pub depth: usize,
    /// Parts taken as covering without an edge test.
    pub inside: usize,
    /// Parts whose edges were tested.
    pub tested: usize,
}

/// Point-in-jurisdiction index over prepared geometries. See the
/// [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct SpatialIndex {
    tree: RTree<Entry>,
    grid: Grid,
    /// Every indexed part's header, by slot: a copy of the caller's
    /// [`PreparedPolygon`] sharing its coordinate and band buffers (two
    /// `Arc` slices), so an edge test reads the header here and then the
    /// buffers. Reaching it through the caller's `PreparedGeometry` instead
    /// (slot -> `Arc` -> header -> buffers) cost one more dependent cache
    /// miss per test.
    polygons: Vec<PreparedPolygon>,
    /// The caller's key of every slot (read for every grid item).
    keys: Vec<u32>,
    entries: usize,
    vertices: usize,
}

impl SpatialIndex {
    /// Builds the index from `(key, geometry)` pairs. Keys need not be dense,
    /// sorted or unique. Only the R-tree is (bulk-)built here; prepared
    /// geometry is shared through its `Arc`.
    pub fn build(entries: Vec<(u32, PreparedGeometry)>) -> SpatialIndex {
        let mut index = Self::build_tree_only(entries);
        index.grid = Grid::build(&index.polygons, index.vertices);
        index
    }

    /// Like [`build`](Self::build) but without the grid: every query walks
    /// the R-tree. Cheap to build, so it suits small, often rebuilt indexes
    /// (a snapshot's overlay of recently changed geometry).
    pub fn build_tree_only(entries: Vec<(u32, PreparedGeometry)>) -> SpatialIndex {
        let count = entries.len();
        let mut polygons = Vec::new();
        let mut keys = Vec::new();
        let mut rects = Vec::new();
        let mut vertices = 0usize;
        for (key, geometry) in entries {
            for poly in geometry.iter() {
                if poly.vertex_count() == 0 {
                    continue;
                }
                let Ok(slot) = u32::try_from(polygons.len()) else { continue };
                let (min, max) = poly.bbox();
                vertices += poly.vertex_count();
                rects.push(Entry::new(Rectangle::from_corners(min, max), slot));
                polygons.push(poly.clone());
                keys.push(key);
            }
        }
        SpatialIndex { tree: RTree::bulk_load(rects), grid: Grid::default(), polygons, keys, entries: count, vertices }
    }

    /// Pushes onto `out` the key of every entry whose geometry covers the
    /// point (inside or on the boundary), each key once, in unspecified
    /// order. Existing contents of `out` are kept and not consulted. Does
    /// not allocate when `out` has spare capacity for the results.
    pub fn query(&self, lon: f64, lat: f64, out: &mut Vec<u32>) {
        let start = out.len();
        let c = Coord { x: lon, y: lat };
        let (polygons, keys) = (&self.polygons, &self.keys);
        let gridded = self.grid.visit(lon, lat, |item| {
            let slot = (item >> 1) as usize;
            let Some(&key) = keys.get(slot) else {
                return;
            };
            if !out[start..].contains(&key) && (item & 1 == 1 || polygons.get(slot).is_some_and(|p| p.covers(c))) {
                out.push(key);
            }
        });
        if !gridded {
            self.query_tree(c, start, out);
        }
    }

    /// Batch form of [`query`](Self::query): the keys covering
    /// `points[i]` are pushed onto `out` and `out.len()` is then pushed onto
    /// `ends`, so point `i`'s keys are `out[ends[i - 1]..ends[i]]` (from
    /// where `out` ended before the call, for `i = 0`), each key once, in
    /// unspecified order. The same answers as calling `query` point by
    /// point, but faster on large indexes: the points are taken [`LANES`]
    /// at a time and walked down the grid side by side, one level for all
    /// of them before the next, and their edge tests are split in passes
    /// ([`PreparedPolygon::band_span`], [`PreparedPolygon::touch`], then
    /// [`PreparedPolygon::locate_in`]), so the cache misses of different
    /// points overlap instead of following one another. Does not allocate
    /// once `out` and `ends` have room (and after the first chunk's
    /// scratch).
    pub fn query_many(&self, points: &[Coord<f64>], out: &mut Vec<u32>, ends: &mut Vec<usize>) {
        ends.reserve(points.len());
        if self.grid.nodes.is_empty() {
            for &c in points {
                let start = out.len();
                self.query_tree(c, start, out);
                ends.push(out.len());
            }
            return;
        }
        let mut tests: Vec<Test> = Vec::with_capacity(LANES * 4);
        let mut found = LaneKeys::default();
        for chunk in points.chunks(LANES) {
            found.clear();
            tests.clear();
            self.grid.visit_many(chunk, |lane, item| {
                let slot = item >> 1;
                if item & 1 == 1 {
                    found.add(lane, self.keys.get(slot as usize));
                } else {
                    tests.push(Test { lane, slot, span: None });
                }
            });
            // First pass of every edge test: header and band offsets.
            for t in tests.iter_mut() {
                t.span = match (self.polygons.get(t.slot as usize), chunk.get(t.lane)) {
                    (Some(p), Some(&c)) => p.band_span(c),
                    _ => None,
                };
            }
            // Every test's band edges on their way before the first waits.
            let mut touched = 0.0;
            for t in &tests {
                if let (Some(span), Some(p)) = (t.span, self.polygons.get(t.slot as usize)) {
                    touched += p.touch(span);
                }
            }
            std::hint::black_box(touched);
            for t in &tests {
                if let (Some(span), Some(p), Some(&c)) = (t.span, self.polygons.get(t.slot as usize), chunk.get(t.lane))
                {
                    if p.locate_in(span, c) != Location::Outside {
                        found.add(t.lane, self.keys.get(t.slot as usize));
                    }
                }
            }
            for (lane, c) in chunk.iter().enumerate() {
                match found.keys(lane) {
                    Some(keys) => out.extend_from_slice(keys),
                    // More keys than a lane holds: asked again alone.
                    None => self.query(c.x, c.y, out),
                }
                ends.push(out.len());
            }
        }
    }

    /// What [`query`](Self::query) does for one point: grid levels walked
    /// below the top cell, "inside" items taken without a test, and
    /// boundary items tested. For benchmarks and tuning; `None` when the
    /// index has no grid.
    pub fn probe(&self, lon: f64, lat: f64) -> Option<Probe> {
        let mut probe = Probe::default();
        let mut nodes = 0;
        let gridded = self.grid.visit_nodes(
            lon,
            lat,
            |item| {
                if item & 1 == 1 {
                    probe.inside += 1;
                } else {
                    probe.tested += 1;
                }
            },
            &mut nodes,
        );
        probe.depth = nodes.saturating_sub(1);
        gridded.then_some(probe)
    }

    /// Pushes onto `out` the key of every entry with a polygon part whose
    /// bounding box meets the box `min`..`max` (keys may repeat).
    pub fn keys_in_box(&self, min: [f64; 2], max: [f64; 2], out: &mut Vec<u32>) {
        let aabb = rstar::AABB::from_corners(min, max);
        for entry in self.tree.locate_in_envelope_intersecting(&aabb) {
            if let Some(&key) = self.keys.get(entry.data as usize) {
                out.push(key);
            }
        }
    }

    /// R-tree path (points outside the grid, or no grid).
    fn query_tree(&self, c: Coord<f64>, start: usize, out: &mut Vec<u32>) {
        let _ = self.tree.locate_all_at_point_int(&[c.x, c.y], |entry: &Entry| {
            let slot = entry.data as usize;
            if let (Some(&key), Some(poly)) = (self.keys.get(slot), self.polygons.get(slot)) {
                if !out[start..].contains(&key) && poly.covers(c) {
                    out.push(key);
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }

    /// Same answer as [`query`](Self::query) but always through the R-tree
    /// (no grid); for tests and benchmarks.
    pub fn query_rtree_only(&self, lon: f64, lat: f64, out: &mut Vec<u32>) {
        let start = out.len();
        self.query_tree(Coord { x: lon, y: lat }, start, out);
    }

    /// Grid size: `(top columns, top rows, nodes, stored node items)`
    /// (nodes count the top cells and every refined child);
    /// `(0, 0, 0, 0)` when the index has no grid.
    pub fn grid_stats(&self) -> (usize, usize, usize, usize) {
        if self.grid.nodes.is_empty() {
            (0, 0, 0, 0)
        } else {
            (self.grid.dims[0], self.grid.dims[1], self.grid.nodes.len(), self.grid.item_count)
        }
    }

    /// Number of indexed polygon parts.
    pub fn polygon_count(&self) -> usize {
        self.polygons.len()
    }

    /// Total number of coordinates over all indexed parts.
    pub fn vertex_count(&self) -> usize {
        self.vertices
    }

    /// Number of `(key, geometry)` entries the index was built from.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the index was built from no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// Points walked side by side in [`SpatialIndex::query_many`]: enough
/// independent loads to keep a core's outstanding-miss slots (10-16 on
/// current x86 cores) busy, few enough that each level's state stays in
/// registers and L1.
pub const LANES: usize = 16;

/// An edge test of [`SpatialIndex::query_many`]: the point's place in its
/// chunk, the part's slot and, once run, the first pass's result.
#[derive(Clone, Copy)]
struct Test {
    lane: usize,
    slot: u32,
    span: Option<BandSpan>,
}

/// Keys a lane of [`SpatialIndex::query_many`] holds (the bundled data's
/// most covered point has 10); a point with more is asked again alone.
const LANE_KEYS: usize = 16;

/// The keys found so far for each point of a [`SpatialIndex::query_many`]
/// chunk, each once: fixed rows, no allocation and no sort to group them.
struct LaneKeys {
    keys: [[u32; LANE_KEYS]; LANES],
    /// Keys in each row; `LANE_KEYS + 1` once a row overflowed.
    len: [usize; LANES],
}

impl Default for LaneKeys {
    fn default() -> Self {
        LaneKeys { keys: [[0; LANE_KEYS]; LANES], len: [0; LANES] }
    }
}

impl LaneKeys {
    fn clear(&mut self) {
        self.len = [0; LANES];
    }

    /// Adds `key` to `lane`'s row unless it is there (or `None`).
    #[inline]
    fn add(&mut self, lane: usize, key: Option<&u32>) {
        let (Some(&key), Some(row), Some(len)) = (key, self.keys.get_mut(lane), self.len.get_mut(lane)) else {
            return;
        };
        match row.get(..*len) {
            Some(have) if have.contains(&key) => {}
            Some(_) => match row.get_mut(*len) {
                Some(place) => {
                    *place = key;
                    *len += 1;
                }
                None => *len = LANE_KEYS + 1,
            },
            None => {}
        }
    }

    /// `lane`'s keys, or `None` when they did not fit.
    #[inline]
    fn keys(&self, lane: usize) -> Option<&[u32]> {
        self.keys.get(lane)?.get(..*self.len.get(lane)?)
    }
}

/// Upper bound on the number of top-level grid cells set by the vertex
/// count (the top grid has about one cell per vertex within
/// `MIN_CELLS..=MAX_CELLS`; a node costs 8 bytes). 2^21 walked TIGER
/// lookups 1.71 levels down instead of 1.96, for 0.8 more bytes a vertex,
/// but alternating bench runs could not tell the two apart (260-548 ns).
const MAX_CELLS: usize = 1 << 20;
/// Top cells a part, whatever the vertex count: with 10^6 small parts (~17
/// vertices each), one cell a vertex capped at [`MAX_CELLS`] left parts of
/// several polygons in most top cells, more than the node budget could
/// refine: a point edge-tested 4.1 parts (1.2 us a lookup). With four cells
/// a part, 2.5 parts (0.3-1.0 us; alternating runs 1,219 / 682 / 1,229 /
/// 961 ns), for ~4 more bytes a vertex and 0.5-0.9 s more build.
const CELLS_A_PART: usize = 4;
/// Upper bound on the top cells set by [`CELLS_A_PART`] (32 MB of nodes).
const MAX_PART_CELLS: usize = 1 << 22;
/// Lower bound on the number of top-level grid cells.
const MIN_CELLS: usize = 1 << 16;
/// Least number of refined nodes allowed.
const MIN_NODES: usize = 1 << 16;
/// Most refined nodes of the four-a-vertex budget (the node budget is four
/// nodes a vertex within `MIN_NODES..=MAX_NODES`, see [`VERTICES_A_NODE`]
/// for large sets). More nodes keep cutting edge tests (bundled: 1.5,
/// 0.85, 0.54 and 0.34 tests a point at 2^18, 2^20, 2^21 and 2^22 nodes)
/// but cost build time and memory, which on small sets is mostly the
/// grid's.
const MAX_NODES: usize = 1 << 21;
/// Sets whose top grid holds at least [`LARGE_VERTICES_A_CELL`] vertices a
/// cell (large, detailed parts) get at least one refined node per this
/// many vertices, up to [`MAX_LARGE_NODES`]: on TIGER (12.7M vertices, 12
/// a top cell) 2^22 nodes instead of 2^21 cut the edge tests a point from
/// 1.04 to 0.74 (42 % of points need none instead of 24 %), and an edge
/// test there is a chain of cache misses (part header, band offsets, band,
/// coordinates) worth most of a lookup, while the walk down the grid costs
/// ~50-65 ns. The price: ~1 s of build and 1.6 B/vertex, paid for by the
/// two-byte band entries (see [`crate::index::prepared`]). Sets of many
/// small parts (the 10^6 synthetic set: 17M vertices, 4 a top cell) gained
/// little from it (2.34 tests a point) for 2 s more build, so they keep
/// the four-a-vertex budget.
const VERTICES_A_NODE: usize = 3;
/// See [`VERTICES_A_NODE`].
const LARGE_VERTICES_A_CELL: usize = 8;
/// Most refined nodes of a large set (32 MB of nodes).
const MAX_LARGE_NODES: usize = 1 << 22;
/// A refined node has `FANOUT x FANOUT` children (`FANOUT = 2^FANOUT_BITS`).
const FANOUT_BITS: u32 = 2;
const FANOUT: usize = 1 << FANOUT_BITS;
/// Refinement levels below the top grid: the finest cells are
/// `FANOUT^MAX_DEPTH` (1,024) times smaller per axis than a top cell.
const MAX_DEPTH: u32 = 5;
/// Bits of a fine coordinate below the top-cell index.
const TOP_SHIFT: u32 = FANOUT_BITS * MAX_DEPTH;
/// Item flag: the rest of the item is the node number of the first of a
/// refined node's `FANOUT^2` children (row-major). Node numbers stay below
/// 2^30, so a `CHILD` item never has bit 30 set.
const CHILD: u32 = 1 << 31;
/// Node word flags (bits 31 and 30 together, never an item): the node's
/// items are `spill[start..start + len]`, with `start` in the low 30 bits
/// of the first word and `len` the second word.
const SPILL: u32 = 3 << 30;
/// An unused inline item place in a node.
const EMPTY: u32 = u32::MAX;

/// Hierarchical grid over the extent of all parts: a uniform top grid
/// (at most [`MAX_CELLS`] cells) whose boundary cells are refined into
/// `4 x 4` children, best first (see the module documentation), down to
/// [`MAX_DEPTH`] levels, within a node budget that grows with the vertex
/// count.
///
/// Every node lists, per part whose closed boundary or interior reaches it,
/// `slot << 1 | inside`, where `inside = 1` means that the part covers every
/// point that maps to the node (no edge reaches it), so no edge test is
/// needed. A refined node keeps its "inside" items and ends with one
/// [`CHILD`] item; its boundary items move down to the children.
///
/// # Exactness
///
/// Points map to cells through one monotone function per axis, the *fine
/// index* `floor((v - min) * fine_scale)` clamped to the grid, and a cell
/// at any level is a range of fine indices. An edge can only reach the
/// cells between the fine indices of its bounding box's corners, so
/// rasterising edge boxes through the same function never misses a cell an
/// edge point maps to. The points that map to an untouched cell form a
/// rectangle (the preimage of an index range under monotone functions) that
/// no boundary point reaches, so the part's coverage is the same for all of
/// them. Untouched cells that are 4-neighbours form one connected point
/// set (adjacent rectangles), so a whole group of them is decided once, at
/// the centre of any of its cells whose computed centre maps back into the
/// cell (a group with no such cell is kept as boundary cells).
#[derive(Clone, Debug, Default)]
struct Grid {
    min: [f64; 2],
    max: [f64; 2],
    /// Fine cells per degree, per axis.
    fine_scale: [f64; 2],
    /// Fine cells per axis (`dims << TOP_SHIFT`).
    fine_dims: [usize; 2],
    /// Top cells per axis.
    dims: [usize; 2],
    /// Every node, top cells first (row-major), then the children blocks:
    /// up to two items inline (unused places [`EMPTY`]), or a [`SPILL`]
    /// reference to a longer list in `spill`. One cache line holds a node
    /// with its items, so a level of the walk costs one dependent load
    /// where separate offsets and items cost two. Empty when there is no
    /// grid.
    nodes: Vec<[u32; 2]>,
    /// The item lists of nodes with more than two items.
    spill: Vec<u32>,
    /// Number of items over all nodes.
    item_count: usize,
}

/// Reusable buffers of [`Grid::classify`]: a state per cell of the range,
/// and the flood fill's stack and current component.
#[derive(Default)]
struct Scratch {
    state: Vec<u8>,
    stack: Vec<usize>,
    component: Vec<usize>,
}

/// Cell states in [`Grid::classify`].
const UNSEEN: u8 = 0;
const TOUCHED: u8 = 1;
const PENDING: u8 = 2;
const INSIDE: u8 = 3;
const OUTSIDE: u8 = 4;

/// One node to refine: its node number, depth below the top grid and cell
/// coordinates at its level.
#[derive(Clone, Copy)]
struct Pending {
    node: u32,
    depth: u32,
    col: u32,
    row: u32,
}

/// What refining one node gives ([`Grid::refine`]).
struct Refined {
    /// The node's items that stay on it (parts covering it wholly).
    kept: Vec<u32>,
    /// The children's lists, one after another in child order.
    children: Vec<u32>,
    /// The length of each child's list.
    lens: [u32; FANOUT * FANOUT],
}

/// Nodes refined a batch ([`Grid::build`]): enough to share among cores,
/// few beside the 2^16..2^22-node budgets.
const REFINE_BATCH: usize = 256;

/// The nodes waiting to be refined, taken highest priority (expected edge
/// tests per query) first to within 1/16 of an octave: a bucket queue keyed
/// by the priority's exponent and top four mantissa bits (positive `f64`s
/// order as their bits do), last in first out within a bucket. A binary
/// heap of the 10^5-10^6 waiting nodes missed the cache at every level of
/// each `pop` (a fifth of the building thread's time at TIGER scale,
/// BENCHMARKS.md); here a push and a pop touch one bucket head and one
/// slot. The buckets are lists threaded through one slot array, whose freed
/// slots are reused, so the queue is one allocation no larger than the most
/// nodes that wait at once (a `Vec` a bucket kept each bucket's own peak,
/// and left the allocator fragmented: +20-37 MB of peak memory at TIGER
/// scale).
#[derive(Default)]
struct Queue {
    /// Each bucket's first slot, `NONE` when empty.
    heads: Vec<u32>,
    /// Waiting nodes, each with the next slot of its bucket (or of the
    /// free list).
    slots: Vec<(Pending, u32)>,
    /// The first free slot, `NONE` when every slot is in use.
    free: u32,
    /// One past the highest bucket that may hold a node.
    top: usize,
}

impl Queue {
    /// No slot.
    const NONE: u32 = u32::MAX;

    fn new() -> Self {
        Queue { free: Self::NONE, ..Queue::default() }
    }

    fn key(priority: f64) -> usize {
        // At most 2^16 buckets, whatever the value.
        (priority.abs().to_bits() >> 48) as usize
    }

    /// Adds a node. Past 2^32 - 1 waiting nodes (more than the 2^30 nodes
    /// a grid can have) it is not added, and stays a leaf.
    fn push(&mut self, priority: f64, p: Pending) {
        let key = Self::key(priority);
        if key >= self.heads.len() {
            self.heads.resize(key + 1, Self::NONE);
        }
        let next = self.heads[key];
        let slot = match self.slots.get_mut(self.free as usize) {
            Some(free) => {
                let slot = self.free;
                self.free = free.1;
                *free = (p, next);
                slot
            }
            None => {
                let Ok(slot) = u32::try_from(self.slots.len()) else { return };
                if slot == Self::NONE {
                    return;
                }
                self.slots.push((p, next));
                slot
            }
        };
        self.heads[key] = slot;
        self.top = self.top.max(key + 1);
    }

    fn pop(&mut self) -> Option<Pending> {
        while self.top > 0 {
            let head = &mut self.heads[self.top - 1];
            if let Some(&(p, next)) = self.slots.get(*head as usize) {
                self.slots[*head as usize].1 = self.free;
                self.free = *head;
                *head = next;
                return Some(p);
            }
            self.top -= 1;
        }
        None
    }
}

impl Grid {
    fn build(parts: &[PreparedPolygon], vertices: usize) -> Grid {
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        for p in parts {
            let (a, b) = p.bbox();
            for d in 0..2 {
                min[d] = min[d].min(a[d]);
                max[d] = max[d].max(b[d]);
            }
        }
        let size = [max[0] - min[0], max[1] - min[1]];
        if parts.is_empty()
            || !(size[0].is_finite() && size[1].is_finite() && size[0] > 0.0 && size[1] > 0.0)
            || u32::try_from(parts.len()).map_or(true, |n| n >= CHILD / 2)
        {
            return Grid::default();
        }
        // Square top cells (in degrees), about one per vertex within
        // MIN_CELLS..=MAX_CELLS and at least CELLS_A_PART a part: small data
        // sets do not pay for a 2^20-cell top grid (8 MB of nodes), and the
        // refinement below puts detail where the boundaries are.
        let top_cells = vertices.clamp(MIN_CELLS, MAX_CELLS).max((parts.len() * CELLS_A_PART).min(MAX_PART_CELLS));
        let cell = (size[0] * size[1] / top_cells as f64).sqrt();
        let dims = [
            ((size[0] / cell).floor() as usize).clamp(1, MAX_CELLS),
            ((size[1] / cell).floor() as usize).clamp(1, MAX_CELLS),
        ];
        let fine_dims = [dims[0] << TOP_SHIFT, dims[1] << TOP_SHIFT];
        let mut grid = Grid {
            min,
            max,
            fine_scale: [fine_dims[0] as f64 / size[0], fine_dims[1] as f64 / size[1]],
            fine_dims,
            dims,
            nodes: Vec::new(),
            spill: Vec::new(),
            item_count: 0,
        };

        // Top level: (cell, item) pairs, then a counting sort into CSR form.
        // On this thread: done in parallel, the pairs were allocated by
        // other threads, whose freed memory jemalloc keeps in their arenas
        // where this thread's later allocations cannot reuse it (+14 B/vertex
        // of resident memory after the build at 10^6 parts), for no cold
        // start gain beyond the noise (BENCHMARKS.md, thirteenth session).
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        let mut scratch = Scratch::default();
        for (slot, poly) in parts.iter().enumerate() {
            let (a, b) = poly.bbox();
            let range = [
                grid.cell(a[0], 0, TOP_SHIFT),
                grid.cell(a[1], 1, TOP_SHIFT),
                grid.cell(b[0], 0, TOP_SHIFT),
                grid.cell(b[1], 1, TOP_SHIFT),
            ];
            let slot = slot as u32;
            grid.classify(poly, TOP_SHIFT, range, poly.segments(), &mut scratch, |q, r, inside| {
                pairs.push(((r * dims[0] + q) as u32, slot << 1 | u32::from(inside)));
            });
        }
        let cells = dims[0] * dims[1];
        let mut offsets = vec![0u32; cells + 1];
        for &(cell, _) in &pairs {
            offsets[cell as usize + 1] += 1;
        }
        for i in 0..cells {
            offsets[i + 1] += offsets[i];
        }
        let mut cursor = offsets[..cells].to_vec();
        let mut items = vec![0u32; pairs.len()];
        for (cell, item) in pairs {
            let at = &mut cursor[cell as usize];
            items[*at as usize] = item;
            *at += 1;
        }
        drop(cursor);

        // Refinement, most expected edge tests first, within budget. Every
        // node's list lives in one arena (`items`, the top cells' lists
        // first) as a `(start, len)` span: a refined node's new list (its
        // "inside" items and one `CHILD` item) is never longer than the old
        // one and is written in place; children lists are appended. No
        // allocation per node, and the peak memory stays near the final
        // size (a `Vec` per node cost ~50 bytes of heap each and left the
        // allocator fragmented).
        let mut budget = (vertices * 4).clamp(MIN_NODES, MAX_NODES);
        if vertices >= LARGE_VERTICES_A_CELL * cells {
            budget = budget.max((vertices / VERTICES_A_NODE).min(MAX_LARGE_NODES));
        }
        let mut spans: Vec<(u32, u32)> = offsets.windows(2).map(|w| (w[0], w[1] - w[0])).collect();
        drop(offsets);
        let part_area: Vec<f64> = parts
            .iter()
            .map(|poly| {
                let (a, b) = poly.bbox();
                (b[0] - a[0]) * (b[1] - a[1])
            })
            .collect();
        let top_area = size[0] / dims[0] as f64 * (size[1] / dims[1] as f64);
        let weigh = |list: &[u32], depth: u32| -> Option<f64> {
            let area = top_area / (1u64 << (2 * FANOUT_BITS * depth)) as f64;
            let mut boundary = 0usize;
            let mut reach = 0.0;
            for &item in list.iter().filter(|&&i| i & CHILD == 0) {
                boundary += usize::from(item & 1 == 0);
                let whole = part_area.get((item >> 1) as usize).copied().unwrap_or(0.0);
                reach += if whole > area { area / whole } else { 1.0 };
            }
            (boundary > 0 && depth < MAX_DEPTH).then_some(boundary as f64 * reach)
        };
        let span_of =
            |spans: &[(u32, u32)], node: usize| spans.get(node).map_or(0..0, |&(s, n)| s as usize..(s + n) as usize);
        let mut queue = Queue::new();
        for node in 0..cells {
            if let Some(priority) = weigh(&items[span_of(&spans, node)], 0) {
                let p =
                    Pending { node: node as u32, depth: 0, col: (node % dims[0]) as u32, row: (node / dims[0]) as u32 };
                queue.push(priority, p);
            }
        }
        // Nodes are refined in batches, the batch's nodes on every core:
        // a refinement only reads the parts and the node's own list, and
        // the results are written back in the order the nodes left the
        // queue, so the grid does not depend on the number of threads. A
        // batch's children wait for the next batch, which departs from the
        // strict greedy order only among nodes of about equal priority.
        'refine: loop {
            let mut batch = Vec::with_capacity(REFINE_BATCH);
            let mut planned = spans.len();
            while batch.len() < REFINE_BATCH && planned - cells + FANOUT * FANOUT <= budget {
                let Some(p) = queue.pop() else { break };
                planned += FANOUT * FANOUT;
                batch.push(p);
            }
            if batch.is_empty() {
                break;
            }
            let refined: Vec<Refined> = batch
                .par_iter()
                .map_init(
                    || (Scratch::default(), <[Vec<u32>; FANOUT * FANOUT]>::default()),
                    |(scratch, children), p| {
                        grid.refine(parts, &items[span_of(&spans, p.node as usize)], p, scratch, children)
                    },
                )
                .collect();
            for (p, refined) in batch.iter().zip(refined) {
                let Ok(block) = u32::try_from(spans.len()) else { break 'refine };
                if block >= (1 << 30) - (FANOUT * FANOUT) as u32
                    || u32::try_from(items.len() + refined.children.len()).is_err()
                {
                    // Beyond 30-bit nodes or u32 item positions: stop
                    // refining (this node's list is still the old one).
                    break 'refine;
                }
                let old = span_of(&spans, p.node as usize);
                let kept = refined.kept.len();
                // The old list is at least one (boundary) item longer than
                // what is kept, so the node's new list fits in its place.
                items[old.start..old.start + kept].copy_from_slice(&refined.kept);
                items[old.start + kept] = CHILD | block;
                spans[p.node as usize].1 = kept as u32 + 1;
                let (c0, r0) = (p.col as usize * FANOUT, p.row as usize * FANOUT);
                let mut at = 0;
                for (i, &len) in refined.lens.iter().enumerate() {
                    let child = &refined.children[at..at + len as usize];
                    at += len as usize;
                    if let Some(priority) = weigh(child, p.depth + 1) {
                        let (col, row) = ((c0 + i % FANOUT) as u32, (r0 + i / FANOUT) as u32);
                        queue.push(priority, Pending { node: block + i as u32, depth: p.depth + 1, col, row });
                    }
                    spans.push((items.len() as u32, len));
                    items.extend_from_slice(child);
                }
            }
        }
        drop(queue);

        // The final node table, in node order.
        let mut nodes = Vec::with_capacity(spans.len());
        let mut spill = Vec::new();
        for node in 0..spans.len() {
            nodes.push(match items[span_of(&spans, node)] {
                [] => [EMPTY, EMPTY],
                [a] => [a, EMPTY],
                [a, b] => [a, b],
                ref list => {
                    let (Ok(start), Ok(len)) = (u32::try_from(spill.len()), u32::try_from(list.len())) else {
                        return Grid::default();
                    };
                    if start >= (1 << 30) - 1 {
                        // Beyond 30-bit positions: keep the R-tree path only.
                        return Grid::default();
                    }
                    spill.extend_from_slice(list);
                    [SPILL | start, len]
                }
            });
        }
        grid.item_count = spans.iter().map(|&(_, n)| n as usize).sum();
        grid.nodes = nodes;
        grid.spill = spill;
        grid
    }

    /// Refines node `p`, whose list is `list`: the items it keeps (parts
    /// that cover it wholly) and its children's lists (each boundary part
    /// classified over the node's cells one level down).
    /// `children` is scratch space.
    fn refine(
        &self,
        parts: &[PreparedPolygon],
        list: &[u32],
        p: &Pending,
        scratch: &mut Scratch,
        children: &mut [Vec<u32>; FANOUT * FANOUT],
    ) -> Refined {
        let mut refined = Refined { kept: Vec::new(), children: Vec::new(), lens: [0; FANOUT * FANOUT] };
        children.iter_mut().for_each(Vec::clear);
        let shift = TOP_SHIFT - FANOUT_BITS * (p.depth + 1);
        let (c0, r0) = (p.col as usize * FANOUT, p.row as usize * FANOUT);
        let (c1, r1) = (c0 + FANOUT - 1, r0 + FANOUT - 1);
        // The node's y-range, widened by one fine cell so that every edge
        // that maps into it is among the band edges read.
        let fine = 1.0 / self.fine_scale[1];
        let ylo = self.min[1] + ((r0 << shift) as f64 - 1.0) * fine;
        let yhi = self.min[1] + (((r1 + 1) << shift) as f64 + 1.0) * fine;
        for &item in list {
            if item & 1 == 1 {
                refined.kept.push(item);
                continue;
            }
            let Some(poly) = parts.get((item >> 1) as usize) else { continue };
            let (a, b) = poly.bbox();
            let range = [
                self.cell(a[0], 0, shift).max(c0),
                self.cell(a[1], 1, shift).max(r0),
                self.cell(b[0], 0, shift).min(c1),
                self.cell(b[1], 1, shift).min(r1),
            ];
            if range[0] > range[2] || range[1] > range[3] {
                continue;
            }
            let slot = item >> 1;
            self.classify(poly, shift, range, poly.segments_in_y(ylo, yhi), scratch, |q, r, inside| {
                children[(r - r0) * FANOUT + (q - c0)].push(slot << 1 | u32::from(inside));
            });
        }
        for (len, child) in refined.lens.iter_mut().zip(children.iter()) {
            *len = child.len() as u32;
            refined.children.extend_from_slice(child);
        }
        refined
    }

    /// For every cell at level `shift` in `range` (`[c0, r0, c1, r1]`,
    /// inclusive) that the part reaches, calls `emit(col, row, inside)`:
    /// `inside = false` when a segment of `segments` may reach the cell (see
    /// [`mark_segment`](Self::mark_segment)), `true` when the part covers
    /// the whole cell; cells outside the part get no call. `segments` (lower
    /// end first) must include every edge that reaches a cell of the range.
    ///
    /// Untouched cells are grouped into 4-connected components: the points
    /// that map to a component form a connected set (adjacent cells' point
    /// sets are adjacent rectangles) that no boundary point reaches, so the
    /// part covers all of it or none of it, and one point test at the centre
    /// of any of its cells decides the whole component (one test where a
    /// cell-by-cell pass took one per cell). A component none of whose
    /// cells' computed centres maps back into its cell is kept as boundary.
    fn classify(
        &self,
        poly: &PreparedPolygon,
        shift: u32,
        range: [usize; 4],
        segments: impl Iterator<Item = ([f64; 2], [f64; 2])>,
        scratch: &mut Scratch,
        mut emit: impl FnMut(usize, usize, bool),
    ) {
        let [c0, r0, c1, r1] = range;
        let (w, h) = (c1 - c0 + 1, r1 - r0 + 1);
        let Scratch { state, stack, component } = scratch;
        state.clear();
        state.resize(w * h, UNSEEN);
        for (lo, hi) in segments {
            self.mark_segment(lo, hi, shift, range, |q, r| {
                if let Some(t) = state.get_mut((r - r0) * w + (q - c0)) {
                    *t = TOUCHED;
                }
            });
        }
        let half = (1u64 << shift) as f64 * 0.5;
        for first in 0..state.len() {
            if state[first] != UNSEEN {
                continue;
            }
            // Collect the component of `first`, then decide it at the first
            // of its cells whose centre maps back into the cell.
            component.clear();
            stack.clear();
            stack.push(first);
            state[first] = PENDING;
            while let Some(i) = stack.pop() {
                component.push(i);
                let (q, r) = (i % w, i / w);
                let neighbours = [
                    (q > 0).then(|| i - 1),
                    (q + 1 < w).then(|| i + 1),
                    (r > 0).then(|| i - w),
                    (r + 1 < h).then(|| i + w),
                ];
                for n in neighbours.into_iter().flatten() {
                    if state[n] == UNSEEN {
                        state[n] = PENDING;
                        stack.push(n);
                    }
                }
            }
            let verdict = component
                .iter()
                .find_map(|&i| {
                    let (q, r) = (c0 + i % w, r0 + i / w);
                    let center = Coord {
                        x: self.min[0] + ((q << shift) as f64 + half) / self.fine_scale[0],
                        y: self.min[1] + ((r << shift) as f64 + half) / self.fine_scale[1],
                    };
                    (self.cell(center.x, 0, shift) == q && self.cell(center.y, 1, shift) == r).then(|| {
                        if poly.covers(center) {
                            INSIDE
                        } else {
                            OUTSIDE
                        }
                    })
                })
                .unwrap_or(TOUCHED);
            for &i in component.iter() {
                state[i] = verdict;
            }
        }
        for (i, &s) in state.iter().enumerate() {
            let (q, r) = (c0 + i % w, r0 + i / w);
            match s {
                INSIDE => emit(q, r, true),
                OUTSIDE => {}
                _ => emit(q, r, false),
            }
        }
    }

    /// Calls `mark(col, row)` for every cell of `range` at level `shift`
    /// that a point of the segment `lo`-`hi` (`lo[1] <= hi[1]`) may map to,
    /// and possibly a few more: row by row, the segment is clipped to the
    /// row's y-range widened by a hundredth of a fine cell, and the columns
    /// between the clipped ends, widened the same way plus a bound on their
    /// rounding error, are marked (never beyond the segment's own x-range),
    /// so no cell a segment point maps to is missed. A segment with a non-finite
    /// coordinate marks its whole bounding range.
    fn mark_segment(
        &self,
        lo: [f64; 2],
        hi: [f64; 2],
        shift: u32,
        range: [usize; 4],
        mut mark: impl FnMut(usize, usize),
    ) {
        let [c0, r0, c1, r1] = range;
        let (s0, s1) = (self.cell(lo[1], 1, shift).max(r0), self.cell(hi[1], 1, shift).min(r1));
        let (xa, xb) = (lo[0].min(hi[0]), lo[0].max(hi[0]));
        let finite = lo[0].is_finite() && lo[1].is_finite() && hi[0].is_finite() && hi[1].is_finite();
        if finite && (self.cell(xb, 0, shift) < c0 || self.cell(xa, 0, shift) > c1) {
            // Every point of the segment maps to a column outside the range
            // (the column of x is monotone in x). Most band edges read while
            // refining one node are such, as a band spans the whole polygon.
            return;
        }
        if !finite || hi[1] <= lo[1] {
            // Horizontal (or unreadable): its whole box.
            for r in s0..=s1 {
                for q in self.cell(xa, 0, shift).max(c0)..=self.cell(xb, 0, shift).min(c1) {
                    mark(q, r);
                }
            }
            return;
        }
        let slope = (hi[0] - lo[0]) / (hi[1] - lo[1]);
        // Rounding of the clipped ends: a few ulps of y magnified by the
        // slope (large for nearly horizontal segments), plus a few of x.
        let ymag = lo[1].abs().max(hi[1].abs()).max(self.min[1].abs()).max(self.max[1].abs());
        let rounding = 4e-15 * (slope.abs() * (ymag + 1.0) + xa.abs().max(xb.abs()) + 1.0);
        let (my, mx) = (0.01 / self.fine_scale[1], 0.01 / self.fine_scale[0] + rounding);
        for r in s0..=s1 {
            let y0 = (self.min[1] + (r << shift) as f64 / self.fine_scale[1] - my).max(lo[1]);
            let y1 = (self.min[1] + ((r + 1) << shift) as f64 / self.fine_scale[1] + my).min(hi[1]);
            let (x0, x1) = (lo[0] + (y0 - lo[1]) * slope, lo[0] + (y1 - lo[1]) * slope);
            let (xl, xh) = ((x0.min(x1) - mx).max(xa), (x0.max(x1) + mx).min(xb));
            for q in self.cell(xl, 0, shift).max(c0)..=self.cell(xh, 0, shift).min(c1) {
                mark(q, r);
            }
        }
    }

    /// The fine index of `v` on `axis`.
    #[inline]
    fn fine(&self, v: f64, axis: usize) -> usize {
        axis_index(v, self.min[axis], self.fine_scale[axis], self.fine_dims[axis])
    }

    /// The cell index of `v` on `axis` at the level whose cells are
    /// `2^shift` fine cells wide.
    #[inline]
    fn cell(&self, v: f64, axis: usize, shift: u32) -> usize {
        self.fine(v, axis) >> shift
    }

    /// Calls `each` with the items of every node on the way from the top
    /// cell containing the point down to its leaf (`CHILD` items excluded).
    /// Returns `false` when there is no grid (the caller then uses the
    /// R-tree); a point outside the grid extent (or NaN) visits nothing,
    /// as no part reaches it.
    #[inline]
    fn visit(&self, x: f64, y: f64, each: impl FnMut(u32)) -> bool {
        let mut nodes = 0;
        self.visit_nodes(x, y, each, &mut nodes)
    }

    /// The items of the node whose words are `words`: up to two inline, or
    /// its [`SPILL`] list; `None` for a spill reference out of range (a
    /// built grid has none).
    #[inline]
    fn items<'a>(&'a self, words: &'a [u32; 2]) -> Option<&'a [u32]> {
        let [a, b] = *words;
        if a != EMPTY && a & SPILL == SPILL {
            let start = (a & !SPILL) as usize;
            self.spill.get(start..start + b as usize)
        } else {
            words.get(..usize::from(a != EMPTY) + usize::from(b != EMPTY))
        }
    }

    /// [`visit`](Self::visit) for up to [`LANES`] points at once, level by
    /// level: first every walking point's node is read (independent loads
    /// the core overlaps), then each is given its items and the next
    /// level's nodes computed. Calls `each(lane, item)` for every
    /// non-`CHILD` item of every node visited, level by level. The grid
    /// must not be empty.
    fn visit_many(&self, points: &[Coord<f64>], mut each: impl FnMut(usize, u32)) {
        let mut lane = [0usize; LANES];
        let mut fine = [(0usize, 0usize); LANES];
        let mut node = [0usize; LANES];
        let mut words = [[EMPTY; 2]; LANES];
        let mut n = 0;
        for (l, c) in points.iter().take(LANES).enumerate() {
            let (x, y) = (c.x, c.y);
            if x >= self.min[0] && x <= self.max[0] && y >= self.min[1] && y <= self.max[1] {
                let (fx, fy) = (self.fine(x, 0), self.fine(y, 1));
                lane[n] = l;
                fine[n] = (fx, fy);
                node[n] = (fy >> TOP_SHIFT) * self.dims[0] + (fx >> TOP_SHIFT);
                n += 1;
            }
        }
        let mut shift = TOP_SHIFT;
        while n > 0 {
            for k in 0..n {
                words[k] = self.nodes.get(node[k]).copied().unwrap_or([EMPTY, EMPTY]);
            }
            // Longer item lists are one more load each: started for every
            // point before any is read.
            let mut first = 0;
            for w in &words[..n] {
                if w[0] != EMPTY && w[0] & SPILL == SPILL {
                    first ^= self.spill.get((w[0] & !SPILL) as usize).copied().unwrap_or(0);
                }
            }
            std::hint::black_box(first);
            let mut walking = 0;
            let down = shift.checked_sub(FANOUT_BITS);
            for k in 0..n {
                let w = words[k];
                let mut child = None;
                for &item in self.items(&w).unwrap_or(&[]) {
                    if item & CHILD == 0 {
                        each(lane[k], item);
                    } else {
                        child = Some((item & !CHILD) as usize);
                    }
                }
                if let (Some(block), Some(down)) = (child, down) {
                    let (fx, fy) = fine[k];
                    lane[walking] = lane[k];
                    fine[walking] = (fx, fy);
                    node[walking] = child_node(block, fx, fy, down);
                    walking += 1;
                }
            }
            n = walking;
            match down {
                Some(down) => shift = down,
                None => break,
            }
        }
    }

    /// [`visit`](Self::visit), counting the nodes visited in `nodes`.
    #[inline]
    fn visit_nodes(&self, x: f64, y: f64, mut each: impl FnMut(u32), nodes: &mut usize) -> bool {
        if self.nodes.is_empty() {
            return false;
        }
        if !(x >= self.min[0] && x <= self.max[0] && y >= self.min[1] && y <= self.max[1]) {
            return true;
        }
        let (fx, fy) = (self.fine(x, 0), self.fine(y, 1));
        let mut shift = TOP_SHIFT;
        let mut node = (fy >> shift) * self.dims[0] + (fx >> shift);
        loop {
            let Some(words) = self.nodes.get(node) else {
                return true;
            };
            let Some(items) = self.items(words) else {
                return true;
            };
            *nodes += 1;
            let mut child = None;
            for &item in items {
                if item & CHILD == 0 {
                    each(item);
                } else {
                    child = Some((item & !CHILD) as usize);
                }
            }
            match child {
                Some(block) if shift >= FANOUT_BITS => {
                    shift -= FANOUT_BITS;
                    node = child_node(block, fx, fy, shift);
                }
                _ => return true,
            }
        }
    }
}

/// The node of the fine point `(fx, fy)` among the `FANOUT x FANOUT`
/// children (row-major) that start at node `block`, whose cells are
/// `2^shift` fine cells wide.
#[inline]
fn child_node(block: usize, fx: usize, fy: usize, shift: u32) -> usize {
    let mask = FANOUT - 1;
    block + ((fy >> shift) & mask) * FANOUT + ((fx >> shift) & mask)
}

/// `floor((v - min) * scale)` clamped to `0..n`; monotone in `v`.
#[inline]
fn axis_index(v: f64, min: f64, scale: f64, n: usize) -> usize {
    // `as` truncates towards zero, which is `floor` for the non-negative
    // values it sees here, without the libm call `floor` compiles to on
    // baseline x86-64 (no SSE4.1 `roundsd`): it was a tenth of a lookup.
    let f = (v - min) * scale;
    if f >= 0.0 {
        // Clamped in floating point first: the saturating `f64 as u32` is
        // cheaper than `as usize` plus `min` (indexes here are below 2^31).
        f.min((n - 1) as f64) as u32 as usize
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, MultiPolygon};

    fn sq(x: f64, y: f64, s: f64) -> geo::Polygon<f64> {
        polygon![(x: x, y: y), (x: x + s, y: y), (x: x + s, y: y + s), (x: x, y: y + s)]
    }

    /// The refinement queue gives each node no later than any node of more
    /// than 1/16 higher priority waiting with it, and every node it was given.
    #[test]
    fn queue_pops_highest_first() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut queue = Queue::new();
        let mut waiting: Vec<(f64, u32)> = Vec::new();
        let (mut given, mut most) = (0, 0);
        let pop = |queue: &mut Queue, waiting: &mut Vec<(f64, u32)>| -> bool {
            let Some(p) = queue.pop() else { return false };
            let at = waiting.iter().position(|w| w.1 == p.node).expect("a node given once, taken once");
            let (priority, _) = waiting.swap_remove(at);
            let highest = waiting.iter().map(|w| w.0).fold(priority, f64::max);
            assert!(priority * (1.0 + 1.0 / 16.0) >= highest, "{priority} while {highest} waits");
            true
        };
        for round in 0..3_000 {
            for _ in 0..rng.gen_range(0..4) {
                let priority = 10f64.powf(rng.gen_range(-8.0..8.0));
                queue.push(priority, Pending { node: given, depth: 0, col: 0, row: 0 });
                waiting.push((priority, given));
                given += 1;
                most = most.max(waiting.len());
            }
            if round % 3 != 0 {
                pop(&mut queue, &mut waiting);
            }
        }
        while pop(&mut queue, &mut waiting) {}
        assert!(waiting.is_empty() && given > 3_000, "{} of {given} left", waiting.len());
        // Freed slots are reused: as many slots as nodes ever waited at once.
        assert_eq!(queue.slots.len(), most, "slots for {given} nodes");
    }

    fn q(idx: &SpatialIndex, lon: f64, lat: f64) -> Vec<u32> {
        let mut out = Vec::new();
        idx.query(lon, lat, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn multipolygon_island_and_shared_border() {
        let mainland = sq(0.0, 0.0, 10.0);
        let island = sq(20.0, 20.0, 2.0);
        let neighbour = sq(10.0, 0.0, 10.0);
        let idx = SpatialIndex::build(vec![
            (7, prepare(&MultiPolygon(vec![mainland, island]))),
            (42, prepare(&MultiPolygon(vec![neighbour]))),
        ]);
        assert_eq!(idx.len(), 2);
        assert!(!idx.is_empty());
        assert_eq!(idx.polygon_count(), 3);
        assert_eq!(idx.vertex_count(), 15);
        assert_eq!(q(&idx, 5.0, 5.0), vec![7]);
        assert_eq!(q(&idx, 21.0, 21.0), vec![7], "island");
        assert_eq!(q(&idx, 15.0, 15.0), Vec::<u32>::new(), "between");
        assert_eq!(q(&idx, 10.0, 5.0), vec![7, 42], "shared edge");
        assert_eq!(q(&idx, 10.0, 10.0), vec![7, 42], "shared vertex");
        assert_eq!(q(&idx, 15.0, 5.0), vec![42]);
    }

    #[test]
    fn key_reported_once_for_overlapping_parts() {
        let a = sq(0.0, 0.0, 10.0);
        let b = sq(5.0, 5.0, 10.0);
        let idx = SpatialIndex::build(vec![(3, prepare(&MultiPolygon(vec![a, b])))]);
        assert_eq!(q(&idx, 7.0, 7.0), vec![3]);
        assert_eq!(q(&idx, 10.0, 10.0), vec![3]);
    }

    #[test]
    fn query_appends_and_does_not_allocate_with_capacity() {
        let idx = SpatialIndex::build(vec![
            (1, prepare(&MultiPolygon(vec![sq(0.0, 0.0, 10.0)]))),
            (2, prepare(&MultiPolygon(vec![sq(2.0, 2.0, 2.0)]))),
        ]);
        let mut out = Vec::with_capacity(8);
        out.push(1);
        let ptr = out.as_ptr();
        idx.query(3.0, 3.0, &mut out);
        assert_eq!(out.as_ptr(), ptr);
        out[1..].sort_unstable();
        assert_eq!(out, vec![1, 1, 2], "prior contents are kept");
    }

    #[test]
    fn empty_and_sparse_keys() {
        let idx = SpatialIndex::build(vec![]);
        assert!(idx.is_empty());
        assert_eq!(q(&idx, 0.0, 0.0), Vec::<u32>::new());
        let idx = SpatialIndex::build(vec![
            (u32::MAX, prepare(&MultiPolygon(vec![sq(0.0, 0.0, 1.0)]))),
            (5, prepare(&MultiPolygon(vec![]))),
        ]);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.polygon_count(), 1);
        assert_eq!(q(&idx, 0.5, 0.5), vec![u32::MAX]);
        assert_eq!(q(&idx, f64::NAN, 0.5), Vec::<u32>::new());
    }

    /// A wide frame, and a 30 x 30 mesh of 0.01-degree squares sharing
    /// edges with triangles over them: a grid with refined nodes and
    /// spilled lists.
    fn mesh() -> Vec<(u32, geo::Polygon<f64>)> {
        let mut polys: Vec<(u32, geo::Polygon<f64>)> = Vec::new();
        // A wide frame so that the small polygons share few top cells.
        polys.push((0, sq(-100.0, -50.0, 200.0)));
        // A 30 x 30 mesh of 0.01-degree squares sharing edges, and
        // triangles over them.
        let mut key = 1;
        for i in 0..30 {
            for j in 0..30 {
                let (x, y) = (10.0 + f64::from(i) * 0.01, 20.0 + f64::from(j) * 0.01);
                polys.push((key, sq(x, y, 0.01)));
                key += 1;
                if (i + j) % 7 == 0 {
                    polys.push((
                        key,
                        geo::polygon![(x: x, y: y), (x: x + 0.025, y: y + 0.003), (x: x + 0.004, y: y + 0.031)],
                    ));
                    key += 1;
                }
            }
        }
        polys
    }

    /// The refinement runs in batches on every core, and the grid comes
    /// out the same whatever the number of threads.
    #[test]
    fn grid_does_not_depend_on_threads() {
        let build = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
            pool.install(|| {
                SpatialIndex::build(mesh().iter().map(|(k, p)| (*k, prepare(&MultiPolygon(vec![p.clone()])))).collect())
            })
        };
        let one = build(1);
        assert!(one.grid.nodes.len() > REFINE_BATCH * FANOUT * FANOUT, "several refinement batches");
        for threads in [2, 5] {
            let many = build(threads);
            assert_eq!(many.grid.nodes, one.grid.nodes, "{threads} threads");
            assert_eq!(many.grid.spill, one.grid.spill, "{threads} threads");
        }
    }

    #[test]
    fn rebuild_reuses_prepared_geometry() {
        let g = prepare(&MultiPolygon(vec![sq(0.0, 0.0, 1.0)]));
        let a = SpatialIndex::build(vec![(1, Arc::clone(&g))]);
        let b = SpatialIndex::build(vec![(1, Arc::clone(&g)), (2, Arc::clone(&g))]);
        // The indexes keep copies of the header that share its buffers.
        assert!(a.polygons[0].shares_buffers_with(&g[0]));
        assert!(b.polygons.iter().all(|p| p.shares_buffers_with(&g[0])) && b.polygons.len() == 2);
        assert!(!prepare(&MultiPolygon(vec![sq(0.0, 0.0, 1.0)]))[0].shares_buffers_with(&g[0]));
        assert_eq!(q(&a, 0.5, 0.5), vec![1]);
        assert_eq!(q(&b, 0.5, 0.5), vec![1, 2]);
    }

    /// Many small, shared-edge and overlapping polygons in a large extent:
    /// the grid must refine, and every answer (random points, vertices,
    /// edge midpoints, points just off vertices) must equal the R-tree
    /// path and a brute-force scan.
    #[test]
    fn refined_grid_matches_brute_force() {
        use rand::{Rng, SeedableRng};
        let polys = mesh();
        let idx =
            SpatialIndex::build(polys.iter().map(|(k, p)| (*k, prepare(&MultiPolygon(vec![p.clone()])))).collect());
        let (cols, rows, nodes, _) = idx.grid_stats();
        assert!(nodes > cols * rows, "the grid refined: {nodes} nodes over {cols} x {rows}");
        assert!(!idx.grid.spill.is_empty(), "some nodes list more than two items");
        let mut pts: Vec<Coord<f64>> = Vec::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..20_000 {
            pts.push(Coord { x: rng.gen_range(9.99..10.32), y: rng.gen_range(19.99..20.32) });
        }
        for (_, p) in &polys[1..] {
            for v in p.exterior().0.iter().take(p.exterior().0.len().saturating_sub(1)) {
                pts.push(Coord { x: v.x + 1e-12, y: v.y - 1e-12 });
            }
            pts.extend(edge_points(p));
        }
        assert_brute_force(&idx, &polys, pts);
    }

    /// A point covered by more keys than a `query_many` lane holds is
    /// answered in full (asked again alone), beside points that fit.
    #[test]
    fn query_many_answers_points_with_many_keys() {
        // 40 nested squares around (50, 50), each its own key, both as
        // inside items (the small grid cell sits inside most of them) and
        // as edge tests (points on the inner squares' edges).
        let polys: Vec<(u32, geo::Polygon<f64>)> = (0..40)
            .map(|i| (i, sq(50.0 - f64::from(i + 1), 50.0 - f64::from(i + 1), f64::from(2 * (i + 1)))))
            .collect();
        let idx =
            SpatialIndex::build(polys.iter().map(|(k, p)| (*k, prepare(&MultiPolygon(vec![p.clone()])))).collect());
        let pts = vec![
            Coord { x: 50.0, y: 50.0 },
            Coord { x: 49.0, y: 50.0 },
            Coord { x: 80.0, y: 80.0 },
            Coord { x: 10.5, y: 50.0 },
            Coord { x: 500.0, y: 50.0 },
        ];
        let (mut many, mut ends) = (Vec::new(), Vec::new());
        idx.query_many(&pts, &mut many, &mut ends);
        assert_eq!(ends.len(), pts.len());
        assert_eq!(ends[0], 40, "the centre is in all 40 squares");
        assert_eq!(ends[1] - ends[0], 40, "the inner square's edge is covered too");
        assert_eq!(ends[2] - ends[1], 11, "(80, 80) is in the 10 largest and on the 11th's corner");
        assert_eq!(ends[3] - ends[2], 1, "(10.5, 50) is in the largest only");
        assert_eq!(ends[4], ends[3], "outside the grid: nothing");
        assert_brute_force(&idx, &polys, pts);
    }

    /// Every vertex and edge midpoint of every ring of `p`.
    fn edge_points(p: &geo::Polygon<f64>) -> Vec<Coord<f64>> {
        std::iter::once(p.exterior())
            .chain(p.interiors())
            .flat_map(|r| {
                r.0.windows(2).flat_map(|w| [w[0], Coord { x: (w[0].x + w[1].x) / 2.0, y: (w[0].y + w[1].y) / 2.0 }])
            })
            .collect()
    }

    /// Asserts that the grid and the R-tree path both answer every point
    /// exactly like a brute-force scan of `polys`.
    fn assert_brute_force(idx: &SpatialIndex, polys: &[(u32, geo::Polygon<f64>)], pts: Vec<Coord<f64>>) {
        use crate::index::prepared::covers_brute_force;
        // The batch path, over all the points at once (chunks of LANES,
        // so walks of different depths share a chunk), must say the same.
        let (mut many, mut ends) = (vec![u32::MAX], Vec::new());
        idx.query_many(&pts, &mut many, &mut ends);
        assert_eq!(ends.len(), pts.len());
        let mut start = 1;
        for (c, &end) in pts.iter().zip(&ends) {
            let mut one = Vec::new();
            idx.query(c.x, c.y, &mut one);
            one.sort_unstable();
            many[start..end].sort_unstable();
            assert_eq!(many[start..end], one[..], "query_many at {c:?}");
            start = end;
        }
        assert_eq!(many[0], u32::MAX, "what `out` held before is kept");
        for c in pts {
            let mut grid = Vec::new();
            idx.query(c.x, c.y, &mut grid);
            grid.sort_unstable();
            let mut tree = Vec::new();
            idx.query_rtree_only(c.x, c.y, &mut tree);
            tree.sort_unstable();
            let brute: Vec<u32> = polys.iter().filter(|(_, p)| covers_brute_force(p, c)).map(|(k, _)| *k).collect();
            assert_eq!(grid, brute, "grid at {c:?}");
            assert_eq!(tree, brute, "R-tree at {c:?}");
        }
    }

    #[test]
    fn grid_with_holes_and_concave_parts_matches_brute_force() {
        use geo::LineString;
        use rand::{Rng, SeedableRng};
        let ring = |pts: &[(f64, f64)]| LineString::from(pts.to_vec());
        // A square with three square holes; an island inside one hole.
        let holes = vec![
            ring(&[(1.0, 1.0), (3.0, 1.0), (3.0, 3.0), (1.0, 3.0), (1.0, 1.0)]),
            ring(&[(5.0, 5.0), (8.5, 5.0), (8.5, 8.5), (5.0, 8.5), (5.0, 5.0)]),
            ring(&[(1.0, 6.0), (2.0, 6.0), (2.0, 9.0), (1.0, 9.0), (1.0, 6.0)]),
        ];
        let holed = geo::Polygon::new(ring(&[(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]), holes);
        let island = sq(6.0, 6.0, 1.5);
        // A comb: concave, with narrow gaps between its teeth.
        let mut comb = vec![(11.0, 0.0), (20.0, 0.0)];
        for t in (0..9).rev() {
            let x = 11.0 + f64::from(t);
            comb.extend([(x + 1.0, 10.0), (x + 0.9, 10.0), (x + 0.9, 1.0), (x, 1.0)]);
        }
        comb.push((11.0, 0.0));
        let comb = geo::Polygon::new(ring(&comb), vec![]);
        let polys = [(1u32, holed), (2, island), (3, comb), (4, sq(-5.0, -5.0, 30.0))];
        let idx =
            SpatialIndex::build(polys.iter().map(|(k, p)| (*k, prepare(&MultiPolygon(vec![p.clone()])))).collect());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut pts: Vec<Coord<f64>> =
            (0..20_000).map(|_| Coord { x: rng.gen_range(-6.0..26.0), y: rng.gen_range(-6.0..26.0) }).collect();
        for (_, p) in &polys {
            pts.extend(edge_points(p));
        }
        assert_brute_force(&idx, &polys, pts);
    }
}
