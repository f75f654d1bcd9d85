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

/// One page of jurisdictions.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = JurisdictionPage)]
pub(crate) struct Page<'a> {
    /// The registry's change-log sequence number the answer was computed from.
    index_version: i64,
    /// Matching jurisdictions in all pages.
    total: usize,
    /// This page, by id.
    #[schema(value_type = Vec<crate::index::JurisdictionView>)]
    items: Vec<&'a RawValue>,
    /// Pass as `after` to get the next page; null on the last page.
    next: Option<&'a str>,
}

/// The query parameters of `GET /v1/jurisdictions` (OpenAPI only; the handler reads them one by one).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only these tiers (a comma-separated list).
    #[param(
        pattern = r"^ *(country|state|county|place|special_district|other)( *, *(country|state|county|place|special_district|other))* *$"
    )]
    pub tier: Option<String>,
    /// Only children of this jurisdiction id.
    pub parent: Option<String>,
    /// Only the jurisdiction with this Open Civic Data id.
    pub ocd_id: Option<String>,
    /// Case-insensitive substring of the name or id.
    pub q: Option<String>,
    /// Start after this id (the previous page's `next`).
    pub after: Option<String>,
    /// Page size, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// Jurisdictions filtered and paged by id.
#[utoipa::path(
    get,
    path = "/v1/jurisdictions",
    tag = "public",
    operation_id = "list_jurisdictions",
    params(ListParams),
    responses(
        (status = 200, description = "One page of jurisdictions", body = Page),
        (status = 304, description = "`If-None-Match` matched the answer's ETag"),
        (status = 400, description = "A parameter is wrong; `field` names it"),
    )
)]
pub(crate) async fn list(
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

/// One jurisdiction with its endpoints and services.
#[utoipa::path(
    get,
    path = "/v1/jurisdictions/{id}",
    tag = "public",
    operation_id = "get_jurisdiction",
    params(("id" = String, Path, description = "Jurisdiction id, e.g. `us-county:18105`")),
    responses(
        (status = 200, description = "The jurisdiction", body = crate::index::JurisdictionView),
        (status = 304, description = "`If-None-Match` matched the answer's ETag"),
        (status = 400, description = "The path is not valid UTF-8"),
        (status = 404, description = "No such jurisdiction"),
    )
)]
pub(crate) async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.index.current();
    let entry = snapshot.get(&id).ok_or_else(|| ApiError::NotFound(format!("jurisdiction `{id}` not found")))?;
    let etag = cache::etag(("jurisdiction", entry.content_hash));
    cache::respond(&state, &headers, &etag, "application/json", || {
        Ok::<_, ApiError>(entry.json.get().as_bytes().to_vec())
    })
}

/// The query parameters of the boundary route (OpenAPI only).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoundaryParams {
    /// Simplify the boundary to this tolerance in metres (0 to 1,000,000); never drops a polygon.
    #[param(minimum = 0.0, maximum = 1_000_000.0)]
    pub simplify: Option<f64>,
}

/// The properties of a boundary Feature.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BoundaryProperties {
    /// Jurisdiction id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Tier.
    pub tier: crate::model::Tier,
    /// Parent jurisdiction id.
    pub parent: Option<String>,
    /// Where the boundary comes from.
    pub source: Option<String>,
    /// Licence of the boundary data.
    pub license: Option<String>,
    /// Geodesic area in km².
    pub area_km2: f64,
    /// RFC 3339 time of the last change.
    pub last_updated: String,
    /// Record version.
    pub version: i64,
}

/// A jurisdiction's boundary as a GeoJSON Feature (the OpenAPI schema of
/// what [`boundary`] builds with `json!`; `tests/openapi.rs` checks real answers against it).
#[derive(Serialize, utoipa::ToSchema)]
pub struct BoundaryFeature {
    /// Always `Feature`.
    #[serde(rename = "type")]
    #[schema(pattern = "^Feature$")]
    pub kind: String,
    /// Jurisdiction id.
    pub id: String,
    /// The record's main fields.
    pub properties: BoundaryProperties,
    /// A GeoJSON `MultiPolygon` (WGS84 lon/lat).
    #[schema(value_type = Object)]
    pub geometry: serde_json::Value,
}

/// A jurisdiction's boundary as a GeoJSON Feature.
#[utoipa::path(
    get,
    path = "/v1/jurisdictions/{id}/boundary",
    tag = "public",
    operation_id = "get_jurisdiction_boundary",
    params(("id" = String, Path, description = "Jurisdiction id"), BoundaryParams),
    responses(
        (status = 200, description = "The boundary", body = BoundaryFeature, content_type = "application/geo+json"),
        (status = 304, description = "`If-None-Match` matched the answer's ETag"),
        (status = 400, description = "A parameter is wrong; `field` names it"),
        (status = 404, description = "No such jurisdiction"),
    )
)]
pub(crate) async fn boundary(
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
        let boundary = entry.boundary();
        let geom = match simplify {
            Some(m) if m > 0.0 => geometry::to_geojson_value(&geometry::simplify(&boundary, m)),
            _ => geometry::to_geojson_value(&boundary),
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
