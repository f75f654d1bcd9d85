//! Prepared polygons: a point-in-polygon structure built once per polygon
//! part and queried many times on the resolve hot path.
//!
//! # Structure
//!
//! A [`PreparedPolygon`] keeps the coordinates of one `geo::Polygon` (the
//! exterior and all holes) **once**, and indexes its edges in **y-stripe
//! edge bands**: the polygon's y-range is cut into `K` equal-height bands
//! (`K` grows with the edge count, roughly one band per six edges, capped
//! at [`MAX_BANDS`]), and each band lists the edges whose y-extent overlaps
//! it. A point query computes its band with one multiply and a `floor`, then
//! only looks at the few edges of that band, never at every vertex of the
//! polygon.
//!
//! # Memory layout
//!
//! Two heap buffers per polygon, nothing else, each an `Arc` slice so that
//! a copy of the header (the spatial index keeps one per part, next to its
//! key, to save a dependent cache miss per test) shares them:
//!
//! * `coords: Arc<[Coord<f64>]>` (16 bytes a coordinate): every ring's
//!   coordinates exactly as given, ring after ring. A ring that is not
//!   closed (first and last coordinates differ, or a single point) is
//!   followed by one copy of its first coordinate, so that **edge `i` is
//!   always `coords[i] -> coords[i + 1]`**, the implicit closing edge
//!   included. (Rings coming from `geo` are always closed already, so this
//!   copy is virtually never stored.)
//! * `index: Arc<[u16]>`, entries in three sections back to back:
//!   `K + 1` band offsets (absolute positions in `index`; band `b` is
//!   `index[index[b]..index[b + 1]]`), then the edge numbers `i` of every
//!   band, band after band (an edge spanning several bands is listed once
//!   per band, its coordinates are still stored once), then the source
//!   length of each ring (exterior first), from which the rings are
//!   recovered exactly ([`PreparedPolygon::rings`],
//!   [`PreparedPolygon::to_polygon`]). An entry is one `u16` when every
//!   entry of the part fits in 16 bits (fewer than 2^16 coordinates and
//!   index entries: nearly every real part), else two `u16`s, low half
//!   first (a flag in the header says which; the point test has one loop
//!   for each width).
//!
//! So a polygon costs about `16 + w * (s + 1 / 6)` bytes a vertex, where
//! `w` is the entry width (2 or 4 bytes) and `s` the average number of
//! bands an edge is listed in (about 1.7 on TIGER), plus an 80-byte header
//! and the allocator's overhead of its two buffers, which matter for small
//! parts. Two-byte entries took the TIGER index from 29.8 to 26.2
//! B/vertex (twelfth session). (With four-byte entries and one band per
//! four edges, `s` was about 2 on TIGER;
//! under jemalloc, whose size classes round a large buffer up by ~10 %,
//! that put the TIGER index at 32.6 B/vertex, over its target. One band
//! per eight edges gave 29.3 B/vertex but TIGER lookups ~15 % slower (a
//! band's edges sit in different cache lines, so each extra edge is a
//! miss); one per six gives 29.8 B/vertex, between the two in speed.)
//! First measured, with one band per four edges and glibc's malloc (current
//! figures are in BENCHMARKS.md), by `cargo bench --bench scale` (one run each on
//! a loaded 2-core machine; RSS delta across `spatial::prepare` or bytes
//! owned, whichever is larger): 25.8 B/vertex for the bundled data
//! (535k vertices, 45 a part), 25.1 for TIGER 2019 places (12.7M vertices,
//! 288 a part), 31.9 for `synth_1e5` (1.7M vertices, 17 a part). The
//! previous layout, a 32-byte copy of each edge in every band it meets,
//! plus the `geo` geometry kept beside it, took 68-79 B/vertex for the same
//! data. The whole index (with the R-tree, grid and part table of
//! `Snapshot::build`) went from 92 / 81 / 96 to 47 / 26 / 60 B/vertex:
//! under the 32 B/vertex target for TIGER, while for the bundled and
//! synthetic sets the snapshot's own structures (21-28 B/vertex, mostly
//! the fixed-size grid and per-part costs) are the larger share.
//!
//! A polygon of one ring with at most [`SCAN_MAX`] coordinates (most
//! parts of dense tessellations, ~17 coordinates in the synthetic sets) is
//! tested by scanning all of its edges in `coords`: a few adjacent cache
//! lines, one dependent load less than its band's edge numbers, which is
//! what a lookup over 10^6 polygons pays for. Its bands are still built
//! (the grid build reads them).
//!
//! # Point test
//!
//! Each band's edges are stored sorted by their least x, and a point in a
//! band casts its ray towards `-x`: the edges are read left to right and
//! the scan stops at the first edge that starts right of the point, so a
//! test reads about half its band where a `+x` ray over an unsorted band
//! read all of it (the parity is the same, see `parity`). Bands
//! are uniform in y, so where a boundary is detailed they are crowded:
//! on the bundled data the bands the grid's boundary tests read held ~40
//! edges on average, and those tests were a third of a lookup's
//! instructions. Along a ring, consecutive edges have nearby x, so the
//! coordinates a band reads in x order are still mostly adjacent in
//! memory. The header is kept to what a point test
//! reads (bounding box, band scale, the two boxed slices, the band count:
//! 80 bytes); the ring table and the vertex count are derived from the
//! tail of `index` on the cold paths that need them.
//!
//! Edges are compared with their endpoints ordered so that `y0 <= y1`
//! (ordered on the fly from the two coordinates); the crossing parity does
//! not depend on an edge's direction.
//!
//! # Inside rule: even-odd over all rings
//!
//! Containment is decided by **even-odd crossing parity over ALL rings of
//! the polygon together** (exterior and holes alike): a horizontal ray from
//! the point (towards `+x` when scanning all edges, towards `-x` over a
//! band, see "Point test") is intersected with every edge, and the point is
//! inside when the number of crossings is odd (half-open rule on the edge's
//! y-extent so that a vertex on the ray is counted once). Ring roles and
//! ring orientation are never consulted. This makes the test robust to the
//! OGC-invalid input that simplification produces in the bundled data:
//!
//! * wrong or mixed winding order (orientation is irrelevant to parity),
//! * degenerate rings with fewer than 4 points, e.g. an unclosed triangle
//!   (every ring is closed implicitly: an edge from the last point back to
//!   the first is added when they differ),
//! * self-touching or self-intersecting rings (bow-ties) and zero-area
//!   rings; for self-*overlapping* areas even-odd counts a doubly covered
//!   area as outside, which is where it can legitimately disagree with a
//!   winding-number or OGC-based test.
//!
//! For valid polygons the result is identical to OGC semantics.
//!
//! # Boundary rule: "covers"
//!
//! A point exactly on any edge or vertex of any ring (exterior or hole)
//! counts as **inside**, like PostGIS `ST_Covers` / `geo::Intersects`, so a
//! point on a border shared by two polygons resolves to both. The on-edge
//! check is an exact orientation test (cross product `== 0` and the point
//! within the edge's bounding box): the cross product is first evaluated in
//! `f64` with Shewchuk's static error bound, and only when the sign is
//! uncertain is it recomputed exactly with geo's robust kernel. Both the
//! on-edge decision and the side-of-edge decision used for the crossing
//! parity are therefore exact.
//!
//! # Bands and band boundaries
//!
//! The band of a `y` value is `floor((y - ymin) * K / height)` clamped to
//! `0..K`. The same (monotone) floating-point formula is used both when
//! bucketing an edge (over its `[y0, y1]` extent, inclusive on both ends)
//! and when locating a query point, so an edge that touches a band boundary
//! is listed in every band its closed y-extent maps to, and a point lying
//! exactly on a band boundary always finds every edge whose closed y-extent
//! contains it. Degenerate polygons (no rings, empty rings, zero height or
//! width, non-finite coordinates) use a single band and never divide by
//! zero or panic.
//!
//! # Limits
//!
//! Edge numbers and buffer positions are `u32`: one polygon part can hold
//! up to 2^32 - 2 coordinates and 2^32 - 1 index entries (about 64 GiB of
//! coordinates, far above the store's vertex limit). Edges past that limit
//! would not be indexed (and a debug build asserts).

use std::sync::Arc;

use geo::kernels::{Kernel, RobustKernel};
use geo::{Coord, LineString, Orientation, Polygon};

/// Upper bound on the number of y-bands of one polygon.
pub const MAX_BANDS: usize = 1 << 16;

/// One edge, endpoints ordered so that `y0 <= y1`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Edge {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

/// Result of testing a point against the edges of its band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// Strictly outside every ring by even-odd parity.
    Outside,
    /// Exactly on an edge or vertex of some ring.
    Boundary,
    /// Strictly inside by even-odd parity.
    Inside,
}

/// A polygon (exterior ring plus holes) prepared for fast point-coverage
/// tests. See the [module documentation](self) for the algorithm and the
/// memory layout.
#[derive(Clone, Debug)]
pub struct PreparedPolygon {
    min: [f64; 2],
    max: [f64; 2],
    /// `bands / height`, or `0.0` for degenerate (zero or non-finite) heights.
    scale: f64,
    /// Every ring's coordinates, ring after ring, each unclosed ring followed
    /// by a copy of its first coordinate: edge `i` is `coords[i] -> coords[i + 1]`.
    coords: Arc<[Coord<f64>]>,
    /// `bands + 1` band offsets (positions in this buffer, counted in
    /// entries), then the edge numbers of each band, then the source length
    /// of each ring: one `u16` an entry, or two (low half first) when
    /// `wide`.
    index: Arc<[u16]>,
    /// Number of bands minus one (the largest valid band index).
    last_band: u32,
    /// One ring of at most [`SCAN_MAX`] coordinates: a point test reads
    /// every edge straight from `coords` instead of its band's edge
    /// numbers (one dependent load less; the whole ring is a few adjacent
    /// cache lines). Kept in the header's padding.
    scan: bool,
    /// Whether `index` holds an entry in two `u16`s. A part with fewer
    /// than 2^16 coordinates and index entries (nearly every real boundary
    /// part: TIGER places average 288 coordinates) has every entry in one,
    /// which halves the edge bands, the larger part of the index after the
    /// coordinates. Kept in the header's padding too.
    wide: bool,
}

/// Where a point's band lists its edge numbers: the result of
/// [`PreparedPolygon::band_span`], only meaningful to
/// [`PreparedPolygon::locate_in`] for the same point and polygon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandSpan(u32, u32);

/// The entries of a range of a polygon's `index` buffer, as `u32` (see
/// `PreparedPolygon::wide`).
#[derive(Clone, Debug)]
enum Entries<'a> {
    /// One `u16` an entry.
    Narrow(std::slice::Iter<'a, u16>),
    /// Two `u16`s an entry, low half first.
    Wide(std::slice::ChunksExact<'a, u16>),
}

impl Entries<'_> {
    /// No entries.
    fn none() -> Self {
        Entries::Narrow([].iter())
    }
}

/// An entry of a wide index from its two halves.
#[inline]
fn wide_entry(halves: &[u16]) -> Option<u32> {
    match *halves {
        [lo, hi] => Some(u32::from(lo) | u32::from(hi) << 16),
        _ => None,
    }
}

impl Iterator for Entries<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            Entries::Narrow(it) => it.next().map(|&e| u32::from(e)),
            Entries::Wide(it) => it.next().and_then(wide_entry),
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Entries::Narrow(it) => it.size_hint(),
            Entries::Wide(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// Largest coordinate count of a one-ring polygon tested by scanning all of
/// its edges (see `PreparedPolygon::scan`).
pub const SCAN_MAX: usize = 32;

/// `entries` as a `PreparedPolygon::index` buffer: one `u16` an entry when
/// every entry fits, else two (low half first); and whether it is the
/// latter (`PreparedPolygon::wide`).
fn narrow_or_wide(entries: &[u32]) -> (Arc<[u16]>, bool) {
    if entries.iter().all(|&e| e <= u32::from(u16::MAX)) {
        (entries.iter().map(|&e| e as u16).collect(), false)
    } else {
        (entries.iter().flat_map(|&e| [e as u16, (e >> 16) as u16]).collect(), true)
    }
}

/// Whether the stored form of `ring` carries an extra copy of its first
/// coordinate to close it (unclosed rings and single points).
#[inline]
fn needs_closing(ring: &[Coord<f64>]) -> bool {
    match (ring.first(), ring.last()) {
        (Some(first), Some(last)) => first != last || ring.len() == 1,
        _ => false,
    }
}

impl PreparedPolygon {
    /// Prepares `polygon` (its exterior and every interior ring).
    ///
    /// Never panics, whatever the ring shapes: rings are closed implicitly,
    /// empty rings contribute nothing, and degenerate extents use one band.
    pub fn new(polygon: &Polygon<f64>) -> Self {
        Self::from_rings(std::iter::once(polygon.exterior()).chain(polygon.interiors()).map(|ring| ring.0.as_slice()))
    }

    /// Prepares raw rings (closed or not); all rings are treated alike.
    fn from_rings<'a>(rings: impl Iterator<Item = &'a [Coord<f64>]>) -> Self {
        let rings: Vec<&[Coord<f64>]> = rings.collect();
        let stored: usize = rings.iter().map(|r| r.len() + usize::from(needs_closing(r))).sum();
        debug_assert!(stored < u32::MAX as usize, "polygon part too large for u32 edge numbers");

        // Coordinates once, ring after ring, plus the `[start, end)` span of
        // each ring in `coords`.
        let mut coords: Vec<Coord<f64>> = Vec::with_capacity(stored);
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(rings.len());
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        for pts in &rings {
            let start = coords.len();
            coords.extend_from_slice(pts);
            if let Some(&first) = pts.first() {
                // Close the ring; for a single-point ring this makes a
                // zero-length edge so that the point itself is "covered".
                if needs_closing(pts) {
                    coords.push(first);
                }
            }
            for p in *pts {
                min[0] = min[0].min(p.x);
                min[1] = min[1].min(p.y);
                max[0] = max[0].max(p.x);
                max[1] = max[1].max(p.y);
            }
            spans.push((start, coords.len()));
        }
        // Edge numbers: `i` for `coords[i] -> coords[i + 1]` within a ring.
        let edge_numbers = || {
            spans
                .iter()
                .flat_map(|&(start, end)| start..end.saturating_sub(1).max(start))
                .filter_map(|i| u32::try_from(i).ok())
        };
        let edge_count = edge_numbers().count();
        if edge_count == 0 {
            min = [0.0; 2];
            max = [0.0; 2];
        }

        let height = max[1] - min[1];
        // One band per six edges: see "Memory layout" in the module doc.
        let wanted = (edge_count / 6).clamp(1, MAX_BANDS);
        let bands = if height.is_finite() && height > 0.0 { wanted } else { 1 };
        let scale = if bands > 1 { bands as f64 / height } else { 0.0 };
        let last_band = bands - 1;
        let band_of = |y: f64| -> usize { band_index(y, min[1], scale, last_band) };
        let edge_of = |i: u32| -> Edge {
            let i = i as usize;
            Edge::new(coords[i], coords[i + 1])
        };

        // Counting pass, then a fill pass into one `u32` buffer (stored in
        // `u16`s at the end, see `narrow_or_wide`).
        let mut counts = vec![0usize; bands + 1];
        for i in edge_numbers() {
            let e = edge_of(i);
            for b in band_of(e.y0)..=band_of(e.y1) {
                counts[b + 1] += 1;
            }
        }
        for b in 0..bands {
            counts[b + 1] += counts[b];
        }
        let base = bands + 1;
        let slots = counts[bands];
        let total = base + slots + rings.len();
        debug_assert!(total <= u32::MAX as usize, "polygon part too large for u32 band offsets");
        let position = |p: usize| u32::try_from(p).unwrap_or(u32::MAX);
        let mut index = vec![0u32; total];
        for (b, &count) in counts.iter().enumerate() {
            index[b] = position(base + count);
        }
        let mut cursor: Vec<usize> = counts[..bands].iter().map(|&c| base + c).collect();
        // Filled in the order of the edges' least x, so that every band
        // lists its edges sorted by it (see "Point test" in the module
        // doc), ties in ring order; one sort of the polygon's edges, not
        // one per band.
        let mut by_x: Vec<(i64, u32)> = edge_numbers()
            .map(|i| {
                let (a, b) = (coords[i as usize].x, coords[i as usize + 1].x);
                (least_x_key(a, b), i)
            })
            .collect();
        by_x.sort_unstable();
        for &(_, i) in &by_x {
            let e = edge_of(i);
            for b in band_of(e.y0)..=band_of(e.y1) {
                index[cursor[b]] = i;
                cursor[b] += 1;
            }
        }
        drop(by_x);
        for (slot, ring) in index[base + slots..].iter_mut().zip(&rings) {
            *slot = position(ring.len());
        }

        let (index, wide) = narrow_or_wide(&index);
        PreparedPolygon {
            min,
            max,
            scale,
            coords: Arc::from(coords),
            index,
            last_band: position(last_band),
            scan: rings.len() == 1 && stored <= SCAN_MAX,
            wide,
        }
    }

    /// The edge numbers listed in bands `lo..=hi`.
    #[inline]
    fn bands(&self, lo: usize, hi: usize) -> Option<Entries<'_>> {
        let span = self.span_of(lo, hi)?;
        self.entries(span.0 as usize..span.1 as usize)
    }

    /// Where bands `lo..=hi` list their edge numbers in `index`.
    #[inline]
    fn span_of(&self, lo: usize, hi: usize) -> Option<BandSpan> {
        Some(BandSpan(self.entry(lo)?, self.entry(hi + 1)?))
    }

    /// The `u16`s that hold index entries `range` (two an entry when
    /// `wide`), or `None` when out of bounds.
    #[inline]
    fn halves(&self, range: std::ops::Range<usize>) -> Option<&[u16]> {
        let width = 1 + usize::from(self.wide);
        self.index.get(width * range.start..width * range.end)
    }

    /// Index entry `at`.
    #[inline]
    fn entry(&self, at: usize) -> Option<u32> {
        let halves = self.halves(at..at + 1)?;
        if self.wide {
            wide_entry(halves)
        } else {
            halves.first().map(|&e| u32::from(e))
        }
    }

    /// Number of index entries.
    #[inline]
    fn entry_count(&self) -> usize {
        self.index.len() >> usize::from(self.wide)
    }

    /// Index entries `range`, or `None` when out of bounds.
    #[inline]
    fn entries(&self, range: std::ops::Range<usize>) -> Option<Entries<'_>> {
        let halves = self.halves(range)?;
        Some(if self.wide { Entries::Wide(halves.chunks_exact(2)) } else { Entries::Narrow(halves.iter()) })
    }

    /// Every stored edge slot (edge numbers, once per band they span).
    fn all_edges(&self) -> Entries<'_> {
        self.bands(0, self.last_band as usize).unwrap_or_else(Entries::none)
    }

    /// The source length of each ring (exterior first).
    fn ring_lengths(&self) -> Entries<'_> {
        let len = self.entry_count();
        let end = self.entry(self.last_band as usize + 1).map_or(len, |e| e as usize);
        self.entries(end.min(len)..len).unwrap_or_else(Entries::none)
    }

    /// The two coordinates of edge number `i`, in ring order.
    #[inline]
    fn ends(&self, i: u32) -> Option<(Coord<f64>, Coord<f64>)> {
        let i = i as usize;
        match self.coords.get(i..i + 2) {
            Some(&[a, b]) => Some((a, b)),
            _ => None,
        }
    }

    /// Edge number `i`, endpoints ordered so that `y0 <= y1`.
    #[inline]
    fn edge(&self, i: u32) -> Option<Edge> {
        self.ends(i).map(|(a, b)| Edge::new(a, b))
    }

    /// The edges of `ids` (edge numbers).
    #[inline]
    fn edges<'a>(&'a self, ids: impl Iterator<Item = u32> + 'a) -> impl Iterator<Item = Edge> + 'a {
        ids.filter_map(|i| self.edge(i))
    }

    /// True when `c` is inside the polygon or exactly on any of its edges or
    /// vertices (boundary-inclusive, like `ST_Covers`), using even-odd parity
    /// over all rings.
    #[inline]
    pub fn covers(&self, c: Coord<f64>) -> bool {
        self.locate(c) != Location::Outside
    }

    /// Classifies `c` as inside, on the boundary, or outside (same rules as
    /// [`covers`](Self::covers)).
    pub fn locate(&self, c: Coord<f64>) -> Location {
        match self.band_span(c) {
            Some(span) => self.locate_in(span, c),
            None => Location::Outside,
        }
    }

    /// The first half of [`locate`](Self::locate), for callers that test
    /// many points side by side (`SpatialIndex::query_many`): reads the
    /// header and the band offsets and returns the span of the band's edge
    /// numbers to pass to [`locate_in`](Self::locate_in), or `None` when
    /// `c` is outside the bounding box (or NaN), so not covered. Splitting
    /// the test lets a batch start every test's first two dependent loads
    /// before any waits for its edges.
    #[inline]
    pub fn band_span(&self, c: Coord<f64>) -> Option<BandSpan> {
        let (px, py) = (c.x, c.y);
        if !(px >= self.min[0] && px <= self.max[0] && py >= self.min[1] && py <= self.max[1]) {
            return None;
        }
        if self.scan {
            return Some(BandSpan(0, 0));
        }
        let b = band_index(py, self.min[1], self.scale, self.last_band as usize);
        self.span_of(b, b)
    }

    /// Reads the first and the last edge of `span` (their edge numbers and
    /// start coordinates) and returns the sum of their x coordinates, for
    /// batches that run this for many tests before any
    /// [`locate_in`](Self::locate_in), so that the loads of different tests
    /// overlap. The caller passes the result to [`std::hint::black_box`],
    /// which keeps the loads. Bands are sorted by x, so these are the band's
    /// leftmost edge, where the leftward test starts, and its rightmost,
    /// which that test reaches only for points right of every other edge.
    #[inline]
    pub fn touch(&self, span: BandSpan) -> f64 {
        if self.scan || span.1 <= span.0 {
            return self.coords.first().map_or(0.0, |c| c.x);
        }
        let x = |at: u32| self.entry(at as usize).and_then(|i| self.coords.get(i as usize)).map_or(0.0, |c| c.x);
        x(span.0) + x(span.1 - 1)
    }

    /// The second half of [`locate`](Self::locate): classifies `c` given
    /// `span`, which must be what [`band_span`](Self::band_span) returned
    /// for the same point on this polygon (or a copy sharing its buffers).
    #[inline]
    pub fn locate_in(&self, span: BandSpan, c: Coord<f64>) -> Location {
        if self.scan {
            return parity::<false>(self.coords.windows(2).map(|w| (w[0], w[1])), c.x, c.y);
        }
        // One loop per width, so that the entry width is not decided edge
        // by edge.
        match self.halves(span.0 as usize..span.1 as usize) {
            None => Location::Outside,
            Some(ids) if self.wide => {
                parity::<true>(ids.chunks_exact(2).filter_map(|h| wide_entry(h).and_then(|i| self.ends(i))), c.x, c.y)
            }
            Some(ids) => parity::<true>(ids.iter().filter_map(|&i| self.ends(u32::from(i))), c.x, c.y),
        }
    }

    /// Bounding box of all rings as `(min, max)`, each `[x, y]`. A polygon
    /// without any coordinate reports `([0, 0], [0, 0])`.
    pub fn bbox(&self) -> ([f64; 2], [f64; 2]) {
        (self.min, self.max)
    }

    /// Number of coordinates in the source rings (exterior plus holes, as
    /// given, including closing points).
    pub fn vertex_count(&self) -> usize {
        self.ring_lengths().map(|n| n as usize).sum()
    }

    /// Number of y-bands used.
    pub fn band_count(&self) -> usize {
        self.last_band as usize + 1
    }

    /// Number of stored edge slots (edges counted once per band they span).
    pub fn stored_edge_count(&self) -> usize {
        self.all_edges().len()
    }

    /// Heap bytes this polygon's buffers take (coordinates and the `u16`
    /// or `u32` index, each with its `Arc` counts), not counting its own header
    /// (`size_of::<PreparedPolygon>()`). Copies of the polygon share them.
    pub fn heap_bytes(&self) -> usize {
        const COUNTS: usize = 2 * std::mem::size_of::<usize>();
        std::mem::size_of_val(&*self.coords) + std::mem::size_of_val(&*self.index) + 2 * COUNTS
    }

    /// Whether `other` is a copy of this polygon sharing its buffers (not
    /// an equal polygon with buffers of its own).
    pub fn shares_buffers_with(&self, other: &PreparedPolygon) -> bool {
        Arc::ptr_eq(&self.coords, &other.coords) && Arc::ptr_eq(&self.index, &other.index)
    }

    /// The source rings (exterior first, then the holes), exactly as given
    /// to [`new`](Self::new): same coordinates, same closing points.
    pub fn rings(&self) -> impl Iterator<Item = &[Coord<f64>]> + '_ {
        let mut at = 0usize;
        self.ring_lengths().map(move |n| {
            let ring = self.coords.get(at..at + n as usize).unwrap_or(&[]);
            at += ring.len() + usize::from(needs_closing(ring));
            ring
        })
    }

    /// The polygon this was prepared from, rebuilt from the stored
    /// coordinates: equal (`==`, and bit for bit) to the `Polygon` given to
    /// [`new`](Self::new).
    pub fn to_polygon(&self) -> Polygon<f64> {
        // `Polygon::new` closes every ring whose first and last coordinates
        // differ under `==`. Source rings come from `geo`, so they were
        // closed the same way: re-closing is a no-op, except for a ring
        // whose first coordinate has a NaN (never equal to itself), which
        // `geo` always closed by appending a copy of it. Drop that copy so
        // that `Polygon::new` appends the same one again.
        let ring = |r: &[Coord<f64>]| {
            let r = match r.first() {
                Some(first) if (first.x.is_nan() || first.y.is_nan()) && r.len() > 1 => &r[..r.len() - 1],
                _ => r,
            };
            LineString::new(r.to_vec())
        };
        let mut rings = self.rings().map(ring);
        let exterior = rings.next().unwrap_or_else(|| LineString::new(Vec::new()));
        Polygon::new(exterior, rings.collect())
    }

    /// Whether `polygon` has exactly the rings this was prepared from (the
    /// same test as `==` on the source polygon, without rebuilding it).
    pub fn same_as(&self, polygon: &Polygon<f64>) -> bool {
        self.ring_lengths().len() == 1 + polygon.interiors().len()
            && self
                .rings()
                .zip(std::iter::once(polygon.exterior()).chain(polygon.interiors()))
                .all(|(mine, theirs)| mine == theirs.0.as_slice())
    }

    /// The stored edges as `(lower, upper)` endpoint pairs (`[x, y]`, lower
    /// `y` first; an edge spanning several bands is yielded once per band).
    /// Used to rasterise the boundary into acceleration grids.
    pub(crate) fn segments(&self) -> impl Iterator<Item = ([f64; 2], [f64; 2])> + '_ {
        self.edges(self.all_edges()).map(|e| e.ends())
    }

    /// Like [`segments`](Self::segments), but only from the bands that the
    /// closed y-range `[ylo, yhi]` meets: every edge whose closed y-extent
    /// meets the range is yielded at least once (others may be yielded
    /// too). Used to refine acceleration grids cell by cell.
    pub(crate) fn segments_in_y(&self, ylo: f64, yhi: f64) -> impl Iterator<Item = ([f64; 2], [f64; 2])> + '_ {
        let band = if ylo > self.max[1] || yhi < self.min[1] {
            Entries::none()
        } else {
            let last = self.last_band as usize;
            let lo = band_index(ylo.max(self.min[1]), self.min[1], self.scale, last);
            let hi = band_index(yhi.min(self.max[1]), self.min[1], self.scale, last);
            self.bands(lo, hi).unwrap_or_else(|| self.all_edges())
        };
        self.edges(band).map(|e| e.ends())
    }

    /// Whether the closed axis-aligned box `[min, max]` lies entirely inside
    /// the polygon (even-odd rule) with no edge touching it. Conservative:
    /// `false` means "unknown or not wholly inside". Used to build coarse
    /// acceleration grids.
    pub fn box_inside(&self, min: [f64; 2], max: [f64; 2]) -> bool {
        if !(min[0] > self.min[0] && max[0] < self.max[0] && min[1] > self.min[1] && max[1] < self.max[1]) {
            return false;
        }
        let last = self.last_band as usize;
        let lo = band_index(min[1], self.min[1], self.scale, last);
        let hi = band_index(max[1], self.min[1], self.scale, last);
        let Some(ids) = self.bands(lo, hi) else {
            return false;
        };
        if self.edges(ids).any(|e| segment_touches_box(&e, min, max)) {
            return false;
        }
        // No edge touches the box, so the whole box has one parity; test a
        // corner strictly.
        self.locate(Coord { x: min[0], y: min[1] }) == Location::Inside
    }

    /// Whether any edge of the polygon touches the closed box `[min, max]`.
    /// Conservative in the sense that `false` is exact.
    pub fn boundary_touches_box(&self, min: [f64; 2], max: [f64; 2]) -> bool {
        if min[0] > self.max[0] || max[0] < self.min[0] || min[1] > self.max[1] || max[1] < self.min[1] {
            return false;
        }
        let last = self.last_band as usize;
        let lo = band_index(min[1].max(self.min[1]), self.min[1], self.scale, last);
        let hi = band_index(max[1].min(self.max[1]), self.min[1], self.scale, last);
        let Some(ids) = self.bands(lo, hi) else {
            return true;
        };
        self.edges(ids).any(|e| segment_touches_box(&e, min, max))
    }
}

impl Edge {
    /// `([x0, y0], [x1, y1])`, the lower end first.
    fn ends(&self) -> ([f64; 2], [f64; 2]) {
        ([self.x0, self.y0], [self.x1, self.y1])
    }

    #[inline]
    fn new(a: Coord<f64>, b: Coord<f64>) -> Self {
        if a.y <= b.y {
            Edge { x0: a.x, y0: a.y, x1: b.x, y1: b.y }
        } else {
            Edge { x0: b.x, y0: b.y, x1: a.x, y1: a.y }
        }
    }
}

/// Even-odd parity of a horizontal ray from `(px, py)` over `edges` (each
/// `(a, b)` once, in any direction), or `Boundary` as soon as the point is
/// found on one: the point test of [`PreparedPolygon::locate`], given at
/// least every edge whose closed y-extent contains `py`.
///
/// With `LEFTWARDS = false` the ray goes towards `+x` over edges in any
/// order (a small part's whole ring). With `LEFTWARDS = true` it goes
/// towards `-x` over `edges` sorted by their least x (an edge whose least x
/// is NaN first), as a band stores them: the edges are read left to right
/// and the scan stops at the first one that starts right of the point, as
/// neither it nor any later edge can hold the point or cross a leftward
/// ray. Both give the same answer: under the half-open rule every closed
/// ring crosses the whole line `y = py` an even number of times, so the
/// crossings left of a point not on the boundary have the parity of those
/// right of it. A band is read about half way on average, where the `+x`
/// ray read all of it.
#[inline]
fn parity<const LEFTWARDS: bool>(edges: impl Iterator<Item = (Coord<f64>, Coord<f64>)>, px: f64, py: f64) -> Location {
    let mut inside = false;
    for (a, b) in edges {
        let (xl, xr) = if a.x <= b.x { (a.x, b.x) } else { (b.x, a.x) };
        if LEFTWARDS && xl > px {
            break;
        }
        // Half-open straddle test first (`min y <= py < max y` is
        // "exactly one end above py"): most band edges fail it with two
        // comparisons, and of those the point can only lie on an edge
        // that reaches `py` at an end (its upper end, or a horizontal
        // edge at `py`).
        let above = b.y > py;
        if (a.y > py) == above {
            if (a.y == py || b.y == py) && on_flat_end(a, b, px, py) {
                return Location::Boundary;
            }
            continue;
        }
        // Straddling: `lo.y <= py < hi.y`, so `lo -> hi` points up.
        if px > xr {
            // Entirely to the left of the point: crossed by a -x ray only.
            inside ^= LEFTWARDS;
            continue;
        }
        if px < xl {
            // Entirely to the right: crossed by a +x ray only.
            inside ^= !LEFTWARDS;
            continue;
        }
        let (lo, hi) = if above { (a, b) } else { (b, a) };
        let e = Edge { x0: lo.x, y0: lo.y, x1: hi.x, y1: hi.y };
        match orient(&e, px, py) {
            Orientation::Collinear => return Location::Boundary,
            // Point left of the upward edge => edge is right of point.
            Orientation::CounterClockwise => inside ^= !LEFTWARDS,
            // Point right of it => edge is left of point.
            Orientation::Clockwise => inside ^= LEFTWARDS,
        }
    }
    if inside {
        Location::Inside
    } else {
        Location::Outside
    }
}

/// Whether `(px, py)` lies on the edge `a`-`b`, given that the edge does
/// not straddle `py` under the half-open rule and has an end at `y == py`:
/// then the point can only be that end (`b` above or below) or, for a
/// horizontal edge at `py`, anywhere between the two ends.
#[inline(never)]
fn on_flat_end(a: Coord<f64>, b: Coord<f64>, px: f64, py: f64) -> bool {
    if a.y == b.y {
        px >= a.x.min(b.x) && px <= a.x.max(b.x)
    } else {
        (a.y == py && a.x == px) || (b.y == py && b.x == px)
    }
}

/// The sort key of an edge with end x coordinates `a` and `b` in a band:
/// the lesser x as an integer that orders like `f64::total_cmp`, with an
/// edge whose lesser x is NaN first, so that the leftward point test,
/// which stops at the first edge right of the point, never skips it.
#[inline]
fn least_x_key(a: f64, b: f64) -> i64 {
    let x = a.min(b);
    if x.is_nan() {
        return i64::MIN;
    }
    // `f64::total_cmp`'s mapping: negative values' magnitude bits flipped.
    let bits = x.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

/// Band of `y`: `floor((y - y0) * scale)` clamped to `0..=last`. Monotone in
/// `y`, so closed y-intervals map to contiguous band ranges consistently.
#[inline]
fn band_index(y: f64, y0: f64, scale: f64, last: usize) -> usize {
    // `as` truncates towards zero, which is `floor` for the non-negative
    // values it sees here, without the libm call `floor` compiles to on
    // baseline x86-64 (no SSE4.1 `roundsd`): it was a tenth of a lookup.
    let f = (y - y0) * scale;
    if f >= 0.0 {
        // Clamped in floating point first: the saturating `f64 as u32` is
        // cheaper than `as usize` plus `min` (indexes here are below 2^31).
        f.min(last as f64) as u32 as usize
    } else {
        0
    }
}

/// Exact orientation of point `(px, py)` relative to the directed edge
/// `(x0, y0) -> (x1, y1)`: `CounterClockwise` means the point is left of it.
///
/// Fast floating-point evaluation with Shewchuk's `ccwerrboundA` filter,
/// falling back to geo's robust (exact) predicate when the sign is uncertain.
#[inline]
fn orient(e: &Edge, px: f64, py: f64) -> Orientation {
    let detleft = (e.x0 - px) * (e.y1 - py);
    let detright = (e.y0 - py) * (e.x1 - px);
    let det = detleft - detright;
    let detsum = if detleft > 0.0 {
        if detright <= 0.0 {
            return sign(det);
        }
        detleft + detright
    } else if detleft < 0.0 {
        if detright >= 0.0 {
            return sign(det);
        }
        -detleft - detright
    } else {
        return sign(det);
    };
    const EPS: f64 = f64::EPSILON * 0.5;
    const CCW_ERRBOUND_A: f64 = (3.0 + 16.0 * EPS) * EPS;
    let errbound = CCW_ERRBOUND_A * detsum;
    if det >= errbound || -det >= errbound {
        return sign(det);
    }
    RobustKernel::orient2d(Coord { x: e.x0, y: e.y0 }, Coord { x: e.x1, y: e.y1 }, Coord { x: px, y: py })
}

#[inline]
fn sign(det: f64) -> Orientation {
    if det > 0.0 {
        Orientation::CounterClockwise
    } else if det < 0.0 {
        Orientation::Clockwise
    } else {
        Orientation::Collinear
    }
}

/// Whether segment `e` touches the closed box `[min, max]` (exact).
fn segment_touches_box(e: &Edge, min: [f64; 2], max: [f64; 2]) -> bool {
    let (xlo, xhi) = if e.x0 <= e.x1 { (e.x0, e.x1) } else { (e.x1, e.x0) };
    if xhi < min[0] || xlo > max[0] || e.y1 < min[1] || e.y0 > max[1] {
        return false;
    }
    let inside = |x: f64, y: f64| x >= min[0] && x <= max[0] && y >= min[1] && y <= max[1];
    if inside(e.x0, e.y0) || inside(e.x1, e.y1) {
        return true;
    }
    // The segment's box overlaps the box but no endpoint is inside: it
    // touches iff the box corners are not all strictly on one side.
    let corners = [(min[0], min[1]), (max[0], min[1]), (max[0], max[1]), (min[0], max[1])];
    let mut left = false;
    let mut right = false;
    for (x, y) in corners {
        match orient(e, x, y) {
            Orientation::Collinear => return true,
            Orientation::CounterClockwise => left = true,
            Orientation::Clockwise => right = true,
        }
    }
    left && right
}

/// Brute-force reference: even-odd parity plus exact on-edge test over every
/// edge of every ring, no bands. Same semantics as
/// [`PreparedPolygon::covers`]; exposed for tests and benchmarks.
pub fn covers_brute_force(polygon: &Polygon<f64>, c: Coord<f64>) -> bool {
    let mut inside = false;
    for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
        let pts = &ring.0;
        let n = pts.len();
        for i in 0..n {
            let a = pts[i];
            let b = pts[(i + 1) % n];
            if i + 1 == n && a == b && n > 1 {
                continue;
            }
            let e = Edge::new(a, b);
            if c.y < e.y0 || c.y > e.y1 {
                continue;
            }
            let (xlo, xhi) = if e.x0 <= e.x1 { (e.x0, e.x1) } else { (e.x1, e.x0) };
            let o = RobustKernel::orient2d(Coord { x: e.x0, y: e.y0 }, Coord { x: e.x1, y: e.y1 }, c);
            if o == Orientation::Collinear && c.x >= xlo && c.x <= xhi {
                return true;
            }
            if c.y < e.y1 && o == Orientation::CounterClockwise {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{coord, polygon, LineString};

    fn c(x: f64, y: f64) -> Coord<f64> {
        coord! { x: x, y: y }
    }

    fn square() -> Polygon<f64> {
        polygon![(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)]
    }

    /// Every band lists its edges by least x, the order the leftward
    /// point test relies on to stop early; points on both sides of the
    /// middle of each band still agree with brute force.
    #[test]
    fn band_edges_are_sorted_by_least_x() {
        // A comb: 60 teeth, so bands hold edges from many x positions.
        let mut ring = vec![c(0.0, 0.0), c(61.0, 0.0)];
        for t in (0..60).rev() {
            let x = f64::from(t) + 1.0;
            ring.extend([c(x, 10.0 + f64::from(t % 7)), c(x - 0.5, 10.0 + f64::from(t % 7)), c(x - 0.5, 2.0)]);
        }
        let poly = Polygon::new(LineString::from(ring), vec![]);
        let p = PreparedPolygon::new(&poly);
        assert!(p.band_count() > 4);
        for b in 0..p.band_count() {
            let ids = p.bands(b, b).expect("a band");
            let xs: Vec<f64> = ids.filter_map(|i| p.ends(i)).map(|(a, b)| a.x.min(b.x)).collect();
            assert!(xs.windows(2).all(|w| w[0] <= w[1]), "band {b}: {xs:?}");
        }
        for i in 0..600 {
            let q = c(f64::from(i % 62) - 0.25, f64::from(i / 62) * 1.7 + 0.1);
            assert_eq!(p.covers(q), covers_brute_force(&poly, q), "{q:?}");
        }
    }

    #[test]
    fn least_x_key_orders_like_total_cmp() {
        let xs = [f64::NEG_INFINITY, -1e300, -1.5, -f64::MIN_POSITIVE, -0.0, 0.0, 1e-300, 2.0, f64::INFINITY];
        let keys: Vec<i64> = xs.iter().map(|&x| least_x_key(x, f64::INFINITY)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(least_x_key(3.0, -2.0), least_x_key(-2.0, 7.0));
        assert_eq!(least_x_key(f64::NAN, f64::NAN), i64::MIN, "NaN sorts first");
    }

    #[test]
    fn square_inside_outside_boundary() {
        let p = PreparedPolygon::new(&square());
        assert!(p.covers(c(5.0, 5.0)));
        assert!(p.covers(c(0.001, 9.999)));
        assert!(!p.covers(c(-0.001, 5.0)));
        assert!(!p.covers(c(10.001, 5.0)));
        assert!(!p.covers(c(5.0, 10.001)));
        assert!(!p.covers(c(f64::NAN, 5.0)));
        // Edges and vertices are covered.
        for q in [
            c(0.0, 0.0),
            c(10.0, 0.0),
            c(10.0, 10.0),
            c(0.0, 10.0),
            c(5.0, 0.0),
            c(10.0, 5.0),
            c(5.0, 10.0),
            c(0.0, 5.0),
        ] {
            assert!(p.covers(q), "{q:?}");
            assert_eq!(p.locate(q), Location::Boundary);
        }
        assert_eq!(p.bbox(), ([0.0, 0.0], [10.0, 10.0]));
        assert_eq!(p.vertex_count(), 5);
    }

    #[test]
    fn square_with_hole() {
        let poly = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)],
            interiors: [[(x: 4.0, y: 4.0), (x: 6.0, y: 4.0), (x: 6.0, y: 6.0), (x: 4.0, y: 6.0)]],
        );
        let p = PreparedPolygon::new(&poly);
        assert!(!p.covers(c(5.0, 5.0)), "point in hole");
        assert!(p.covers(c(4.0, 5.0)), "point on hole edge");
        assert!(p.covers(c(6.0, 6.0)), "point on hole vertex");
        assert!(p.covers(c(2.0, 5.0)));
        assert!(p.covers(c(5.0, 8.0)));
        assert_eq!(p.vertex_count(), 10);
    }

    #[test]
    fn diagonal_edge_points() {
        // Points exactly on a non-axis-aligned edge (representable exactly).
        let poly = polygon![(x: 0.0, y: 0.0), (x: 8.0, y: 2.0), (x: 4.0, y: 8.0)];
        let p = PreparedPolygon::new(&poly);
        assert!(p.covers(c(4.0, 1.0)));
        assert!(p.covers(c(2.0, 4.0)));
        assert!(p.covers(c(6.0, 5.0)));
        // Just off the edge, outside.
        assert!(!p.covers(c(4.0, 1.0 - 1e-12)));
        assert!(p.covers(c(4.0, 1.0 + 1e-12)));
    }

    #[test]
    fn unclosed_triangle_three_coords() {
        // Only 3 coordinates, no closing point (as in some GeoJSON rings).
        // geo's constructors close rings themselves; PreparedPolygon also
        // closes implicitly, so either way the closing edge exists.
        let poly = Polygon::new(LineString::from(vec![(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)]), vec![]);
        let p = PreparedPolygon::new(&poly);
        assert!(p.covers(c(1.0, 1.0)));
        assert!(p.covers(c(2.0, 2.0)), "on the implicit closing edge");
        assert!(p.covers(c(0.0, 2.0)));
        assert!(!p.covers(c(3.0, 3.0)));
        assert!(!p.covers(c(-1.0, 1.0)));
        assert!(p.vertex_count() <= 4);

        // A genuinely unclosed 3-coordinate ring (geo's constructors always
        // close rings, so go through the raw-ring constructor).
        let raw = [c(0.0, 0.0), c(4.0, 0.0), c(0.0, 4.0)];
        let p = PreparedPolygon::from_rings(std::iter::once(&raw[..]));
        assert_eq!(p.vertex_count(), 3);
        assert!(p.covers(c(1.0, 1.0)));
        assert!(p.covers(c(2.0, 2.0)), "on the implicit closing edge");
        assert!(p.covers(c(0.0, 4.0)));
        assert!(!p.covers(c(3.0, 3.0)));
        assert!(!p.covers(c(2.0, 2.0 + 1e-9)));
    }

    #[test]
    fn bow_tie_and_self_touching() {
        // Bow-tie: two triangles meeting at (2, 2).
        let bow = polygon![(x: 0.0, y: 0.0), (x: 4.0, y: 4.0), (x: 4.0, y: 0.0), (x: 0.0, y: 4.0)];
        let p = PreparedPolygon::new(&bow);
        assert!(p.covers(c(1.0, 2.0)));
        assert!(p.covers(c(3.0, 2.0)));
        assert!(p.covers(c(2.0, 2.0)), "crossing point is on edges");
        assert!(!p.covers(c(2.0, 3.5)));
        assert!(!p.covers(c(2.0, 0.5)));
        for q in [c(1.0, 2.0), c(3.0, 2.0), c(2.0, 3.5), c(2.0, 0.5), c(2.0, 2.0)] {
            assert_eq!(p.covers(q), covers_brute_force(&bow, q), "{q:?}");
        }

        // Self-touching ring: a square with a notch whose tip touches the
        // opposite side at (5, 0) (an "inverted hole" drawn in the shell).
        let touch = polygon![
            (x: 0.0, y: 0.0), (x: 5.0, y: 0.0), (x: 3.0, y: 4.0), (x: 7.0, y: 4.0),
            (x: 5.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)
        ];
        let p = PreparedPolygon::new(&touch);
        assert!(!p.covers(c(5.0, 2.0)), "inside the notch");
        assert!(p.covers(c(5.0, 0.0)), "touch point");
        assert!(p.covers(c(1.0, 1.0)));
        assert!(p.covers(c(9.0, 1.0)));
        assert!(p.covers(c(5.0, 6.0)));
        assert!(p.covers(c(5.0, 4.0)), "on notch edge");
    }

    #[test]
    fn wrong_winding_is_irrelevant() {
        // Clockwise exterior, counter-clockwise hole.
        let poly = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 0.0, y: 10.0), (x: 10.0, y: 10.0), (x: 10.0, y: 0.0)],
            interiors: [[(x: 4.0, y: 4.0), (x: 4.0, y: 6.0), (x: 6.0, y: 6.0), (x: 6.0, y: 4.0)]],
        );
        let p = PreparedPolygon::new(&poly);
        assert!(p.covers(c(2.0, 2.0)));
        assert!(!p.covers(c(5.0, 5.0)));
    }

    #[test]
    fn degenerate_polygons_do_not_panic() {
        let empty = Polygon::new(LineString::new(vec![]), vec![]);
        let p = PreparedPolygon::new(&empty);
        assert!(!p.covers(c(0.0, 0.0)) || p.vertex_count() == 0);
        assert_eq!(p.vertex_count(), 0);
        assert_eq!(p.bbox(), ([0.0, 0.0], [0.0, 0.0]));

        // Zero-height (horizontal segment) ring.
        let flat = polygon![(x: 0.0, y: 1.0), (x: 5.0, y: 1.0), (x: 2.0, y: 1.0)];
        let p = PreparedPolygon::new(&flat);
        assert_eq!(p.band_count(), 1);
        assert!(p.covers(c(3.0, 1.0)), "on the degenerate edge");
        assert!(!p.covers(c(3.0, 1.5)));
        assert!(!p.covers(c(6.0, 1.0)));

        // Zero-area ring (vertical sliver) and single-point ring.
        let sliver = polygon![(x: 2.0, y: 0.0), (x: 2.0, y: 5.0), (x: 2.0, y: 3.0)];
        let p = PreparedPolygon::new(&sliver);
        assert!(p.covers(c(2.0, 4.0)));
        assert!(!p.covers(c(2.5, 4.0)));
        assert!(!p.covers(c(1.5, 4.0)));

        let mut point = Polygon::new(LineString::new(vec![]), vec![]);
        point.exterior_mut(|e| *e = LineString::from(vec![(1.0, 1.0)]));
        let p = PreparedPolygon::new(&point);
        assert!(p.covers(c(1.0, 1.0)));
        assert!(!p.covers(c(1.0, 1.1)));

        // Zero-area ring inside a square: a hole of zero area.
        let poly = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)],
            interiors: [[(x: 2.0, y: 2.0), (x: 8.0, y: 8.0), (x: 2.0, y: 2.0)]],
        );
        let p = PreparedPolygon::new(&poly);
        assert!(p.covers(c(5.0, 5.0)), "on the zero-area hole");
        assert!(p.covers(c(5.0, 6.0)), "beside it, still inside");
        assert!(p.covers(c(6.0, 5.0)));

        // Non-finite coordinates.
        let nan = polygon![(x: 0.0, y: 0.0), (x: f64::NAN, y: 1.0), (x: 1.0, y: f64::INFINITY)];
        let p = PreparedPolygon::new(&nan);
        let _ = p.covers(c(0.5, 0.5));
    }

    #[test]
    fn points_on_band_boundaries() {
        // 60 edges -> 10 bands over y in [0, 10]: boundaries at integers.
        let mut ring = Vec::new();
        for i in 0..=30 {
            ring.push((0.0, f64::from(i) * 10.0 / 30.0));
        }
        for i in (1..=29).rev() {
            ring.push((if i % 2 == 0 { 10.0 } else { 9.0 }, f64::from(i) * 10.0 / 30.0));
        }
        let poly = Polygon::new(LineString::from(ring), vec![]);
        let p = PreparedPolygon::new(&poly);
        assert!(p.band_count() >= 8, "bands: {}", p.band_count());
        for i in 0..=40 {
            let y = f64::from(i) * 0.25;
            for x in [-0.5, 0.0, 0.5, 5.0, 8.99, 9.0, 9.5, 10.0, 10.5] {
                let q = c(x, y);
                assert_eq!(p.covers(q), covers_brute_force(&poly, q), "{q:?}");
            }
        }
        // Explicit band-boundary points on and off edges.
        assert!(p.covers(c(0.0, 1.0)));
        assert!(p.covers(c(5.0, 1.0)));
        assert!(!p.covers(c(-1.0, 1.0)));
        // Band boundaries computed from the band geometry itself.
        let (lo, hi) = p.bbox();
        let k = p.band_count();
        for b in 0..=k {
            let y = lo[1] + (hi[1] - lo[1]) * (b as f64) / (k as f64);
            for x in [0.0, 3.0, 9.0, 9.5, 10.0] {
                let q = c(x, y);
                assert_eq!(p.covers(q), covers_brute_force(&poly, q), "{q:?}");
            }
        }
    }

    #[test]
    fn horizontal_edge_on_band_boundary() {
        // A staircase whose horizontal steps lie exactly on band boundaries.
        let mut ring = vec![(0.0, 0.0)];
        for i in 0..16 {
            let y = f64::from(i);
            ring.push((f64::from(i) + 1.0, y));
            ring.push((f64::from(i) + 1.0, y + 1.0));
        }
        ring.push((0.0, 16.0));
        let poly = Polygon::new(LineString::from(ring), vec![]);
        let p = PreparedPolygon::new(&poly);
        assert!(p.band_count() > 1);
        for i in 0..=64 {
            let y = f64::from(i) * 0.25;
            for j in 0..=72 {
                let q = c(f64::from(j) * 0.25 - 0.5, y);
                assert_eq!(p.covers(q), covers_brute_force(&poly, q), "{q:?}");
            }
        }
    }

    #[test]
    fn huge_circle_matches_brute_force() {
        let n = 100_000;
        let ring: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let t = std::f64::consts::TAU * f64::from(i) / f64::from(n);
                (-86.5 + 3.0 * t.cos(), 39.1 + 2.0 * t.sin())
            })
            .collect();
        let poly = Polygon::new(LineString::from(ring.clone()), vec![]);
        let p = PreparedPolygon::new(&poly);
        assert_eq!(p.vertex_count(), n as usize + 1);
        assert!(p.band_count() > 1000);
        // Deterministic pseudo-random points (xorshift) around the circle.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut inside = 0;
        for _ in 0..1000 {
            let q = c(-90.0 + 7.0 * next(), 36.8 + 4.6 * next());
            let got = p.covers(q);
            assert_eq!(got, covers_brute_force(&poly, q), "{q:?}");
            inside += usize::from(got);
        }
        assert!(inside > 300);
        // Every vertex, and midpoints very close to the boundary.
        for (i, &(x, y)) in ring.iter().enumerate().step_by(499) {
            assert!(p.covers(c(x, y)), "vertex {i}");
            let (nx, ny) = ring[(i + 1) % ring.len()];
            let mid = c((x + nx) / 2.0, (y + ny) / 2.0);
            assert_eq!(p.covers(mid), covers_brute_force(&poly, mid), "mid {i}");
        }
    }

    /// Bit patterns of every coordinate of every ring, ring by ring.
    fn bits(p: &Polygon<f64>) -> Vec<Vec<(u64, u64)>> {
        std::iter::once(p.exterior())
            .chain(p.interiors())
            .map(|r| r.0.iter().map(|c| (c.x.to_bits(), c.y.to_bits())).collect())
            .collect()
    }

    #[test]
    fn rebuilt_polygons_equal_the_parsed_ones() {
        // Holes, an unclosed exterior, an unclosed 3-position hole, single-point
        // rings, an empty hole, a negative zero: as parsed from GeoJSON.
        let text = r#"{"type":"MultiPolygon","coordinates":[
            [[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]],[[1,1],[2,1],[1,2]]],
            [[[20,0],[30,0],[30,10]]],
            [[[40,5]]],
            [[[-0.0,50],[51,50],[51,51],[0.0,50]],[[50.5,50.25]],[],[[50.1,50.1],[50.2,50.1],[50.1,50.2]]]
        ]}"#;
        let mp = crate::geometry::parse_stored(text).expect("parses");
        assert_eq!(mp.0.len(), 4);
        for poly in &mp.0 {
            let p = PreparedPolygon::new(poly);
            let rebuilt = p.to_polygon();
            assert_eq!(rebuilt, *poly);
            assert_eq!(bits(&rebuilt), bits(poly));
            assert!(p.same_as(poly));
            let rings: Vec<&[Coord<f64>]> = p.rings().collect();
            let given: Vec<&[Coord<f64>]> =
                std::iter::once(poly.exterior()).chain(poly.interiors()).map(|r| r.0.as_slice()).collect();
            assert_eq!(rings, given);
            assert_eq!(p.vertex_count(), given.iter().map(|r| r.len()).sum::<usize>());
        }
        // Single-point rings stay single points.
        let point = PreparedPolygon::new(&mp.0[2]);
        assert_eq!(point.to_polygon().exterior().0, vec![c(40.0, 5.0)]);
        assert!(point.covers(c(40.0, 5.0)));
        let holes = PreparedPolygon::new(&mp.0[3]).to_polygon();
        assert_eq!(holes.interiors()[0].0, vec![c(50.5, 50.25)]);
        assert!(holes.interiors()[1].0.is_empty());

        // Any difference is seen.
        let p = PreparedPolygon::new(&mp.0[0]);
        assert!(!p.same_as(&mp.0[1]));
        let mut moved = mp.0[0].clone();
        moved.exterior_mut(|r| r.0[2].x = 10.5);
        assert!(!p.same_as(&moved));
        let fewer = Polygon::new(mp.0[0].exterior().clone(), mp.0[0].interiors()[..1].to_vec());
        assert!(!p.same_as(&fewer));
        let mut more = mp.0[0].clone();
        more.interiors_push(vec![(7.0, 7.0), (8.0, 7.0), (8.0, 8.0)]);
        assert!(!p.same_as(&more));

        // A NaN first coordinate (never parsed, but geo allows it): geo closes
        // such a ring on every construction; the rebuild is still bit-exact.
        let nan = polygon![(x: f64::NAN, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0)];
        assert_eq!(bits(&PreparedPolygon::new(&nan).to_polygon()), bits(&nan));
    }

    /// A part whose index entries do not all fit a `u16` keeps `u32`
    /// entries, and answers and rebuilds the same as a narrow one.
    #[test]
    fn wide_index_for_large_parts() {
        // A star of 70,000 coordinates with a hole: edge numbers beyond 2^16.
        let star = |n: usize, r0: f64, r1: f64| -> Vec<Coord<f64>> {
            (0..n)
                .map(|i| {
                    let a = i as f64 / n as f64 * std::f64::consts::TAU;
                    let r = if i % 2 == 0 { r0 } else { r1 };
                    c(r * a.cos(), r * a.sin())
                })
                .collect()
        };
        let poly = Polygon::new(LineString::from(star(70_000, 10.0, 9.0)), vec![LineString::from(star(600, 3.0, 2.0))]);
        let wide = PreparedPolygon::new(&poly);
        assert!(wide.wide);
        let small =
            Polygon::new(LineString::from(star(6_000, 10.0, 9.99)), vec![LineString::from(star(600, 3.0, 2.99))]);
        let narrow = PreparedPolygon::new(&small);
        assert!(!narrow.wide);
        for (p, source) in [(&wide, &poly), (&narrow, &small)] {
            assert_eq!(p.to_polygon(), *source);
            assert_eq!(p.vertex_count(), 70_001.min(source.exterior().0.len()) + 601);
            assert_eq!(p.edges(p.all_edges()).count(), p.stored_edge_count());
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..3_000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let q = c((rng % 22_000) as f64 / 1000.0 - 11.0, ((rng >> 20) % 22_000) as f64 / 1000.0 - 11.0);
                assert_eq!(p.covers(q), covers_brute_force(source, q), "{q:?}");
            }
            for &v in source.exterior().0.iter().step_by(997) {
                assert!(p.covers(v), "vertex {v:?}");
            }
        }
    }

    #[test]
    fn raw_rings_are_kept_as_given() {
        // An unclosed 3-coordinate ring and a single point: kept as given,
        // the closing edges exist only in the index.
        let tri = [c(0.0, 0.0), c(4.0, 0.0), c(0.0, 4.0)];
        let dot = [c(9.0, 9.0)];
        let p = PreparedPolygon::from_rings([&tri[..], &dot[..], &[][..]].into_iter());
        let rings: Vec<&[Coord<f64>]> = p.rings().collect();
        assert_eq!(rings, vec![&tri[..], &dot[..], &[][..]]);
        assert_eq!(p.vertex_count(), 4);
        // Edges: 3 of the triangle (one implicit) and the point's zero-length one.
        assert_eq!(p.edges(p.all_edges()).count(), p.stored_edge_count());
        assert!(p.covers(c(2.0, 2.0)) && p.covers(c(9.0, 9.0)) && !p.covers(c(9.0, 8.0)));
        // Plus the two buffers' `Arc` counts; every index entry fits a `u16`.
        assert!(!p.wide);
        assert_eq!(
            p.heap_bytes(),
            (3 + 1 + 1 + 1) * 16 + (p.band_count() + 1 + p.stored_edge_count() + 3) * 2 + 2 * 16
        );
        assert!(std::mem::size_of::<PreparedPolygon>() <= 80);
    }

    #[test]
    fn box_queries() {
        let poly = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)],
            interiors: [[(x: 4.0, y: 4.0), (x: 6.0, y: 4.0), (x: 6.0, y: 6.0), (x: 4.0, y: 6.0)]],
        );
        let p = PreparedPolygon::new(&poly);
        assert!(p.box_inside([1.0, 1.0], [3.0, 3.0]));
        assert!(!p.box_inside([3.0, 3.0], [5.0, 5.0]));
        assert!(!p.box_inside([4.5, 4.5], [5.5, 5.5]), "box in hole");
        assert!(!p.boundary_touches_box([4.5, 4.5], [5.5, 5.5]));
        assert!(p.boundary_touches_box([3.0, 3.0], [5.0, 5.0]));
        assert!(!p.boundary_touches_box([6.0, 1.0], [7.0, 2.0]));
        assert!(p.boundary_touches_box([6.0, 1.0], [7.0, 4.0]));
        assert!(!p.box_inside([-1.0, 1.0], [1.0, 2.0]));
        assert!(!p.boundary_touches_box([20.0, 20.0], [30.0, 30.0]));
    }
}
