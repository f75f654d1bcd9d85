//! Row conversions shared by the SQLite and PostgreSQL stores.
//!
//! The two schemas hold the same columns with the same SQL types, except
//! the flags (`parent_override`, `metadata`): integers 0 or 1 in SQLite,
//! booleans in PostgreSQL. So each backend's row type implements
//! [`StoreRow`]'s typed getters, and every conversion is written once here.

use super::{AuditEntry, Change, StoreError, StoreResult, StoredJurisdiction, TokenRecord};
use crate::model::{Endpoint, EndpointType, Health, Jurisdiction, Service, ServiceSource, Tier};
use sqlx::Row;
use std::collections::BTreeMap;
use std::str::FromStr;

/// The column reads the conversions need; a wrong type or a missing column
/// is a [`StoreError::Database`].
pub(super) trait StoreRow {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn int4(&self, col: &str) -> StoreResult<i32>;
    fn opt_int4(&self, col: &str) -> StoreResult<Option<i32>>;
    fn real(&self, col: &str) -> StoreResult<f64>;
    /// A yes/no column, however the backend stores it.
    fn flag(&self, col: &str) -> StoreResult<bool>;
}

/// Implements [`StoreRow`] for a backend's row type; `flag` reads a flag
/// column of that backend.
macro_rules! store_row {
    ($row:ty, $flag:expr) => {
        impl StoreRow for $row {
            fn text(&self, col: &str) -> StoreResult<String> {
                Ok(self.try_get(col)?)
            }
            fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
                Ok(self.try_get(col)?)
            }
            fn int(&self, col: &str) -> StoreResult<i64> {
                Ok(self.try_get(col)?)
            }
            fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
                Ok(self.try_get(col)?)
            }
            fn int4(&self, col: &str) -> StoreResult<i32> {
                Ok(self.try_get(col)?)
            }
            fn opt_int4(&self, col: &str) -> StoreResult<Option<i32>> {
                Ok(self.try_get(col)?)
            }
            fn real(&self, col: &str) -> StoreResult<f64> {
                Ok(self.try_get(col)?)
            }
            fn flag(&self, col: &str) -> StoreResult<bool> {
                let read: fn(&$row, &str) -> Result<bool, sqlx::Error> = $flag;
                Ok(read(self, col)?)
            }
        }
    };
}

store_row!(sqlx::sqlite::SqliteRow, |row, col| Ok(row.try_get::<i64, _>(col)? != 0));
store_row!(sqlx::postgres::PgRow, |row, col| row.try_get::<bool, _>(col));

/// A value as the stores keep JSON columns (text).
pub(super) fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// Reads a JSON column; unreadable text is [`StoreError::Corrupt`], naming `what`.
fn decode_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A `jurisdictions` row.
pub(super) fn jurisdiction_from_row(row: &impl StoreRow) -> StoreResult<StoredJurisdiction> {
    let tier = row.text("tier")?;
    let record = Jurisdiction {
        id: row.text("id")?,
        name: row.text("name")?,
        tier: Tier::from_str(&tier).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        parent: row.opt_text("parent_id")?,
        parent_override: row.flag("parent_override")?,
        ocd_id: row.opt_text("ocd_id")?,
        external_ids: decode_json::<BTreeMap<String, String>>(&row.text("external_ids")?, "external_ids")?,
        source: row.opt_text("source")?,
        license: row.opt_text("license")?,
        area_km2: row.real("area_km2")?,
        created_at: row.text("created_at")?,
        updated_at: row.text("updated_at")?,
        version: row.int("version")?,
    };
    Ok(StoredJurisdiction { record, boundary: row.text("boundary")? })
}

/// An `endpoints` row, without its services.
pub(super) fn endpoint_from_row(row: &impl StoreRow) -> StoreResult<Endpoint> {
    Ok(Endpoint {
        id: row.text("id")?,
        jurisdiction_id: row.text("jurisdiction_id")?,
        specification: row.text("specification")?,
        url: row.text("url")?,
        kind: EndpointType::from_str(&row.text("type")?).map_err(StoreError::Corrupt)?,
        formats: decode_json(&row.text("formats")?, "formats")?,
        open311_jurisdiction_id: row.opt_text("open311_jurisdiction_id")?,
        key_service: row.opt_text("key_service")?,
        discovery_url: row.opt_text("discovery_url")?,
        docs_url: row.opt_text("docs_url")?,
        terms_url: row.opt_text("terms_url")?,
        contact: row.opt_text("contact")?,
        changeset: row.opt_text("changeset")?,
        last_checked: row.opt_text("last_checked")?,
        last_ok: row.opt_text("last_ok")?,
        status: row.text("status")?,
        created_at: row.text("created_at")?,
        updated_at: row.text("updated_at")?,
        version: row.int("version")?,
        health: health_from_row(row)?,
        services: Vec::new(),
    })
}

/// The harvester's columns of an `endpoints` row.
fn health_from_row(row: &impl StoreRow) -> StoreResult<Health> {
    Ok(Health {
        http_status: row.opt_int4("http_status")?.and_then(|s| u16::try_from(s).ok()),
        latency_ms: row.opt_int("latency_ms")?.and_then(|l| u64::try_from(l).ok()),
        last_error: row.opt_text("last_error")?,
        consecutive_failures: u32::try_from(row.int4("consecutive_failures")?).unwrap_or(0),
        etag: row.opt_text("harvest_etag")?,
        last_modified: row.opt_text("harvest_last_modified")?,
    })
}

/// A service row: its endpoint's id and the service.
pub(super) fn service_from_row(row: &impl StoreRow) -> StoreResult<(String, Service)> {
    Ok((
        row.text("endpoint_id")?,
        Service {
            service_code: row.text("service_code")?,
            service_name: row.text("service_name")?,
            description: row.opt_text("description")?,
            metadata: row.flag("metadata")?,
            kind: row.text("type")?,
            keywords: decode_json(&row.text("keywords")?, "keywords")?,
            group: row.opt_text("group_name")?,
            source: if row.text("source")? == "harvested" { ServiceSource::Harvested } else { ServiceSource::Manual },
        },
    ))
}

/// An `audit` row.
pub(super) fn audit_from_row(row: &impl StoreRow) -> StoreResult<AuditEntry> {
    let json = |col: &str| -> StoreResult<Option<serde_json::Value>> {
        row.opt_text(col)?.map(|t| decode_json(&t, col)).transpose()
    };
    Ok(AuditEntry {
        id: row.int("id")?,
        at: row.text("at")?,
        actor_sub: row.text("actor_sub")?,
        actor_jti: row.opt_text("actor_jti")?,
        action: row.text("action")?,
        entity: row.text("entity")?,
        entity_id: row.text("entity_id")?,
        jurisdiction_id: row.opt_text("jurisdiction_id")?,
        before: json("before")?,
        after: json("after")?,
    })
}

/// A `changes` row.
pub(super) fn change_from_row(row: &impl StoreRow) -> StoreResult<Change> {
    Ok(Change {
        seq: row.int("seq")?,
        entity: row.text("entity")?,
        entity_id: row.text("entity_id")?,
        op: row.text("op")?,
        at: row.text("at")?,
    })
}

/// A `tokens` row joined with its `revoked_tokens` row, if any.
pub(super) fn token_from_row(row: &impl StoreRow) -> StoreResult<TokenRecord> {
    Ok(TokenRecord {
        jti: row.text("jti")?,
        sub: row.text("sub")?,
        scopes: decode_json(&row.text("scopes")?, "scopes")?,
        issued_at: row.text("issued_at")?,
        expires_at: row.text("expires_at")?,
        revoked_at: row.opt_text("revoked_at")?,
    })
}

/// The audit form of a jurisdiction: the record without the (large) boundary.
pub(super) fn audit_jurisdiction(j: &StoredJurisdiction) -> String {
    json_text(&j.record)
}
