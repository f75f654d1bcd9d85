//! The store of record: jurisdictions, endpoints, services, the change log,
//! the audit log and revoked tokens.
//!
//! Callers see only the [`Store`] trait; each backend (SQLite here, PostgreSQL
//! later) owns its SQL dialect and its migrations under `migrations/<backend>/`.
//! The backend is chosen once from the database URL scheme by [`connect`].
//! This module must not know about HTTP or the index.

pub mod sqlite;

use crate::model::{Endpoint, Jurisdiction};
use async_trait::async_trait;
use std::sync::Arc;

/// Errors of the storage layer. They carry no HTTP meaning; the API layer maps them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record asked for does not exist.
    #[error("{entity} `{id}` not found")]
    NotFound {
        /// Kind of record.
        entity: &'static str,
        /// Its key.
        id: String,
    },
    /// The write conflicts with existing data (duplicate key, dangling reference, stale version).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database URL is not one this build understands.
    #[error("unsupported database URL `{0}` (expected sqlite:// or postgres://)")]
    UnsupportedUrl(String),
    /// Stored data could not be decoded (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error (connection lost, I/O...).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Convenience alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// A jurisdiction as stored: the record plus its boundary as GeoJSON geometry text.
#[derive(Debug, Clone)]
pub struct StoredJurisdiction {
    /// The record.
    pub record: Jurisdiction,
    /// The boundary, a GeoJSON Polygon or MultiPolygon geometry, as written.
    pub boundary: String,
}

/// One write of a bulk import: jurisdictions (upserted by id) and endpoints
/// (upserted by id, services replaced).
#[derive(Debug, Default, Clone)]
pub struct ImportBatch {
    /// Jurisdictions to insert or replace.
    pub jurisdictions: Vec<StoredJurisdiction>,
    /// Endpoints (with their services) to insert or replace.
    pub endpoints: Vec<Endpoint>,
}

/// What a committed write changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The change-log sequence number after the write (the new index version).
    pub seq: i64,
}

/// Who performed a write, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Token subject, or `cli`/`bundled` for local operations.
    pub sub: String,
    /// Token id, if the write came through the API.
    pub jti: Option<String>,
}

impl Actor {
    /// An actor for writes made by the local CLI or start-up.
    pub fn local(sub: &str) -> Self {
        Self { sub: sub.to_owned(), jti: None }
    }
}

/// The storage interface. Every write is one transaction that also appends
/// to the change log and the audit log.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Backend name (`sqlite`, `postgres`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    /// Runs pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// The latest change-log sequence number (0 for an empty store).
    async fn latest_seq(&self) -> StoreResult<i64>;
    /// Number of jurisdictions.
    async fn count_jurisdictions(&self) -> StoreResult<i64>;
    /// Every jurisdiction with its boundary, ordered by id.
    async fn load_jurisdictions(&self) -> StoreResult<Vec<StoredJurisdiction>>;
    /// Every endpoint with its services, ordered by jurisdiction then id.
    async fn load_endpoints(&self) -> StoreResult<Vec<Endpoint>>;
    /// Upserts a batch in one transaction, logging each record in the change
    /// and audit logs under `action`.
    async fn import(&self, batch: ImportBatch, actor: &Actor, action: &str) -> StoreResult<WriteOutcome>;
    /// Sets computed parents (only where no explicit parent was given), in one transaction.
    async fn set_computed_parents(&self, parents: &[(String, Option<String>)]) -> StoreResult<WriteOutcome>;
}

/// A shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

/// Opens the store named by `url` (`sqlite://path`, `sqlite::memory:`, or `postgres://...`).
pub async fn connect(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Removes a password from a database URL before it is logged or shown.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The current time as RFC 3339 text (UTC, second precision).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
