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
use geo::Coord;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/resolve", get(resolve_one).post(resolve_many))
}

/// The answer for one point. It describes the answer for the OpenAPI
/// document; [`render_one`] writes the same JSON without building it (a
/// test checks that the two agree).
#[derive(Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
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

/// Renders the answer for one point (shared by the HTTP route and `geowebdns resolve`).
pub fn answer_one(snapshot: &Snapshot, loc: Location, tiers: Option<TierSet>) -> Result<Vec<u8>, ApiError> {
    let opts = LocateOptions { tiers, ..LocateOptions::default() };
    let hits = locate::locate(snapshot, loc, &opts, &crate::Settings::default());
    render_one(snapshot, loc, &hits, false, None)
}

/// Writes the `"location":{"lat":..,"lon":..}` member of an answer (one
/// point's, or one result of a batch), as serde writes a [`Location`].
fn write_location(out: &mut Vec<u8>, loc: Location) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"\"location\":{\"lat\":");
    serde_json::to_writer(&mut *out, &loc.lat)?;
    out.extend_from_slice(b",\"lon\":");
    serde_json::to_writer(&mut *out, &loc.lon)?;
    out.push(b'}');
    Ok(())
}

/// Writes the answer for one point: the same JSON as serialising
/// [`OneAnswer`] with `serde_json`, written piece by piece. The records are
/// pre-rendered JSON, so all that is left is the frame around them;
/// serde's escaping of every field name and the `Vec<HitJson>` it needed
/// were a sixth of the handler's instructions.
fn render_one(
    snapshot: &Snapshot,
    loc: Location,
    hits: &[Hit<'_>],
    annotated: bool,
    expires: Option<String>,
) -> Result<Vec<u8>, ApiError> {
    let internal = |e: serde_json::Error| ApiError::Internal(e.to_string());
    // Sized once for the records instead of grown by doubling.
    let size = 160 + hits.iter().map(|h| h.entry.json.get().len() + 64).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(b'{');
    write_location(&mut out, loc).map_err(internal)?;
    out.extend_from_slice(b",\"index_version\":");
    serde_json::to_writer(&mut out, &snapshot.version()).map_err(internal)?;
    if let Some(expires) = &expires {
        out.extend_from_slice(b",\"expires\":");
        serde_json::to_writer(&mut out, expires).map_err(internal)?;
    }
    out.extend_from_slice(b",\"jurisdictions\":[");
    for (i, hit) in hits.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if annotated {
            serde_json::to_writer(&mut out, &HitJson::new(hit, true)).map_err(internal)?;
        } else {
            out.extend_from_slice(hit.entry.json.get().as_bytes());
        }
    }
    out.extend_from_slice(b"]}");
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
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    // The request itself, not the `HeaderMap` and `Uri` extractors: those
    // clone the request's headers (and drop the copy) on every call.
    let (headers, uri) = (request.headers(), request.uri());
    let q = params::pairs(uri.query());
    let (loc, opts) = locate::query(&q, &state)?;
    let snapshot = state.index.current();
    let hits = locate::locate(&snapshot, loc, &opts, &state.settings);
    let etag = locate::etag("resolve", &hits);
    cache::respond(&state, headers, &etag, "application/json", || {
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
    /// Whether the answer carries the `jurisdictions` records (default
    /// `true`). With `false` it leaves them out and lists ids only: for
    /// clients that keep the records they have seen (`GET
    /// /v1/jurisdictions/{id}`; `index_version` tells when to look again),
    /// and whose answers would otherwise be mostly records.
    #[serde(default)]
    pub records: Option<bool>,
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

/// The answer for one point of a batch ([`answer_batch`] writes it).
#[derive(Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
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
#[cfg_attr(not(test), allow(dead_code))]
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

/// The answer for a batch. It describes the answer for the OpenAPI
/// document; [`answer_batch`] writes the same JSON without building it.
#[derive(Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct BatchAnswer<'a> {
    /// The registry's change-log sequence number the answer was computed from.
    index_version: i64,
    /// Until when this answer may be cached (RFC 3339).
    expires: &'a str,
    /// Number of results (points).
    count: usize,
    /// Each jurisdiction serving some point, once, keyed by id; left out
    /// when the request asked for `"records": false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, crate::index::JurisdictionView>>)]
    jurisdictions: Option<Records<'a>>,
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

/// Points a batch resolves and renders between yields to the runtime
/// (~0.1 ms of work).
const CHUNK: usize = 256;

/// Writes a batch answer chunk by chunk: the same JSON as serialising
/// [`BatchAnswer`] with `serde_json`, written piece by piece (a test checks
/// that the two agree). Each distinct jurisdiction's id is copied from its
/// pre-rendered record ([`Entry::id_json`](crate::index::Entry::id_json)),
/// where serde escaped it for every point it serves, along with every field
/// name: that was ~40 % of a 1,000-point batch's instructions.
struct BatchWriter<'a> {
    snapshot: &'a Snapshot,
    req: &'a BatchRequest,
    tiers: Option<TierSet>,
    /// Per slot: 1 + the jurisdiction's number in `records` once it is seen.
    seen: Vec<u32>,
    /// The distinct jurisdictions: each one's record and its id as JSON.
    records: Vec<(&'a RawValue, std::borrow::Cow<'a, str>)>,
    /// The `results` array's members so far, comma-separated.
    results: Vec<u8>,
    /// Points written so far.
    done: usize,
    // Scratch space of `add`.
    points: Vec<Coord<f64>>,
    slots: Vec<u32>,
    ends: Vec<usize>,
}

impl<'a> BatchWriter<'a> {
    fn new(snapshot: &'a Snapshot, req: &'a BatchRequest, tiers: Option<TierSet>, points: usize) -> Self {
        Self {
            snapshot,
            req,
            tiers,
            seen: vec![0; snapshot.slot_bound()],
            records: Vec::new(),
            results: Vec::with_capacity(points * 96),
            done: 0,
            points: Vec::new(),
            slots: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// Resolves the next points of the batch (all of a chunk's points side
    /// by side, so that the index's cache misses overlap) and writes their
    /// results.
    fn add(&mut self, locations: &[Location]) -> Result<(), ApiError> {
        let internal = |e: serde_json::Error| ApiError::Internal(e.to_string());
        self.points.clear();
        self.points.extend(locations.iter().map(|l| Coord { x: l.lon, y: l.lat }));
        self.snapshot.resolve_many(&self.points, &mut self.slots, &mut self.ends);
        let out = &mut self.results;
        let mut start = 0;
        for (loc, &end) in locations.iter().zip(&self.ends) {
            if self.done > 0 {
                out.push(b',');
            }
            out.push(b'{');
            if let Some(id) = self.req.points.get(self.done).and_then(|p| p.id.as_ref()) {
                out.extend_from_slice(b"\"id\":");
                serde_json::to_writer(&mut *out, id).map_err(internal)?;
                out.push(b',');
            }
            write_location(out, *loc).map_err(internal)?;
            out.extend_from_slice(b",\"jurisdictions\":[");
            let mut first = true;
            for &s in self.slots.get(start..end).unwrap_or(&[]) {
                let Some(e) = self.snapshot.entry(s) else { continue };
                if self.tiers.is_some_and(|t| !t.contains(e.record.tier)) {
                    continue;
                }
                let s = s as usize;
                if s >= self.seen.len() {
                    self.seen.resize(s + 1, 0);
                }
                if self.seen[s] == 0 {
                    self.records.push((&e.json, e.id_json()));
                    self.seen[s] = u32::try_from(self.records.len()).map_err(|e| ApiError::Internal(e.to_string()))?;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                if let Some((_, id)) = self.records.get(self.seen[s] as usize - 1) {
                    out.extend_from_slice(id.as_bytes());
                }
            }
            out.extend_from_slice(b"]}");
            self.done += 1;
            start = end;
        }
        Ok(())
    }

    /// The whole answer: the frame, the records, the results.
    fn finish(self, expires: &str) -> Result<Vec<u8>, ApiError> {
        let internal = |e: serde_json::Error| ApiError::Internal(e.to_string());
        let with_records = self.req.records != Some(false);
        let records: usize =
            if with_records { self.records.iter().map(|(json, id)| id.len() + json.get().len() + 2).sum() } else { 0 };
        // Sized once: growing a ~100 kB answer by doubling copied it ~10 times.
        let mut out = Vec::with_capacity(160 + expires.len() + records + self.results.len());
        out.extend_from_slice(b"{\"index_version\":");
        serde_json::to_writer(&mut out, &self.snapshot.version()).map_err(internal)?;
        out.extend_from_slice(b",\"expires\":");
        serde_json::to_writer(&mut out, expires).map_err(internal)?;
        out.extend_from_slice(b",\"count\":");
        serde_json::to_writer(&mut out, &self.done).map_err(internal)?;
        if with_records {
            out.extend_from_slice(b",\"jurisdictions\":{");
            for (i, (record, id)) in self.records.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(id.as_bytes());
                out.push(b':');
                out.extend_from_slice(record.get().as_bytes());
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"results\":[");
        out.extend_from_slice(&self.results);
        out.extend_from_slice(b"]}");
        Ok(out)
    }
}

/// Resolves every point against one snapshot and renders the answer, in
/// one go (`chunk` points at a time).
#[cfg(test)]
fn answer_batch(
    snapshot: &Snapshot,
    expires: &str,
    req: &BatchRequest,
    locations: &[Location],
    tiers: Option<TierSet>,
    chunk: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut w = BatchWriter::new(snapshot, req, tiers, locations.len());
    for part in locations.chunks(chunk.max(1)) {
        w.add(part)?;
    }
    w.finish(expires)
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
        Some(t) => params::tiers(&[("tier", t)])?,
        None => None,
    };
    let snapshot: Arc<Snapshot> = state.index.current();
    let version = snapshot.version();
    // A large batch gives the other requests on its thread a turn between
    // chunks. (It ran on the blocking pool before: handing it there and
    // back cost ~5 % of a 1,000-point batch's CPU.)
    let mut writer = BatchWriter::new(&snapshot, &req, tiers, locations.len());
    for (i, part) in locations.chunks(CHUNK).enumerate() {
        if i > 0 {
            tokio::task::yield_now().await;
        }
        writer.add(part)?;
    }
    let body = writer.finish(&cache::expires(&state))?;
    // A POST answer is not cached by HTTP caches; the tag lets clients compare answers.
    let mut headers = cache::headers(&state, &cache::etag(("batch", version)));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok((headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Entry;
    use crate::model::{Jurisdiction, Tier};
    use geo::{polygon, MultiPolygon};

    fn entry(id: &str, tier: Tier, name: &str, size: f64) -> Arc<Entry> {
        let record = Jurisdiction {
            id: id.to_owned(),
            name: name.to_owned(),
            tier,
            parent: None,
            parent_override: false,
            ocd_id: None,
            external_ids: Default::default(),
            source: Some("test \"quoted\" source\n".to_owned()),
            license: None,
            area_km2: size * 1000.0,
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            updated_at: "2026-01-01T00:00:00Z".to_owned(),
            version: 3,
        };
        let square =
            MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: size, y: 0.0), (x: size, y: size), (x: 0.0, y: size)]]);
        Arc::new(Entry::new(record, &square, Vec::new()))
    }

    /// The hand-written answer is byte for byte what serde makes of [`OneAnswer`].
    #[test]
    fn render_one_matches_the_serde_answer() {
        let snapshot = Snapshot::build(
            41,
            vec![entry("c:1", Tier::Country, "Ütopia", 8.0), entry("s:1", Tier::State, "Ställe \u{1F600}", 4.0)],
        );
        let hit = |e| Hit { entry: e, kind: locate::MatchKind::Near, distance_m: 12.34 };
        let all: Vec<Hit<'_>> = snapshot.entries().map(hit).collect();
        for (lat, lon) in [(1.0, 1.0), (-0.000_001, 179.999_999_9), (90.0, -180.0), (0.1 + 0.2, 1e-7)] {
            let loc = Location { lat, lon };
            for hits in [&all[..0], &all[..1], &all[..]] {
                for annotated in [false, true] {
                    for expires in [None, Some("2026-11-26T13:20:55Z".to_owned())] {
                        let ours = render_one(&snapshot, loc, hits, annotated, expires.clone()).expect("renders");
                        let serde = serde_json::to_vec(&OneAnswer {
                            location: loc,
                            index_version: snapshot.version(),
                            expires,
                            jurisdictions: hits.iter().map(|h| HitJson::new(h, annotated)).collect(),
                        })
                        .expect("serialises");
                        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
                    }
                }
            }
        }
    }

    /// The hand-written batch answer is byte for byte what serde makes of
    /// [`BatchAnswer`] built the straightforward way.
    #[test]
    fn answer_batch_matches_the_serde_answer() {
        let snapshot = Snapshot::build(
            7,
            vec![
                entry("c:\"1\"", Tier::Country, "Big", 8.0),
                entry("s:1", Tier::State, "Mid", 4.0),
                entry("p:\u{e9}", Tier::Place, "Small", 1.0),
            ],
        );
        let body = r#"{"points": [
            {"lat": 0.5, "lon": 0.5, "id": "a \"quoted\" key"},
            {"lat": 3.0, "long": 3.0},
            {"lat": 6.0, "lon": 6.0, "id": {"n": [1, 2.5, null]}},
            {"lat": 50.0, "lon": 50.0, "id": 17},
            {"lat": 0.25, "lon": 0.75}
        ]}"#;
        let mut req: BatchRequest = serde_json::from_str(body).expect("a batch");
        let locations = validate_points(&req, 100).expect("valid");
        for (tiers, records_flag) in
            [(None, None), (params::tiers(&[("tier", "state,place")]).expect("tiers"), Some(true)), (None, Some(false))]
        {
            req.records = records_flag;
            let ours =
                answer_batch(&snapshot, "2026-11-26T13:20:55Z", &req, &locations, tiers, CHUNK).expect("renders");
            for chunk in [1, 2, 3] {
                let parts = answer_batch(&snapshot, "2026-11-26T13:20:55Z", &req, &locations, tiers, chunk);
                assert_eq!(parts.expect("renders"), ours, "chunks of {chunk}");
            }
            // The reference: records in first-seen order, ids per point.
            let (mut records, mut per_point) = (Vec::new(), Vec::new());
            let mut slots = Vec::new();
            for loc in &locations {
                // One point at a time through `resolve_into`.
                snapshot.resolve_into(loc.lon, loc.lat, &mut slots);
                if let Some(tiers) = tiers {
                    slots.retain(|&s| snapshot.entry(s).is_some_and(|e| tiers.contains(e.record.tier)));
                }
                let mut ids = Vec::new();
                for &s in &slots {
                    let e = snapshot.entry(s).expect("an entry");
                    if !records.iter().any(|(id, _)| *id == e.record.id.as_str()) {
                        records.push((e.record.id.as_str(), &*e.json));
                    }
                    ids.push(e.record.id.as_str());
                }
                per_point.push(ids);
            }
            let results: Vec<BatchResult<'_>> = locations
                .iter()
                .zip(&req.points)
                .zip(&per_point)
                .map(|((loc, p), ids)| BatchResult { id: p.id.as_ref(), location: *loc, jurisdictions: ids })
                .collect();
            let serde = serde_json::to_vec(&BatchAnswer {
                index_version: 7,
                expires: "2026-11-26T13:20:55Z",
                count: results.len(),
                jurisdictions: (records_flag != Some(false)).then_some(Records(records)),
                results,
            })
            .expect("serialises");
            assert!(per_point.iter().any(|ids| ids.len() >= 2), "some point is covered twice");
            assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
        }
    }
}
