//! The store of record: jurisdictions, endpoints, services, the change log,
//! the audit log and revoked tokens.
//!
//! Callers see only the [`Store`] trait; each backend (SQLite here, PostgreSQL
//! later) owns its SQL dialect and its migrations under `migrations/<backend>/`.
//! The backend is chosen once from the database URL scheme by [`connect`].
//! This module must not know about HTTP or the index.

pub mod postgres;
mod rows;
pub mod sqlite;

use crate::model::{Endpoint, Health, Jurisdiction};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
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
    /// An `If-Match` precondition failed: the record changed since it was read.
    #[error("{entity} `{id}` is at version {current}, not the version given")]
    Stale {
        /// Kind of record.
        entity: &'static str,
        /// Its key.
        id: String,
        /// The version in the store.
        current: i64,
    },
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

/// Converts rows as the database hands them over, one at a time, so that
/// only one row's copy is alive at once. With `fetch_all` every row of the
/// registry (its boundaries: ~380 MB on the TIGER places) was alive at once;
/// under SQLite those copies come from the C allocator, whose arenas keep
/// the memory resident after it is freed (BENCHMARKS.md, "Server memory at
/// cold start" and the thirteenth session).
fn convert_rows<'a, R: 'a, T: 'a>(
    rows: impl Stream<Item = Result<R, sqlx::Error>> + Send + 'a,
    convert: impl Fn(&R) -> StoreResult<T> + Send + 'a,
) -> BoxStream<'a, StoreResult<T>> {
    Box::pin(rows.map(move |row| convert(&row?)))
}

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
    /// Every jurisdiction with its boundary, ordered by id, one at a time as
    /// the database hands them over (a full load need not hold every row at
    /// once: see [`crate::index::load_entries`]).
    fn jurisdiction_stream(&self) -> BoxStream<'_, StoreResult<StoredJurisdiction>>;
    /// Every jurisdiction with its boundary, ordered by id.
    async fn load_jurisdictions(&self) -> StoreResult<Vec<StoredJurisdiction>> {
        self.jurisdiction_stream().try_collect().await
    }
    /// Every endpoint with its services, ordered by jurisdiction then id.
    async fn load_endpoints(&self) -> StoreResult<Vec<Endpoint>>;
    /// Upserts a batch in one transaction, logging each record in the change
    /// and audit logs under `action`.
    async fn import(&self, batch: ImportBatch, actor: &Actor, action: &str) -> StoreResult<WriteOutcome>;
    /// Sets computed parents (only where no explicit parent was given), in one transaction.
    async fn set_computed_parents(&self, parents: &[(String, Option<String>)]) -> StoreResult<WriteOutcome>;

    /// One jurisdiction with its boundary.
    async fn get_jurisdiction(&self, id: &str) -> StoreResult<Option<StoredJurisdiction>>;
    /// One endpoint with its services.
    async fn get_endpoint(&self, id: &str) -> StoreResult<Option<Endpoint>>;
    /// The endpoints of one jurisdiction, with their services.
    async fn endpoints_of(&self, jurisdiction_id: &str) -> StoreResult<Vec<Endpoint>>;
    /// Inserts a new jurisdiction; [`StoreError::Conflict`] if the id (or ocd_id) exists.
    async fn create_jurisdiction(&self, j: &StoredJurisdiction, actor: &Actor) -> StoreResult<WriteOutcome>;
    /// Replaces a jurisdiction's fields and boundary, checking `expect` (If-Match) when given.
    async fn update_jurisdiction(
        &self,
        j: &StoredJurisdiction,
        expect: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<WriteOutcome>;
    /// Deletes a jurisdiction. Refused ([`StoreError::Conflict`]) while children or endpoints
    /// reference it, unless `cascade`: then its endpoints are deleted and its children are
    /// re-attached to its own parent.
    async fn delete_jurisdiction(
        &self,
        id: &str,
        cascade: bool,
        expect: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<WriteOutcome>;
    /// Inserts a new endpoint with its services.
    async fn create_endpoint(&self, e: &Endpoint, actor: &Actor) -> StoreResult<WriteOutcome>;
    /// Replaces an endpoint's fields and services (audited as `action`), checking `expect`.
    async fn update_endpoint(
        &self,
        e: &Endpoint,
        expect: Option<i64>,
        actor: &Actor,
        action: &str,
    ) -> StoreResult<WriteOutcome>;
    /// Deletes an endpoint and its services, checking `expect`.
    async fn delete_endpoint(&self, id: &str, expect: Option<i64>, actor: &Actor) -> StoreResult<WriteOutcome>;
    /// Records one harvest attempt on an endpoint: `status`, `last_checked`,
    /// `last_ok` (on success) and the [`Health`] details. This is not a
    /// registry edit: no audit entry, and no version bump or change-log row
    /// unless `status` changed (then both, so every instance's index shows the
    /// new status; the outcome is returned).
    async fn record_health(&self, id: &str, update: &HealthUpdate) -> StoreResult<Option<WriteOutcome>>;
    /// Remembers an issued token (id and claims only).
    async fn record_token(&self, t: &TokenRecord) -> StoreResult<()>;
    /// Every recorded token, newest first, with its revocation state.
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes a token id (known or not); false if it was already revoked.
    async fn revoke_token(&self, jti: &str, reason: Option<&str>) -> StoreResult<bool>;
    /// Whether a token id is revoked.
    async fn is_revoked(&self, jti: &str) -> StoreResult<bool>;
    /// Audit entries matching the filter, oldest first.
    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;

    /// Change-log rows with `seq > after`, in `seq` order, at most `limit`.
    async fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<Change>>;

    /// Closes the store: no new connection is handed out, and every open one
    /// is closed once it is returned (SQLite then checkpoints its WAL into the
    /// database file). Called once, when the service stops.
    async fn close(&self) {}

    /// A stream of change notifications (the new `seq`), for backends that push
    /// them (PostgreSQL LISTEN/NOTIFY). `None`: the follower polls only.
    async fn subscribe(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<i64>>> {
        Ok(None)
    }
}

/// The outcome of one harvest attempt, for [`Store::record_health`].
#[derive(Debug, Clone)]
pub struct HealthUpdate {
    /// `up` or `down`.
    pub status: String,
    /// RFC 3339 time of the attempt.
    pub checked_at: String,
    /// Whether it succeeded (then `last_ok` becomes `checked_at`).
    pub ok: bool,
    /// Details.
    pub health: Health,
}

/// One row of the change log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Sequence number (the index version after this change).
    pub seq: i64,
    /// `jurisdiction` or `endpoint`.
    pub entity: String,
    /// Key of the record.
    pub entity_id: String,
    /// `upsert` or `delete`.
    pub op: String,
    /// RFC 3339 time.
    pub at: String,
}

/// An issued token as recorded (never the token itself).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenRecord {
    /// Token id (`jti`).
    pub jti: String,
    /// Subject.
    pub sub: String,
    /// Scopes as strings.
    pub scopes: Vec<String>,
    /// RFC 3339 issue time.
    pub issued_at: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
    /// RFC 3339 revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries about this jurisdiction (or its endpoints).
    pub jurisdiction_id: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only entries before this RFC 3339 time.
    pub until: Option<String>,
    /// Only entries with an id greater than this (paging).
    pub after_id: Option<i64>,
    /// Most entries to return.
    pub limit: i64,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Entry id (increasing).
    pub id: i64,
    /// RFC 3339 time.
    pub at: String,
    /// Token subject (or `cli`, `bundled`).
    pub actor_sub: String,
    /// Token id, for API writes.
    pub actor_jti: Option<String>,
    /// What was done, e.g. `endpoint.create`.
    pub action: String,
    /// `jurisdiction` or `endpoint`.
    pub entity: String,
    /// Key of the record.
    pub entity_id: String,
    /// The jurisdiction concerned.
    pub jurisdiction_id: Option<String>,
    /// The record before (JSON), if any.
    pub before: Option<serde_json::Value>,
    /// The record after (JSON), if any.
    pub after: Option<serde_json::Value>,
}

/// A shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

/// Opens the store named by `url` (`sqlite://path`, `sqlite::memory:`, or `postgres://...`).
pub async fn connect(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Removes passwords from a database URL before it is logged or shown: the
/// one in the user info (`postgres://user:***@host/db`) and a `password`
/// query parameter (`?password=***`). A URL that may hold one but does not
/// parse is hidden whole, but for its scheme.
pub fn redact_url(raw: &str) -> String {
    if !raw.contains('@') && !raw.to_ascii_lowercase().contains("password") {
        return raw.to_owned();
    }
    let Ok(mut url) = url::Url::parse(raw) else {
        let scheme = raw.split_once("://").map_or("", |(s, _)| s);
        return format!("{scheme}://<unparsable URL hidden>");
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    let is_password = |k: &str| k.eq_ignore_ascii_case("password");
    if url.query_pairs().any(|(k, _)| is_password(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_password(&k) { "***".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
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
        assert_eq!(redact_url("postgres://u:p%40ss@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u:pa?ss@h/db"), "postgres://<unparsable URL hidden>");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=s3cret&application_name=x"),
            "postgres://u@h/db?sslmode=require&password=***&application_name=x"
        );
        assert_eq!(redact_url("postgres://u:s3cret@h/db?sslmode=require"), "postgres://u:***@h/db?sslmode=require");
    }
}
