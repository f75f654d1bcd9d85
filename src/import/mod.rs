//! Importing boundaries (GeoJSON, gzipped GeoJSON, zipped ESRI Shapefile) and
//! the bundled data set into the store.
//!
//! Reading files is [`reader`]'s job; this module maps properties to records,
//! applies the invalid-geometry policy ([`OnInvalid`]), derives each
//! jurisdiction's parent (the smallest containing jurisdiction of the nearest
//! higher tier, computed once at import from an interior point of the
//! boundary, unless a parent was given), and writes everything, parents
//! included, in one transaction: an import interrupted at any moment (even
//! by SIGKILL) leaves all of it or none of it.
//!
//! A registry export ([`crate::export`]) is the exception: [`import_path`]
//! recognises one and [`restore_dump`] writes it as exported, parents
//! included, without deriving anything.

pub mod bundled;
pub mod reader;

use crate::export::{Dump, DumpError, RestoreSummary};
use crate::geometry::{self, GeometryError};
use crate::index::{load_entries, Snapshot};
use crate::model::{Endpoint, Jurisdiction, Tier};
use crate::store::{Actor, DynStore, ImportBatch, StoreError, StoredJurisdiction};
use geo::MultiPolygon;
use reader::{RawFeature, ReadError};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::str::FromStr;

/// What to do with a feature whose geometry is not well formed or not OGC-valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnInvalid {
    /// Close open rings, drop degenerate rings, fix winding; keep self-touching
    /// rings (the point test uses the even-odd rule). Report what was done.
    #[default]
    Repair,
    /// Leave out features with any geometry problem, and report them.
    Skip,
    /// Stop at the first problem; nothing is written.
    Abort,
}

/// Which feature properties hold the record fields.
#[derive(Debug, Clone)]
pub struct PropertyMap {
    /// Property holding the jurisdiction id (default `id`).
    pub id: String,
    /// Prefix added to the id value (e.g. `us-place:` for TIGER's `GEOID`).
    pub id_prefix: String,
    /// Property holding the name (default `name`).
    pub name: String,
    /// Property holding the tier (default `tier`, then `level`).
    pub tier: String,
    /// Tier for features without a tier property.
    pub default_tier: Option<Tier>,
    /// Property holding an explicit parent id (default `parent`).
    pub parent: String,
}

impl Default for PropertyMap {
    fn default() -> Self {
        Self {
            id: "id".into(),
            id_prefix: String::new(),
            name: "name".into(),
            tier: "tier".into(),
            default_tier: None,
            parent: "parent".into(),
        }
    }
}

/// Options of one import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Invalid-geometry policy.
    pub on_invalid: OnInvalid,
    /// Property mapping.
    pub map: PropertyMap,
    /// Boundary source for features without a `source` property.
    pub source: Option<String>,
    /// Licence for features without a `license` property.
    pub license: Option<String>,
    /// Show a progress bar on stderr (only drawn on a terminal).
    pub progress: bool,
    /// Most vertices in one boundary (`0` means no limit).
    pub max_vertices: usize,
}

/// What happened to one feature that needed attention.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FeatureReport {
    /// Position of the feature in the file (0-based).
    pub index: usize,
    /// Its id, when it has one.
    pub id: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// `repaired`, `skipped` or `aborted`.
    pub action: &'static str,
}

impl std::fmt::Display for FeatureReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "feature #{} ({}): {} [{}]",
            self.index,
            self.id.as_deref().unwrap_or("no id"),
            self.problem,
            self.action
        )
    }
}

/// Errors that stop an import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A feature is invalid and the policy is `abort`.
    #[error("import aborted: {0}")]
    Aborted(FeatureReport),
    /// Writing to the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bundled endpoint list is unreadable.
    #[error("bundled data: {0}")]
    Bundled(String),
    /// Building the parent index failed.
    #[error("index: {0}")]
    Index(String),
    /// A registry export could not be restored.
    #[error(transparent)]
    Dump(#[from] crate::export::DumpError),
}

impl From<crate::index::IndexError> for ImportError {
    fn from(e: crate::index::IndexError) -> Self {
        match e {
            crate::index::IndexError::Store(e) => ImportError::Store(e),
            other => ImportError::Index(other.to_string()),
        }
    }
}

/// The outcome of an import.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportSummary {
    /// Features read.
    pub read: usize,
    /// Jurisdictions written.
    pub imported: usize,
    /// Of those, how many were repaired.
    pub repaired: usize,
    /// Features left out.
    pub skipped: usize,
    /// Endpoints written.
    pub endpoints: usize,
    /// Parents computed.
    pub parents_set: usize,
    /// Per-feature reports.
    pub reports: Vec<FeatureReport>,
    /// Change-log seq after the import.
    pub seq: i64,
}

fn prop_str(props: &Map<String, Value>, key: &str) -> Option<String> {
    match props.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Property keys kept as external ids (layer codes), compared case-insensitively.
const EXTERNAL_ID_KEYS: &[&str] = &[
    "fips",
    "state_fips",
    "geoid",
    "statefp",
    "placefp",
    "placens",
    "countyfp",
    "iso_3166_2",
    "country",
    "country_a3",
    "adm1_code",
    "code",
    "wikidata",
    "geoboundaries_shape_id",
];

/// Maps one raw feature to a stored jurisdiction under the options' policy.
/// `Ok(None)` means the feature is skipped (and reported).
fn map_feature(
    f: &RawFeature,
    opts: &ImportOptions,
    reports: &mut Vec<FeatureReport>,
) -> Result<Option<StoredJurisdiction>, ImportError> {
    let p = &f.properties;
    let id = prop_str(p, &opts.map.id).map(|v| format!("{}{}", opts.map.id_prefix, v));
    let fail = |problem: String, reports: &mut Vec<FeatureReport>| -> Result<Option<StoredJurisdiction>, ImportError> {
        let report = FeatureReport {
            index: f.index,
            id: id.clone(),
            problem,
            action: if opts.on_invalid == OnInvalid::Abort { "aborted" } else { "skipped" },
        };
        if opts.on_invalid == OnInvalid::Abort {
            return Err(ImportError::Aborted(report));
        }
        reports.push(report);
        Ok(None)
    };
    let Some(id) = id.clone() else {
        return fail(format!("no `{}` property to take the id from", opts.map.id), reports);
    };
    if let Err(e) = crate::model::validate_id(&id) {
        return fail(e, reports);
    }
    let tier_text = prop_str(p, &opts.map.tier).or_else(|| prop_str(p, "level"));
    let tier = match (tier_text, opts.map.default_tier) {
        (Some(t), _) => match Tier::from_str(&t) {
            Ok(t) => t,
            Err(e) => return fail(e.to_string(), reports),
        },
        (None, Some(t)) => t,
        (None, None) => return fail(format!("no `{}` property and no default tier given", opts.map.tier), reports),
    };
    let Some(g) = &f.geometry else {
        return fail("feature has no geometry".into(), reports);
    };
    let strict_problems: Vec<GeometryError> = geometry::check_rings(g);
    let (boundary, repaired_notes) = match opts.on_invalid {
        OnInvalid::Repair => match geometry::repair(g) {
            Ok((mp, report)) => (mp, report.notes),
            Err(e) => return fail(e.to_string(), reports),
        },
        OnInvalid::Skip | OnInvalid::Abort => {
            if let Some(first) = strict_problems.first() {
                return fail(first.to_string(), reports);
            }
            let limit = if opts.max_vertices == 0 { usize::MAX } else { opts.max_vertices };
            match geometry::validate_strict(g, limit) {
                Ok(mp) => (mp, Vec::new()),
                Err(e) => return fail(e.to_string(), reports),
            }
        }
    };
    if !repaired_notes.is_empty() {
        reports.push(FeatureReport {
            index: f.index,
            id: Some(id.clone()),
            problem: repaired_notes.join("; "),
            action: "repaired",
        });
    }
    let mut external_ids = BTreeMap::new();
    for (k, v) in p {
        if EXTERNAL_ID_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
            if let Some(s) = prop_str(p, k) {
                external_ids.insert(k.to_ascii_lowercase(), s);
            }
        }
        let _ = v;
    }
    let parent = prop_str(p, &opts.map.parent);
    let now = crate::store::now_rfc3339();
    let record = Jurisdiction {
        name: prop_str(p, &opts.map.name).unwrap_or_else(|| id.clone()),
        id,
        tier,
        parent_override: parent.is_some(),
        parent,
        ocd_id: prop_str(p, "ocd_id"),
        external_ids,
        source: prop_str(p, "source").or_else(|| opts.source.clone()),
        license: prop_str(p, "license").or_else(|| opts.license.clone()),
        area_km2: geometry::area_km2(&boundary),
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    };
    Ok(Some(StoredJurisdiction { record, boundary: geometry::to_geojson_value(&boundary).to_string() }))
}

/// Maps every feature (pure: no I/O), applying the policy. Duplicate ids in
/// one input are a problem of the later feature.
pub fn map_features(
    features: &[RawFeature],
    opts: &ImportOptions,
) -> Result<(Vec<StoredJurisdiction>, ImportSummary), ImportError> {
    let bar = if opts.progress && features.len() > 1000 {
        indicatif::ProgressBar::new(features.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} features ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("checking");
    let mut summary = ImportSummary { read: features.len(), ..Default::default() };
    let mut out = Vec::with_capacity(features.len());
    let mut seen = HashSet::new();
    for f in features {
        bar.inc(1);
        let before = summary.reports.len();
        let mapped = map_feature(f, opts, &mut summary.reports)?;
        match mapped {
            Some(j) if !seen.insert(j.record.id.clone()) => {
                let report = FeatureReport {
                    index: f.index,
                    id: Some(j.record.id),
                    problem: "duplicate id in this input".into(),
                    action: "skipped",
                };
                if opts.on_invalid == OnInvalid::Abort {
                    return Err(ImportError::Aborted(FeatureReport { action: "aborted", ..report }));
                }
                summary.reports.truncate(before);
                summary.reports.push(report);
                summary.skipped += 1;
            }
            Some(j) => {
                if summary.reports.len() > before {
                    summary.repaired += 1;
                }
                out.push(j);
            }
            None => summary.skipped += 1,
        }
    }
    bar.finish_and_clear();
    summary.imported = out.len();
    Ok((out, summary))
}

/// Reads `path` and imports its features, then recomputes parents.
pub async fn import_file(
    store: &DynStore,
    path: &Path,
    opts: &ImportOptions,
    actor: &Actor,
) -> Result<ImportSummary, ImportError> {
    let path = path.to_owned();
    let features = tokio::task::spawn_blocking(move || reader::read_features(&path))
        .await
        .map_err(|e| ImportError::Index(e.to_string()))??;
    import_features(store, features, Vec::new(), opts, actor).await
}

/// Imports already-read features (and endpoints) with their derived parents
/// in ONE transaction: the parents (of the new jurisdictions, and of stored
/// ones that now sit inside a new one) are planned against the store's
/// current content first ([`plan_import`]), so a crash at any moment leaves
/// the store with all of the import, parents included, or none of it.
pub async fn import_features(
    store: &DynStore,
    features: Vec<RawFeature>,
    endpoints: Vec<Endpoint>,
    opts: &ImportOptions,
    actor: &Actor,
) -> Result<ImportSummary, ImportError> {
    let opts_owned = opts.clone();
    let (jurisdictions, mut summary) = tokio::task::spawn_blocking(move || map_features(&features, &opts_owned))
        .await
        .map_err(|e| ImportError::Index(e.to_string()))??;
    summary.endpoints = endpoints.len();
    let entries = load_entries(store, Vec::new()).await?;
    let (batch, parents_set) =
        tokio::task::spawn_blocking(move || -> Result<(Vec<StoredJurisdiction>, usize), ImportError> {
            let current = Snapshot::build(0, entries);
            let mapped: Vec<Option<String>> = jurisdictions.iter().map(|j| j.record.parent.clone()).collect();
            let count = mapped.len();
            let batch = plan_import(&current, jurisdictions)?;
            // Parents derived for the new records, plus stored records re-parented.
            let derived = batch.iter().zip(&mapped).filter(|(j, before)| j.record.parent != **before).count();
            let reparented = batch.len().saturating_sub(count);
            Ok((batch, derived + reparented))
        })
        .await
        .map_err(|e| ImportError::Index(e.to_string()))??;
    summary.parents_set = parents_set;
    let outcome = store.import(ImportBatch { jurisdictions: batch, endpoints }, actor, "import").await?;
    summary.seq = outcome.seq;
    Ok(summary)
}

/// The parent each jurisdiction of `snapshot` should have (unless its parent
/// was given explicitly), where it differs from its current one: the smallest
/// containing jurisdiction of the nearest higher tier at an interior point of
/// its boundary.
pub fn derive_parents(snapshot: &Snapshot) -> Vec<(String, Option<String>)> {
    let mut slots = Vec::new();
    let mut changes = Vec::new();
    for entry in snapshot.entries() {
        if entry.record.parent_override {
            continue;
        }
        let parent = parent_in(snapshot, entry.record.tier, &entry.boundary(), &mut slots);
        if parent != entry.record.parent {
            changes.push((entry.record.id.clone(), parent));
        }
    }
    changes
}

/// The parent a jurisdiction of `tier` with this boundary has in `snapshot`:
/// among the jurisdictions covering an interior point of the boundary, the one
/// of the nearest higher tier, then the smallest. `slots` is scratch space.
pub fn parent_in(
    snapshot: &Snapshot,
    tier: Tier,
    boundary: &MultiPolygon<f64>,
    slots: &mut Vec<u32>,
) -> Option<String> {
    let pt = geometry::interior_point(boundary)?;
    snapshot.resolve_into(pt.x, pt.y, slots);
    slots
        .iter()
        .filter_map(|&s| snapshot.entry(s))
        .filter(|c| c.record.tier.rank() < tier.rank())
        .max_by(|a, b| {
            (a.record.tier.rank(), -a.record.area_km2)
                .partial_cmp(&(b.record.tier.rank(), -b.record.area_km2))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|c| c.record.id.clone())
}

/// Plans a bulk import against the current snapshot so that it can be
/// written in ONE transaction: the new jurisdictions with their derived
/// parents, plus every existing jurisdiction whose derived parent changes
/// because of them (e.g. places inside a newly imported county).
pub fn plan_import(current: &Snapshot, new: Vec<StoredJurisdiction>) -> Result<Vec<StoredJurisdiction>, ImportError> {
    let mut changed = Vec::with_capacity(new.len());
    for j in &new {
        let boundary = geometry::parse_stored(&j.boundary).map_err(ImportError::Index)?;
        let entry = crate::index::Entry::new(j.record.clone(), &boundary, Vec::new());
        changed.push((j.record.id.clone(), Some(std::sync::Arc::new(entry))));
    }
    let planned = current.with_changes(current.version(), changed);
    let mut batch = new;
    let position: std::collections::HashMap<String, usize> =
        batch.iter().enumerate().map(|(i, j)| (j.record.id.clone(), i)).collect();
    for (id, parent) in derive_parents(&planned) {
        if let Some(&i) = position.get(&id) {
            batch[i].record.parent = parent;
        } else if let Some(entry) = planned.get(&id) {
            let mut record = entry.record.clone();
            record.parent = parent;
            batch.push(StoredJurisdiction {
                record,
                boundary: geometry::to_geojson_value(&entry.boundary()).to_string(),
            });
        }
    }
    Ok(batch)
}

/// Derives every parent not given explicitly (see [`derive_parents`]) over the
/// whole store and writes the changes. Returns how many parents changed and
/// the seq after the write.
pub async fn compute_parents(store: &DynStore) -> Result<(usize, i64), ImportError> {
    let entries = load_entries(store, Vec::new()).await?;
    let parents = tokio::task::spawn_blocking(move || -> Result<Vec<(String, Option<String>)>, ImportError> {
        Ok(derive_parents(&Snapshot::build(0, entries)))
    })
    .await
    .map_err(|e| ImportError::Index(e.to_string()))??;
    let outcome = store.set_computed_parents(&parents).await?;
    Ok((parents.len(), outcome.seq))
}

/// What [`import_path`] did with a file.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileImport {
    /// An ordinary boundary file was imported and parents were derived.
    Features(ImportSummary),
    /// A registry export ([`crate::export`]) was restored as exported.
    Dump(RestoreSummary),
}

/// Imports a file, recognising a registry export (see [`crate::export`]):
/// an export is restored with [`restore_dump`] (exact parents, endpoints and
/// services, one transaction); anything else is imported like [`import_file`].
pub async fn import_path(
    store: &DynStore,
    path: &Path,
    opts: &ImportOptions,
    actor: &Actor,
) -> Result<FileImport, ImportError> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("shp")) {
        return Ok(FileImport::Features(import_file(store, path, opts, actor).await?));
    }
    let owned = path.to_owned();
    let (bytes, dump) = tokio::task::spawn_blocking(move || -> Result<_, ImportError> {
        let name = owned.display().to_string();
        let bytes = std::fs::read(&owned).map_err(|source| ReadError::Io { name: name.clone(), source })?;
        let dump = crate::export::parse_dump(&bytes, &name)?;
        Ok((bytes, dump))
    })
    .await
    .map_err(|e| ImportError::Index(e.to_string()))??;
    if let Some(dump) = dump {
        drop(bytes);
        return Ok(FileImport::Dump(restore_dump(store, dump, &path.display().to_string(), actor).await?));
    }
    let name = path.display().to_string();
    let features = tokio::task::spawn_blocking(move || reader::read_features_from_bytes(&bytes, &name))
        .await
        .map_err(|e| ImportError::Index(e.to_string()))??;
    Ok(FileImport::Features(import_features(store, features, Vec::new(), opts, actor).await?))
}

/// Restores a registry export from its bytes (plain or gzipped): every
/// jurisdiction with its exact parent and boundary text, every endpoint with
/// its services, in ONE transaction; parents are not recomputed. Content that
/// is not an export is refused ([`crate::export::DumpError::Unsupported`]).
/// `name` names the input in messages.
pub async fn import_export_dump(
    store: &DynStore,
    bytes: Vec<u8>,
    name: &str,
    actor: &Actor,
) -> Result<RestoreSummary, ImportError> {
    let owned_name = name.to_owned();
    let dump = tokio::task::spawn_blocking(move || crate::export::parse_dump(&bytes, &owned_name))
        .await
        .map_err(|e| ImportError::Index(e.to_string()))??;
    let Some(dump) = dump else {
        return Err(DumpError::Unsupported {
            name: name.to_owned(),
            detail: format!("no `{}` member and no feature with an `endpoints` array", crate::export::EXPORT_MEMBER),
        }
        .into());
    };
    restore_dump(store, dump, name, actor).await
}

/// Writes a checked export ([`crate::export::parse_dump`]) in one transaction.
/// Parents outside the export must already be in the store. Records of the
/// store with ids in the export are replaced; the others are kept. The store
/// stamps `created_at`/`updated_at` with the time of the restore and starts
/// new records at version 1; everything else is written as exported.
pub async fn restore_dump(
    store: &DynStore,
    dump: Dump,
    name: &str,
    actor: &Actor,
) -> Result<RestoreSummary, ImportError> {
    let mut missing = Vec::new();
    let mut checked: BTreeMap<&str, bool> = BTreeMap::new();
    for (child, parent) in &dump.outside_parents {
        let present = match checked.get(parent.as_str()) {
            Some(&p) => p,
            None => {
                let p = store.get_jurisdiction(parent).await?.is_some();
                checked.insert(parent, p);
                p
            }
        };
        if !present {
            missing
                .push(format!("jurisdiction `{child}`: parent `{parent}` is neither in the export nor in the store"));
        }
    }
    if !missing.is_empty() {
        return Err(crate::export::invalid(name, missing).into());
    }
    let existing_before = store.count_jurisdictions().await?;
    let mut summary = RestoreSummary {
        read: dump.read,
        jurisdictions: dump.batch.jurisdictions.len(),
        endpoints: dump.batch.endpoints.len(),
        services: dump.batch.endpoints.iter().map(|e| e.services.len()).sum(),
        source_seq: dump.header.as_ref().and_then(|h| h.seq),
        exported_at: dump.header.as_ref().and_then(|h| h.exported_at.clone()),
        existing_before,
        seq: 0,
    };
    summary.seq = store.import(dump.batch, actor, "restore").await?.seq;
    Ok(summary)
}
