//! The Open311 services harvester: keeps each endpoint's service list and
//! health fresh by fetching its GeoReport v2 `services.json` (or
//! `services.xml`) and, when known, its Service Discovery document.
//!
//! - [`fetch`]: one hardened HTTP GET (SSRF guard checked after DNS and on
//!   every redirect, size and time limits, conditional GET, no credentials).
//! - [`parse`]: GeoReport v2 service lists and discovery documents, JSON and XML.
//! - this module: one harvest of one endpoint ([`harvest_endpoint`]) and the
//!   background loop ([`spawn`]) that harvests every endpoint when it is due.
//!
//! What a harvest writes:
//! - **health**, every attempt: `status` (`up`/`down`), `last_checked`,
//!   `last_ok`, `http_status`, `latency_ms`, `last_error`,
//!   `consecutive_failures` ([`crate::store::Store::record_health`]). Health
//!   is not a registry edit: no audit entry, and a change-log row (so that
//!   every instance's index shows it) only when `status` flips;
//! - **services**, when the list fetched differs from the harvested services
//!   held: the endpoint's services marked `harvested` are replaced, services
//!   entered by hand (`manual`) are kept and win over a harvested service of
//!   the same code. This is a normal audited endpoint write
//!   (`endpoint.harvest`, actor `harvester`) made only if nobody changed the
//!   endpoint while it was being fetched (its version is checked);
//! - the discovery document's `changeset` for the endpoint, when it gives one.
//!
//! When is an endpoint due? Never checked: at once. After a success: one
//! `interval` after the last check. After `n` failures in a row: after
//! `interval × 2^(n-1)`, capped at `max_backoff` ([`fetch::backoff`]).
//!
//! Several instances sharing one PostgreSQL each run their own loop; run the
//! harvester on one of them (`--harvest-interval 0` on the others).

pub mod fetch;
pub mod parse;

use crate::error::ApiError;
use crate::index;
use crate::model::{Endpoint, Service, ServiceSource};
use crate::store::{Actor, HealthUpdate, StoreError};
use crate::AppState;
use fetch::{FetchError, FetchOutcome, FetchPolicy, Fetcher, Format, Validators};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Harvester settings.
#[derive(Debug, Clone)]
pub struct HarvestSettings {
    /// How often each endpoint is harvested; `None` turns the background loop off
    /// (`POST /admin/v1/endpoints/{id}/harvest` still works).
    pub interval: Option<Duration>,
    /// Most endpoints fetched at once.
    pub concurrency: usize,
    /// Longest wait after repeated failures.
    pub max_backoff: Duration,
    /// Limits and address rules of every fetch.
    pub policy: FetchPolicy,
}

impl Default for HarvestSettings {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(3600)),
            concurrency: 4,
            max_backoff: Duration::from_secs(24 * 3600),
            policy: FetchPolicy::default(),
        }
    }
}

/// What one harvest of one endpoint did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HarvestReport {
    /// The endpoint.
    pub endpoint_id: String,
    /// `ok` (a new list was fetched), `not_modified` (304) or `failed`.
    pub outcome: &'static str,
    /// The URL fetched.
    pub url: String,
    /// Services in the list fetched (0 when not modified or failed).
    pub services_found: usize,
    /// Whether the endpoint's harvested services were replaced.
    pub services_changed: bool,
    /// Notes on skipped or repaired entries, and on the discovery document.
    pub warnings: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The services URL to fetch and its format: JSON unless the endpoint lists only XML formats.
fn target(e: &Endpoint) -> Result<(url::Url, Format), FetchError> {
    let json = e.formats.is_empty() || e.formats.iter().any(|f| f.to_ascii_lowercase().contains("json"));
    let format = if json { Format::Json } else { Format::Xml };
    Ok((fetch::services_url(&e.url, e.open311_jurisdiction_id.as_deref(), format)?, format))
}

/// Why a harvest failed: the message, the HTTP status if any, and the kind
/// of failure (the `error` label of the harvest metric).
type Failure = (String, Option<u16>, &'static str);

/// The list fetched, or why not.
enum Fetch {
    New { list: parse::ServiceList, validators: Validators },
    NotModified { validators: Validators },
}

async fn fetch_services(
    fetcher: &Fetcher,
    url: &url::Url,
    format: Format,
    validators: &Validators,
) -> Result<(Fetch, Option<u16>), Failure> {
    match fetcher.get(url, format.accept(), validators).await {
        Ok(FetchOutcome::NotModified { validators, .. }) => Ok((Fetch::NotModified { validators }, Some(304))),
        Ok(FetchOutcome::Fetched(f)) => match parse::parse_service_list(&f.body, f.content_type.as_deref()) {
            Ok(list) => Ok((Fetch::New { list, validators: f.validators }, Some(f.status))),
            Err(e) => Err((format!("unusable service list: {e}"), Some(f.status), "unusable_document")),
        },
        Err(e) => Err((e.to_string(), e.http_status(), e.kind())),
    }
}

/// The discovery document's changeset for this endpoint, or a warning.
async fn discovery_changeset(fetcher: &Fetcher, e: &Endpoint) -> Result<Option<String>, String> {
    let Some(raw) = e.discovery_url.as_deref() else { return Ok(None) };
    let url = url::Url::parse(raw).map_err(|err| format!("discovery URL: {err}"))?;
    match fetcher.get(&url, Format::Json.accept(), &Validators::default()).await {
        Ok(FetchOutcome::Fetched(f)) => {
            let doc = parse::parse_discovery(&f.body, f.content_type.as_deref())
                .map_err(|err| format!("discovery document: {err}"))?;
            let base = e.url.trim_end_matches('/');
            let mine = doc.endpoints.iter().find(|d| d.url.trim_end_matches('/') == base);
            Ok(mine.and_then(|d| d.changeset.clone()).or(doc.changeset))
        }
        Ok(FetchOutcome::NotModified { .. }) => Ok(None),
        Err(err) => Err(format!("discovery document: {err}")),
    }
}

/// The endpoint's services after a harvest: manual ones as they are, then the
/// harvested list minus codes a manual service already has.
pub fn merge_services(current: &[Service], harvested: Vec<Service>) -> Vec<Service> {
    let mut out: Vec<Service> = current.iter().filter(|s| s.source == ServiceSource::Manual).cloned().collect();
    for mut s in harvested {
        if out.iter().any(|m| m.service_code == s.service_code) {
            continue;
        }
        s.source = ServiceSource::Harvested;
        out.push(s);
    }
    out
}

/// Harvests one endpoint now and records the outcome. Errors only when the
/// endpoint does not exist or the store fails; a failed fetch is a report
/// with `outcome: "failed"` (and is recorded in the endpoint's health).
pub async fn harvest_endpoint(state: &AppState, id: &str) -> Result<HarvestReport, ApiError> {
    let e =
        state.store.get_endpoint(id).await?.ok_or_else(|| ApiError::NotFound(format!("endpoint `{id}` not found")))?;
    let fetcher =
        Fetcher::new(state.settings.harvest.policy.clone()).map_err(|err| ApiError::Internal(err.to_string()))?;
    let started = Instant::now();
    let validators = Validators { etag: e.health.etag.clone(), last_modified: e.health.last_modified.clone() };
    let (url, result) = match target(&e) {
        Ok((url, format)) => {
            let r = fetch_services(&fetcher, &url, format, &validators).await;
            (url.to_string(), r)
        }
        Err(err) => (e.url.clone(), Err((err.to_string(), None, err.kind()))),
    };
    let latency = started.elapsed();
    let mut warnings = Vec::new();
    let changeset = match &result {
        Ok(_) => match discovery_changeset(&fetcher, &e).await {
            Ok(c) => c,
            Err(w) => {
                warnings.push(w);
                None
            }
        },
        Err(_) => None,
    };
    let checked_at = crate::store::now_rfc3339();
    let mut health = e.health.clone();
    health.latency_ms = Some(latency.as_millis().min(u128::from(u64::MAX)) as u64);
    let mut report = HarvestReport {
        endpoint_id: e.id.clone(),
        outcome: "failed",
        url,
        services_found: 0,
        services_changed: false,
        warnings: Vec::new(),
        error: None,
    };
    let mut new_services = None;
    let mut error_kind = "none";
    match result {
        Ok((fetched, status)) => {
            health.http_status = status;
            health.last_error = None;
            health.consecutive_failures = 0;
            match fetched {
                Fetch::New { list, validators, .. } => {
                    report.outcome = "ok";
                    report.services_found = list.services.len();
                    warnings.extend(list.warnings);
                    if list.truncated {
                        warnings.push(format!("only the first {} services were kept", parse::MAX_SERVICES));
                    }
                    health.etag = validators.etag;
                    health.last_modified = validators.last_modified;
                    new_services = Some(list.services);
                }
                Fetch::NotModified { validators } => {
                    report.outcome = "not_modified";
                    health.etag = validators.etag;
                    health.last_modified = validators.last_modified;
                }
            }
        }
        Err((error, status, kind)) => {
            error_kind = kind;
            health.http_status = status;
            health.last_error = Some(error.clone());
            health.consecutive_failures = health.consecutive_failures.saturating_add(1);
            report.error = Some(error);
        }
    }
    report.warnings = warnings;
    let ok = report.error.is_none();
    state.metrics.harvest(report.outcome, error_kind, latency);

    let _guard = state.write_lock.lock().await;
    // Services (an audited endpoint write), only when something changed.
    let services = new_services.map(|list| merge_services(&e.services, list));
    let services_changed = services.as_ref().is_some_and(|s| *s != e.services);
    let changeset_changed = changeset.as_ref().is_some_and(|c| e.changeset.as_ref() != Some(c));
    if services_changed || changeset_changed {
        let mut updated = e.clone();
        if let Some(s) = services {
            updated.services = s;
        }
        if let Some(c) = changeset {
            updated.changeset = Some(c);
        }
        match state
            .store
            .update_endpoint(&updated, Some(e.version), &Actor::local("harvester"), "endpoint.harvest")
            .await
        {
            Ok(_) => report.services_changed = services_changed,
            Err(StoreError::Stale { .. }) => {
                report.warnings.push("the endpoint changed while it was fetched; its services were left alone".into());
            }
            Err(err) => return Err(err.into()),
        }
    }
    let update = HealthUpdate { status: if ok { "up" } else { "down" }.to_owned(), checked_at, ok, health };
    match state.store.record_health(&e.id, &update).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => {}
        Err(err) => return Err(err.into()),
    }
    index::follower::catch_up(&state.index, &state.store)
        .await
        .map_err(|err| ApiError::Internal(format!("index refresh after a harvest: {err}")))?;
    tracing::info!(
        endpoint = %report.endpoint_id,
        outcome = report.outcome,
        services = report.services_found,
        changed = report.services_changed,
        error = report.error.as_deref().unwrap_or(""),
        latency_ms = latency.as_millis() as u64,
        "harvested"
    );
    Ok(report)
}

/// When `e` is next due, as a wait from its last check (`None`: never checked, due now).
pub fn wait_after(e: &Endpoint, settings: &HarvestSettings, interval: Duration) -> Option<Duration> {
    e.last_checked.as_ref()?;
    Some(match e.health.consecutive_failures {
        0 => interval,
        n => fetch::backoff(n, interval, settings.max_backoff.max(interval)),
    })
}

/// Whether `e` is due now.
fn due(e: &Endpoint, settings: &HarvestSettings, interval: Duration, now: time::OffsetDateTime) -> bool {
    let Some(wait) = wait_after(e, settings, interval) else { return true };
    let Some(last) = e
        .last_checked
        .as_deref()
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
    else {
        return true;
    };
    now - last >= wait
}

/// One pass: harvests every due endpoint, at most `concurrency` at once.
pub async fn run_once(state: &AppState) -> Result<usize, ApiError> {
    let settings = &state.settings.harvest;
    let Some(interval) = settings.interval else { return Ok(0) };
    let now = time::OffsetDateTime::now_utc();
    let due: Vec<String> = state
        .store
        .load_endpoints()
        .await?
        .into_iter()
        .filter(|e| due(e, settings, interval, now))
        .map(|e| e.id)
        .collect();
    let limit = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for id in due {
        let (state, limit) = (state.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            if let Err(e) = harvest_endpoint(&state, &id).await {
                tracing::warn!(endpoint = %id, error = %e, "harvest not recorded");
            }
        });
    }
    let mut done = 0;
    while tasks.join_next().await.is_some() {
        done += 1;
    }
    Ok(done)
}

/// Starts the background loop (when an interval is configured). It wakes every
/// quarter interval (between 1 s and 60 s) and harvests what is due.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let interval = state.settings.harvest.interval?;
    let tick = (interval / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    Some(tokio::spawn(async move {
        loop {
            match run_once(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(endpoints = n, "harvest pass done"),
                Err(e) => tracing::warn!(error = %e, "harvest pass failed"),
            }
            tokio::time::sleep(tick).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(code: &str, source: ServiceSource) -> Service {
        Service {
            service_code: code.into(),
            service_name: code.into(),
            description: None,
            metadata: false,
            kind: "realtime".into(),
            keywords: vec![],
            group: None,
            source,
        }
    }

    #[test]
    fn manual_services_survive_and_win() {
        let current = vec![svc("a", ServiceSource::Manual), svc("old", ServiceSource::Harvested)];
        let merged =
            merge_services(&current, vec![svc("a", ServiceSource::Harvested), svc("b", ServiceSource::Harvested)]);
        let got: Vec<(&str, ServiceSource)> = merged.iter().map(|s| (s.service_code.as_str(), s.source)).collect();
        assert_eq!(got, [("a", ServiceSource::Manual), ("b", ServiceSource::Harvested)]);
    }
}
