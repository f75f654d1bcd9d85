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
//! A rebuild after a write reuses the parsed and prepared geometry of every
//! unchanged jurisdiction (they are `Arc`s), so only changed boundaries are
//! prepared again and only the R-tree is bulk-loaded anew.
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
    /// The boundary as stored.
    pub boundary: Arc<MultiPolygon<f64>>,
    /// The prepared polygon parts used by the point test.
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
    /// Builds an entry, preparing the geometry.
    pub fn new(record: Jurisdiction, boundary: Arc<MultiPolygon<f64>>, endpoints: Vec<Endpoint>) -> Self {
        let prepared = spatial::prepare(&boundary);
        Self::with_prepared(record, boundary, prepared, endpoints)
    }

    /// Builds an entry around geometry that is already prepared (a rebuild
    /// after a write that did not touch this boundary).
    pub fn with_prepared(
        record: Jurisdiction,
        boundary: Arc<MultiPolygon<f64>>,
        prepared: PreparedGeometry,
        endpoints: Vec<Endpoint>,
    ) -> Self {
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
        let vertices = geometry::vertex_count(&boundary);
        let content_hash = {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            json.get().hash(&mut h);
            h.finish()
        };
        Self { record, endpoints, boundary, prepared, vertices, json, content_hash }
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
pub struct Snapshot {
    version: i64,
    entries: Vec<Arc<Entry>>,
    by_id: HashMap<String, u32>,
    spatial: SpatialIndex,
    stats: SnapshotStats,
    /// How it was made and how long reading and building it took, when it
    /// was made from the store.
    built: Option<(BuildKind, Duration)>,
}

impl Snapshot {
    /// A snapshot with no jurisdictions (before the first load).
    pub fn empty() -> Self {
        Self::build(0, Vec::new())
    }

    /// Builds a snapshot at `version` from entries in any order.
    pub fn build(version: i64, mut entries: Vec<Arc<Entry>>) -> Self {
        let started = Instant::now();
        entries.sort_by(|a, b| {
            (a.record.tier.rank(), b.record.area_km2, &a.record.id)
                .partial_cmp(&(b.record.tier.rank(), a.record.area_km2, &b.record.id))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let by_id = entries.iter().enumerate().map(|(slot, e)| (e.record.id.clone(), slot as u32)).collect();
        let spatial = SpatialIndex::build(
            entries.iter().enumerate().map(|(slot, e)| (slot as u32, e.prepared.clone())).collect(),
        );
        let stats = SnapshotStats {
            jurisdictions: entries.len(),
            polygons: spatial.polygon_count(),
            vertices: entries.iter().map(|e| e.vertices).sum(),
            endpoints: entries.iter().map(|e| e.endpoints.len()).sum(),
            build_ms: started.elapsed().as_millis() as u64,
        };
        Self { version, entries, by_id, spatial, stats, built: None }
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
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// The entry at `slot` (as returned by [`Snapshot::resolve_into`]).
    pub fn entry(&self, slot: u32) -> Option<&Arc<Entry>> {
        self.entries.get(slot as usize)
    }

    /// The entry with this jurisdiction id.
    pub fn get(&self, id: &str) -> Option<&Arc<Entry>> {
        self.by_id.get(id).and_then(|&slot| self.entry(slot))
    }

    /// Slots of every jurisdiction covering (lon, lat), in answer order
    /// (tier rank, larger area first, id). Clears `out` first.
    pub fn resolve_into(&self, lon: f64, lat: f64, out: &mut Vec<u32>) {
        out.clear();
        self.spatial.query(lon, lat, out);
        out.sort_unstable();
    }

    /// Convenience: the entries covering (lon, lat), in answer order.
    pub fn resolve(&self, lon: f64, lat: f64) -> Vec<&Arc<Entry>> {
        let mut slots = Vec::new();
        self.resolve_into(lon, lat, &mut slots);
        slots.iter().filter_map(|&s| self.entry(s)).collect()
    }
}

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
            Ok(Arc::new(Entry::new(row.record, Arc::new(boundary), endpoints)))
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
}

impl IndexHandle {
    /// A handle holding `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        let metrics = crate::metrics::IndexMetrics::default();
        if let Some((kind, took)) = snapshot.build_info() {
            metrics.observe_build(kind, took);
        }
        Self { current: ArcSwap::new(snapshot), loaded_at: ArcSwap::from_pointee(Instant::now()), metrics }
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
    /// concurrent rebuilds must not move the version backwards).
    pub fn publish(&self, next: Snapshot) -> bool {
        let next = Arc::new(next);
        let started = Instant::now();
        let prev = self.current.rcu(|cur| if cur.version() > next.version() { cur.clone() } else { next.clone() });
        let swapped = prev.version() <= next.version();
        if swapped {
            self.metrics.observe_swap(started.elapsed());
            if let Some((kind, took)) = next.build_info() {
                self.metrics.observe_build(kind, took);
            }
            self.loaded_at.store(Arc::new(Instant::now()));
        }
        swapped
    }

    /// Time since the last publish.
    pub fn age(&self) -> Duration {
        self.loaded_at.load().elapsed()
    }
}

impl Snapshot {
    /// A snapshot at `version` in which the jurisdictions named in `changed`
    /// are replaced by the given entry (or removed, for `None`); every other
    /// entry is reused as it is.
    pub fn with_changes(&self, version: i64, changed: Vec<(String, Option<Arc<Entry>>)>) -> Snapshot {
        let touched: std::collections::HashSet<&str> = changed.iter().map(|(id, _)| id.as_str()).collect();
        let mut entries: Vec<Arc<Entry>> =
            self.entries.iter().filter(|e| !touched.contains(e.record.id.as_str())).cloned().collect();
        entries.extend(changed.into_iter().filter_map(|(_, e)| e));
        Snapshot::build(version, entries)
    }
}

/// Re-reads the named jurisdictions (record, boundary, endpoints) from the
/// store and publishes a snapshot at `version` with them replaced. Boundaries
/// that did not change keep their prepared geometry. Callers serialise writes,
/// so snapshots are published in `seq` order.
pub async fn refresh(handle: &IndexHandle, store: &DynStore, ids: &[String], version: i64) -> Result<(), IndexError> {
    let started = Instant::now();
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let row = store.get_jurisdiction(id).await?;
        let endpoints = match &row {
            Some(_) => store.endpoints_of(id).await?,
            None => Vec::new(),
        };
        rows.push((id.clone(), row, endpoints));
    }
    let current = handle.current();
    let mut next = tokio::task::spawn_blocking(move || -> Result<Snapshot, IndexError> {
        let mut changed = Vec::with_capacity(rows.len());
        for (id, row, endpoints) in rows {
            let Some(row) = row else {
                changed.push((id, None));
                continue;
            };
            let boundary = geometry::parse_stored(&row.boundary)
                .map_err(|reason| IndexError::Boundary { id: id.clone(), reason })?;
            let entry = match current.get(&id) {
                Some(old) if *old.boundary == boundary => {
                    Entry::with_prepared(row.record, old.boundary.clone(), old.prepared.clone(), endpoints)
                }
                _ => Entry::new(row.record, Arc::new(boundary), endpoints),
            };
            changed.push((id, Some(Arc::new(entry))));
        }
        Ok(current.with_changes(version, changed))
    })
    .await
    .map_err(|e| IndexError::Task(e.to_string()))??;
    next.built = Some((BuildKind::Incremental, started.elapsed()));
    handle.publish(next);
    Ok(())
}
