//! The in-memory index: an immutable [`Snapshot`] of every jurisdiction with
//! its prepared boundary and the registry rows an answer needs, shared by
//! readers through an [`IndexHandle`] (an atomic pointer swap, no lock on the
//! read path).
//!
//! A snapshot is built in these steps:
//! 1. every stored boundary is parsed and each polygon part prepared
//!    ([`spatial::prepare`]: y-stripe edge bands, so a point test costs about
//!    O(log V) instead of O(V));
//! 2. entries are sorted by answer order (tier rank, larger area first, id), so
//!    an entry's slot number *is* its rank and a query answer is just its
//!    sorted slots;
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
pub mod prepared;
pub mod spatial;

use crate::geometry;
use crate::model::{Endpoint, Jurisdiction, Tier};
use crate::store::{DynStore, StoreError, StoredJurisdiction};
use arc_swap::ArcSwap;
use geo::MultiPolygon;
use serde::Serialize;
use serde_json::value::RawValue;
use spatial::{PreparedGeometry, SpatialIndex};
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
        Self { record, endpoints, prepared, vertices, json, content_hash }
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
/// Entries sit in answer order (tier rank, larger area first, id), so a slot
/// number *is* a rank and an answer is its sorted slots. Geometry is indexed
/// under a stable per-jurisdiction key (`jid`, assigned when a jurisdiction
/// first enters this snapshot's lineage); `slot_of` maps keys to slots.
///
/// The spatial index has two layers, so a write never rebuilds every
/// polygon's index:
/// - the **base** ([`SpatialIndex`] with its grid, shared by `Arc` between
///   snapshots), built from the geometry as of `base_version`;
/// - the **overlay**: for the few keys whose geometry changed since (in
///   `changed`), the base's answers for them are dropped (`dead` bit set) and
///   a small R-tree over their current geometry answers instead.
///
/// A write ([`Snapshot::with_changes`]) patches the entries that keep their
/// rank (a small slot -> entry map), copies the entry list (pointers only)
/// when one moves, updates the maps, and rebuilds only the overlay. Once the overlay
/// grows past [`Snapshot::needs_compaction`], [`IndexHandle::compact`] builds
/// a new base off the write path and installs it under any newer snapshot
/// with [`Snapshot::rebased`].
///
/// Every field is an `Arc` or a small value, so `clone` is a handful of
/// reference-count increments.
#[derive(Clone)]
pub struct Snapshot {
    version: i64,
    /// Entries in answer order (where `patched` has no newer one).
    entries: Arc<Vec<Arc<Entry>>>,
    /// Slot -> entry replacing the one in `entries` (writes that keep an
    /// entry's rank only add here, so they copy no `entries`).
    patched: Arc<HashMap<u32, Arc<Entry>>>,
    /// Slot -> key (parallel to `entries`).
    keys: Arc<Vec<u32>>,
    /// Key -> slot, `u32::MAX` for a key whose jurisdiction is gone.
    slot_of: Arc<Vec<u32>>,
    /// Whether every key equals its slot (then `slot_of` is skipped).
    identity: bool,
    /// Jurisdiction id -> key.
    by_id: Arc<HashMap<String, u32>>,
    /// Endpoint id -> jurisdiction id.
    endpoint_owners: Arc<HashMap<String, String>>,
    /// The next unused key.
    next_key: u32,
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

/// Orders entries for answers: tier rank, then larger area first, then id.
fn answer_order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    (a.record.tier.rank(), b.record.area_km2, &a.record.id)
        .partial_cmp(&(b.record.tier.rank(), a.record.area_km2, &b.record.id))
        .unwrap_or(std::cmp::Ordering::Equal)
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
    /// build: every key equals its slot, a new base, an empty overlay).
    pub fn build(version: i64, mut entries: Vec<Arc<Entry>>) -> Self {
        let started = Instant::now();
        entries.sort_by(|a, b| answer_order(a, b));
        let n = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let by_id = entries.iter().zip(0..n).map(|(e, slot)| (e.record.id.clone(), slot)).collect();
        let base = SpatialIndex::build(entries.iter().zip(0..n).map(|(e, slot)| (slot, e.prepared.clone())).collect());
        let endpoint_owners =
            entries.iter().flat_map(|e| e.endpoints.iter().map(|ep| (ep.id.clone(), e.record.id.clone()))).collect();
        let stats = SnapshotStats {
            jurisdictions: entries.len(),
            polygons: base.polygon_count(),
            vertices: entries.iter().map(|e| e.vertices).sum(),
            endpoints: entries.iter().map(|e| e.endpoints.len()).sum(),
            build_ms: started.elapsed().as_millis() as u64,
        };
        Self {
            version,
            keys: Arc::new((0..n).collect()),
            slot_of: Arc::new((0..n).collect()),
            identity: true,
            entries: Arc::new(entries),
            patched: Arc::default(),
            by_id: Arc::new(by_id),
            endpoint_owners: Arc::new(endpoint_owners),
            next_key: n,
            lineage: new_lineage(),
            base: Arc::new(base),
            base_version: version,
            changed: Arc::default(),
            dead: Arc::default(),
            overlay: Arc::default(),
            stats,
            built: None,
        }
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
        Entries { snapshot: self, inner: self.entries.iter().enumerate() }
    }

    /// Number of jurisdictions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the snapshot holds no jurisdiction.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `slot` (as returned by [`Snapshot::resolve_into`]).
    #[inline]
    pub fn entry(&self, slot: u32) -> Option<&Arc<Entry>> {
        if !self.patched.is_empty() {
            if let Some(e) = self.patched.get(&slot) {
                return Some(e);
            }
        }
        self.entries.get(slot as usize)
    }

    /// The entry with this jurisdiction id.
    pub fn get(&self, id: &str) -> Option<&Arc<Entry>> {
        self.by_id.get(id).and_then(|&key| self.slot(key)).and_then(|slot| self.entry(slot))
    }

    /// The jurisdiction an endpoint belongs to in this snapshot.
    pub fn endpoint_owner(&self, endpoint_id: &str) -> Option<&str> {
        self.endpoint_owners.get(endpoint_id).map(String::as_str)
    }

    /// The slot of key `key`, if its jurisdiction exists.
    #[inline]
    fn slot(&self, key: u32) -> Option<u32> {
        if self.identity {
            return Some(key);
        }
        self.slot_of.get(key as usize).copied().filter(|&s| s != u32::MAX)
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

    /// Turns the keys pushed onto `out` after `start` into slots: drops the
    /// base's out-of-date answers, adds the overlay's, maps keys to slots.
    #[inline]
    fn keys_to_slots(&self, out: &mut Vec<u32>, start: usize) {
        if self.identity {
            return;
        }
        let mut w = start;
        for r in start..out.len() {
            if let Some(slot) = self.slot(out[r]) {
                out[w] = slot;
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
        self.keys_to_slots(out, 0);
        out.sort_unstable();
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
        self.keys_to_slots(out, start);
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
        self.changed.len() >= compaction_threshold(self.entries.len())
    }

    /// A snapshot at `version` in which the jurisdictions named in `changed`
    /// are replaced by the given entry (or removed, for `None`); every other
    /// entry is reused as it is. Costs O(jurisdictions) pointer copies plus
    /// the overlay's rebuild: no polygon outside `changed` is indexed again.
    /// An entry whose `prepared` geometry is the same `Arc` as before (see
    /// [`Entry::with_prepared`]) keeps its place in the base.
    pub fn with_changes(&self, version: i64, changed: Vec<(String, Option<Arc<Entry>>)>) -> Snapshot {
        let started = Instant::now();
        let mut patched = Arc::clone(&self.patched);
        let mut by_id = Arc::clone(&self.by_id);
        let mut endpoint_owners = Arc::clone(&self.endpoint_owners);
        let mut geometry_changed = (*self.changed).clone();
        let mut next_key = self.next_key;
        let mut stats = self.stats;
        // Entries leaving their slot (removed, or moving to a new rank), and
        // entries to insert at their rank.
        let mut vacated: Vec<u32> = Vec::new();
        let mut inserts: Vec<(u32, Arc<Entry>)> = Vec::new();
        // The last change of each id counts.
        let mut last: HashMap<String, Option<Arc<Entry>>> = HashMap::with_capacity(changed.len());
        let mut order = Vec::with_capacity(changed.len());
        for (id, next) in changed {
            if last.insert(id.clone(), next).is_none() {
                order.push(id);
            }
        }
        for id in order {
            let Some(next) = last.remove(&id) else { continue };
            let old = by_id.get(&id).copied().and_then(|key| Some((key, self.slot(key)?)));
            if let Some((_, slot)) = old {
                if let Some(e) = self.entry(slot) {
                    if !e.endpoints.is_empty() {
                        let owners = Arc::make_mut(&mut endpoint_owners);
                        for ep in &e.endpoints {
                            owners.remove(&ep.id);
                        }
                    }
                    stats.jurisdictions -= 1;
                    stats.polygons -= e.prepared.len();
                    stats.vertices -= e.vertices;
                    stats.endpoints -= e.endpoints.len();
                }
            }
            if let Some(e) = &next {
                if !e.endpoints.is_empty() {
                    let owners = Arc::make_mut(&mut endpoint_owners);
                    for ep in &e.endpoints {
                        owners.insert(ep.id.clone(), id.clone());
                    }
                }
                stats.jurisdictions += 1;
                stats.polygons += e.prepared.len();
                stats.vertices += e.vertices;
                stats.endpoints += e.endpoints.len();
            }
            match (old, next) {
                (Some((key, slot)), Some(entry)) => {
                    let Some(current) = self.entry(slot) else { continue };
                    if !Arc::ptr_eq(&current.prepared, &entry.prepared) {
                        geometry_changed.insert(key, version);
                    }
                    if answer_order(current, &entry).is_eq() {
                        Arc::make_mut(&mut patched).insert(slot, entry);
                    } else {
                        vacated.push(slot);
                        inserts.push((key, entry));
                    }
                }
                (Some((key, slot)), None) => {
                    Arc::make_mut(&mut by_id).remove(&id);
                    geometry_changed.insert(key, version);
                    vacated.push(slot);
                }
                (None, Some(entry)) => {
                    let key = next_key;
                    next_key = next_key.saturating_add(1);
                    Arc::make_mut(&mut by_id).insert(id, key);
                    geometry_changed.insert(key, version);
                    inserts.push((key, entry));
                }
                (None, None) => {}
            }
        }
        let reordered = !vacated.is_empty() || !inserts.is_empty();
        // Patches are folded into the list when it is copied anyway, or
        // when there are many of them.
        let fold = reordered || patched.len() > compaction_threshold(self.entries.len()) * 16;
        let mut entries = Arc::clone(&self.entries);
        if fold && !reordered {
            let mut list = (*self.entries).clone();
            for (&slot, e) in patched.iter() {
                if let Some(x) = list.get_mut(slot as usize) {
                    *x = e.clone();
                }
            }
            entries = Arc::new(list);
            patched = Arc::default();
        }
        let (keys, slot_of, identity) = if reordered {
            vacated.sort_unstable();
            let mut gone = vacated.iter().peekable();
            let mut kept = Vec::with_capacity(self.entries.len() + inserts.len());
            for ((slot, e), &k) in (0u32..).zip(self.entries.iter()).zip(self.keys.iter()) {
                if gone.peek() == Some(&&slot) {
                    gone.next();
                } else {
                    kept.push((patched.get(&slot).unwrap_or(e).clone(), k));
                }
            }
            patched = Arc::default();
            if inserts.len() > 64 {
                kept.extend(inserts.into_iter().map(|(k, e)| (e, k)));
                kept.sort_by(|a, b| answer_order(&a.0, &b.0));
            } else {
                for (k, e) in inserts {
                    let at = kept.partition_point(|(x, _)| answer_order(x, &e).is_lt());
                    kept.insert(at, (e, k));
                }
            }
            let (e, k): (Vec<_>, Vec<_>) = kept.into_iter().unzip();
            entries = Arc::new(e);
            let mut slot_of = vec![u32::MAX; next_key as usize];
            for (slot, &k) in (0u32..).zip(&k) {
                if let Some(s) = slot_of.get_mut(k as usize) {
                    *s = slot;
                }
            }
            let identity = next_key as usize == k.len() && k.iter().zip(0u32..).all(|(&k, s)| k == s);
            (Arc::new(k), Arc::new(slot_of), identity)
        } else {
            (Arc::clone(&self.keys), Arc::clone(&self.slot_of), self.identity)
        };
        let mut next = Snapshot {
            version,
            entries,
            patched,
            keys,
            slot_of,
            identity,
            by_id,
            endpoint_owners,
            next_key,
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
            if let Some(e) = self.slot(key).and_then(|s| self.entry(s)) {
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
        SpatialIndex::build(self.entries().zip(self.keys.iter()).map(|(e, &k)| (k, e.prepared.clone())).collect())
    }
}

/// The entries of a [`Snapshot`] in answer order ([`Snapshot::entries`]).
pub struct Entries<'a> {
    snapshot: &'a Snapshot,
    inner: std::iter::Enumerate<std::slice::Iter<'a, Arc<Entry>>>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = &'a Arc<Entry>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (slot, e) = self.inner.next()?;
        if self.snapshot.patched.is_empty() {
            return Some(e);
        }
        Some(u32::try_from(slot).ok().and_then(|s| self.snapshot.patched.get(&s)).unwrap_or(e))
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

/// Builds entries from stored rows (parsing and preparing every boundary).
pub fn entries_from_rows(
    rows: Vec<StoredJurisdiction>,
    endpoints: Vec<Endpoint>,
) -> Result<Vec<Arc<Entry>>, IndexError> {
    let mut by_jurisdiction: HashMap<String, Vec<Endpoint>> = HashMap::new();
    for e in endpoints {
        by_jurisdiction.entry(e.jurisdiction_id.clone()).or_default().push(e);
    }
    rows.into_iter()
        .map(|row| {
            let boundary = geometry::parse_stored(&row.boundary)
                .map_err(|reason| IndexError::Boundary { id: row.record.id.clone(), reason })?;
            let endpoints = by_jurisdiction.remove(&row.record.id).unwrap_or_default();
            Ok(Arc::new(Entry::new(row.record, &boundary, endpoints)))
        })
        .collect()
}

/// Reads the whole registry and builds a snapshot off the async threads.
pub async fn load_snapshot(store: &DynStore) -> Result<Snapshot, IndexError> {
    let started = Instant::now();
    // Read the version first: a write landing during the read makes the next
    // refresh pick it up again rather than being missed.
    let version = store.latest_seq().await?;
    let rows = store.load_jurisdictions().await?;
    let endpoints = store.load_endpoints().await?;
    let read = started.elapsed();
    let mut snapshot = tokio::task::spawn_blocking(move || -> Result<Snapshot, IndexError> {
        let entries = entries_from_rows(rows, endpoints)?;
        Ok(Snapshot::build(version, entries))
    })
    .await
    .map_err(|e| IndexError::Task(e.to_string()))??;
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
    if old.entries.len() < RETIRE_IN_BACKGROUND {
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
        for _ in 0..200 {
            // Grid points hit edges and corners of the squares exactly.
            let (lon, lat) = if rng.gen_bool(0.5) {
                (rng.gen_range(-1.0..14.0), rng.gen_range(-1.0..14.0))
            } else {
                (f64::from(rng.gen_range(0..70)) * 0.2, f64::from(rng.gen_range(0..70)) * 0.2)
            };
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
    fn an_endpoint_write_keeps_the_base_and_the_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let entries: Vec<_> = (0..20).map(|i| random_entry(&mut rng, &format!("j{i}"), 1)).collect();
        let s = Snapshot::build(1, entries);
        let old = s.get("j5").expect("present").clone();
        let e = Entry::with_prepared(old.record.clone(), old.prepared.clone(), vec![]);
        let next = s.with_changes(2, vec![("j5".to_owned(), Some(Arc::new(e)))]);
        assert!(Arc::ptr_eq(&s.base, &next.base) && Arc::ptr_eq(&s.keys, &next.keys));
        assert!(Arc::ptr_eq(&s.entries, &next.entries), "a same-rank write copies no entry list");
        assert_eq!(next.get("j5").map(|e| e.endpoints.len()), Some(0));
        assert_eq!(next.entries().filter(|e| e.record.id == "j5").count(), 1);
        assert_eq!(next.overlay_len(), 0);
        assert!(next.identity);
        let replaced = Entry::new(old.record.clone(), &square(0.0, 0.0, 1.0), vec![]);
        let next = next.with_changes(3, vec![("j5".to_owned(), Some(Arc::new(replaced)))]);
        assert_eq!(next.overlay_len(), 1);
        assert!(next.resolve(0.5, 0.5).iter().any(|e| e.record.id == "j5"));
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
