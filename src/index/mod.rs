//! The in-memory index: an immutable [`Snapshot`] of every jurisdiction with
//! its prepared boundary and the registry rows an answer needs, shared by
//! readers through an [`IndexHandle`] (an atomic pointer swap, no lock on the
//! read path).
//!
//! A snapshot is built in these steps:
//! 1. every stored boundary is parsed and each polygon part prepared
//!    ([`spatial::prepare`]: y-stripe edge bands, so a point test costs about
//!    O(log V) instead of O(V)), on every core when loading from the store;
//! 2. entries are sorted by answer order (tier rank, larger area first, id)
//!    and keyed by their rank, so until a write moves an entry a query
//!    answer is just its sorted keys (see [`Snapshot`] for after);
//! 3. each entry's public JSON (record, endpoints, services) is rendered once;
//! 4. the R-tree over all polygon parts is bulk-loaded ([`spatial::SpatialIndex`]).
//!
//! A write does not rebuild the index ([`Snapshot::with_changes`]): the new
//! snapshot shares the previous one's spatial index (the *base*) and adds a
//! small *overlay* for the jurisdictions whose geometry changed, so only
//! changed boundaries are prepared and only the overlay's R-tree is built.
//! When the overlay grows past a threshold, [`IndexHandle::compact`] builds a
//! new base in the background (reusing every prepared polygon) and installs
//! it under whatever snapshot is current by then.
//!
//! Border rule: a point on a boundary edge or vertex counts as inside (like
//! PostGIS `ST_Covers`), so a point on a shared border resolves to both sides.

pub mod follower;
pub mod near;
mod persistent;
pub mod prepared;
pub mod spatial;

use crate::geometry;
use crate::model::{Endpoint, Jurisdiction, Tier};
use crate::store::{DynStore, StoreError, StoredJurisdiction};
use arc_swap::ArcSwap;
use geo::{Coord, MultiPolygon};
use persistent::{KeyedVec, ShardedMap, SortedChunks};
use serde::Serialize;
use serde_json::value::RawValue;
use spatial::{PreparedGeometry, SpatialIndex};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One jurisdiction in a snapshot: record, geometry, endpoints and the JSON
/// that answers carry.
pub struct Entry {
    /// The registry record.
    pub record: Jurisdiction,
    /// Endpoints with their services.
    pub endpoints: Vec<Endpoint>,
    /// The prepared polygon parts used by the point test. They hold the only
    /// copy of the boundary's coordinates: [`boundary`](Self::boundary)
    /// rebuilds the `MultiPolygon` from them.
    pub prepared: PreparedGeometry,
    /// Vertices in the boundary.
    pub vertices: usize,
    /// The public JSON of this jurisdiction (without boundary), rendered once.
    pub json: Box<RawValue>,
    /// A hash of `json` (which carries the record and endpoint versions), the
    /// basis of the ETags of answers made of this entry.
    pub content_hash: u64,
    /// Where the escaped id ends in `json` (its closing quote included); 0
    /// when `json` does not start with the id (never: see [`id_json`](Self::id_json)).
    id_end: usize,
}

/// Where the escaped id that opens a record's JSON (`{"id":"..."`) ends,
/// its closing quote included; 0 when the JSON does not open that way.
fn escaped_id_end(json: &str) -> usize {
    let Some(body) = json.as_bytes().strip_prefix(b"{\"id\":\"") else { return 0 };
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return 6 + i + 2,
            _ => i += 1,
        }
    }
    0
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.record.id)
            .field("polygons", &self.prepared.len())
            .field("vertices", &self.vertices)
            .field("endpoints", &self.endpoints.len())
            .finish()
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("version", &self.version).field("stats", &self.stats).finish()
    }
}

/// The public JSON shape of a jurisdiction in every answer (the OpenAPI
/// document's `Jurisdiction` schema is generated from it).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Jurisdiction)]
pub(crate) struct JurisdictionView<'a> {
    /// Stable key, e.g. `us-county:18105`.
    id: &'a str,
    /// Human-readable name.
    name: &'a str,
    /// Level of government.
    tier: Tier,
    /// The smallest containing jurisdiction of a higher tier, if any.
    parent: Option<&'a str>,
    /// Open Civic Data division id.
    ocd_id: Option<&'a str>,
    /// Codes of the source layers (FIPS, GEOID, ISO 3166-2, ...).
    external_ids: &'a std::collections::BTreeMap<String, String>,
    /// Geodesic area of the boundary in km², rounded to 0.001.
    area_km2: f64,
    /// Where the boundary comes from.
    source: Option<&'a str>,
    /// Licence of the boundary data.
    license: Option<&'a str>,
    /// RFC 3339 time of the last change to the record or its boundary.
    last_updated: &'a str,
    /// Record version, incremented on each change.
    version: i64,
    /// Its Open311 endpoints with their services.
    endpoints: &'a [Endpoint],
}

impl Entry {
    /// Builds an entry, preparing the geometry (the entry keeps no other copy
    /// of `boundary`).
    pub fn new(record: Jurisdiction, boundary: &MultiPolygon<f64>, endpoints: Vec<Endpoint>) -> Self {
        Self::with_prepared(record, spatial::prepare(boundary), endpoints)
    }

    /// Builds an entry around geometry that is already prepared (a rebuild
    /// after a write that did not touch this boundary).
    pub fn with_prepared(record: Jurisdiction, prepared: PreparedGeometry, endpoints: Vec<Endpoint>) -> Self {
        let view = JurisdictionView {
            id: &record.id,
            name: &record.name,
            tier: record.tier,
            parent: record.parent.as_deref(),
            ocd_id: record.ocd_id.as_deref(),
            external_ids: &record.external_ids,
            area_km2: (record.area_km2 * 1000.0).round() / 1000.0,
            source: record.source.as_deref(),
            license: record.license.as_deref(),
            last_updated: &record.updated_at,
            version: record.version,
            endpoints: &endpoints,
        };
        // Serialising plain data to a string cannot fail; fall back to null defensively.
        let json = serde_json::value::to_raw_value(&view)
            .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).unwrap_or_default());
        let vertices = prepared.iter().map(|p| p.vertex_count()).sum();
        let content_hash = {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            json.get().hash(&mut h);
            h.finish()
        };
        let id_end = escaped_id_end(json.get());
        Self { record, endpoints, prepared, vertices, json, content_hash, id_end }
    }

    /// The id as a JSON string (quotes and escapes included), borrowed from
    /// [`json`](Self::json), whose first member is the id. A batch answer
    /// lists a jurisdiction's id once for every point it serves: escaping it
    /// again each time was ~5 % of a 1,000-point batch's CPU. Where the id
    /// ends is found once, when the entry is made.
    pub fn id_json(&self) -> Cow<'_, str> {
        match self.json.get().get(6..self.id_end) {
            Some(id) if self.id_end > 0 => Cow::Borrowed(id),
            // Not reached: `JurisdictionView` writes `id` first. Escape it anew.
            _ => Cow::Owned(serde_json::to_string(self.record.id.as_str()).unwrap_or_else(|_| "\"\"".to_owned())),
        }
    }

    /// The boundary as stored, rebuilt from the prepared geometry: equal
    /// (`==`, and bit for bit, closing points included) to the
    /// `MultiPolygon` the entry was made from. Allocates a copy of every
    /// coordinate: for answers that output or measure the geometry, not
    /// for the point test.
    pub fn boundary(&self) -> MultiPolygon<f64> {
        MultiPolygon::new(self.prepared.iter().map(|p| p.to_polygon()).collect())
    }

    /// Whether `boundary` is exactly the boundary of this entry (`==` on the
    /// `MultiPolygon`, without rebuilding it).
    pub fn has_boundary(&self, boundary: &MultiPolygon<f64>) -> bool {
        self.prepared.len() == boundary.0.len() && self.prepared.iter().zip(&boundary.0).all(|(p, q)| p.same_as(q))
    }

    /// Every ring of the boundary (each polygon's exterior, then its holes),
    /// as stored, without copying.
    pub fn rings(&self) -> impl Iterator<Item = &[geo::Coord<f64>]> + '_ {
        self.prepared.iter().flat_map(|p| p.rings())
    }

    /// Bounding box `(min, max)` (each `[x, y]`) of every coordinate of the
    /// boundary, `None` when it has none.
    pub fn bbox(&self) -> Option<([f64; 2], [f64; 2])> {
        self.prepared
            .iter()
            .filter(|p| p.vertex_count() > 0)
            .map(|p| p.bbox())
            .reduce(|(a, b), (c, d)| ([a[0].min(c[0]), a[1].min(c[1])], [b[0].max(d[0]), b[1].max(d[1])]))
    }
}

/// Counts logged when a snapshot is built.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct SnapshotStats {
    /// Jurisdictions.
    pub jurisdictions: usize,
    /// Polygon parts in the R-tree.
    pub polygons: usize,
    /// Boundary vertices.
    pub vertices: usize,
    /// Endpoints.
    pub endpoints: usize,
    /// Time to build, in milliseconds.
    pub build_ms: u64,
}

/// How a snapshot was made (the `kind` label of the build-duration metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKind {
    /// From the whole registry ([`load_snapshot`]).
    Full,
    /// From the previous snapshot with the changed jurisdictions re-read ([`refresh`]).
    Incremental,
}

/// An immutable view of the registry, ready to answer point queries.
///
/// # Layout
///
/// Every jurisdiction has a stable key (`u32`, assigned when it first enters
/// this snapshot's lineage: by answer order in a full build, then in order of
/// arrival). Keys are what the spatial index stores, what
/// [`Snapshot::resolve_into`] returns (its "slots") and what
/// [`Snapshot::entry`] looks up; a write never renumbers them.
/// [`Snapshot::entries`] lists everything in answer order (tier rank, larger
/// area first, id) from a separate sorted list.
///
/// Answers are sorted into answer order by key where that is valid: keys
/// numbered by the full build whose entry never changed rank since (bit
/// clear in `moved`) are still in answer order among themselves, so two of
/// them compare as numbers (all of them, until the first rank-changing
/// write); any pair with an inserted or moved key compares the entries.
///
/// The key -> entry vector, the answer-order list and the id and endpoint
/// maps are copy-on-write chunked containers ([`persistent`]): a write copies
/// the outer list of chunk pointers (about n / 512) and the few chunks (at
/// most 1,024 items) or map shards it changes; every other chunk is shared
/// with the previous snapshot. So a write costs O(changed * (chunk + n /
/// chunk)) whether or not an entry changes rank (insert, delete, new tier or
/// area), never O(n).
///
/// The spatial index has two layers, so a write never rebuilds every
/// polygon's index:
/// - the **base** ([`SpatialIndex`] with its grid, shared by `Arc` between
///   snapshots), built from the geometry as of `base_version`;
/// - the **overlay**: for the few keys whose geometry changed since (in
///   `changed`), the base's answers for them are dropped (`dead` bit set) and
///   a small R-tree over their current geometry answers instead.
///
/// A write ([`Snapshot::with_changes`]) updates the containers and rebuilds
/// only the overlay. Once the overlay grows past
/// [`Snapshot::needs_compaction`], [`IndexHandle::compact`] builds a new base
/// off the write path and installs it under any newer snapshot with
/// [`Snapshot::rebased`].
///
/// Every field is an `Arc` or a small value, so `clone` is a handful of
/// reference-count increments.
#[derive(Clone)]
pub struct Snapshot {
    version: i64,
    /// Key -> entry (`None` for a key whose jurisdiction is gone).
    by_key: KeyedVec<Option<Arc<Entry>>>,
    /// Every entry in answer order.
    ordered: SortedChunks<Arc<Entry>>,
    /// Jurisdiction id -> key.
    by_id: ShardedMap<u32>,
    /// Endpoint id -> jurisdiction id.
    endpoint_owners: ShardedMap<String>,
    /// The next unused key.
    next_key: u32,
    /// Keys below this were numbered in answer order by the full build.
    build_keys: u32,
    /// Bit per key below `build_keys`: its entry changed rank since the
    /// full build (empty while none has).
    moved: Arc<Vec<u64>>,
    /// Which snapshots share keys: snapshots derived by writes from one
    /// full build (and new bases made from them) have the same lineage.
    lineage: u64,
    /// Geometry of every key as of `base_version`.
    base: Arc<SpatialIndex>,
    base_version: i64,
    /// Keys whose geometry changed after `base_version`, with the version
    /// of their last change.
    changed: Arc<HashMap<u32, i64>>,
    /// Bit per key: the base's geometry for that key is out of date.
    dead: Arc<Vec<u64>>,
    /// Current geometry of the keys in `changed` (R-tree only).
    overlay: Arc<SpatialIndex>,
    stats: SnapshotStats,
    /// How it was made and how long reading and building it took, when it
    /// was made from the store.
    built: Option<(BuildKind, Duration)>,
}

/// Orders entries for answers: tier rank, then larger area first, then id
/// (a total order: ids are unique in a snapshot, areas compare with
/// `total_cmp`).
#[inline]
fn answer_order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    a.record
        .tier
        .rank()
        .cmp(&b.record.tier.rank())
        .then_with(|| b.record.area_km2.total_cmp(&a.record.area_km2))
        .then_with(|| a.record.id.cmp(&b.record.id))
}

/// [`answer_order`] on `Arc`s (the order of [`Snapshot`]'s sorted list).
fn arc_answer_order(a: &Arc<Entry>, b: &Arc<Entry>) -> std::cmp::Ordering {
    answer_order(a, b)
}

/// A new lineage number (process-wide counter).
fn new_lineage() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The overlay writes may grow to before a new base is built: 64 keys, or
/// one in a thousand for very large registries.
fn compaction_threshold(jurisdictions: usize) -> usize {
    (jurisdictions / 1000).max(64)
}

impl Snapshot {
    /// A snapshot with no jurisdictions (before the first load).
    pub fn empty() -> Self {
        Self::build(0, Vec::new())
    }

    /// Builds a snapshot at `version` from entries in any order (a full
    /// build: keys numbered in answer order, a new base, an empty overlay).
    pub fn build(version: i64, mut entries: Vec<Arc<Entry>>) -> Self {
        let started = Instant::now();
        entries.sort_by(|a, b| answer_order(a, b));
        // More than u32::MAX - 1 jurisdictions cannot be keyed.
        entries.truncate(u32::MAX as usize - 1);
        let n = entries.len() as u32;
        let by_id = ShardedMap::from_entries(entries.iter().zip(0..n).map(|(e, key)| (e.record.id.clone(), key)));
        let base = SpatialIndex::build(entries.iter().zip(0..n).map(|(e, key)| (key, e.prepared.clone())).collect());
        let endpoint_owners = ShardedMap::from_entries(
            entries.iter().flat_map(|e| e.endpoints.iter().map(|ep| (ep.id.clone(), e.record.id.clone()))),
        );
        let stats = SnapshotStats {
            jurisdictions: entries.len(),
            polygons: base.polygon_count(),
            vertices: entries.iter().map(|e| e.vertices).sum(),
            endpoints: entries.iter().map(|e| e.endpoints.len()).sum(),
            build_ms: 0,
        };
        let mut snapshot = Self {
            version,
            by_key: KeyedVec::from_items(entries.iter().cloned().map(Some)),
            ordered: SortedChunks::from_sorted(entries),
            by_id,
            endpoint_owners,
            next_key: n,
            build_keys: n,
            moved: Arc::default(),
            lineage: new_lineage(),
            base: Arc::new(base),
            base_version: version,
            changed: Arc::default(),
            dead: Arc::default(),
            overlay: Arc::default(),
            stats,
            built: None,
        };
        snapshot.stats.build_ms = started.elapsed().as_millis() as u64;
        snapshot
    }

    /// The change-log sequence number this snapshot reflects (`index_version`).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Size and build figures.
    pub fn stats(&self) -> SnapshotStats {
        self.stats
    }

    /// How the snapshot was made from the store and how long reading and
    /// building it took (`None` for one built directly with [`Snapshot::build`]).
    pub fn build_info(&self) -> Option<(BuildKind, Duration)> {
        self.built
    }

    /// All entries in answer order.
    pub fn entries(&self) -> Entries<'_> {
        Entries { inner: self.ordered.iter() }
    }

    /// Number of jurisdictions.
    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    /// Whether the snapshot holds no jurisdiction.
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// One more than the largest slot (key) this snapshot may return: the
    /// length of a vector indexed by slot.
    pub fn slot_bound(&self) -> usize {
        self.next_key as usize
    }

    /// The entry at `slot` (as returned by [`Snapshot::resolve_into`]).
    #[inline]
    pub fn entry(&self, slot: u32) -> Option<&Arc<Entry>> {
        self.by_key.get(slot)?.as_ref()
    }

    /// The entry with this jurisdiction id.
    pub fn get(&self, id: &str) -> Option<&Arc<Entry>> {
        self.by_id.get(id).and_then(|&key| self.entry(key))
    }

    /// The jurisdiction an endpoint belongs to in this snapshot.
    pub fn endpoint_owner(&self, endpoint_id: &str) -> Option<&str> {
        self.endpoint_owners.get(endpoint_id).map(String::as_str)
    }

    /// Whether slots compare as numbers in answer order: no entry was
    /// inserted or moved to another rank since the full build.
    #[inline]
    fn keys_in_order(&self) -> bool {
        self.next_key == self.build_keys && self.moved.is_empty()
    }

    /// Whether `key`'s number says nothing about its rank (inserted after
    /// the full build, or moved since).
    #[inline]
    fn is_moved(&self, key: u32) -> bool {
        key >= self.build_keys || self.moved.get((key / 64) as usize).is_some_and(|w| w & (1 << (key % 64)) != 0)
    }

    /// Compares two slots by answer order of their entries (tier rank, larger
    /// area first, id); a slot without an entry goes last.
    #[inline]
    pub fn cmp_slots(&self, a: u32, b: u32) -> std::cmp::Ordering {
        if !self.is_moved(a) && !self.is_moved(b) {
            return a.cmp(&b);
        }
        match (self.entry(a), self.entry(b)) {
            (Some(x), Some(y)) => answer_order(x, y),
            (x, y) => y.is_some().cmp(&x.is_some()).then(a.cmp(&b)),
        }
    }

    /// Whether the base's geometry of `key` is out of date.
    #[inline]
    fn is_dead(&self, key: u32) -> bool {
        self.dead.get((key / 64) as usize).is_some_and(|w| w & (1 << (key % 64)) != 0)
    }

    /// Removes from `out[start..]` the keys whose base geometry is out of date.
    #[inline]
    fn drop_dead(&self, out: &mut Vec<u32>, start: usize) {
        let mut w = start;
        for r in start..out.len() {
            if !self.is_dead(out[r]) {
                out[w] = out[r];
                w += 1;
            }
        }
        out.truncate(w);
    }

    /// Slots of every jurisdiction covering (lon, lat), in answer order
    /// (tier rank, larger area first, id). Clears `out` first.
    pub fn resolve_into(&self, lon: f64, lat: f64, out: &mut Vec<u32>) {
        out.clear();
        self.base.query(lon, lat, out);
        if !self.changed.is_empty() {
            self.drop_dead(out, 0);
            self.overlay.query(lon, lat, out);
        }
        self.sort_in_answer_order(out);
    }

    /// Sorts one point's slots into answer order.
    #[inline]
    fn sort_in_answer_order(&self, slots: &mut [u32]) {
        if self.keys_in_order() {
            slots.sort_unstable();
        } else if slots.len() > 1 {
            slots.sort_unstable_by(|&a, &b| self.cmp_slots(a, b));
        }
    }

    /// Batch form of [`resolve_into`](Self::resolve_into): clears `out`
    /// and `ends`, then point `i`'s slots, in answer order, are
    /// `out[ends[i - 1]..ends[i]]` (from 0 for `i = 0`). The same answers as
    /// `resolve_into` point by point, faster on large indexes: the base
    /// index walks many points side by side so that their cache misses
    /// overlap ([`SpatialIndex::query_many`]).
    pub fn resolve_many(&self, points: &[Coord<f64>], out: &mut Vec<u32>, ends: &mut Vec<usize>) {
        out.clear();
        ends.clear();
        self.base.query_many(points, out, ends);
        if !self.changed.is_empty() {
            // Out-of-date base answers dropped and the overlay's added,
            // point by point, into a second vector (a point's range may
            // grow).
            let base = std::mem::take(out);
            out.reserve(base.len());
            let mut start = 0;
            for (end, c) in ends.iter_mut().zip(points) {
                let from = out.len();
                out.extend_from_slice(&base[start..*end]);
                self.drop_dead(out, from);
                self.overlay.query(c.x, c.y, out);
                start = *end;
                *end = out.len();
            }
        }
        let mut start = 0;
        for &end in ends.iter() {
            if let Some(range) = out.get_mut(start..end) {
                self.sort_in_answer_order(range);
            }
            start = end;
        }
    }

    /// Pushes the slot of every jurisdiction with a polygon part whose
    /// bounding box meets the box `min`..`max` (slots may repeat).
    pub(crate) fn slots_in_box(&self, min: [f64; 2], max: [f64; 2], out: &mut Vec<u32>) {
        let start = out.len();
        self.base.keys_in_box(min, max, out);
        if !self.changed.is_empty() {
            self.drop_dead(out, start);
            self.overlay.keys_in_box(min, max, out);
        }
    }

    /// Convenience: the entries covering (lon, lat), in answer order.
    pub fn resolve(&self, lon: f64, lat: f64) -> Vec<&Arc<Entry>> {
        let mut slots = Vec::new();
        self.resolve_into(lon, lat, &mut slots);
        slots.iter().filter_map(|&s| self.entry(s)).collect()
    }

    /// Jurisdictions whose geometry is answered by the overlay rather than
    /// the base (see the [type documentation](Snapshot)).
    pub fn overlay_len(&self) -> usize {
        self.changed.len()
    }

    /// Whether the overlay has grown enough that a new base should be built
    /// ([`IndexHandle::compact`]).
    pub fn needs_compaction(&self) -> bool {
        self.changed.len() >= compaction_threshold(self.len())
    }

    /// A snapshot at `version` in which the jurisdictions named in `changed`
    /// are replaced by the given entry (or removed, for `None`); every other
    /// entry is reused as it is. Costs, per change, a copy of a few chunks
    /// and chunk-pointer lists (see the [type documentation](Snapshot)),
    /// plus the overlay's rebuild: no polygon outside `changed` is indexed
    /// again. An entry whose `prepared` geometry is the same `Arc` as before
    /// (see [`Entry::with_prepared`]) keeps its place in the base.
    pub fn with_changes(&self, version: i64, changed: Vec<(String, Option<Arc<Entry>>)>) -> Snapshot {
        let started = Instant::now();
        let mut by_key = self.by_key.clone();
        let mut ordered = self.ordered.clone();
        let mut by_id = self.by_id.clone();
        let mut endpoint_owners = self.endpoint_owners.clone();
        let mut geometry_changed = (*self.changed).clone();
        let mut next_key = self.next_key;
        let mut moved = Arc::clone(&self.moved);
        let mut stats = self.stats;
        // The last change of each id counts.
        let mut last: HashMap<String, Option<Arc<Entry>>> = HashMap::with_capacity(changed.len());
        let mut order = Vec::with_capacity(changed.len());
        for (id, next) in changed {
            if last.insert(id.clone(), next).is_none() {
                order.push(id);
            }
        }
        let mut changes = Vec::with_capacity(order.len());
        for id in order {
            let Some(next) = last.remove(&id) else { continue };
            let old = self.by_id.get(&id).and_then(|&key| Some((key, self.entry(key)?)));
            // Endpoints of the old entries leave before the new ones come,
            // so an endpoint moving between two changed jurisdictions ends
            // with its new owner.
            if let Some((_, e)) = old {
                for ep in &e.endpoints {
                    endpoint_owners.remove(&ep.id);
                }
                stats.jurisdictions -= 1;
                stats.polygons -= e.prepared.len();
                stats.vertices -= e.vertices;
                stats.endpoints -= e.endpoints.len();
            }
            changes.push((id, old, next));
        }
        for (id, old, next) in changes {
            if let Some(e) = &next {
                for ep in &e.endpoints {
                    endpoint_owners.insert(ep.id.clone(), id.clone());
                }
                stats.jurisdictions += 1;
                stats.polygons += e.prepared.len();
                stats.vertices += e.vertices;
                stats.endpoints += e.endpoints.len();
            }
            match (old, next) {
                (Some((key, current)), Some(entry)) => {
                    if !Arc::ptr_eq(&current.prepared, &entry.prepared) {
                        geometry_changed.insert(key, version);
                    }
                    let same = |x: &Arc<Entry>| Arc::ptr_eq(x, current);
                    if answer_order(current, &entry).is_eq() {
                        let replaced = ordered.replace(current, Arc::clone(&entry), &arc_answer_order, same);
                        debug_assert!(replaced, "an entry of the snapshot is in its sorted list");
                    } else {
                        let removed = ordered.remove(current, &arc_answer_order, same);
                        debug_assert!(removed, "an entry of the snapshot is in its sorted list");
                        ordered.insert(Arc::clone(&entry), &arc_answer_order);
                        if key < self.build_keys {
                            let bits = Arc::make_mut(&mut moved);
                            bits.resize((self.build_keys as usize).div_ceil(64), 0);
                            if let Some(w) = bits.get_mut((key / 64) as usize) {
                                *w |= 1 << (key % 64);
                            }
                        }
                    }
                    by_key.set(key, Some(entry));
                }
                (Some((key, current)), None) => {
                    by_id.remove(&id);
                    geometry_changed.insert(key, version);
                    let removed = ordered.remove(current, &arc_answer_order, |x| Arc::ptr_eq(x, current));
                    debug_assert!(removed, "an entry of the snapshot is in its sorted list");
                    by_key.set(key, None);
                }
                (None, Some(entry)) => {
                    if next_key == u32::MAX {
                        // Out of keys (4 billion inserts since the last full
                        // build): dropped rather than misfiled.
                        tracing::error!(id, "index out of keys: jurisdiction left out until a full rebuild");
                        continue;
                    }
                    let key = next_key;
                    next_key += 1;
                    by_id.insert(id, key);
                    geometry_changed.insert(key, version);
                    ordered.insert(Arc::clone(&entry), &arc_answer_order);
                    by_key.push(Some(entry));
                }
                (None, None) => {}
            }
        }
        let mut next = Snapshot {
            version,
            by_key,
            ordered,
            by_id,
            endpoint_owners,
            next_key,
            moved,
            changed: Arc::new(geometry_changed),
            stats,
            built: None,
            ..self.clone()
        };
        next.rebuild_overlay();
        next.stats.build_ms = started.elapsed().as_millis() as u64;
        next
    }

    /// Rebuilds `dead` and `overlay` from `changed` and the current entries.
    fn rebuild_overlay(&mut self) {
        if self.changed.is_empty() {
            self.dead = Arc::default();
            self.overlay = Arc::default();
            return;
        }
        let mut dead = vec![0u64; (self.next_key as usize).div_ceil(64)];
        let mut live = Vec::with_capacity(self.changed.len());
        for &key in self.changed.keys() {
            if let Some(w) = dead.get_mut((key / 64) as usize) {
                *w |= 1 << (key % 64);
            }
            if let Some(e) = self.entry(key) {
                live.push((key, e.prepared.clone()));
            }
        }
        self.dead = Arc::new(dead);
        self.overlay = Arc::new(SpatialIndex::build_tree_only(live));
    }

    /// The same snapshot answered from `base`, a base built (by
    /// [`Snapshot::build_base`]) from an earlier snapshot of the same lineage
    /// at version `base_version`: keys changed since then stay in the overlay.
    pub fn rebased(&self, base: Arc<SpatialIndex>, base_version: i64) -> Snapshot {
        let changed: HashMap<u32, i64> =
            self.changed.iter().filter(|(_, &v)| v > base_version).map(|(&k, &v)| (k, v)).collect();
        let mut next = Snapshot { base, base_version, changed: Arc::new(changed), ..self.clone() };
        next.rebuild_overlay();
        next
    }

    /// A new base from this snapshot's current geometry (every polygon's
    /// prepared index is reused; the R-tree and grid are built anew). Slow:
    /// call off the request path.
    pub fn build_base(&self) -> SpatialIndex {
        SpatialIndex::build(
            (0u32..).zip(self.by_key.iter()).filter_map(|(key, e)| Some((key, e.as_ref()?.prepared.clone()))).collect(),
        )
    }
}

/// The entries of a [`Snapshot`] in answer order ([`Snapshot::entries`]).
pub struct Entries<'a> {
    inner: persistent::SortedIter<'a, Arc<Entry>>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = &'a Arc<Entry>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// Errors building a snapshot from the store.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored boundary does not parse.
    #[error("stored boundary of `{id}` is unreadable: {reason}")]
    Boundary {
        /// Jurisdiction id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The build task panicked or was cancelled.
    #[error("index build task failed: {0}")]
    Task(String),
}

/// A row, its place in the read order and its endpoints, on its way to a
/// preparing thread ([`load_entries`]).
type Job = (usize, StoredJurisdiction, Vec<Endpoint>);

/// Rows are handed to the preparing threads in batches of at most this many
/// rows...
const PREPARE_BATCH_ROWS: usize = 16;
/// ... or of at least this many bytes of boundary text, whichever comes
/// first, so that a run of huge boundaries is shared out too.
const PREPARE_BATCH_BYTES: usize = 256 << 10;

/// Reads every jurisdiction from the store and builds its entry (parsing and
/// preparing the boundary, attaching its `endpoints`), in id order.
///
/// Rows are prepared while the next ones are read: they go in small batches
/// through a bounded channel to one thread per core, so the store read (one
/// SQLite or network thread) and the preparation overlap, and a row's
/// boundary text is freed once it is prepared rather than after the whole
/// read. On an unreadable boundary the error names the first such row in id
/// order; a store error ends the read and is returned.
pub async fn load_entries(store: &DynStore, endpoints: Vec<Endpoint>) -> Result<Vec<Arc<Entry>>, IndexError> {
    Ok(load_entries_timed(store, endpoints).await?.0)
}

/// [`load_entries`], also giving when the last row had been read.
async fn load_entries_timed(
    store: &DynStore,
    endpoints: Vec<Endpoint>,
) -> Result<(Vec<Arc<Entry>>, Instant), IndexError> {
    use futures_util::TryStreamExt;
    let mut by_jurisdiction: HashMap<String, Vec<Endpoint>> = HashMap::new();
    for e in endpoints {
        by_jurisdiction.entry(e.jurisdiction_id.clone()).or_default().push(e);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Job>>(threads * 4);
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let mut workers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let rx = Arc::clone(&rx);
        let spawned = std::thread::Builder::new().name("geowebdns-prepare".into()).spawn(move || {
            let mut done = Vec::new();
            loop {
                let batch = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).blocking_recv();
                let Some(batch) = batch else { return done };
                for (i, row, endpoints) in batch {
                    done.push((i, entry_from_row(row, endpoints)));
                }
            }
        });
        match spawned {
            Ok(worker) => workers.push(worker),
            // Fewer threads will do, as long as there is one.
            Err(e) if workers.is_empty() => return Err(IndexError::Task(format!("no preparing thread: {e}"))),
            Err(_) => break,
        }
    }
    drop(rx);
    let read = async {
        let mut rows = store.jurisdiction_stream();
        let (mut batch, mut bytes, mut n) = (Vec::new(), 0, 0);
        while let Some(row) = rows.try_next().await? {
            let endpoints = by_jurisdiction.remove(&row.record.id).unwrap_or_default();
            bytes += row.boundary.len();
            batch.push((n, row, endpoints));
            n += 1;
            if batch.len() >= PREPARE_BATCH_ROWS || bytes >= PREPARE_BATCH_BYTES {
                bytes = 0;
                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            // Only fails when every worker is gone, which the join reports.
            let _ = tx.send(batch).await;
        }
        Ok::<_, StoreError>(())
    }
    .await;
    let read_at = Instant::now();
    drop(tx);
    let mut done = tokio::task::spawn_blocking(move || {
        let mut done = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(part) => done.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    })
    .await
    .map_err(|e| IndexError::Task(e.to_string()))?;
    read?;
    done.sort_unstable_by_key(|(i, _)| *i);
    let entries = done.into_iter().map(|(_, entry)| entry).collect::<Result<_, _>>()?;
    Ok((entries, read_at))
}

/// Parses and prepares one stored row into its entry.
fn entry_from_row(row: StoredJurisdiction, endpoints: Vec<Endpoint>) -> Result<Arc<Entry>, IndexError> {
    let boundary = geometry::parse_stored(&row.boundary)
        .map_err(|reason| IndexError::Boundary { id: row.record.id.clone(), reason })?;
    drop(row.boundary);
    Ok(Arc::new(Entry::new(row.record, &boundary, endpoints)))
}

/// Reads the whole registry and builds a snapshot off the async threads.
pub async fn load_snapshot(store: &DynStore) -> Result<Snapshot, IndexError> {
    let started = Instant::now();
    // Read the version first: a write landing during the read makes the next
    // refresh pick it up again rather than being missed.
    let version = store.latest_seq().await?;
    let endpoints = store.load_endpoints().await?;
    let (entries, read_at) = load_entries_timed(store, endpoints).await?;
    // Preparation overlaps the read: `prepare` is what was left after it.
    let read = read_at - started;
    let prepare = read_at.elapsed();
    let mut snapshot = tokio::task::spawn_blocking(move || Snapshot::build(version, entries))
        .await
        .map_err(|e| IndexError::Task(e.to_string()))?;
    snapshot.built = Some((BuildKind::Full, started.elapsed()));
    let stats = snapshot.stats();
    tracing::info!(
        version,
        jurisdictions = stats.jurisdictions,
        polygons = stats.polygons,
        vertices = stats.vertices,
        endpoints = stats.endpoints,
        read_ms = read.as_millis() as u64,
        build_ms = (started.elapsed() - read).as_millis() as u64,
        prepare_ms = prepare.as_millis() as u64,
        index_ms = stats.build_ms,
        "index built"
    );
    Ok(snapshot)
}

/// The current snapshot, swapped atomically. Readers call [`IndexHandle::current`]
/// once per request and use that snapshot from start to end.
#[derive(Debug)]
pub struct IndexHandle {
    current: ArcSwap<Snapshot>,
    loaded_at: ArcSwap<Instant>,
    metrics: crate::metrics::IndexMetrics,
    /// Serialises publishing and base installs (readers never take it).
    publishing: std::sync::Mutex<()>,
    /// Whether a new base is being built in the background.
    compacting: std::sync::atomic::AtomicBool,
}

impl IndexHandle {
    /// A handle holding `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        let metrics = crate::metrics::IndexMetrics::default();
        if let Some((kind, took)) = snapshot.build_info() {
            metrics.observe_build(kind, took);
        }
        Self {
            current: ArcSwap::new(snapshot),
            loaded_at: ArcSwap::from_pointee(Instant::now()),
            metrics,
            publishing: std::sync::Mutex::new(()),
            compacting: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The build and swap timings of the snapshots published here.
    pub fn metrics(&self) -> &crate::metrics::IndexMetrics {
        &self.metrics
    }

    /// The snapshot to answer with.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot unless it is older than the current one (two
    /// concurrent rebuilds must not move the version backwards). A snapshot
    /// made before a newer base was installed is moved onto that base.
    pub fn publish(&self, next: Snapshot) -> bool {
        let started = Instant::now();
        let guard = self.publishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cur = self.current.load();
        if cur.version() > next.version() {
            return false;
        }
        let next = if cur.lineage == next.lineage && cur.base_version > next.base_version {
            next.rebased(Arc::clone(&cur.base), cur.base_version)
        } else {
            next
        };
        let built = next.build_info();
        drop(cur);
        let replaced = self.current.swap(Arc::new(next));
        drop(guard);
        retire(replaced);
        self.metrics.observe_swap(started.elapsed());
        if let Some((kind, took)) = built {
            self.metrics.observe_build(kind, took);
        }
        self.loaded_at.store(Arc::new(Instant::now()));
        true
    }

    /// If the current snapshot's overlay has outgrown
    /// [`Snapshot::needs_compaction`], builds a new base from it on a
    /// blocking thread and installs it under whatever snapshot is current by
    /// then (see [`Snapshot::rebased`]). Writes and reads go on meanwhile.
    /// Does nothing outside a Tokio runtime or while a build is running.
    pub fn compact(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        let from = self.current();
        if !from.needs_compaction() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let handle = Arc::clone(self);
        runtime.spawn_blocking(move || {
            let started = Instant::now();
            let base = Arc::new(from.build_base());
            let installed = handle.install_base(&from, base);
            tracing::debug!(
                from = from.version(),
                overlay = from.overlay_len(),
                installed,
                build_ms = started.elapsed().as_millis() as u64,
                "index base rebuilt"
            );
            handle.compacting.store(false, Ordering::Release);
        });
    }

    /// Installs `base`, built from `from`, under the current snapshot if it
    /// is of the same lineage and its base is older.
    fn install_base(&self, from: &Snapshot, base: Arc<SpatialIndex>) -> bool {
        let _guard = self.publishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cur = self.current.load();
        if cur.lineage != from.lineage || cur.base_version >= from.version() || cur.version() < from.version() {
            return false;
        }
        let next = cur.rebased(base, from.version());
        drop(cur);
        retire(self.current.swap(Arc::new(next)));
        true
    }

    /// Time since the last publish.
    pub fn age(&self) -> Duration {
        self.loaded_at.load().elapsed()
    }
}

/// Snapshots with at least this many jurisdictions are dropped on a thread
/// of their own (see [`retire`]).
const RETIRE_IN_BACKGROUND: usize = 10_000;

/// Drops a replaced snapshot. Dropping one costs a reference-count decrement
/// per jurisdiction, each a likely cache miss (hundreds of milliseconds at
/// 10^6 jurisdictions, measured with `cargo bench --bench scale`): that must
/// delay neither the write that replaced it nor the reader that happens to
/// hold it last. So a large snapshot goes to a thread that waits until it
/// holds the last reference and drops it there.
fn retire(old: Arc<Snapshot>) {
    if old.len() < RETIRE_IN_BACKGROUND {
        return;
    }
    let spawned = std::thread::Builder::new().name("geowebdns-retire".to_owned()).spawn(move || {
        let mut old = old;
        loop {
            match Arc::try_unwrap(old) {
                Ok(snapshot) => return drop(snapshot),
                Err(still_shared) => old = still_shared,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    // Without a thread the snapshot is dropped here, as it would have been.
    drop(spawned);
}

/// Re-reads the named jurisdictions (record, boundary, endpoints) from the
/// store and publishes a snapshot at `version` with them replaced. Boundaries
/// that did not change keep their prepared geometry. For the ids in
/// `endpoints_only` (only their endpoints changed) just the endpoints are
/// read; record and geometry are reused. Callers serialise writes, so
/// snapshots are published in `seq` order.
pub async fn refresh(
    handle: &Arc<IndexHandle>,
    store: &DynStore,
    ids: &[String],
    endpoints_only: &[String],
    version: i64,
) -> Result<(), IndexError> {
    let started = Instant::now();
    let current = handle.current();
    let mut changed = Vec::with_capacity(ids.len() + endpoints_only.len());
    let mut rows = Vec::with_capacity(ids.len());
    for id in endpoints_only {
        match current.get(id) {
            Some(old) => {
                let endpoints = store.endpoints_of(id).await?;
                let entry = Entry::with_prepared(old.record.clone(), old.prepared.clone(), endpoints);
                changed.push((id.clone(), Some(Arc::new(entry))));
            }
            // Not in this snapshot: read it whole.
            None => rows.push((id.clone(), store.get_jurisdiction(id).await?, store.endpoints_of(id).await?)),
        }
    }
    for id in ids {
        let row = store.get_jurisdiction(id).await?;
        let endpoints = match &row {
            Some(_) => store.endpoints_of(id).await?,
            None => Vec::new(),
        };
        rows.push((id.clone(), row, endpoints));
    }
    let mut next = tokio::task::spawn_blocking(move || -> Result<Snapshot, IndexError> {
        for (id, row, endpoints) in rows {
            let Some(row) = row else {
                changed.push((id, None));
                continue;
            };
            let boundary = geometry::parse_stored(&row.boundary)
                .map_err(|reason| IndexError::Boundary { id: id.clone(), reason })?;
            let entry = match current.get(&id) {
                Some(old) if old.has_boundary(&boundary) => {
                    Entry::with_prepared(row.record, old.prepared.clone(), endpoints)
                }
                _ => Entry::new(row.record, &boundary, endpoints),
            };
            changed.push((id, Some(Arc::new(entry))));
        }
        Ok(current.with_changes(version, changed))
    })
    .await
    .map_err(|e| IndexError::Task(e.to_string()))??;
    next.built = Some((BuildKind::Incremental, started.elapsed()));
    handle.publish(next);
    handle.compact();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Jurisdiction, Tier};
    use geo::{polygon, MultiPolygon};
    use rand::{Rng, SeedableRng};

    fn record(id: &str, tier: Tier, area_km2: f64, version: i64) -> Jurisdiction {
        Jurisdiction {
            id: id.to_owned(),
            name: id.to_owned(),
            tier,
            parent: None,
            parent_override: false,
            ocd_id: None,
            external_ids: Default::default(),
            source: None,
            license: None,
            area_km2,
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            updated_at: "2026-01-01T00:00:00Z".to_owned(),
            version,
        }
    }

    fn square(x: f64, y: f64, s: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![(x: x, y: y), (x: x + s, y: y), (x: x + s, y: y + s), (x: x, y: y + s)]])
    }

    fn random_entry(rng: &mut impl Rng, id: &str, version: i64) -> Arc<Entry> {
        let tier = Tier::ALL[rng.gen_range(0..4)];
        let (x, y, s) = (rng.gen_range(0.0..9.0), rng.gen_range(0.0..9.0), rng.gen_range(0.2..4.0));
        // Area from a small set, so equal areas (ordered by id) occur.
        let area = [10.0, 20.0, 30.0][rng.gen_range(0..3)];
        Arc::new(Entry::new(record(id, tier, area, version), &square(x, y, s), Vec::<Endpoint>::new()))
    }

    fn answer(s: &Snapshot, lon: f64, lat: f64) -> Vec<String> {
        s.resolve(lon, lat).iter().map(|e| e.record.id.clone()).collect()
    }

    fn assert_same(incremental: &Snapshot, live: &HashMap<String, Arc<Entry>>, rng: &mut impl Rng, step: usize) {
        let full = Snapshot::build(incremental.version(), live.values().cloned().collect());
        let ids = |s: &Snapshot| s.entries().map(|e| e.record.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(incremental), ids(&full), "answer order, step {step}");
        assert_eq!(incremental.stats().jurisdictions, full.stats().jurisdictions, "step {step}");
        assert_eq!(incremental.stats().polygons, full.stats().polygons, "step {step}");
        assert_eq!(incremental.stats().vertices, full.stats().vertices, "step {step}");
        for id in live.keys() {
            assert_eq!(incremental.get(id).map(|e| &e.record.id), Some(id), "get, step {step}");
        }
        let mut points = Vec::new();
        for _ in 0..200 {
            // Grid points hit edges and corners of the squares exactly.
            let (lon, lat) = if rng.gen_bool(0.5) {
                (rng.gen_range(-1.0..14.0), rng.gen_range(-1.0..14.0))
            } else {
                (f64::from(rng.gen_range(0..70)) * 0.2, f64::from(rng.gen_range(0..70)) * 0.2)
            };
            points.push(Coord { x: lon, y: lat });
            assert_eq!(answer(incremental, lon, lat), answer(&full, lon, lat), "({lon}, {lat}), step {step}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            incremental.slots_in_box([lon - 0.5, lat - 0.5], [lon + 0.5, lat + 0.5], &mut a);
            full.slots_in_box([lon - 0.5, lat - 0.5], [lon + 0.5, lat + 0.5], &mut b);
            let names = |v: Vec<u32>, s: &Snapshot| {
                let mut n: Vec<String> = v.iter().filter_map(|&x| s.entry(x)).map(|e| e.record.id.clone()).collect();
                n.sort();
                n.dedup();
                n
            };
            assert_eq!(names(a, incremental), names(b, &full), "box at ({lon}, {lat}), step {step}");
        }
        // The batch path gives every point's slots in the same order.
        let (mut many, mut ends, mut one) = (Vec::new(), Vec::new(), Vec::new());
        incremental.resolve_many(&points, &mut many, &mut ends);
        assert_eq!(ends.len(), points.len());
        let mut start = 0;
        for (c, &end) in points.iter().zip(&ends) {
            incremental.resolve_into(c.x, c.y, &mut one);
            assert_eq!(many[start..end], one[..], "resolve_many at {c:?}, step {step}");
            start = end;
        }
    }

    /// Random writes (new boundary, same boundary with new record, rank
    /// change, insert, delete) applied one by one with `with_changes`, with
    /// new bases installed now and then (as `IndexHandle::compact` does),
    /// always answer like a full build of the same entries.
    #[test]
    fn incremental_writes_answer_like_a_full_build() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut live: HashMap<String, Arc<Entry>> = HashMap::new();
        for i in 0..40 {
            let id = format!("j{i:03}");
            live.insert(id.clone(), random_entry(&mut rng, &id, 1));
        }
        let mut snapshot = Snapshot::build(1, live.values().cloned().collect());
        let mut pending_base: Option<(Arc<Snapshot>, SpatialIndex)> = None;
        let mut next_id = 40;
        for step in 0..150 {
            let version = snapshot.version() + 1;
            let mut changes = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                let pick = live.keys().nth(rng.gen_range(0..live.len().max(1))).cloned();
                match (rng.gen_range(0..5), pick) {
                    (0, Some(id)) => {
                        let e = random_entry(&mut rng, &id, version);
                        live.insert(id.clone(), e.clone());
                        changes.push((id, Some(e)));
                    }
                    (1, Some(id)) => {
                        // Same geometry, new record (maybe another tier: a rank change).
                        let old = &live[&id];
                        let tier = if rng.gen_bool(0.5) { old.record.tier } else { Tier::ALL[rng.gen_range(0..4)] };
                        let rec = record(&id, tier, old.record.area_km2, version);
                        let e = Arc::new(Entry::with_prepared(rec, old.prepared.clone(), vec![]));
                        live.insert(id.clone(), e.clone());
                        changes.push((id, Some(e)));
                    }
                    (2, Some(id)) if live.len() > 5 => {
                        live.remove(&id);
                        changes.push((id, None));
                    }
                    (3, _) => changes.push((format!("missing{step}"), None)),
                    _ => {
                        let id = format!("j{next_id:03}");
                        next_id += 1;
                        let e = random_entry(&mut rng, &id, version);
                        live.insert(id.clone(), e.clone());
                        changes.push((id, Some(e)));
                    }
                }
            }
            snapshot = snapshot.with_changes(version, changes);
            // Now and then a new base built from an older snapshot is
            // installed under the current one.
            if let Some((from, base)) = pending_base.take() {
                snapshot = snapshot.rebased(Arc::new(base), from.version());
            }
            if step % 7 == 3 {
                let from = Arc::new(snapshot.with_changes(snapshot.version(), vec![]));
                pending_base = Some((from.clone(), from.build_base()));
            }
            assert_same(&snapshot, &live, &mut rng, step);
        }
    }

    /// The entry keeps no `MultiPolygon`: the one it gives back is the parsed
    /// one, bit for bit, whatever the rings (holes, unclosed rings, single
    /// points, empty rings), and the reuse test after a write is `==`.
    #[test]
    fn an_entry_gives_back_the_parsed_boundary() {
        let text = r#"{"type":"MultiPolygon","coordinates":[
            [[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]],[[1,1],[2,1],[1,2]]],
            [[[20,0],[30,0],[30,10]]],
            [[[40,5]]],
            [[[-0.0,50],[51,50],[51,51],[0.0,50]],[[50.5,50.25]],[]]
        ]}"#;
        let parsed = geometry::parse_stored(text).expect("parses");
        let e = Entry::new(record("j", Tier::Place, 1.0, 1), &parsed, vec![]);
        let rebuilt = e.boundary();
        assert_eq!(rebuilt, parsed);
        let bits = |mp: &MultiPolygon<f64>| -> Vec<(u64, u64)> {
            use geo::CoordsIter;
            mp.coords_iter().map(|c| (c.x.to_bits(), c.y.to_bits())).collect()
        };
        assert_eq!(bits(&rebuilt), bits(&parsed));
        assert_eq!(geometry::to_geojson_value(&rebuilt).to_string(), geometry::to_geojson_value(&parsed).to_string());
        assert_eq!(e.vertices, geometry::vertex_count(&parsed));
        assert_eq!(e.rings().count(), 3 + 1 + 1 + 3);
        assert_eq!(e.bbox(), Some(([-0.0, 0.0], [51.0, 51.0])));
        assert!(e.has_boundary(&parsed));
        let mut other = parsed.clone();
        other.0.pop();
        assert!(!e.has_boundary(&other));
        let mut moved = parsed.clone();
        moved.0[1].exterior_mut(|r| r.0[1].y = 1e-9);
        assert!(!e.has_boundary(&moved));
        assert!(Entry::new(record("k", Tier::Place, 1.0, 1), &MultiPolygon::new(vec![]), vec![]).bbox().is_none());
    }

    #[test]
    fn id_json_is_the_escaped_id() {
        let square = geometry::parse_stored(r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]]]}"#)
            .expect("parses");
        for id in ["us-county:18105", "a\"b", "back\\slash\\", "tab\there", "\u{1}ctl", "é\u{2028}😀", ""] {
            let e = Entry::new(record(id, Tier::Place, 1.0, 1), &square, vec![]);
            let want = serde_json::to_string(id).expect("a string serialises");
            assert_eq!(e.id_json(), want, "id {id:?}");
            assert!(matches!(e.id_json(), Cow::Borrowed(_)), "id {id:?} is borrowed from the record's JSON");
        }
    }

    #[test]
    fn an_endpoint_write_keeps_the_base_and_the_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let entries: Vec<_> = (0..20).map(|i| random_entry(&mut rng, &format!("j{i}"), 1)).collect();
        let s = Snapshot::build(1, entries);
        let old = s.get("j5").expect("present").clone();
        let e = Entry::with_prepared(old.record.clone(), old.prepared.clone(), vec![]);
        let next = s.with_changes(2, vec![("j5".to_owned(), Some(Arc::new(e)))]);
        assert!(Arc::ptr_eq(&s.base, &next.base));
        let ids = |s: &Snapshot| s.entries().map(|e| e.record.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&s), ids(&next), "a same-rank write keeps the order");
        assert_eq!(next.get("j5").map(|e| e.endpoints.len()), Some(0));
        assert_eq!(next.entries().filter(|e| e.record.id == "j5").count(), 1);
        assert_eq!(next.overlay_len(), 0);
        let replaced = Entry::new(old.record.clone(), &square(0.0, 0.0, 1.0), vec![]);
        let next = next.with_changes(3, vec![("j5".to_owned(), Some(Arc::new(replaced)))]);
        assert_eq!(next.overlay_len(), 1);
        assert!(next.resolve(0.5, 0.5).iter().any(|e| e.record.id == "j5"));
    }

    /// Rank-changing writes (tier change, insert, delete) copy only the few
    /// chunks of the answer-order list they touch (unit tests use 8-entry
    /// chunks), and answers stay in answer order once keys no longer are.
    #[test]
    fn a_rank_changing_write_copies_only_a_few_chunks() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let entries: Vec<_> = (0..400).map(|i| random_entry(&mut rng, &format!("j{i:03}"), 1)).collect();
        let s = Snapshot::build(1, entries);
        assert!(s.keys_in_order());
        let old = s.get("j100").expect("present").clone();
        let mut rec = old.record.clone();
        rec.tier = if old.record.tier == Tier::ALL[0] { Tier::ALL[3] } else { Tier::ALL[0] };
        let moved = Arc::new(Entry::with_prepared(rec, old.prepared.clone(), vec![]));
        let changes = vec![
            ("j100".to_owned(), Some(moved)),
            ("new".to_owned(), Some(random_entry(&mut rng, "new", 2))),
            ("j200".to_owned(), None),
        ];
        let next = s.with_changes(2, changes);
        let chunks = s.ordered.chunk_count();
        assert!(chunks > 40, "{chunks} chunks");
        assert!(next.ordered.shared_chunks(&s.ordered) + 6 >= chunks, "most chunks are shared");
        assert!(!next.keys_in_order());
        let full = Snapshot::build(2, next.entries().cloned().collect());
        let ids = |s: &Snapshot| s.entries().map(|e| e.record.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&next), ids(&full));
        assert_eq!(next.len(), 400);
        for (x, y) in [(0.5, 0.5), (3.0, 4.0), (6.5, 2.5), (9.0, 9.0)] {
            assert_eq!(answer(&next, x, y), answer(&full, x, y));
        }
    }

    #[tokio::test]
    async fn a_handle_compacts_a_large_overlay_and_keeps_newer_writes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut live: HashMap<String, Arc<Entry>> = HashMap::new();
        for i in 0..100 {
            let id = format!("j{i}");
            live.insert(id.clone(), random_entry(&mut rng, &id, 1));
        }
        let handle = Arc::new(IndexHandle::new(Arc::new(Snapshot::build(1, live.values().cloned().collect()))));
        for v in 2..80 {
            let id = format!("j{}", v % 100);
            let e = random_entry(&mut rng, &id, v);
            live.insert(id.clone(), e.clone());
            assert!(handle.publish(handle.current().with_changes(v, vec![(id, Some(e))])));
            handle.compact();
        }
        // Wait for the background build to land.
        for _ in 0..200 {
            if handle.current().overlay_len() < compaction_threshold(100) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let current = handle.current();
        assert!(current.overlay_len() < compaction_threshold(100), "overlay {}", current.overlay_len());
        assert!(current.base_version > 1);
        assert_eq!(current.version(), 79);
        assert_same(&current, &live, &mut rng, 0);
    }
}
