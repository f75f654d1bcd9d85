//! Exporting the whole registry as one GeoJSON FeatureCollection, and reading
//! such an export back, so a registry moves between backends (SQLite to
//! PostgreSQL) with `geowebdns export` and `geowebdns import`.
//!
//! # The format
//!
//! One RFC 7946 FeatureCollection, written feature by feature:
//!
//! ```json
//! {"type":"FeatureCollection",
//!  "geowebdns_export":{"version":1,"seq":16765,"exported_at":"2026-11-25T18:59:27Z","backend":"sqlite",
//!                      "jurisdictions":8492,"endpoints":35,"services":0},
//!  "features":[
//!   {"type":"Feature","id":"country:USA","geometry":{"type":"MultiPolygon","coordinates":[...]},
//!    "properties":{"id":"country:USA","name":"United States of America","tier":"country","parent":null,
//!                  "parent_override":false,"ocd_id":null,"external_ids":{"country":"US"},"source":"...",
//!                  "license":"...","area_km2":9369682.397,"created_at":"...","updated_at":"...","version":1,
//!                  "endpoints":[]}},
//!   ...]}
//! ```
//!
//! - One Feature per jurisdiction, ordered by id; its `geometry` is the stored
//!   boundary text, written verbatim (it is already a GeoJSON geometry).
//! - `properties` hold every field of the record, and `endpoints` the full
//!   endpoint records with their services (the JSON of [`model::Endpoint`]).
//! - The foreign member `geowebdns_export` marks the file as an export:
//!   `version` of the format ([`FORMAT_VERSION`]), `seq` (the store's change-log
//!   sequence number when the export began), `exported_at`, the source
//!   `backend` and the counts.
//!
//! Any GIS tool reads the file as ordinary GeoJSON.
//!
//! # Restoring
//!
//! [`parse_dump`] recognises an export (by its `geowebdns_export` member, or by
//! features whose properties carry `endpoints` arrays), checks all of it, and
//! turns it into one [`ImportBatch`]; [`crate::import::import_export_dump`]
//! writes that batch in one transaction. Parents are restored as exported
//! (never recomputed), boundaries byte for byte, endpoints with their services
//! and health fields. What does not survive: `created_at`, `updated_at` and
//! `version`, which the target store stamps itself (the time of the restore
//! and version 1 for new records), and `area_km2`, which is recomputed from the
//! (identical) boundary and so comes out the same.

use crate::geometry;
use crate::import::reader;
use crate::model::{self, Endpoint, Jurisdiction, Tier};
use crate::store::{DynStore, ImportBatch, StoreError, StoredJurisdiction};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::str::FromStr;

/// Name of the top-level foreign member that marks an export.
pub const EXPORT_MEMBER: &str = "geowebdns_export";

/// Version of the export format written by this build (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;

/// Most problems listed in one [`DumpError::Invalid`].
const MAX_LISTED_PROBLEMS: usize = 20;

/// The `geowebdns_export` member of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The source store's change-log sequence number when the export began.
    #[serde(default)]
    pub seq: Option<i64>,
    /// RFC 3339 time of the export.
    #[serde(default)]
    pub exported_at: Option<String>,
    /// Backend of the source store (`sqlite`, `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Number of jurisdictions (features) in the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdictions: Option<usize>,
    /// Number of endpoints in the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<usize>,
    /// Number of services in the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<usize>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    /// Jurisdictions (features) written.
    pub jurisdictions: usize,
    /// Endpoints written.
    pub endpoints: usize,
    /// Services written.
    pub services: usize,
    /// The change-log sequence number the export reflects.
    pub seq: i64,
    /// RFC 3339 time of the export.
    pub exported_at: String,
}

/// Errors of an export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("writing the export: {0}")]
    Io(std::io::Error),
    /// A record could not be serialised.
    #[error("serialising the export: {0}")]
    Json(serde_json::Error),
    /// The store holds data that cannot be exported as is.
    #[error("cannot export: {0}")]
    Corrupt(String),
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        ExportError::Io(e)
    }
}

impl From<serde_json::Error> for ExportError {
    fn from(e: serde_json::Error) -> Self {
        if e.is_io() {
            ExportError::Io(e.into())
        } else {
            ExportError::Json(e)
        }
    }
}

/// How many times [`export`] re-reads the store when it changed while being read.
const CONSISTENT_READ_TRIES: usize = 3;

/// Writes the whole registry to `out` as one GeoJSON FeatureCollection (see the
/// module documentation for the format), feature by feature, and flushes it.
///
/// The store is read whole first (jurisdictions, then endpoints with their
/// services); when its change log moved meanwhile the read is repeated, so the
/// export is one consistent state under a quiet store and at least as new as
/// `seq` under a busy one.
pub async fn export<W: Write>(store: &DynStore, out: W) -> Result<ExportSummary, ExportError> {
    let mut tries = 0;
    let (seq, jurisdictions, endpoints) = loop {
        tries += 1;
        let seq = store.latest_seq().await?;
        let jurisdictions = store.load_jurisdictions().await?;
        let endpoints = store.load_endpoints().await?;
        let after = store.latest_seq().await?;
        if after == seq || tries >= CONSISTENT_READ_TRIES {
            if after != seq {
                tracing::warn!(seq, after, "the store kept changing during the export; it reflects at least seq {seq}");
            }
            break (seq, jurisdictions, endpoints);
        }
        tracing::info!(seq, after, "the store changed while being read; reading it again");
    };
    write_export(jurisdictions, endpoints, seq, store.backend(), out)
}

#[derive(Serialize)]
struct FeatureOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    geometry: &'a RawValue,
    properties: PropertiesOut<'a>,
}

#[derive(Serialize)]
struct PropertiesOut<'a> {
    id: &'a str,
    name: &'a str,
    tier: Tier,
    parent: Option<&'a str>,
    parent_override: bool,
    ocd_id: Option<&'a str>,
    external_ids: &'a BTreeMap<String, String>,
    source: Option<&'a str>,
    license: Option<&'a str>,
    area_km2: f64,
    created_at: &'a str,
    updated_at: &'a str,
    version: i64,
    endpoints: &'a [&'a Endpoint],
}

/// Writes already-loaded records as an export (pure apart from `out`).
fn write_export<W: Write>(
    mut jurisdictions: Vec<StoredJurisdiction>,
    endpoints: Vec<Endpoint>,
    seq: i64,
    backend: &str,
    out: W,
) -> Result<ExportSummary, ExportError> {
    // Byte order of ids, whatever the backend's collation.
    jurisdictions.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    let known: HashSet<&str> = jurisdictions.iter().map(|j| j.record.id.as_str()).collect();
    let mut by_jurisdiction: HashMap<&str, Vec<&Endpoint>> = HashMap::new();
    for e in &endpoints {
        if !known.contains(e.jurisdiction_id.as_str()) {
            return Err(ExportError::Corrupt(format!(
                "endpoint `{}` belongs to jurisdiction `{}`, which is not in the store",
                e.id, e.jurisdiction_id
            )));
        }
        by_jurisdiction.entry(e.jurisdiction_id.as_str()).or_default().push(e);
    }
    for list in by_jurisdiction.values_mut() {
        list.sort_by(|a, b| a.id.cmp(&b.id));
    }
    let exported_at = crate::store::now_rfc3339();
    let services = endpoints.iter().map(|e| e.services.len()).sum();
    let header = ExportHeader {
        version: FORMAT_VERSION,
        seq: Some(seq),
        exported_at: Some(exported_at.clone()),
        backend: Some(backend.to_owned()),
        jurisdictions: Some(jurisdictions.len()),
        endpoints: Some(endpoints.len()),
        services: Some(services),
    };

    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    out.write_all(br#"{"type":"FeatureCollection",""#)?;
    out.write_all(EXPORT_MEMBER.as_bytes())?;
    out.write_all(br#"":"#)?;
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(br#","features":["#)?;
    for (i, j) in jurisdictions.iter().enumerate() {
        let r = &j.record;
        let geometry: &RawValue = serde_json::from_str(&j.boundary)
            .map_err(|e| ExportError::Corrupt(format!("the stored boundary of `{}` is not JSON: {e}", r.id)))?;
        let feature = FeatureOut {
            kind: "Feature",
            id: &r.id,
            geometry,
            properties: PropertiesOut {
                id: &r.id,
                name: &r.name,
                tier: r.tier,
                parent: r.parent.as_deref(),
                parent_override: r.parent_override,
                ocd_id: r.ocd_id.as_deref(),
                external_ids: &r.external_ids,
                source: r.source.as_deref(),
                license: r.license.as_deref(),
                area_km2: r.area_km2,
                created_at: &r.created_at,
                updated_at: &r.updated_at,
                version: r.version,
                endpoints: by_jurisdiction.get(r.id.as_str()).map(Vec::as_slice).unwrap_or(&[]),
            },
        };
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut out, &feature)?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok(ExportSummary { jurisdictions: jurisdictions.len(), endpoints: endpoints.len(), services, seq, exported_at })
}

// ---------------------------------------------------------------------------------------
// Reading an export back
// ---------------------------------------------------------------------------------------

/// Why an export cannot be restored. Nothing is written in either case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// The file is not an export this build can read.
    #[error("{name}: not a geowebdns export this version can restore: {detail}")]
    Unsupported {
        /// The file.
        name: String,
        /// Why.
        detail: String,
    },
    /// The export has invalid records; every problem found is listed (up to a limit).
    #[error(
        "{name}: invalid geowebdns export, nothing was written ({} problem{}): {}",
        .total,
        if *.total == 1 { "" } else { "s" },
        .problems.join("; ")
    )]
    Invalid {
        /// The file.
        name: String,
        /// The problems, `feature #N (id): what` (at most 20, then a count of the rest).
        problems: Vec<String>,
        /// How many problems were found in all.
        total: usize,
    },
}

/// An export read and checked, ready to be written in one transaction.
#[derive(Debug, Clone)]
pub struct Dump {
    /// The `geowebdns_export` member, when the file has one.
    pub header: Option<ExportHeader>,
    /// Features read.
    pub read: usize,
    /// The jurisdictions (parents as exported) and endpoints (with services).
    pub batch: ImportBatch,
    /// Parents named by the export that are not in it: `(child, parent)`. The
    /// restore accepts them only when the target store already holds the parent.
    pub outside_parents: Vec<(String, String)>,
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    /// Features read.
    pub read: usize,
    /// Jurisdictions written.
    pub jurisdictions: usize,
    /// Endpoints written.
    pub endpoints: usize,
    /// Services written.
    pub services: usize,
    /// The source store's seq recorded in the export, if any.
    pub source_seq: Option<i64>,
    /// When the export was made, if recorded.
    pub exported_at: Option<String>,
    /// Jurisdictions the target store held before the restore.
    pub existing_before: i64,
    /// The target store's change-log seq after the restore.
    pub seq: i64,
}

#[derive(Deserialize)]
struct DumpTop<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, rename = "geowebdns_export")]
    header: Option<Value>,
    #[serde(default, borrow)]
    features: Option<Vec<DumpFeature<'a>>>,
}

#[derive(Deserialize)]
struct DumpFeature<'a> {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    properties: Option<Value>,
    #[serde(default, borrow)]
    geometry: Option<&'a RawValue>,
}

/// Whether `bytes` (plain or gzipped GeoJSON) is a geowebdns export, and if so
/// the checked export. `Ok(None)` for anything else, including content that is
/// not readable at all (the ordinary importer reports why). An export with any
/// invalid record is refused as a whole ([`DumpError::Invalid`] lists them).
pub fn parse_dump(bytes: &[u8], name: &str) -> Result<Option<Dump>, DumpError> {
    let Ok(Some(text)) = reader::geojson_text(bytes, name) else {
        return Ok(None);
    };
    let Ok(top) = serde_json::from_slice::<DumpTop<'_>>(&text) else {
        return Ok(None);
    };
    if top.kind != "FeatureCollection" {
        return Ok(None);
    }
    let features = top.features.unwrap_or_default();
    let has_endpoints =
        |f: &DumpFeature<'_>| f.properties.as_ref().and_then(|p| p.get("endpoints")).is_some_and(Value::is_array);
    if top.header.is_none() && !features.iter().any(has_endpoints) {
        return Ok(None);
    }
    let header = match top.header {
        None => None,
        Some(v) => {
            let h: ExportHeader = serde_json::from_value(v).map_err(|e| DumpError::Unsupported {
                name: name.to_owned(),
                detail: format!("its `{EXPORT_MEMBER}` member is malformed: {e}"),
            })?;
            if h.version == 0 || h.version > FORMAT_VERSION {
                return Err(DumpError::Unsupported {
                    name: name.to_owned(),
                    detail: format!(
                        "format version {} (this build reads version {FORMAT_VERSION}); use a newer geowebdns",
                        h.version
                    ),
                });
            }
            Some(h)
        }
    };
    check_features(name, header, &features).map(Some)
}

/// Checks every feature and the references between them.
fn check_features(name: &str, header: Option<ExportHeader>, features: &[DumpFeature<'_>]) -> Result<Dump, DumpError> {
    let mut problems = Vec::new();
    let mut batch = ImportBatch::default();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut ocd_ids: HashMap<String, String> = HashMap::new();
    let mut endpoint_ids: HashMap<String, String> = HashMap::new();
    for (index, f) in features.iter().enumerate() {
        let Some((j, endpoints)) = check_feature(index, f, &mut problems) else {
            continue;
        };
        let label = format!("feature #{index} ({})", j.record.id);
        if let Some(first) = ids.insert(j.record.id.clone(), index) {
            problems.push(format!("{label}: duplicate id (also feature #{first})"));
        }
        if let Some(ocd) = &j.record.ocd_id {
            if let Some(other) = ocd_ids.insert(ocd.clone(), j.record.id.clone()) {
                problems.push(format!("{label}: ocd_id `{ocd}` is also the ocd_id of `{other}`"));
            }
        }
        for e in &endpoints {
            if let Some(other) = endpoint_ids.insert(e.id.clone(), j.record.id.clone()) {
                problems.push(format!("{label}: endpoint `{}` is also listed under `{other}`", e.id));
            }
        }
        batch.jurisdictions.push(j);
        batch.endpoints.extend(endpoints);
    }
    let mut outside_parents = Vec::new();
    for j in &batch.jurisdictions {
        if let Some(parent) = &j.record.parent {
            if parent == &j.record.id {
                problems.push(format!("jurisdiction `{}`: is its own parent", j.record.id));
            } else if !ids.contains_key(parent) {
                outside_parents.push((j.record.id.clone(), parent.clone()));
            }
        }
    }
    if !problems.is_empty() {
        return Err(invalid(name, problems));
    }
    Ok(Dump { header, read: features.len(), batch, outside_parents })
}

/// A [`DumpError::Invalid`] listing at most [`MAX_LISTED_PROBLEMS`] problems.
pub(crate) fn invalid(name: &str, mut problems: Vec<String>) -> DumpError {
    let total = problems.len();
    if total > MAX_LISTED_PROBLEMS {
        problems.truncate(MAX_LISTED_PROBLEMS);
        problems.push(format!("... and {} more", total - MAX_LISTED_PROBLEMS));
    }
    DumpError::Invalid { name: name.to_owned(), problems, total }
}

/// An optional string property: missing or `null` is `None`.
fn opt_string(props: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{key}` must be a string or null, not {}", kind_of(other))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks one feature; pushes its problems and returns `None` when it has any.
fn check_feature(
    index: usize,
    f: &DumpFeature<'_>,
    problems: &mut Vec<String>,
) -> Option<(StoredJurisdiction, Vec<Endpoint>)> {
    let before = problems.len();
    let mut label = format!("feature #{index}");
    if f.kind.as_deref() != Some("Feature") {
        problems.push(format!("{label}: `type` must be \"Feature\""));
        return None;
    }
    let Some(Value::Object(props)) = &f.properties else {
        problems.push(format!("{label}: `properties` must be an object"));
        return None;
    };
    let id = match opt_string(props, "id") {
        Ok(Some(id)) => id,
        Ok(None) => {
            problems.push(format!("{label}: no `id` property"));
            return None;
        }
        Err(e) => {
            problems.push(format!("{label}: {e}"));
            return None;
        }
    };
    label = format!("feature #{index} ({id})");
    let mut problem = |p: String| problems.push(format!("{label}: {p}"));
    if let Err(e) = model::validate_id(&id) {
        problem(e);
    }
    match &f.id {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if *s == id => {}
        Some(other) => problem(format!("the Feature's `id` ({other}) differs from its `id` property")),
    }
    let mut field = |key: &str| {
        opt_string(props, key).unwrap_or_else(|e| {
            problem(e);
            None
        })
    };
    let name = field("name");
    let tier_text = field("tier");
    let parent = field("parent");
    let ocd_id = field("ocd_id");
    let source = field("source");
    let license = field("license");
    let created_at = field("created_at");
    let updated_at = field("updated_at");
    let mut problem = |p: String| problems.push(format!("{label}: {p}"));
    if name.is_none() {
        problem("no `name` property".into());
    }
    let tier = match tier_text.as_deref().map(Tier::from_str) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            problem(e.to_string());
            None
        }
        None => {
            problem("no `tier` property".into());
            None
        }
    };
    let parent_override = match props.get("parent_override") {
        None | Some(Value::Null) => parent.is_some(),
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            problem(format!("`parent_override` must be a boolean, not {}", kind_of(other)));
            false
        }
    };
    let external_ids = match props.get("external_ids") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => serde_json::from_value::<BTreeMap<String, String>>(v.clone()).unwrap_or_else(|_| {
            problem("`external_ids` must be an object of strings".into());
            BTreeMap::new()
        }),
    };
    let boundary = match f.geometry {
        None => {
            problem("no geometry".into());
            None
        }
        Some(raw) => match geometry::parse_stored(raw.get()) {
            Ok(mp) => Some((raw.get().to_owned(), geometry::area_km2(&mp))),
            Err(e) => {
                problem(format!("geometry: {e}"));
                None
            }
        },
    };
    let endpoints = check_endpoints(&id, props.get("endpoints"), &mut problem);
    if problems.len() > before {
        return None;
    }
    let (Some(name), Some(tier), Some((boundary, area_km2))) = (name, tier, boundary) else {
        return None;
    };
    let now = crate::store::now_rfc3339();
    let record = Jurisdiction {
        id,
        name,
        tier,
        parent,
        parent_override,
        ocd_id,
        external_ids,
        source,
        license,
        area_km2,
        created_at: created_at.unwrap_or_else(|| now.clone()),
        updated_at: updated_at.unwrap_or(now),
        version: 1,
    };
    Some((StoredJurisdiction { record, boundary }, endpoints))
}

/// Checks the `endpoints` property of jurisdiction `id`: an array of endpoint
/// records (their `jurisdiction_id` may be left out; given, it must be `id`).
fn check_endpoints(id: &str, value: Option<&Value>, problem: &mut impl FnMut(String)) -> Vec<Endpoint> {
    let list = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(list)) => list,
        Some(other) => {
            problem(format!("`endpoints` must be an array, not {}", kind_of(other)));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (k, v) in list.iter().enumerate() {
        let Value::Object(obj) = v else {
            problem(format!("endpoint #{k}: must be an object, not {}", kind_of(v)));
            continue;
        };
        let shown = obj.get("id").and_then(Value::as_str).map(|s| format!(" ({s})")).unwrap_or_default();
        let mut obj = obj.clone();
        obj.entry("jurisdiction_id").or_insert_with(|| Value::String(id.to_owned()));
        let e: Endpoint = match serde_json::from_value(Value::Object(obj)) {
            Ok(e) => e,
            Err(e) => {
                problem(format!("endpoint #{k}{shown}: {e}"));
                continue;
            }
        };
        if let Err(err) = model::validate_id(&e.id) {
            problem(format!("endpoint #{k}{shown}: {err}"));
        }
        if e.jurisdiction_id != id {
            problem(format!(
                "endpoint #{k}{shown}: its jurisdiction_id `{}` is not the feature's id",
                e.jurisdiction_id
            ));
        }
        if e.url.trim().is_empty() {
            problem(format!("endpoint #{k}{shown}: empty `url`"));
        }
        let mut codes = HashSet::new();
        for s in &e.services {
            if !codes.insert(s.service_code.as_str()) {
                problem(format!("endpoint #{k}{shown}: service_code `{}` appears twice", s.service_code));
            }
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(props: Value) -> String {
        serde_json::json!({"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]}})
        .to_string()
    }

    #[test]
    fn ordinary_geojson_is_not_a_dump() {
        let text =
            format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, feature(serde_json::json!({"id": "a"})));
        assert!(matches!(parse_dump(text.as_bytes(), "x"), Ok(None)));
        assert!(matches!(parse_dump(b"PK\x03\x04", "x"), Ok(None)));
        assert!(matches!(parse_dump(b"{not json", "x"), Ok(None)));
    }

    #[test]
    fn endpoints_arrays_mark_a_dump_and_geometry_is_kept_verbatim() {
        let geometry = r#"{"type":"Polygon","coordinates":[[[0,0],[1.50,0],[1,1],[0,0]]]}"#;
        let text = format!(
            r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","geometry":{geometry},
            "properties":{{"id":"t:a","name":"A","tier":"state","parent":null,"endpoints":[]}}}}]}}"#
        );
        let dump = parse_dump(text.as_bytes(), "x").ok().flatten().expect("a dump");
        assert!(dump.header.is_none());
        assert_eq!(dump.batch.jurisdictions[0].boundary, geometry);
        assert!(!dump.batch.jurisdictions[0].record.parent_override);
    }

    #[test]
    fn newer_formats_are_refused() {
        let text = r#"{"type":"FeatureCollection","geowebdns_export":{"version":2},"features":[]}"#;
        let err = parse_dump(text.as_bytes(), "x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("format version 2"), "{err}");
    }

    #[test]
    fn every_problem_is_listed() {
        let good = feature(serde_json::json!({"id": "t:a", "name": "A", "tier": "state", "endpoints": []}));
        let no_id = feature(serde_json::json!({"name": "B", "tier": "state", "endpoints": []}));
        let bad_tier = feature(serde_json::json!({"id": "t:c", "name": "C", "tier": "galaxy"}));
        let text = format!(
            r#"{{"type":"FeatureCollection","geowebdns_export":{{"version":1}},"features":[{good},{no_id},{bad_tier}]}}"#
        );
        match parse_dump(text.as_bytes(), "x") {
            Err(DumpError::Invalid { problems, total, .. }) => {
                assert_eq!(total, 2, "{problems:?}");
                assert!(problems[0].contains("feature #1") && problems[0].contains("no `id`"), "{problems:?}");
                assert!(problems[1].contains("feature #2 (t:c)") && problems[1].contains("galaxy"), "{problems:?}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}
