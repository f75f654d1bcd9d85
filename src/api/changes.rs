//! `GET /v1/changes?since=SEQ`: the change feed for mirrors and aggregators
//! (after the idea of RFC 6739's synchronisation of LoST mappings).
//!
//! Every write appends rows to the store's change log; each row's `seq` is
//! the index version after it. The feed reads the log after `since`, at most
//! `limit` rows (default 100, at most 1,000), and answers with the *current*
//! state of each record those rows name, oldest row first:
//!
//! - a record that exists is sent whole (`op: "upsert"`): a jurisdiction as a
//!   GeoJSON Feature with its boundary (omitted with `boundaries=false`), an
//!   endpoint with its services;
//! - a record that no longer exists is a tombstone (`op: "delete"`, no record);
//! - a record named by several rows of the page is sent once, at its last row.
//!
//! Because each item carries the current state, not the state at its row, a
//! mirror that applies the pages in order (upsert replaces, delete removes)
//! and follows `next` until `more` is false holds exactly the registry as of
//! some moment at or after `latest_seq`. `since=0` is a full dump, since the
//! log holds a row for every record ever written.

use super::cache;
use super::params;
use crate::error::{ApiError, Query};
use crate::model::Endpoint;
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// Default and largest page.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/changes", get(changes))
}

/// One item of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedItem {
    /// The change-log row this item answers.
    pub seq: i64,
    /// When that row was written.
    pub at: String,
    /// `jurisdiction` or `endpoint`.
    pub entity: String,
    /// The record's key.
    pub id: String,
    /// `upsert` (the record follows) or `delete` (a tombstone).
    #[schema(value_type = String, pattern = "^(upsert|delete)$")]
    pub op: &'static str,
    /// The current record, for upserts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<FeedRecord>,
}

/// The current state of a record in the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FeedRecord {
    /// A jurisdiction as a GeoJSON Feature (`geometry` null without boundaries).
    Jurisdiction(Box<JurisdictionFeature>),
    /// An endpoint with its services.
    Endpoint(Box<Endpoint>),
}

/// A jurisdiction in the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = FeedJurisdiction)]
pub struct JurisdictionFeature {
    /// Always `Feature`.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^Feature$")]
    pub kind: &'static str,
    /// The jurisdiction id.
    pub id: String,
    /// The stored boundary geometry (a GeoJSON `MultiPolygon`), verbatim, or null with `boundaries=false`.
    #[schema(value_type = Option<Object>)]
    pub geometry: Option<Box<RawValue>>,
    /// Every field of the record.
    pub properties: crate::model::Jurisdiction,
}

/// One page of the change feed.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ChangesPage)]
pub(crate) struct Page {
    /// The `since` asked for.
    since: i64,
    /// The latest sequence number in the log.
    latest_seq: i64,
    /// Pass as `since` for the next page.
    next: i64,
    /// Whether the log holds rows after `next`.
    more: bool,
    /// Items in this page.
    count: usize,
    /// The items, oldest row first.
    changes: Vec<FeedItem>,
}

/// The query parameters of `/v1/changes` (OpenAPI only; the handler reads them one by one).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// List the changes after this change-log sequence number (0: everything).
    #[param(minimum = 0)]
    pub since: i64,
    /// At most this many rows, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// Whether jurisdictions carry their boundary (default true).
    pub boundaries: Option<bool>,
}

/// The records changed after a change-log sequence number, for mirrors.
#[utoipa::path(
    get,
    path = "/v1/changes",
    tag = "public",
    operation_id = "changes",
    params(ChangesParams),
    responses(
        (status = 200, description = "One page of the change feed", body = Page),
        (status = 304, description = "`If-None-Match` matched the answer's ETag"),
        (status = 400, description = "A parameter is missing or wrong; `field` names it"),
    )
)]
pub(crate) async fn changes(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let since = match params::single(&q, "since")? {
        Some(raw) => raw.trim().parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            ApiError::field("since", format!("`since` must be a sequence number >= 0, got `{}`", raw.escape_debug()))
        })?,
        None => return Err(ApiError::missing("since")),
    };
    let limit = params::integer(&q, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let boundaries = params::boolean(&q, "boundaries")?.unwrap_or(true);
    let store = &state.store;
    let latest = store.latest_seq().await?;
    let etag = cache::etag(("changes", since, limit, boundaries, latest));
    if cache::matches(&headers, &etag) {
        return cache::respond(&state, &headers, &etag, "application/json", || Ok(Vec::new()));
    }
    let rows = store.changes_since(since, limit as i64).await?;
    let next = rows.last().map_or(since.max(0).min(latest), |r| r.seq);
    // The last row naming each record wins.
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        last.insert((r.entity.as_str(), r.entity_id.as_str()), i);
    }
    let mut items = Vec::with_capacity(last.len());
    for (i, r) in rows.iter().enumerate() {
        if last.get(&(r.entity.as_str(), r.entity_id.as_str())) != Some(&i) {
            continue;
        }
        let record = match r.entity.as_str() {
            "jurisdiction" => match store.get_jurisdiction(&r.entity_id).await? {
                Some(j) => {
                    let geometry = if boundaries {
                        Some(RawValue::from_string(j.boundary).map_err(|e| ApiError::Internal(e.to_string()))?)
                    } else {
                        None
                    };
                    Some(FeedRecord::Jurisdiction(Box::new(JurisdictionFeature {
                        kind: "Feature",
                        id: j.record.id.clone(),
                        geometry,
                        properties: j.record,
                    })))
                }
                None => None,
            },
            "endpoint" => store.get_endpoint(&r.entity_id).await?.map(|e| FeedRecord::Endpoint(Box::new(e))),
            other => return Err(ApiError::Internal(format!("unknown entity `{other}` in the change log"))),
        };
        items.push(FeedItem {
            seq: r.seq,
            at: r.at.clone(),
            entity: r.entity.clone(),
            id: r.entity_id.clone(),
            op: if record.is_some() { "upsert" } else { "delete" },
            record,
        });
    }
    let page = Page { since, latest_seq: latest, next, more: next < latest, count: items.len(), changes: items };
    cache::respond(&state, &headers, &etag, "application/json", || {
        serde_json::to_vec(&page).map_err(|e| ApiError::Internal(e.to_string()))
    })
}
