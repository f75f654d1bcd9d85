//! Registry rows for benchmarks and tests that build snapshots in memory
//! (no store): one jurisdiction record and one Open311 endpoint, with every
//! optional field empty and fixed timestamps. Included with `#[path]` by
//! `benches/scale.rs` and `tests/tessellation.rs`.

use std::collections::BTreeMap;

use geowebdns::model::{Endpoint, EndpointType, Health, Jurisdiction, Tier};

/// Creation and update time of every row made here.
const STAMP: &str = "2026-11-26T00:00:00Z";

/// A jurisdiction record (version 1, no parent, no external ids).
pub fn record(
    id: String,
    name: String,
    tier: Tier,
    area_km2: f64,
    source: &str,
    license: Option<&str>,
) -> Jurisdiction {
    Jurisdiction {
        id,
        name,
        tier,
        parent: None,
        parent_override: false,
        ocd_id: None,
        external_ids: BTreeMap::new(),
        source: Some(source.to_owned()),
        license: license.map(str::to_owned),
        area_km2,
        created_at: STAMP.to_owned(),
        updated_at: STAMP.to_owned(),
        version: 1,
    }
}

/// A GeoReport v2 production endpoint of `jurisdiction_id` (status
/// unknown, no services).
pub fn endpoint(id: String, jurisdiction_id: &str, url: String, formats: &[&str]) -> Endpoint {
    Endpoint {
        id,
        jurisdiction_id: jurisdiction_id.to_owned(),
        specification: geowebdns::model::GEOREPORT_V2.to_owned(),
        url,
        kind: EndpointType::Production,
        formats: formats.iter().map(|f| (*f).to_owned()).collect(),
        open311_jurisdiction_id: None,
        key_service: None,
        discovery_url: None,
        docs_url: None,
        terms_url: None,
        contact: None,
        changeset: None,
        last_checked: None,
        last_ok: None,
        status: "unknown".to_owned(),
        created_at: STAMP.to_owned(),
        updated_at: STAMP.to_owned(),
        version: 1,
        health: Health::default(),
        services: Vec::new(),
    }
}
