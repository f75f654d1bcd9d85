//! Authenticated registry writes under `/admin/v1/`.
//!
//! Every handler here takes a [`Principal`] extractor as its first argument,
//! so no admin route is open: a request without a valid, unrevoked bearer
//! token never reaches a handler. Scopes: `admin` may do everything;
//! `jurisdiction:X` may manage the endpoints and services of X only.
//!
//! Each write holds the instance's write lock, commits one store transaction
//! (which also appends to the change log and the audit log), then publishes a
//! new index snapshot before answering, so the next `/v1/resolve` on this
//! instance already sees it.

pub mod bodies;

use crate::auth::{self, Principal};
use crate::error::{ApiError, Json, Path, Query};
use crate::import::{self, ImportOptions, OnInvalid};
use crate::index;
use crate::model::{Endpoint, Service};
use crate::store::{Actor, AuditFilter, StoredJurisdiction, WriteOutcome};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use bodies::{EndpointPatch, EndpointWrite, JurisdictionFeature, JurisdictionPatch, ServiceWrite};
use serde_json::json;

/// The admin routes, to be nested at the root (paths include `/admin/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/whoami", get(whoami))
        .route("/admin/v1/jurisdictions", post(create_jurisdiction))
        .route(
            "/admin/v1/jurisdictions/{id}",
            get(get_jurisdiction).patch(patch_jurisdiction).delete(delete_jurisdiction),
        )
        .route("/admin/v1/jurisdictions/{id}/endpoints", post(create_endpoint).get(list_endpoints))
        .route("/admin/v1/endpoints/{id}", get(get_endpoint).patch(patch_endpoint).delete(delete_endpoint))
        .route("/admin/v1/endpoints/{id}/services", put(replace_services))
        .route("/admin/v1/endpoints/{id}/harvest", post(harvest_now))
        .route("/admin/v1/endpoints/{id}/services/{code}", put(upsert_service).delete(delete_service))
        .route("/admin/v1/import", post(bulk_import))
        .route("/admin/v1/audit", get(audit))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(keys) = state.keys.as_ref() else {
            return Err(ApiError::Unavailable(
                "the admin API is not configured on this instance (no token keys)".into(),
            ));
        };
        let token = auth::bearer_token(&parts.headers)?;
        let principal = keys.verify(token).inspect_err(|e| tracing::debug!(reason = %e, "token refused"))?;
        if state.store.is_revoked(&principal.jti).await? {
            tracing::debug!(sub = %principal.sub, jti = %principal.jti, "token refused: revoked");
            return Err(auth::AuthError::Revoked.into());
        }
        Ok(principal)
    }
}

/// The answer of `GET /admin/v1/whoami` (OpenAPI schema; built with `json!`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// Token subject.
    pub sub: String,
    /// Token id.
    pub jti: String,
    /// Scopes: `admin` or `jurisdiction:ID`.
    pub scopes: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

/// A jurisdiction as the admin API answers it: the stored record with its
/// boundary and endpoints (OpenAPI schema of what `jurisdiction_json` builds).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AdminJurisdiction {
    /// The record.
    #[serde(flatten)]
    pub record: crate::model::Jurisdiction,
    /// Its endpoints with their services.
    pub endpoints: Vec<Endpoint>,
    /// Its boundary, a GeoJSON `MultiPolygon`.
    #[schema(value_type = Object)]
    pub boundary: serde_json::Value,
}

/// The answer of `GET /admin/v1/jurisdictions/{id}/endpoints`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    /// The endpoints.
    pub items: Vec<Endpoint>,
}

/// The answer of `POST /admin/v1/endpoints/{id}/harvest`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HarvestAnswer {
    /// What the harvest did.
    pub report: crate::harvest::HarvestReport,
    /// The endpoint afterwards.
    pub endpoint: Endpoint,
}

/// The answer of `POST /admin/v1/import`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ImportAnswer {
    /// Jurisdictions imported.
    pub imported: usize,
    /// The index version after the import.
    pub index_version: i64,
}

/// The answer of `GET /admin/v1/audit`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub items: Vec<crate::store::AuditEntry>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<i64>,
}

fn actor(p: &Principal) -> Actor {
    Actor { sub: p.sub.clone(), jti: Some(p.jti.clone()) }
}

/// The `If-Match` version, if one was sent: `"7"` means version 7; `*` means any.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let v = v.to_str().map_err(|_| ApiError::field("If-Match", "If-Match must be ASCII"))?.trim();
    if v == "*" {
        return Ok(None);
    }
    let inner = v
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| ApiError::field("If-Match", "If-Match must be a quoted ETag such as \"3\""))?;
    // An ETag this server never issued cannot match any version.
    inner.parse::<i64>().map(Some).or(Ok(Some(-1)))
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// A record answer with its ETag.
fn record(status: StatusCode, version: i64, body: serde_json::Value) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(header::ETAG, etag(version));
    res
}

/// Runs one write under the instance's write lock, then applies the change
/// log up to (at least) that write, so the answer's effects are visible here
/// before the response leaves.
async fn write<F, Fut>(state: &AppState, write: F) -> Result<WriteOutcome, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<WriteOutcome, ApiError>>,
{
    let _guard = state.write_lock.lock().await;
    let outcome = write().await?;
    index::follower::catch_up(&state.index, &state.store)
        .await
        .map_err(|e| ApiError::Internal(format!("index refresh after seq {}: {e}", outcome.seq)))?;
    Ok(outcome)
}

/// The token's subject, id, scopes and expiry.
#[utoipa::path(
    get,
    path = "/admin/v1/whoami",
    tag = "admin",
    operation_id = "whoami",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Who the token speaks for", body = WhoAmI),
    )
)]
pub(crate) async fn whoami(p: Principal) -> Json<serde_json::Value> {
    Json(
        json!({"sub": p.sub, "jti": p.jti, "scopes": p.scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "exp": p.exp}),
    )
}

fn jurisdiction_json(j: &StoredJurisdiction, endpoints: &[Endpoint]) -> serde_json::Value {
    let mut v = serde_json::to_value(&j.record).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("endpoints".into(), serde_json::to_value(endpoints).unwrap_or_default());
        obj.insert("boundary".into(), serde_json::from_str(&j.boundary).unwrap_or_default());
    }
    v
}

async fn load_jurisdiction(state: &AppState, id: &str) -> Result<StoredJurisdiction, ApiError> {
    state.store.get_jurisdiction(id).await?.ok_or_else(|| ApiError::NotFound(format!("jurisdiction `{id}` not found")))
}

async fn load_endpoint(state: &AppState, id: &str) -> Result<Endpoint, ApiError> {
    state.store.get_endpoint(id).await?.ok_or_else(|| ApiError::NotFound(format!("endpoint `{id}` not found")))
}

/// Checks an explicit parent: it must exist and not be the jurisdiction itself.
fn check_parent(state: &AppState, id: &str, parent: Option<&str>) -> Result<(), ApiError> {
    match parent {
        Some(p) if p == id => Err(ApiError::field("parent", "a jurisdiction cannot be its own parent")),
        Some(p) if state.index.current().get(p).is_none() => {
            Err(ApiError::field("parent", format!("parent `{p}` is not a known jurisdiction")))
        }
        _ => Ok(()),
    }
}

/// Creates a jurisdiction from a GeoJSON Feature (`admin` scope).
#[utoipa::path(
    post,
    path = "/admin/v1/jurisdictions",
    tag = "admin",
    operation_id = "create_jurisdiction",
    security(("bearer" = [])),
    request_body(content = bodies::JurisdictionFeature, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `Location` names its public URL, `ETag` its version", body = AdminJurisdiction),
        (status = 400, description = "The feature is invalid; `field` names the member at fault"),
        (status = 409, description = "A jurisdiction with this id or `ocd_id` exists"),
    )
)]
pub(crate) async fn create_jurisdiction(
    p: Principal,
    State(state): State<AppState>,
    Json(body): Json<JurisdictionFeature>,
) -> Result<Response, ApiError> {
    p.require_admin()?;
    let (mut stored, boundary) = body.into_stored(state.settings.max_vertices)?;
    check_parent(&state, &stored.record.id, stored.record.parent.as_deref())?;
    if stored.record.parent.is_none() {
        stored.record.parent =
            import::parent_in(&state.index.current(), stored.record.tier, &boundary, &mut Vec::new());
    }
    let id = stored.record.id.clone();
    write(&state, || async {
        let outcome = state.store.create_jurisdiction(&stored, &actor(&p)).await?;
        Ok(outcome)
    })
    .await?;
    let saved = load_jurisdiction(&state, &id).await?;
    let mut res = record(StatusCode::CREATED, saved.record.version, jurisdiction_json(&saved, &[]));
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/jurisdictions/{}", urlencode(&id))) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A jurisdiction with its boundary and endpoints (`admin` or its `jurisdiction:` scope).
#[utoipa::path(
    get,
    path = "/admin/v1/jurisdictions/{id}",
    tag = "admin",
    operation_id = "admin_get_jurisdiction",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Jurisdiction id")),
    responses(
        (status = 200, description = "The record; `ETag` is its version", body = AdminJurisdiction),
        (status = 404, description = "No such jurisdiction"),
    )
)]
pub(crate) async fn get_jurisdiction(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.require_jurisdiction(&id)?;
    let j = load_jurisdiction(&state, &id).await?;
    let endpoints = state.store.endpoints_of(&id).await?;
    Ok(record(StatusCode::OK, j.record.version, jurisdiction_json(&j, &endpoints)))
}

/// Changes fields of a jurisdiction; `null` clears an optional one (`admin` scope).
#[utoipa::path(
    patch,
    path = "/admin/v1/jurisdictions/{id}",
    tag = "admin",
    operation_id = "patch_jurisdiction",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Jurisdiction id"), ("If-Match" = Option<String>, Header, description = "The record's ETag (its version, e.g. `\"3\"`) or `*`; the write is refused with 412 when the record changed")),
    request_body(content = bodies::JurisdictionPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated record", body = AdminJurisdiction),
        (status = 400, description = "A field is invalid; `field` names it"),
        (status = 404, description = "No such jurisdiction"),
        (status = 409, description = "The change conflicts with another record (e.g. a duplicate `ocd_id`)"),
        (status = 412, description = "`If-Match` does not match the current version"),
    )
)]
pub(crate) async fn patch_jurisdiction(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<JurisdictionPatch>,
) -> Result<Response, ApiError> {
    p.require_admin()?;
    let expect = if_match(&headers)?;
    let current = load_jurisdiction(&state, &id).await?;
    let updated = patch.apply(current, state.settings.max_vertices)?;
    check_parent(&state, &id, updated.record.parent.as_deref())?;
    write(&state, || async {
        let outcome = state.store.update_jurisdiction(&updated, expect, &actor(&p)).await?;
        Ok(outcome)
    })
    .await?;
    let saved = load_jurisdiction(&state, &id).await?;
    let endpoints = state.store.endpoints_of(&id).await?;
    Ok(record(StatusCode::OK, saved.record.version, jurisdiction_json(&saved, &endpoints)))
}

/// The query of `DELETE /admin/v1/jurisdictions/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// Also delete its endpoints (default false: refused while it has some).
    #[serde(default)]
    cascade: bool,
}

/// Deletes a jurisdiction (`admin` scope); with endpoints only with `cascade=true`.
#[utoipa::path(
    delete,
    path = "/admin/v1/jurisdictions/{id}",
    tag = "admin",
    operation_id = "delete_jurisdiction",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Jurisdiction id"), DeleteParams, ("If-Match" = Option<String>, Header, description = "The record's ETag (its version, e.g. `\"3\"`) or `*`; the write is refused with 412 when the record changed")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A parameter is invalid"),
        (status = 404, description = "No such jurisdiction"),
        (status = 409, description = "It still has endpoints (use `cascade=true`) or is another jurisdiction's parent"),
        (status = 412, description = "`If-Match` does not match the current version"),
    )
)]
pub(crate) async fn delete_jurisdiction(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<DeleteParams>,
) -> Result<Response, ApiError> {
    p.require_admin()?;
    let expect = if_match(&headers)?;
    write(&state, || async { Ok(state.store.delete_jurisdiction(&id, q.cascade, expect, &actor(&p)).await?) }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The endpoints of a jurisdiction.
#[utoipa::path(
    get,
    path = "/admin/v1/jurisdictions/{id}/endpoints",
    tag = "admin",
    operation_id = "list_endpoints",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Jurisdiction id")),
    responses(
        (status = 200, description = "Its endpoints", body = EndpointList),
        (status = 404, description = "No such jurisdiction"),
    )
)]
pub(crate) async fn list_endpoints(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.require_jurisdiction(&id)?;
    load_jurisdiction(&state, &id).await?;
    Ok(Json(json!({"items": state.store.endpoints_of(&id).await?})).into_response())
}

/// Registers an Open311 endpoint of a jurisdiction (Service Discovery fields).
#[utoipa::path(
    post,
    path = "/admin/v1/jurisdictions/{id}/endpoints",
    tag = "admin",
    operation_id = "create_endpoint",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Jurisdiction id")),
    request_body(content = bodies::EndpointWrite, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `Location` names it, `ETag` is its version", body = Endpoint),
        (status = 400, description = "A field is invalid; `field` names it"),
        (status = 404, description = "No such jurisdiction"),
        (status = 409, description = "The endpoint conflicts with an existing one"),
    )
)]
pub(crate) async fn create_endpoint(
    p: Principal,
    State(state): State<AppState>,
    Path(jurisdiction_id): Path<String>,
    Json(body): Json<EndpointWrite>,
) -> Result<Response, ApiError> {
    p.require_jurisdiction(&jurisdiction_id)?;
    load_jurisdiction(&state, &jurisdiction_id).await?;
    let endpoint = body.into_endpoint(&jurisdiction_id)?;
    let id = endpoint.id.clone();
    write(&state, || async {
        let outcome = state.store.create_endpoint(&endpoint, &actor(&p)).await?;
        Ok(outcome)
    })
    .await?;
    let saved = load_endpoint(&state, &id).await?;
    let mut res = record(StatusCode::CREATED, saved.version, serde_json::to_value(&saved).unwrap_or_default());
    if let Ok(loc) = HeaderValue::from_str(&format!("/admin/v1/endpoints/{}", urlencode(&id))) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

/// Loads an endpoint and checks that the principal may manage its jurisdiction.
/// A jurisdiction token asking about another jurisdiction's endpoint gets 403,
/// the same as for one that does not exist, so ids are not probed.
async fn endpoint_for(p: &Principal, state: &AppState, id: &str) -> Result<Endpoint, ApiError> {
    match state.store.get_endpoint(id).await? {
        Some(e) => {
            p.require_jurisdiction(&e.jurisdiction_id)?;
            Ok(e)
        }
        None if p.is_admin() => Err(ApiError::NotFound(format!("endpoint `{id}` not found"))),
        None => {
            Err(auth::AuthError::Forbidden { needed: format!("a scope for the jurisdiction of endpoint `{id}`") }
                .into())
        }
    }
}

/// An endpoint with its services and health.
#[utoipa::path(
    get,
    path = "/admin/v1/endpoints/{id}",
    tag = "admin",
    operation_id = "get_endpoint",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint; `ETag` is its version", body = Endpoint),
        (status = 404, description = "No such endpoint"),
    )
)]
pub(crate) async fn get_endpoint(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let e = endpoint_for(&p, &state, &id).await?;
    Ok(record(StatusCode::OK, e.version, serde_json::to_value(&e).unwrap_or_default()))
}

/// Applies a change to an endpoint under If-Match and answers with the new record.
async fn update_endpoint_with(
    p: &Principal,
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    action: &str,
    change: impl FnOnce(Endpoint) -> Result<Endpoint, ApiError>,
) -> Result<Response, ApiError> {
    let expect = if_match(headers)?;
    let updated = change(endpoint_for(p, state, id).await?)?;
    write(state, || async {
        let outcome = state.store.update_endpoint(&updated, expect, &actor(p), action).await?;
        Ok(outcome)
    })
    .await?;
    let saved = load_endpoint(state, id).await?;
    Ok(record(StatusCode::OK, saved.version, serde_json::to_value(&saved).unwrap_or_default()))
}

/// Changes fields of an endpoint; `null` clears an optional one.
#[utoipa::path(
    patch,
    path = "/admin/v1/endpoints/{id}",
    tag = "admin",
    operation_id = "patch_endpoint",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id"), ("If-Match" = Option<String>, Header, description = "The record's ETag (its version, e.g. `\"3\"`) or `*`; the write is refused with 412 when the record changed")),
    request_body(content = bodies::EndpointPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated endpoint", body = Endpoint),
        (status = 400, description = "A field is invalid; `field` names it"),
        (status = 404, description = "No such endpoint"),
        (status = 409, description = "The change conflicts with another record"),
        (status = 412, description = "`If-Match` does not match the current version"),
    )
)]
pub(crate) async fn patch_endpoint(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<EndpointPatch>,
) -> Result<Response, ApiError> {
    update_endpoint_with(&p, &state, &id, &headers, "endpoint.update", |e| patch.apply(e)).await
}

/// Deletes an endpoint and its services.
#[utoipa::path(
    delete,
    path = "/admin/v1/endpoints/{id}",
    tag = "admin",
    operation_id = "delete_endpoint",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id"), ("If-Match" = Option<String>, Header, description = "The record's ETag (its version, e.g. `\"3\"`) or `*`; the write is refused with 412 when the record changed")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`If-Match` is malformed"),
        (status = 404, description = "No such endpoint"),
        (status = 412, description = "`If-Match` does not match the current version"),
    )
)]
pub(crate) async fn delete_endpoint(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expect = if_match(&headers)?;
    // Checks the scope (and existence) before deleting.
    endpoint_for(&p, &state, &id).await?;
    write(&state, || async {
        let outcome = state.store.delete_endpoint(&id, expect, &actor(&p)).await?;
        Ok(outcome)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Runs the harvester on one endpoint now and answers with its report and the
/// endpoint record as it is afterwards (health, harvested services).
/// Fetches the endpoint's service list now and answers with the report and the endpoint afterwards.
#[utoipa::path(
    post,
    path = "/admin/v1/endpoints/{id}/harvest",
    tag = "admin",
    operation_id = "harvest_endpoint",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The harvest report (a failed fetch is reported, not an error) and the endpoint", body = HarvestAnswer),
        (status = 404, description = "No such endpoint"),
    )
)]
pub(crate) async fn harvest_now(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Checks the scope (and existence) first.
    endpoint_for(&p, &state, &id).await?;
    let report = crate::harvest::harvest_endpoint(&state, &id).await?;
    let saved = load_endpoint(&state, &id).await?;
    Ok((StatusCode::OK, Json(json!({"report": report, "endpoint": saved}))).into_response())
}

/// Replaces the manual service list of an endpoint (harvested services stay; a manual code wins).
#[utoipa::path(
    put,
    path = "/admin/v1/endpoints/{id}/services",
    tag = "admin",
    operation_id = "replace_services",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id"), ("If-Match" = Option<String>, Header, description = "The record's ETag (its version, e.g. `\"3\"`) or `*`; the write is refused with 412 when the record changed")),
    request_body(content = Vec<bodies::ServiceWrite>, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated endpoint", body = Endpoint),
        (status = 400, description = "A service is invalid; `field` names it, e.g. `[2].service_code`"),
        (status = 404, description = "No such endpoint"),
        (status = 412, description = "`If-Match` does not match the current version"),
    )
)]
pub(crate) async fn replace_services(
    p: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(services): Json<Vec<ServiceWrite>>,
) -> Result<Response, ApiError> {
    let services = bodies::services(services, "")?;
    update_endpoint_with(&p, &state, &id, &headers, "endpoint.services.replace", |mut e| {
        // The manual list is replaced; harvested services stay (a manual code wins).
        let harvested: Vec<Service> =
            e.services.into_iter().filter(|s| s.source == crate::model::ServiceSource::Harvested).collect();
        e.services = crate::harvest::merge_services(&services, harvested);
        Ok(e)
    })
    .await
}

/// Creates or replaces one service of an endpoint.
#[utoipa::path(
    put,
    path = "/admin/v1/endpoints/{id}/services/{code}",
    tag = "admin",
    operation_id = "upsert_service",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id"), ("code" = String, Path, description = "The service code; must equal the body's `service_code`"), ("If-Match" = Option<String>, Header, description = "The record's ETag (its version, e.g. `\"3\"`) or `*`; the write is refused with 412 when the record changed")),
    request_body(content = bodies::ServiceWrite, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated endpoint", body = Endpoint),
        (status = 400, description = "The service is invalid; `field` names it"),
        (status = 404, description = "No such endpoint"),
        (status = 412, description = "`If-Match` does not match the current version"),
    )
)]
pub(crate) async fn upsert_service(
    p: Principal,
    State(state): State<AppState>,
    Path((id, code)): Path<(String, String)>,
    headers: HeaderMap,
    Json(service): Json<ServiceWrite>,
) -> Result<Response, ApiError> {
    let mut service: Service = service.into_service("")?;
    if service.service_code != code {
        return Err(ApiError::field(
            "service_code",
            format!("body service_code `{}` differs from the path `{code}`", service.service_code),
        ));
    }
    service.service_code = code;
    update_endpoint_with(&p, &state, &id, &headers, "endpoint.services.upsert", |mut e| {
        match e.services.iter_mut().find(|s| s.service_code == service.service_code) {
            Some(existing) => *existing = service,
            None => e.services.push(service),
        }
        Ok(e)
    })
    .await
}

/// Deletes one service of an endpoint.
#[utoipa::path(
    delete,
    path = "/admin/v1/endpoints/{id}/services/{code}",
    tag = "admin",
    operation_id = "delete_service",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id"), ("code" = String, Path, description = "The service code"), ("If-Match" = Option<String>, Header, description = "The record's ETag (its version, e.g. `\"3\"`) or `*`; the write is refused with 412 when the record changed")),
    responses(
        (status = 200, description = "The updated endpoint", body = Endpoint),
        (status = 400, description = "`If-Match` is malformed"),
        (status = 404, description = "No such endpoint or service"),
        (status = 412, description = "`If-Match` does not match the current version"),
    )
)]
pub(crate) async fn delete_service(
    p: Principal,
    State(state): State<AppState>,
    Path((id, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    update_endpoint_with(&p, &state, &id, &headers, "endpoint.services.delete", |mut e| {
        let before = e.services.len();
        e.services.retain(|s| s.service_code != code);
        if e.services.len() == before {
            return Err(ApiError::NotFound(format!("service `{code}` not found on endpoint `{}`", e.id)));
        }
        Ok(e)
    })
    .await
}

/// Imports a GeoJSON FeatureCollection (plain or gzip) in one transaction, all or nothing (`admin` scope).
#[utoipa::path(
    post,
    path = "/admin/v1/import",
    tag = "admin",
    operation_id = "bulk_import",
    security(("bearer" = [])),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "Imported", body = ImportAnswer),
        (status = 400, description = "The body is not a FeatureCollection or a feature is invalid (`field`: `features[i]`); nothing was imported"),
        (status = 409, description = "The import conflicts with existing records"),
    )
)]
pub(crate) async fn bulk_import(
    p: Principal,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require_admin()?;
    // Decompressing and parsing is CPU work: off the async workers, and capped
    // by `--max-import-bytes` once decompressed.
    let limit = state.settings.max_import_bytes;
    let features = tokio::task::spawn_blocking(move || {
        import::reader::read_features_from_bytes_limited(&body, "request body", limit)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::BadRequest { code: "invalid_body", detail: e.to_string(), field: None })?;
    // Validate everything strictly first; any problem refuses the whole import.
    let opts = ImportOptions {
        on_invalid: OnInvalid::Skip,
        max_vertices: state.settings.max_vertices,
        ..ImportOptions::default()
    };
    let (jurisdictions, summary) =
        import::map_features(&features, &opts).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(first) = summary.reports.first() {
        return Err(ApiError::BadRequest {
            code: "invalid_feature",
            detail: format!(
                "{} of {} features are invalid; nothing was imported. First: {first}",
                summary.reports.len(),
                summary.read
            ),
            field: Some(format!("features[{}]", first.index)),
        });
    }
    let count = jurisdictions.len();
    let actor = actor(&p);
    let outcome = write(&state, || async {
        // Parents (of the new jurisdictions, and of existing ones that now sit
        // inside a new one) are planned first so the import is one transaction.
        let current = state.index.current();
        let batch = tokio::task::spawn_blocking(move || import::plan_import(&current, jurisdictions))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let reparented = batch.len() - count;
        tracing::info!(imported = count, reparented, "bulk import");
        Ok(state
            .store
            .import(crate::store::ImportBatch { jurisdictions: batch, endpoints: Vec::new() }, &actor, "import")
            .await?)
    })
    .await?;
    Ok((StatusCode::OK, Json(json!({"imported": count, "index_version": outcome.seq}))).into_response())
}

/// The query of `GET /admin/v1/audit`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only entries about this jurisdiction.
    jurisdiction: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only entries before this RFC 3339 time.
    #[param(format = DateTime)]
    until: Option<String>,
    /// Only entries older than this entry id (the previous page's `next`).
    after: Option<i64>,
    /// Page size, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

fn rfc3339(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    use time::format_description::well_known::Rfc3339;
    v.map(|t| {
        time::OffsetDateTime::parse(&t, &Rfc3339)
            .map_err(|_| {
                ApiError::field(field, format!("`{field}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z"))
            })
            .and_then(|d| {
                d.to_offset(time::UtcOffset::UTC).format(&Rfc3339).map_err(|e| ApiError::Internal(e.to_string()))
            })
    })
    .transpose()
}

/// The audit log, newest first (`admin` scope).
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "admin",
    operation_id = "audit",
    security(("bearer" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "One page of the audit log", body = AuditPage),
        (status = 400, description = "A parameter is invalid; `field` names it"),
    )
)]
pub(crate) async fn audit(
    p: Principal,
    State(state): State<AppState>,
    Query(q): Query<AuditParams>,
) -> Result<Response, ApiError> {
    p.require_admin()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "`limit` must be between 1 and 1000"));
    }
    let filter = AuditFilter {
        jurisdiction_id: q.jurisdiction,
        since: rfc3339("since", q.since)?,
        until: rfc3339("until", q.until)?,
        after_id: q.after,
        limit,
    };
    let items = state.store.audit(&filter).await?;
    let next = (items.len() as i64 == limit).then(|| items.last().map(|e| e.id)).flatten();
    Ok(Json(json!({"items": items, "next": next})).into_response())
}
