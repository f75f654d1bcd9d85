//! `GET /v1/jurisdictions` (filtered, paged by id), `GET /v1/jurisdictions/{id}`
//! and `GET /v1/jurisdictions/{id}/boundary` (a GeoJSON Feature).

use super::cache;
use super::params;
use crate::error::{ApiError, Path, Query};
use crate::geometry;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

/// Default and largest page size.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jurisdictions", get(list))
        .route("/v1/jurisdictions/{id}", get(one))
        .route("/v1/jurisdictions/{id}/boundary", get(boundary))
}

#[derive(Serialize)]
struct Page<'a> {
    index_version: i64,
    total: usize,
    items: Vec<&'a RawValue>,
    /// Pass as `after` to get the next page; null on the last page.
    next: Option<&'a str>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let tiers = params::tiers(&q)?;
    let parent = params::single(&q, "parent")?;
    let ocd_id = params::single(&q, "ocd_id")?;
    let needle = params::single(&q, "q")?.map(str::to_lowercase);
    let after = params::single(&q, "after")?;
    let limit = params::integer(&q, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as usize;
    let snapshot = state.index.current();
    let mut matches: Vec<_> = snapshot
        .entries()
        .iter()
        .filter(|e| tiers.is_none_or(|t| t.contains(e.record.tier)))
        .filter(|e| parent.is_none_or(|p| e.record.parent.as_deref() == Some(p)))
        .filter(|e| ocd_id.is_none_or(|o| e.record.ocd_id.as_deref() == Some(o)))
        .filter(|e| {
            needle
                .as_deref()
                .is_none_or(|n| e.record.name.to_lowercase().contains(n) || e.record.id.to_lowercase().contains(n))
        })
        .collect();
    matches.sort_unstable_by(|a, b| a.record.id.cmp(&b.record.id));
    let total = matches.len();
    let start = after.map_or(0, |a| matches.partition_point(|e| e.record.id.as_str() <= a));
    let page: Vec<_> = matches.iter().skip(start).take(limit).collect();
    let next = (start + page.len() < total).then(|| page.last().map(|e| e.record.id.as_str())).flatten();
    let etag = cache::etag(("jurisdictions", page.iter().map(|e| e.content_hash).collect::<Vec<_>>(), total));
    cache::respond(&state, &headers, &etag, "application/json", || {
        let body =
            Page { index_version: snapshot.version(), total, items: page.iter().map(|e| &*e.json).collect(), next };
        serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))
    })
}

async fn one(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let snapshot = state.index.current();
    let entry = snapshot.get(&id).ok_or_else(|| ApiError::NotFound(format!("jurisdiction `{id}` not found")))?;
    let etag = cache::etag(("jurisdiction", entry.content_hash));
    cache::respond(&state, &headers, &etag, "application/json", || {
        Ok::<_, ApiError>(entry.json.get().as_bytes().to_vec())
    })
}

async fn boundary(
    State(state): State<AppState>,
    request: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let simplify = match params::single(&q, "simplify")? {
        Some(raw) => Some(params::coordinate("simplify", raw, 0.0, 1_000_000.0)?),
        None => None,
    };
    let snapshot = state.index.current();
    let entry = snapshot.get(&id).ok_or_else(|| ApiError::NotFound(format!("jurisdiction `{id}` not found")))?.clone();
    let etag = cache::etag(("boundary", entry.content_hash, simplify.map(f64::to_bits)));
    drop(snapshot);
    if cache::matches(&request, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache::headers(&state, &etag)).into_response());
    }
    // Serialising a large boundary (or simplifying it) is CPU work: keep it off the async threads.
    let body = tokio::task::spawn_blocking(move || {
        let geom = match simplify {
            Some(m) if m > 0.0 => geometry::to_geojson_value(&geometry::simplify(&entry.boundary, m)),
            _ => geometry::to_geojson_value(&entry.boundary),
        };
        let r = &entry.record;
        let feature = json!({
            "type": "Feature",
            "id": r.id,
            "properties": {
                "id": r.id, "name": r.name, "tier": r.tier, "parent": r.parent,
                "source": r.source, "license": r.license, "area_km2": r.area_km2,
                "last_updated": r.updated_at, "version": r.version,
            },
            "geometry": geom,
        });
        serde_json::to_vec(&feature)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut headers = cache::headers(&state, &etag);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/geo+json"));
    Ok((headers, body).into_response())
}
