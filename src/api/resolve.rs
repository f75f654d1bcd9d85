//! `GET /v1/resolve` (one point) and `POST /v1/resolve` (a batch): every
//! jurisdiction whose boundary covers the point, ordered by tier (country
//! first), then larger area first, then id. A point on a boundary counts as
//! inside. No match is a 200 with an empty list.

use super::cache;
use super::locate::{self, Hit, HitJson, LocateOptions};
use super::params::{self, Location, TierSet};
use crate::error::{ApiError, Json};
use crate::index::Snapshot;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/resolve", get(resolve_one).post(resolve_many))
}

/// The answer for one point.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResolveAnswer)]
pub(crate) struct OneAnswer<'a> {
    /// The point asked about.
    location: Location,
    /// The registry's change-log sequence number the answer was computed from.
    index_version: i64,
    /// Until when this answer may be cached (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    /// Every jurisdiction serving the point, in answer order.
    #[schema(value_type = Vec<crate::api::locate::LocatedJurisdiction>)]
    jurisdictions: Vec<HitJson<'a>>,
}

/// Slots covering the point, after the tier filter (the batch path: no near misses).
fn matching(snapshot: &Snapshot, loc: Location, tiers: Option<TierSet>, slots: &mut Vec<u32>) {
    snapshot.resolve_into(loc.lon, loc.lat, slots);
    if let Some(tiers) = tiers {
        slots.retain(|&s| snapshot.entry(s).is_some_and(|e| tiers.contains(e.record.tier)));
    }
}

/// Renders the answer for one point (shared by the HTTP route and `geowebdns resolve`).
pub fn answer_one(snapshot: &Snapshot, loc: Location, tiers: Option<TierSet>) -> Result<Vec<u8>, ApiError> {
    let opts = LocateOptions { tiers, ..LocateOptions::default() };
    let hits = locate::locate(snapshot, loc, &opts, &crate::Settings::default());
    render_one(snapshot, loc, &hits, false, None)
}

fn render_one(
    snapshot: &Snapshot,
    loc: Location,
    hits: &[Hit<'_>],
    annotated: bool,
    expires: Option<String>,
) -> Result<Vec<u8>, ApiError> {
    // The records are pre-rendered JSON: size the buffer for them at once
    // instead of letting `to_vec` grow it by doubling (a copy per step).
    let size = 160 + hits.iter().map(|h| h.entry.json.get().len() + 64).sum::<usize>();
    let answer = OneAnswer {
        location: loc,
        index_version: snapshot.version(),
        expires,
        jurisdictions: hits.iter().map(|h| HitJson::new(h, annotated)).collect(),
    };
    let mut out = Vec::with_capacity(size);
    serde_json::to_writer(&mut out, &answer).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(out)
}

/// Every jurisdiction serving one point, with its endpoints and services.
#[utoipa::path(
    get,
    path = "/v1/resolve",
    tag = "public",
    operation_id = "resolve",
    params(super::params::LocationParams),
    responses(
        (status = 200, description = "The jurisdictions serving the point (an empty list when none does)", body = OneAnswer),
        (status = 304, description = "`If-None-Match` matched the answer's ETag"),
        (status = 400, description = "A parameter is missing or wrong; `field` names it"),
    )
)]
pub(crate) async fn resolve_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let q = params::pairs(uri.query());
    let (loc, opts) = locate::query(&q, &state)?;
    let snapshot = state.index.current();
    let hits = locate::locate(&snapshot, loc, &opts, &state.settings);
    let etag = locate::etag("resolve", &hits);
    cache::respond(&state, &headers, &etag, "application/json", || {
        render_one(&snapshot, loc, &hits, opts.annotated(), Some(cache::expires(&state)))
    })
}

/// A batch request: up to the configured number of points.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The points to resolve (at least one; at most the server's `--max-batch`, default 10,000).
    #[schema(min_items = 1)]
    pub points: Vec<BatchPoint>,
    /// Optional tier filter, a comma list as in the query string.
    #[serde(default)]
    #[schema(
        pattern = r"^ *(country|state|county|place|special_district|other)( *, *(country|state|county|place|special_district|other))* *$"
    )]
    pub tier: Option<String>,
}

/// One point of a batch; `long` is accepted for `lon`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchPoint {
    /// Latitude (required).
    #[schema(value_type = f64, required = true, minimum = -90.0, maximum = 90.0)]
    pub lat: Option<f64>,
    /// Longitude; required unless `long` is given, never both.
    #[schema(value_type = f64, minimum = -180.0, maximum = 180.0)]
    pub lon: Option<f64>,
    /// Longitude, Open311 spelling.
    #[schema(value_type = f64, minimum = -180.0, maximum = 180.0)]
    pub long: Option<f64>,
    /// An optional client key echoed in the answer (any JSON value).
    #[serde(default)]
    pub id: Option<serde_json::Value>,
}

/// The answer for one point of a batch.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BatchResult<'a> {
    /// The point's `id`, echoed when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    id: Option<&'a serde_json::Value>,
    /// The point.
    location: Location,
    /// Ids of the jurisdictions serving it (keys of the answer's `jurisdictions`), in answer order.
    #[schema(value_type = Vec<String>)]
    jurisdictions: &'a [&'a str],
}

/// The distinct jurisdictions of a batch answer, as an object keyed by id.
struct Records<'a>(Vec<(&'a str, &'a RawValue)>);

impl Serialize for Records<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The answer for a batch.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BatchAnswer<'a> {
    /// The registry's change-log sequence number the answer was computed from.
    index_version: i64,
    /// Until when this answer may be cached (RFC 3339).
    expires: &'a str,
    /// Number of results (points).
    count: usize,
    /// Each jurisdiction serving some point, once, keyed by id.
    #[schema(value_type = std::collections::BTreeMap<String, crate::index::JurisdictionView>)]
    jurisdictions: Records<'a>,
    /// One result per point, in request order.
    results: Vec<BatchResult<'a>>,
}

fn validate_points(req: &BatchRequest, max: usize) -> Result<Vec<Location>, ApiError> {
    if req.points.is_empty() {
        return Err(ApiError::field("points", "`points` must hold at least one point"));
    }
    if req.points.len() > max {
        return Err(ApiError::BadRequest {
            code: "batch_too_large",
            detail: format!("a batch holds at most {max} points, got {}", req.points.len()),
            field: Some("points".into()),
        });
    }
    // The field names (`points[7].lat`) are formatted only for an error:
    // formatting them for every point was ~9 % of a 1,000-point batch.
    let in_range = |v: f64, min: f64, max: f64| v.is_finite() && (min..=max).contains(&v);
    let mut out = Vec::with_capacity(req.points.len());
    for (i, p) in req.points.iter().enumerate() {
        let lat = p.lat.ok_or_else(|| ApiError::missing(&format!("points[{i}].lat")))?;
        if !in_range(lat, -90.0, 90.0) {
            params::check_coordinate(&format!("points[{i}].lat"), lat, -90.0, 90.0)?;
        }
        let (name, lon) = match (p.lon, p.long) {
            (Some(_), Some(_)) => {
                return Err(ApiError::field(format!("points[{i}].lon"), "give either `lon` or `long`, not both"))
            }
            (Some(v), None) => ("lon", v),
            (None, Some(v)) => ("long", v),
            (None, None) => return Err(ApiError::missing(&format!("points[{i}].lon"))),
        };
        if !in_range(lon, -180.0, 180.0) {
            params::check_coordinate(&format!("points[{i}].{name}"), lon, -180.0, 180.0)?;
        }
        out.push(Location { lat, lon });
    }
    Ok(out)
}

/// Resolves every point against one snapshot and renders the answer.
fn answer_batch(
    snapshot: &Snapshot,
    expires: &str,
    req: &BatchRequest,
    locations: &[Location],
    tiers: Option<TierSet>,
) -> Result<Vec<u8>, ApiError> {
    let mut seen = vec![false; snapshot.slot_bound()];
    let mut records = Vec::new();
    // Every point's ids in one vector (one allocation, not one per point);
    // `ends[i]` is where point i's ids end.
    let mut ids: Vec<&str> = Vec::with_capacity(locations.len() * 4);
    let mut ends = Vec::with_capacity(locations.len());
    let mut slots = Vec::with_capacity(8);
    let mut size = 128;
    for loc in locations {
        matching(snapshot, *loc, tiers, &mut slots);
        for &s in &slots {
            let Some(e) = snapshot.entry(s) else { continue };
            if let Some(flag) = seen.get_mut(s as usize) {
                if !*flag {
                    *flag = true;
                    records.push((e.record.id.as_str(), &*e.json));
                    size += e.record.id.len() + e.json.get().len() + 4;
                }
            }
            ids.push(e.record.id.as_str());
            size += e.record.id.len() + 3;
        }
        ends.push(ids.len());
        size += 80;
    }
    let mut start = 0;
    let results = locations
        .iter()
        .zip(&req.points)
        .zip(&ends)
        .map(|((loc, point), &end)| {
            let r = BatchResult { id: point.id.as_ref(), location: *loc, jurisdictions: &ids[start..end] };
            start = end;
            r
        })
        .collect::<Vec<_>>();
    let answer = BatchAnswer {
        index_version: snapshot.version(),
        expires,
        count: results.len(),
        jurisdictions: Records(records),
        results,
    };
    // Sized once: growing a ~100 kB answer by doubling copied it ~10 times.
    let mut out = Vec::with_capacity(size);
    serde_json::to_writer(&mut out, &answer).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(out)
}

/// Whether a request's `Content-Type` is plainly `application/json` (with
/// parameters or not): a strict subset of what axum's `Json` accepts.
fn plain_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the batch body. axum's `Json` deserialises through
/// `serde_path_to_error` to name the field at fault, which made parsing ~23 %
/// of a 1,000-point batch's CPU (profiled under `benches/load.sh`). So a
/// plain `application/json` body is parsed with `serde_json` directly, and
/// anything else, or a body that does not parse, goes through axum's `Json`
/// as before: every error answer (415, 413, 400 with the JSON path) is
/// unchanged.
async fn batch_body(req: axum::extract::Request, state: &AppState) -> Result<BatchRequest, ApiError> {
    use axum::extract::FromRequest;
    if !plain_json(req.headers()) {
        let Json(body) = Json::<BatchRequest>::from_request(req, state).await?;
        return Ok(body);
    }
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| ApiError::from(axum::extract::rejection::JsonRejection::from(e)))?;
    match serde_json::from_slice::<BatchRequest>(&bytes) {
        Ok(body) => Ok(body),
        Err(_) => match axum::Json::<BatchRequest>::from_bytes(&bytes) {
            Ok(axum::Json(body)) => Ok(body),
            Err(rejection) => Err(ApiError::from(rejection)),
        },
    }
}

/// Every jurisdiction serving each of many points.
#[utoipa::path(
    post,
    path = "/v1/resolve",
    tag = "public",
    operation_id = "resolve_batch",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per point", body = BatchAnswer),
        (status = 400, description = "The body is not a valid batch (`batch_too_large` over `--max-batch`); `field` names the point, e.g. `points[1].lat`"),
    )
)]
pub(crate) async fn resolve_many(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let req = batch_body(req, &state).await?;
    let locations = validate_points(&req, state.settings.max_batch)?;
    let tiers = match &req.tier {
        Some(t) => params::tiers(&[("tier".to_owned(), t.clone())])?,
        None => None,
    };
    let snapshot: Arc<Snapshot> = state.index.current();
    let version = snapshot.version();
    let expires = cache::expires(&state);
    // Large batches run off the async threads so they do not stall other requests.
    let body = if locations.len() > 512 {
        tokio::task::spawn_blocking(move || answer_batch(&snapshot, &expires, &req, &locations, tiers))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    } else {
        answer_batch(&snapshot, &expires, &req, &locations, tiers)?
    };
    // A POST answer is not cached by HTTP caches; the tag lets clients compare answers.
    let mut headers = cache::headers(&state, &cache::etag(("batch", version)));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok((headers, body).into_response())
}
