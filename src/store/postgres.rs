//! PostgreSQL backend: the same tables, semantics and text formats as the
//! SQLite store, for deployments that share one database between replicas.
//!
//! Queries are runtime `query().bind()` mirroring `sqlite.rs` statement by
//! statement; migrations live in `migrations/postgres/` and are embedded in the
//! binary. Differences from SQLite that callers could otherwise notice are
//! handled here:
//!
//! - Writers are serialised with a transaction-scoped advisory lock, as SQLite
//!   serialises them with its single writer. The change-log `seq` therefore
//!   commits in order (a follower reading `seq > n` never misses a row that
//!   commits later with a smaller seq), and `If-Match` checks cannot race.
//! - Sorted and compared text columns use the `"C"` collation (byte order, as in
//!   SQLite), whatever the database locale.
//! - A negative audit `limit` means "no limit", as in SQLite.
//! - Sequences are not transactional: a rolled-back write leaves `latest_seq`
//!   unchanged but may leave a gap before the next seq.
//!
//! Every insert into `changes` is announced with `pg_notify('geowebdns_changes', seq)`
//! by a trigger (see [`CHANGES_CHANNEL`]).

use super::rows::{
    audit_from_row, audit_jurisdiction, change_from_row, endpoint_from_row, json_text, jurisdiction_from_row,
    service_from_row, token_from_row,
};
use super::{
    now_rfc3339, Actor, AuditEntry, AuditFilter, Change, HealthUpdate, ImportBatch, Store, StoreError, StoreResult,
    StoredJurisdiction, TokenRecord, WriteOutcome,
};
use crate::model::{Endpoint, Service};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The channel on which every change-log insert is announced; the payload is its `seq`.
pub const CHANGES_CHANNEL: &str = "geowebdns_changes";

/// Advisory lock key taken by every write that appends to the change log
/// (an arbitrary constant: "gwdwrite" in ASCII).
const WRITE_LOCK: i64 = 0x6777_6477_7269_7465;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url`, e.g. `postgres://user@host:5432/geowebdns`.
    /// The database must exist; run [`Store::migrate`] to create the tables.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let opts = PgConnectOptions::from_str(url)?.application_name("geowebdns");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(3600)))
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    /// The underlying pool (for tests, maintenance commands and `LISTEN`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a write transaction holding the store-wide write lock until it ends.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
        Ok(tx)
    }
}

/// Appends one change-log row and returns its seq.
async fn log_change(
    tx: &mut Transaction<'_, Postgres>,
    entity: &str,
    id: &str,
    op: &str,
    at: &str,
) -> StoreResult<i64> {
    let seq: i64 =
        sqlx::query_scalar("insert into changes (entity, entity_id, op, at) values ($1, $2, $3, $4) returning seq")
            .bind(entity)
            .bind(id)
            .bind(op)
            .bind(at)
            .fetch_one(&mut **tx)
            .await?;
    Ok(seq)
}

#[allow(clippy::too_many_arguments)]
async fn log_audit(
    tx: &mut Transaction<'_, Postgres>,
    at: &str,
    actor: &Actor,
    action: &str,
    entity: &str,
    id: &str,
    jurisdiction_id: Option<&str>,
    before: Option<String>,
    after: Option<String>,
) -> StoreResult<()> {
    sqlx::query(
        "insert into audit (at, actor_sub, actor_jti, action, entity, entity_id, jurisdiction_id, before, after)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(at)
    .bind(&actor.sub)
    .bind(&actor.jti)
    .bind(action)
    .bind(entity)
    .bind(id)
    .bind(jurisdiction_id)
    .bind(before)
    .bind(after)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_jurisdiction(tx: &mut Transaction<'_, Postgres>, j: &StoredJurisdiction, at: &str) -> StoreResult<()> {
    let r = &j.record;
    // Keep created_at and bump version when the row exists.
    sqlx::query(
        "insert into jurisdictions (id, name, tier, parent_id, parent_override, ocd_id, external_ids, boundary,
                                    area_km2, source, license, created_at, updated_at, version)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1)
         on conflict (id) do update set
             name = excluded.name, tier = excluded.tier, parent_id = excluded.parent_id,
             parent_override = excluded.parent_override, ocd_id = excluded.ocd_id,
             external_ids = excluded.external_ids, boundary = excluded.boundary,
             area_km2 = excluded.area_km2, source = excluded.source, license = excluded.license,
             updated_at = excluded.updated_at, version = jurisdictions.version + 1",
    )
    .bind(&r.id)
    .bind(&r.name)
    .bind(r.tier.as_str())
    .bind(&r.parent)
    .bind(r.parent_override)
    .bind(&r.ocd_id)
    .bind(json_text(&r.external_ids))
    .bind(&j.boundary)
    .bind(r.area_km2)
    .bind(&r.source)
    .bind(&r.license)
    .bind(at)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(conflict_or_db)?;
    Ok(())
}

async fn upsert_endpoint(tx: &mut Transaction<'_, Postgres>, e: &Endpoint, at: &str) -> StoreResult<()> {
    sqlx::query(
        "insert into endpoints (id, jurisdiction_id, specification, url, type, formats, open311_jurisdiction_id,
                                key_service, discovery_url, docs_url, terms_url, contact, changeset, status,
                                last_checked, last_ok, created_at, updated_at, version)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 1)
         on conflict (id) do update set
             jurisdiction_id = excluded.jurisdiction_id, specification = excluded.specification,
             url = excluded.url, type = excluded.type, formats = excluded.formats,
             open311_jurisdiction_id = excluded.open311_jurisdiction_id, key_service = excluded.key_service,
             discovery_url = excluded.discovery_url, docs_url = excluded.docs_url,
             terms_url = excluded.terms_url, contact = excluded.contact, changeset = excluded.changeset,
             updated_at = excluded.updated_at, version = endpoints.version + 1,
             harvest_etag = null, harvest_last_modified = null",
    )
    .bind(&e.id)
    .bind(&e.jurisdiction_id)
    .bind(&e.specification)
    .bind(&e.url)
    .bind(e.kind.as_str())
    .bind(json_text(&e.formats))
    .bind(&e.open311_jurisdiction_id)
    .bind(&e.key_service)
    .bind(&e.discovery_url)
    .bind(&e.docs_url)
    .bind(&e.terms_url)
    .bind(&e.contact)
    .bind(&e.changeset)
    .bind(&e.status)
    .bind(&e.last_checked)
    .bind(&e.last_ok)
    .bind(at)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(conflict_or_db)?;
    replace_services(tx, &e.id, &e.services).await
}

async fn replace_services(
    tx: &mut Transaction<'_, Postgres>,
    endpoint_id: &str,
    services: &[Service],
) -> StoreResult<()> {
    sqlx::query("delete from services where endpoint_id = $1").bind(endpoint_id).execute(&mut **tx).await?;
    for (pos, s) in services.iter().enumerate() {
        sqlx::query(
            "insert into services (endpoint_id, service_code, service_name, description, metadata, type,
                                   keywords, group_name, position, source)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(endpoint_id)
        .bind(&s.service_code)
        .bind(&s.service_name)
        .bind(&s.description)
        .bind(s.metadata)
        .bind(&s.kind)
        .bind(json_text(&s.keywords))
        .bind(&s.group)
        .bind(pos as i64)
        .bind(s.source.as_str())
        .execute(&mut **tx)
        .await
        .map_err(conflict_or_db)?;
    }
    Ok(())
}

/// Maps constraint violations to [`StoreError::Conflict`]; everything else stays a database error.
fn conflict_or_db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db)
            if db.is_unique_violation() || db.is_foreign_key_violation() || db.is_check_violation() =>
        {
            StoreError::Conflict(db.message().to_owned())
        }
        _ => StoreError::Database(e),
    }
}

/// Reads a record's version inside a transaction and checks an `If-Match` precondition.
async fn check_version(
    tx: &mut Transaction<'_, Postgres>,
    table: &'static str,
    entity: &'static str,
    id: &str,
    expect: Option<i64>,
) -> StoreResult<i64> {
    // `table` is one of our own constants, never user input. The row is locked
    // as well, although the write lock already keeps other writers out.
    let sql = match table {
        "jurisdictions" => "select version from jurisdictions where id = $1 for update",
        _ => "select version from endpoints where id = $1 for update",
    };
    let current: Option<i64> = sqlx::query_scalar(sql).bind(id).fetch_optional(&mut **tx).await?;
    let current = current.ok_or_else(|| StoreError::NotFound { entity, id: id.to_owned() })?;
    if let Some(expected) = expect {
        if expected != current {
            return Err(StoreError::Stale { entity, id: id.to_owned(), current });
        }
    }
    Ok(current)
}

async fn fetch_jurisdiction(
    ex: impl sqlx::Executor<'_, Database = Postgres>,
    id: &str,
) -> StoreResult<Option<StoredJurisdiction>> {
    let row = sqlx::query("select * from jurisdictions where id = $1").bind(id).fetch_optional(ex).await?;
    row.as_ref().map(jurisdiction_from_row).transpose()
}

async fn fetch_endpoints(tx: &mut Transaction<'_, Postgres>, filter: &str, key: &str) -> StoreResult<Vec<Endpoint>> {
    let sql = match filter {
        "id" => "select * from endpoints where id = $1 order by id",
        _ => "select * from endpoints where jurisdiction_id = $1 order by id",
    };
    let rows = sqlx::query(sql).bind(key).fetch_all(&mut **tx).await?;
    let mut endpoints = rows.iter().map(endpoint_from_row).collect::<StoreResult<Vec<_>>>()?;
    for e in &mut endpoints {
        let rows = sqlx::query("select * from services where endpoint_id = $1 order by position, service_code")
            .bind(&e.id)
            .fetch_all(&mut **tx)
            .await?;
        e.services = rows.iter().map(|r| service_from_row(r).map(|(_, s)| s)).collect::<StoreResult<_>>()?;
    }
    Ok(endpoints)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn latest_seq(&self) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar("select max(seq) from changes").fetch_one(&self.pool).await?;
        Ok(seq.unwrap_or(0))
    }

    async fn count_jurisdictions(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("select count(*) from jurisdictions").fetch_one(&self.pool).await?)
    }

    fn jurisdiction_stream(&self) -> BoxStream<'_, StoreResult<StoredJurisdiction>> {
        super::convert_rows(
            sqlx::query("select * from jurisdictions order by id").fetch(&self.pool),
            jurisdiction_from_row,
        )
    }

    async fn load_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        // One snapshot for both reads, so that services match their endpoints.
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read read only").execute(&mut *tx).await?;
        let rows = sqlx::query("select * from endpoints order by jurisdiction_id, id").fetch_all(&mut *tx).await?;
        let mut endpoints = rows.iter().map(endpoint_from_row).collect::<StoreResult<Vec<_>>>()?;
        let rows = sqlx::query("select * from services order by endpoint_id, position, service_code")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut by_endpoint: HashMap<String, Vec<Service>> = HashMap::new();
        for row in &rows {
            let (endpoint_id, service) = service_from_row(row)?;
            by_endpoint.entry(endpoint_id).or_default().push(service);
        }
        for e in &mut endpoints {
            e.services = by_endpoint.remove(&e.id).unwrap_or_default();
        }
        Ok(endpoints)
    }

    async fn import(&self, batch: ImportBatch, actor: &Actor, action: &str) -> StoreResult<WriteOutcome> {
        let at = now_rfc3339();
        let mut tx = self.begin_write().await?;
        let mut seq = 0;
        for j in &batch.jurisdictions {
            upsert_jurisdiction(&mut tx, j, &at).await?;
            seq = log_change(&mut tx, "jurisdiction", &j.record.id, "upsert", &at).await?;
            // The boundary is left out of the audit row: it is large and kept in the record itself.
            log_audit(
                &mut tx,
                &at,
                actor,
                action,
                "jurisdiction",
                &j.record.id,
                Some(&j.record.id),
                None,
                Some(json_text(&j.record)),
            )
            .await?;
        }
        for e in &batch.endpoints {
            upsert_endpoint(&mut tx, e, &at).await?;
            seq = log_change(&mut tx, "endpoint", &e.id, "upsert", &at).await?;
            log_audit(
                &mut tx,
                &at,
                actor,
                action,
                "endpoint",
                &e.id,
                Some(&e.jurisdiction_id),
                None,
                Some(json_text(e)),
            )
            .await?;
        }
        tx.commit().await?;
        if seq == 0 {
            seq = self.latest_seq().await?;
        }
        Ok(WriteOutcome { seq })
    }

    async fn set_computed_parents(&self, parents: &[(String, Option<String>)]) -> StoreResult<WriteOutcome> {
        let at = now_rfc3339();
        let mut tx = self.begin_write().await?;
        let mut seq = 0;
        for (id, parent) in parents {
            let done = sqlx::query(
                "update jurisdictions set parent_id = $1, updated_at = $2, version = version + 1
                 where id = $3 and not parent_override and parent_id is distinct from $1",
            )
            .bind(parent)
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                seq = log_change(&mut tx, "jurisdiction", id, "upsert", &at).await?;
            }
        }
        tx.commit().await?;
        if seq == 0 {
            seq = self.latest_seq().await?;
        }
        Ok(WriteOutcome { seq })
    }

    async fn get_jurisdiction(&self, id: &str) -> StoreResult<Option<StoredJurisdiction>> {
        fetch_jurisdiction(&self.pool, id).await
    }

    async fn get_endpoint(&self, id: &str) -> StoreResult<Option<Endpoint>> {
        let mut tx = self.pool.begin().await?;
        let mut found = fetch_endpoints(&mut tx, "id", id).await?;
        tx.commit().await?;
        Ok(found.pop())
    }

    async fn endpoints_of(&self, jurisdiction_id: &str) -> StoreResult<Vec<Endpoint>> {
        let mut tx = self.pool.begin().await?;
        let found = fetch_endpoints(&mut tx, "jurisdiction", jurisdiction_id).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn create_jurisdiction(&self, j: &StoredJurisdiction, actor: &Actor) -> StoreResult<WriteOutcome> {
        let at = now_rfc3339();
        let mut tx = self.begin_write().await?;
        if fetch_jurisdiction(&mut *tx, &j.record.id).await?.is_some() {
            return Err(StoreError::Conflict(format!("jurisdiction `{}` already exists", j.record.id)));
        }
        upsert_jurisdiction(&mut tx, j, &at).await?;
        let seq = log_change(&mut tx, "jurisdiction", &j.record.id, "upsert", &at).await?;
        let after = fetch_jurisdiction(&mut *tx, &j.record.id).await?;
        log_audit(
            &mut tx,
            &at,
            actor,
            "jurisdiction.create",
            "jurisdiction",
            &j.record.id,
            Some(&j.record.id),
            None,
            after.as_ref().map(audit_jurisdiction),
        )
        .await?;
        tx.commit().await?;
        Ok(WriteOutcome { seq })
    }

    async fn update_jurisdiction(
        &self,
        j: &StoredJurisdiction,
        expect: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<WriteOutcome> {
        let at = now_rfc3339();
        let mut tx = self.begin_write().await?;
        check_version(&mut tx, "jurisdictions", "jurisdiction", &j.record.id, expect).await?;
        let before = fetch_jurisdiction(&mut *tx, &j.record.id).await?;
        upsert_jurisdiction(&mut tx, j, &at).await?;
        let seq = log_change(&mut tx, "jurisdiction", &j.record.id, "upsert", &at).await?;
        let after = fetch_jurisdiction(&mut *tx, &j.record.id).await?;
        let action = if before.as_ref().is_some_and(|b| b.boundary != j.boundary) {
            "jurisdiction.update_boundary"
        } else {
            "jurisdiction.update"
        };
        log_audit(
            &mut tx,
            &at,
            actor,
            action,
            "jurisdiction",
            &j.record.id,
            Some(&j.record.id),
            before.as_ref().map(audit_jurisdiction),
            after.as_ref().map(audit_jurisdiction),
        )
        .await?;
        tx.commit().await?;
        Ok(WriteOutcome { seq })
    }

    async fn delete_jurisdiction(
        &self,
        id: &str,
        cascade: bool,
        expect: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<WriteOutcome> {
        let at = now_rfc3339();
        let mut tx = self.begin_write().await?;
        check_version(&mut tx, "jurisdictions", "jurisdiction", id, expect).await?;
        let before = fetch_jurisdiction(&mut *tx, id).await?;
        let children: Vec<String> = sqlx::query_scalar("select id from jurisdictions where parent_id = $1 order by id")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let endpoints = fetch_endpoints(&mut tx, "jurisdiction", id).await?;
        if !cascade && (!children.is_empty() || !endpoints.is_empty()) {
            return Err(StoreError::Conflict(format!(
                "jurisdiction `{id}` still has {} child jurisdiction(s) and {} endpoint(s); delete them first or pass cascade=true",
                children.len(),
                endpoints.len()
            )));
        }
        let mut seq = 0;
        for e in &endpoints {
            sqlx::query("delete from endpoints where id = $1").bind(&e.id).execute(&mut *tx).await?;
            log_change(&mut tx, "endpoint", &e.id, "delete", &at).await?;
            log_audit(&mut tx, &at, actor, "endpoint.delete", "endpoint", &e.id, Some(id), Some(json_text(e)), None)
                .await?;
        }
        let grandparent = before.as_ref().and_then(|b| b.record.parent.clone());
        for child in &children {
            sqlx::query(
                "update jurisdictions set parent_id = $1, updated_at = $2, version = version + 1 where id = $3",
            )
            .bind(&grandparent)
            .bind(&at)
            .bind(child)
            .execute(&mut *tx)
            .await?;
            log_change(&mut tx, "jurisdiction", child, "upsert", &at).await?;
        }
        sqlx::query("delete from jurisdictions where id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db)?;
        seq = seq.max(log_change(&mut tx, "jurisdiction", id, "delete", &at).await?);
        log_audit(
            &mut tx,
            &at,
            actor,
            "jurisdiction.delete",
            "jurisdiction",
            id,
            Some(id),
            before.as_ref().map(audit_jurisdiction),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(WriteOutcome { seq })
    }

    async fn create_endpoint(&self, e: &Endpoint, actor: &Actor) -> StoreResult<WriteOutcome> {
        let at = now_rfc3339();
        let mut tx = self.begin_write().await?;
        if !fetch_endpoints(&mut tx, "id", &e.id).await?.is_empty() {
            return Err(StoreError::Conflict(format!("endpoint `{}` already exists", e.id)));
        }
        if fetch_jurisdiction(&mut *tx, &e.jurisdiction_id).await?.is_none() {
            return Err(StoreError::NotFound { entity: "jurisdiction", id: e.jurisdiction_id.clone() });
        }
        upsert_endpoint(&mut tx, e, &at).await?;
        let seq = log_change(&mut tx, "endpoint", &e.id, "upsert", &at).await?;
        let after = fetch_endpoints(&mut tx, "id", &e.id).await?.pop();
        log_audit(
            &mut tx,
            &at,
            actor,
            "endpoint.create",
            "endpoint",
            &e.id,
            Some(&e.jurisdiction_id),
            None,
            after.as_ref().map(json_text),
        )
        .await?;
        tx.commit().await?;
        Ok(WriteOutcome { seq })
    }

    async fn update_endpoint(
        &self,
        e: &Endpoint,
        expect: Option<i64>,
        actor: &Actor,
        action: &str,
    ) -> StoreResult<WriteOutcome> {
        let at = now_rfc3339();
        let mut tx = self.begin_write().await?;
        check_version(&mut tx, "endpoints", "endpoint", &e.id, expect).await?;
        let before = fetch_endpoints(&mut tx, "id", &e.id).await?.pop();
        upsert_endpoint(&mut tx, e, &at).await?;
        let seq = log_change(&mut tx, "endpoint", &e.id, "upsert", &at).await?;
        let after = fetch_endpoints(&mut tx, "id", &e.id).await?.pop();
        log_audit(
            &mut tx,
            &at,
            actor,
            action,
            "endpoint",
            &e.id,
            Some(&e.jurisdiction_id),
            before.as_ref().map(json_text),
            after.as_ref().map(json_text),
        )
        .await?;
        tx.commit().await?;
        Ok(WriteOutcome { seq })
    }

    async fn delete_endpoint(&self, id: &str, expect: Option<i64>, actor: &Actor) -> StoreResult<WriteOutcome> {
        let at = now_rfc3339();
        let mut tx = self.begin_write().await?;
        check_version(&mut tx, "endpoints", "endpoint", id, expect).await?;
        let before = fetch_endpoints(&mut tx, "id", id).await?.pop();
        sqlx::query("delete from endpoints where id = $1").bind(id).execute(&mut *tx).await?;
        let seq = log_change(&mut tx, "endpoint", id, "delete", &at).await?;
        let jurisdiction = before.as_ref().map(|b| b.jurisdiction_id.clone());
        log_audit(
            &mut tx,
            &at,
            actor,
            "endpoint.delete",
            "endpoint",
            id,
            jurisdiction.as_deref(),
            before.as_ref().map(json_text),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(WriteOutcome { seq })
    }

    async fn record_health(&self, id: &str, u: &HealthUpdate) -> StoreResult<Option<WriteOutcome>> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query_scalar("select status from endpoints where id = $1").bind(id).fetch_optional(&mut *tx).await?;
        let Some(current) = current else {
            return Err(StoreError::NotFound { entity: "endpoint", id: id.to_owned() });
        };
        let flipped = current != u.status;
        sqlx::query(
            "update endpoints set status = $1, last_checked = $2,
                    last_ok = case when $3 then $4 else last_ok end,
                    http_status = $5, latency_ms = $6, last_error = $7, consecutive_failures = $8,
                    harvest_etag = $9, harvest_last_modified = $10,
                    version = version + $11, updated_at = case when $12 then $13 else updated_at end
             where id = $14",
        )
        .bind(&u.status)
        .bind(&u.checked_at)
        .bind(u.ok)
        .bind(&u.checked_at)
        .bind(u.health.http_status.map(i32::from))
        .bind(u.health.latency_ms.and_then(|l| i64::try_from(l).ok()))
        .bind(&u.health.last_error)
        .bind(i32::try_from(u.health.consecutive_failures).unwrap_or(i32::MAX))
        .bind(&u.health.etag)
        .bind(&u.health.last_modified)
        .bind(i64::from(flipped))
        .bind(flipped)
        .bind(&u.checked_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let outcome = if flipped {
            Some(WriteOutcome { seq: log_change(&mut tx, "endpoint", id, "upsert", &u.checked_at).await? })
        } else {
            None
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn record_token(&self, t: &TokenRecord) -> StoreResult<()> {
        sqlx::query("insert into tokens (jti, sub, scopes, issued_at, expires_at) values ($1, $2, $3, $4, $5)")
            .bind(&t.jti)
            .bind(&t.sub)
            .bind(json_text(&t.scopes))
            .bind(&t.issued_at)
            .bind(&t.expires_at)
            .execute(&self.pool)
            .await
            .map_err(conflict_or_db)?;
        Ok(())
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let rows = sqlx::query(
            "select t.*, r.revoked_at from tokens t left join revoked_tokens r on r.jti = t.jti
             order by t.issued_at desc, t.jti",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, jti: &str, reason: Option<&str>) -> StoreResult<bool> {
        let done = sqlx::query(
            "insert into revoked_tokens (jti, revoked_at, reason) values ($1, $2, $3) on conflict (jti) do nothing",
        )
        .bind(jti)
        .bind(now_rfc3339())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn is_revoked(&self, jti: &str) -> StoreResult<bool> {
        // `select 1` is an int4 in PostgreSQL: ask for a bigint to decode as i64.
        let found: Option<i64> = sqlx::query_scalar("select 1::bigint from revoked_tokens where jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        // SQLite reads a negative limit as "no limit"; PostgreSQL rejects it but reads null so.
        let limit = (f.limit >= 0).then_some(f.limit);
        let rows = sqlx::query(
            "select * from audit
             where ($1::text is null or jurisdiction_id = $1::text)
               and ($2::text is null or at >= $2::text)
               and ($3::text is null or at < $3::text)
               and ($4::bigint is null or id > $4::bigint)
             order by id limit $5::bigint",
        )
        .bind(&f.jurisdiction_id)
        .bind(&f.since)
        .bind(&f.until)
        .bind(f.after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<Change>> {
        // As in `audit`, a negative limit means no limit.
        let limit = (limit >= 0).then_some(limit);
        let rows = sqlx::query(
            "select seq, entity, entity_id, op, at from changes where seq > $1 order by seq limit $2::bigint",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change_from_row).collect()
    }

    async fn subscribe(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<i64>>> {
        let pool = self.pool.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_millis(500);
            loop {
                match listen(&pool).await {
                    Ok(mut listener) => {
                        delay = std::time::Duration::from_millis(500);
                        // Changes may have been missed while not listening: ask for a catch-up.
                        if tx.send(0).await.is_err() {
                            return;
                        }
                        loop {
                            match listener.recv().await {
                                Ok(n) => {
                                    if tx.send(n.payload().parse().unwrap_or(0)).await.is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "change notifications interrupted; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot LISTEN for changes yet"),
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
        });
        Ok(Some(rx))
    }
}

/// A listener on the change channel, on its own connection.
async fn listen(pool: &PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}
