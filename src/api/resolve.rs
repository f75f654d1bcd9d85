//! `GET /v1/resolve` (one point) and `POST /v1/resolve` (a batch): every
//! jurisdiction whose boundary covers the point, ordered by tier (country
//! first), then larger area first, then id. A point on a boundary counts as
//! inside. No match is a 200 with an empty list.

use super::batch_body::{self, Batch};
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

/// Writes the `"location":{"lat":..,"lon":..}` member of a one-point
/// answer, as serde writes a [`Location`] (a batch copies each point's from
/// [`Batch::location_json`]).
fn write_location(out: &mut Vec<u8>, loc: Location) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"\"location\":");
    batch_body::write_location(out, loc, None)
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
    expires: Option<&str>,
) -> Result<Vec<u8>, ApiError> {
    let internal = |e: serde_json::Error| ApiError::Internal(e.to_string());
    // Sized once for the records instead of grown by doubling.
    let size = 160 + hits.iter().map(|h| h.entry.json.get().len() + 64).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(b'{');
    write_location(&mut out, loc).map_err(internal)?;
    out.extend_from_slice(b",\"index_version\":");
    serde_json::to_writer(&mut out, &snapshot.version()).map_err(internal)?;
    if let Some(expires) = expires {
        out.extend_from_slice(b",\"expires\":");
        write_str(&mut out, expires).map_err(internal)?;
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
        cache::with_expires(&state, |expires| render_one(&snapshot, loc, &hits, opts.annotated(), Some(expires)))
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

/// One line of a streamed batch answer ([`NDJSON`]). Each line is a JSON
/// object with exactly one member, whose name says what the line is.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum BatchLine<'a> {
    /// The first line.
    Batch(BatchHead<'a>),
    /// A jurisdiction serving some point, with its endpoints and services:
    /// sent once, before the first result that names it (never with
    /// `"records": false`).
    // Described, not built: the writer copies each record's pre-rendered JSON.
    #[allow(dead_code)]
    Jurisdiction(crate::index::JurisdictionView<'a>),
    /// One point's result, in request order.
    Result(BatchResult<'a>),
}

/// The first line of a streamed batch answer.
#[derive(Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct BatchHead<'a> {
    /// The registry's change-log sequence number the answer is computed from.
    index_version: i64,
    /// Until when this answer may be cached (RFC 3339).
    expires: &'a str,
    /// Number of results (points) that follow; fewer arrive only when the
    /// answer is cut short (the chunked body then ends with an error).
    count: usize,
}

/// Points a batch resolves and renders between yields to the runtime
/// (~0.1 ms of work), and the points of one streamed chunk.
const CHUNK: usize = 256;

/// The media type of a streamed batch answer: newline-delimited JSON.
pub const NDJSON: &str = "application/x-ndjson";

/// Writes a batch answer chunk by chunk, in one of two forms:
///
/// - JSON (`application/json`): the same bytes as serialising
///   [`BatchAnswer`] with `serde_json`, written piece by piece (a test checks
///   that the two agree) and sent whole by [`finish`](Self::finish);
/// - NDJSON ([`NDJSON`]): one line of [`BatchLine`] each, sent as they are
///   written ([`take`](Self::take)): the head first, then for each point
///   the records it names for the first time (unless `"records": false`),
///   then its result.
///
/// Each jurisdiction's id is copied from its pre-rendered record
/// ([`Entry::id_json`](crate::index::Entry::id_json)), where serde escaped
/// it for every point it serves, along with every field name: that was
/// ~40 % of a 1,000-point batch's instructions. The first time a batch
/// meets a jurisdiction, its tier and id go into a table of the batch's
/// own ([`Known`]); every later point it serves reads them from there,
/// which stays in cache, instead of from the entry and its JSON, two cache
/// misses a hit (~10 % of a 10,000-point batch's CPU). The writer borrows
/// nothing, so that a streamed answer can own it alongside the snapshot
/// and the request it reads.
struct BatchWriter {
    tiers: Option<TierSet>,
    /// NDJSON lines instead of one JSON document.
    lines: bool,
    /// Whether the answer carries the records (`"records"`, default true).
    records: bool,
    /// Per slot: 0 until the batch meets the jurisdiction, then 1 + its
    /// number in `known`.
    seen: Vec<u32>,
    /// The jurisdictions met so far, in first-seen order.
    known: Vec<Known>,
    /// Their escaped ids, end to end.
    ids: Vec<u8>,
    /// JSON: the `results` array's members so far, comma-separated.
    /// NDJSON: the lines not yet taken.
    out: Vec<u8>,
    /// Points written so far.
    done: usize,
    // Scratch space of `add`.
    points: Vec<Coord<f64>>,
    slots: Vec<u32>,
    ends: Vec<usize>,
    hits: Vec<u32>,
}

/// A jurisdiction a batch has met: its slot, its tier, and where its
/// escaped id is in the batch's `ids`.
struct Known {
    slot: u32,
    tier: crate::model::Tier,
    id: std::ops::Range<usize>,
}

impl BatchWriter {
    fn new(snapshot: &Snapshot, batch: &Batch, tiers: Option<TierSet>, lines: bool) -> Self {
        let per_chunk = if lines { CHUNK } else { batch.locations.len() };
        Self {
            tiers,
            lines,
            records: batch.records,
            seen: vec![0; snapshot.slot_bound()],
            known: Vec::new(),
            ids: Vec::new(),
            out: Vec::with_capacity(per_chunk * 96),
            done: 0,
            points: Vec::new(),
            slots: Vec::new(),
            ends: Vec::new(),
            hits: Vec::new(),
        }
    }

    /// NDJSON: writes the head line, which opens the stream.
    fn head(&mut self, snapshot: &Snapshot, expires: &str, count: usize) -> Result<(), ApiError> {
        self.out.extend_from_slice(b"{\"batch\":");
        write_frame(&mut self.out, snapshot, expires, count)?;
        self.out.extend_from_slice(b"}}\n");
        Ok(())
    }

    /// Resolves the batch's next `n` points (side by side, so that the
    /// index's cache misses overlap) and writes their results.
    fn add(&mut self, snapshot: &Snapshot, batch: &Batch, n: usize) -> Result<(), ApiError> {
        let internal = |e: serde_json::Error| ApiError::Internal(e.to_string());
        let locations = batch.locations.get(self.done..).unwrap_or(&[]);
        let locations = &locations[..n.min(locations.len())];
        self.points.clear();
        self.points.extend(locations.iter().map(|l| Coord { x: l.lon, y: l.lat }));
        snapshot.resolve_many(&self.points, &mut self.slots, &mut self.ends);
        let Self { tiers, lines, records, seen, known, ids, out, done, slots, ends, hits, .. } = self;
        let mut start = 0;
        for &end in ends.iter().take(locations.len()) {
            hits.clear();
            for &s in slots.get(start..end).unwrap_or(&[]) {
                let i = s as usize;
                if i >= seen.len() {
                    seen.resize(i + 1, 0);
                }
                let k = match seen[i] {
                    0 => {
                        // The first time this batch meets it.
                        let Some(e) = snapshot.entry(s) else { continue };
                        let at = ids.len();
                        ids.extend_from_slice(e.id_json().as_bytes());
                        known.push(Known { slot: s, tier: e.record.tier, id: at..ids.len() });
                        let k = u32::try_from(known.len()).map_err(|e| ApiError::Internal(e.to_string()))?;
                        seen[i] = k;
                        if *lines && *records && tiers.is_none_or(|t| t.contains(e.record.tier)) {
                            out.extend_from_slice(b"{\"jurisdiction\":");
                            out.extend_from_slice(e.json.get().as_bytes());
                            out.extend_from_slice(b"}\n");
                        }
                        k
                    }
                    k => k,
                };
                let Some(j) = known.get(k as usize - 1) else { continue };
                if tiers.is_some_and(|t| !t.contains(j.tier)) {
                    continue;
                }
                hits.push(k - 1);
            }
            if *lines {
                out.extend_from_slice(b"{\"result\":");
            } else if *done > 0 {
                out.push(b',');
            }
            out.push(b'{');
            if let Some(id) = batch.id(*done) {
                out.extend_from_slice(b"\"id\":");
                serde_json::to_writer(&mut *out, id).map_err(internal)?;
                out.push(b',');
            }
            out.extend_from_slice(b"\"location\":");
            out.extend_from_slice(batch.location_json(*done));
            out.extend_from_slice(b",\"jurisdictions\":[");
            for (n, &k) in hits.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                if let Some(id) = known.get(k as usize).and_then(|j| ids.get(j.id.clone())) {
                    out.extend_from_slice(id);
                }
            }
            out.extend_from_slice(b"]}");
            if *lines {
                out.extend_from_slice(b"}\n");
            }
            *done += 1;
            start = end;
        }
        Ok(())
    }

    /// NDJSON: the lines written since the last call.
    fn take(&mut self) -> bytes::Bytes {
        let next = Vec::with_capacity(self.out.capacity());
        bytes::Bytes::from(std::mem::replace(&mut self.out, next))
    }

    /// JSON: the whole answer: the frame, the records, the results.
    fn finish(self, snapshot: &Snapshot, expires: &str) -> Result<Vec<u8>, ApiError> {
        let tiers = self.tiers;
        let records: Vec<(&Known, &crate::index::Entry)> = if self.records {
            let shown = self.known.iter().filter(|j| tiers.is_none_or(|t| t.contains(j.tier)));
            shown.filter_map(|j| snapshot.entry(j.slot).map(|e| (j, &**e))).collect()
        } else {
            Vec::new()
        };
        let size: usize = records.iter().map(|(j, e)| j.id.len() + e.json.get().len() + 2).sum();
        // Sized once: growing a ~100 kB answer by doubling copied it ~10 times.
        let mut out = Vec::with_capacity(160 + expires.len() + size + self.out.len());
        write_frame(&mut out, snapshot, expires, self.done)?;
        if self.records {
            out.extend_from_slice(b",\"jurisdictions\":{");
            for (i, (j, e)) in records.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(self.ids.get(j.id.clone()).unwrap_or(b"\"\""));
                out.push(b':');
                out.extend_from_slice(e.json.get().as_bytes());
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"results\":[");
        out.extend_from_slice(&self.out);
        out.extend_from_slice(b"]}");
        Ok(out)
    }
}

/// Writes `s` as a JSON string, as serde does: quoted as it is when no
/// byte needs escaping (the times and versions the frames carry), through
/// serde's escaping otherwise.
fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s)
    }
}

/// Opens a batch answer's object (the JSON document, or the NDJSON head's
/// `batch` member) with its `index_version`, `expires` and `count`.
fn write_frame(out: &mut Vec<u8>, snapshot: &Snapshot, expires: &str, count: usize) -> Result<(), ApiError> {
    let internal = |e: serde_json::Error| ApiError::Internal(e.to_string());
    out.extend_from_slice(b"{\"index_version\":");
    serde_json::to_writer(&mut *out, &snapshot.version()).map_err(internal)?;
    out.extend_from_slice(b",\"expires\":");
    write_str(out, expires).map_err(internal)?;
    out.extend_from_slice(b",\"count\":");
    serde_json::to_writer(&mut *out, &count).map_err(internal)?;
    Ok(())
}

/// Resolves every point against one snapshot and renders the answer, in
/// one go (`chunk` points at a time): the JSON document, or the NDJSON
/// stream's lines joined.
#[cfg(test)]
fn answer_batch(
    snapshot: &Snapshot,
    expires: &str,
    batch: &Batch,
    tiers: Option<TierSet>,
    chunk: usize,
    lines: bool,
) -> Result<Vec<u8>, ApiError> {
    let mut w = BatchWriter::new(snapshot, batch, tiers, lines);
    let mut streamed = Vec::new();
    if lines {
        w.head(snapshot, expires, batch.locations.len())?;
    }
    for part in batch.locations.chunks(chunk.max(1)) {
        w.add(snapshot, batch, part.len())?;
        if lines {
            streamed.extend_from_slice(&w.take());
        }
    }
    if lines {
        Ok(streamed)
    } else {
        w.finish(snapshot, expires)
    }
}

/// A streamed batch answer ([`NDJSON`]): the response body resolves and
/// writes one chunk of points each time it is polled, and gives the runtime
/// a turn between chunks, so the client reads (and parses) the first
/// results while the server works on the next, and the server never holds
/// more than a chunk of the answer. The request's concurrency permit and
/// deadline are carried over to the body by [`crate::limits::Streamed`].
struct BatchLines {
    snapshot: Arc<Snapshot>,
    batch: Batch,
    writer: BatchWriter,
    /// Whether the last poll gave the runtime its turn.
    yielded: bool,
}

impl axum::body::HttpBody for BatchLines {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.is_end_stream() {
            return Poll::Ready(None);
        }
        if this.writer.done > 0 && !this.yielded {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.yielded = false;
        if let Err(e) = this.writer.add(&this.snapshot, &this.batch, CHUNK) {
            // Not reached (writing to memory); the client sees the stream cut short.
            return Poll::Ready(Some(Err(e.to_string().into())));
        }
        Poll::Ready(Some(Ok(http_body::Frame::data(this.writer.take()))))
    }

    fn is_end_stream(&self) -> bool {
        self.writer.done >= self.batch.locations.len()
    }
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

/// Reads and checks the batch body. axum's `Json` deserialises through
/// `serde_path_to_error` to name the field at fault, which made parsing ~23 %
/// of a 1,000-point batch's CPU (profiled under `benches/load.sh`). So a
/// plain `application/json` body of the common shape is read by
/// [`batch_body::quick`], anything else of that type by `serde_json`
/// directly, and anything else, or a body that does not parse, goes through
/// axum's `Json` as before: every error answer (415, 413, 400 with the JSON
/// path or the point at fault) is unchanged.
async fn batch_body(req: axum::extract::Request, state: &AppState) -> Result<Batch, ApiError> {
    use axum::extract::FromRequest;
    let max = state.settings.max_batch;
    if !plain_json(req.headers()) {
        let Json(body) = Json::<BatchRequest>::from_request(req, state).await?;
        return batch_body::validate(body, max);
    }
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| ApiError::from(axum::extract::rejection::JsonRejection::from(e)))?;
    if let Some(batch) = batch_body::quick(&bytes, max) {
        return Ok(batch);
    }
    let body = match serde_json::from_slice::<BatchRequest>(&bytes) {
        Ok(body) => body,
        Err(_) => match axum::Json::<BatchRequest>::from_bytes(&bytes) {
            Ok(axum::Json(body)) => body,
            Err(rejection) => return Err(ApiError::from(rejection)),
        },
    };
    batch_body::validate(body, max)
}

/// Every jurisdiction serving each of many points, as one JSON document or
/// streamed as newline-delimited JSON ([`NDJSON`]).
#[utoipa::path(
    post,
    path = "/v1/resolve",
    tag = "public",
    operation_id = "resolve_batch",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per point: one JSON document, or with `Accept: application/x-ndjson` a stream of lines (a head, then each point's new records and its result)", content(
            (BatchAnswer = "application/json"),
            (BatchLine = "application/x-ndjson"),
        )),
        (status = 400, description = "The body is not a valid batch (`batch_too_large` over `--max-batch`); `field` names the point, e.g. `points[1].lat`"),
    )
)]
pub(crate) async fn resolve_many(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let lines = wants_lines(req.headers());
    let batch = batch_body(req, &state).await?;
    let tiers = match &batch.tier {
        Some(t) => params::tiers(&[("tier", t)])?,
        None => None,
    };
    let snapshot: Arc<Snapshot> = state.index.current();
    let version = snapshot.version();
    // A POST answer is not cached by HTTP caches; the tag lets clients
    // compare answers, and differs between the two forms.
    let mut headers = cache::headers(&state, &cache::etag((if lines { "batch-lines" } else { "batch" }, version)));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding, Accept"));
    let mut writer = BatchWriter::new(&snapshot, &batch, tiers, lines);
    if lines {
        writer.head(&snapshot, &cache::expires(&state), batch.locations.len())?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        // Tells nginx to pass the lines on as they come instead of buffering the answer.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        let body = BatchLines { snapshot, batch, writer, yielded: false };
        let mut res = (headers, axum::body::Body::new(body)).into_response();
        res.extensions_mut().insert(crate::limits::Streamed);
        return Ok(res);
    }
    // A large batch gives the other requests on its thread a turn between
    // chunks. (It ran on the blocking pool before: handing it there and
    // back cost ~5 % of a 1,000-point batch's CPU.)
    for (i, part) in batch.locations.chunks(CHUNK).enumerate() {
        if i > 0 {
            tokio::task::yield_now().await;
        }
        writer.add(&snapshot, &batch, part.len())?;
    }
    let body = writer.finish(&snapshot, &cache::expires(&state))?;
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok((headers, body).into_response())
}

/// Whether a batch request asks for the streamed answer: an `Accept` that
/// names [`NDJSON`] (or `application/ndjson`) with a quality above zero and
/// no lower than that of `application/json`. Wildcards choose JSON.
fn wants_lines(headers: &HeaderMap) -> bool {
    let (mut lines, mut json) = (0.0_f32, 0.0_f32);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case(NDJSON) || media.eq_ignore_ascii_case("application/ndjson") {
                lines = lines.max(q);
            } else if media.eq_ignore_ascii_case("application/json") {
                json = json.max(q);
            }
        }
    }
    lines > 0.0 && lines >= json
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
                    for expires in [None, Some("2026-11-26T13:20:55Z"), Some("a \"quoted\" \\ text\n\u{1F600}")] {
                        let ours = render_one(&snapshot, loc, hits, annotated, expires).expect("renders");
                        let serde = serde_json::to_vec(&OneAnswer {
                            location: loc,
                            index_version: snapshot.version(),
                            expires: expires.map(str::to_owned),
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
        let req: BatchRequest = serde_json::from_str(body).expect("a batch");
        let mut batch = batch_body::validate(req, 100).expect("valid");
        let locations = batch.locations.clone();
        for (tiers, records_flag) in
            [(None, None), (params::tiers(&[("tier", "state,place")]).expect("tiers"), Some(true)), (None, Some(false))]
        {
            batch.records = records_flag != Some(false);
            let expires = "2026-11-26T13:20:55Z";
            let ours = answer_batch(&snapshot, expires, &batch, tiers, CHUNK, false).expect("renders");
            let lines = answer_batch(&snapshot, expires, &batch, tiers, CHUNK, true).expect("renders");
            for chunk in [1, 2, 3] {
                let parts = answer_batch(&snapshot, expires, &batch, tiers, chunk, false);
                assert_eq!(parts.expect("renders"), ours, "chunks of {chunk}");
                let parts = answer_batch(&snapshot, expires, &batch, tiers, chunk, true);
                assert_eq!(parts.expect("renders"), lines, "streamed in chunks of {chunk}");
            }
            // The reference: records in first-seen order, ids per point.
            let (mut records, mut per_point, mut fresh) = (Vec::new(), Vec::new(), Vec::new());
            let mut slots = Vec::new();
            for loc in &locations {
                // One point at a time through `resolve_into`.
                snapshot.resolve_into(loc.lon, loc.lat, &mut slots);
                if let Some(tiers) = tiers {
                    slots.retain(|&s| snapshot.entry(s).is_some_and(|e| tiers.contains(e.record.tier)));
                }
                let (mut ids, mut new) = (Vec::new(), Vec::new());
                for &s in &slots {
                    let e = snapshot.entry(s).expect("an entry");
                    if !records.iter().any(|(id, _)| *id == e.record.id.as_str()) {
                        records.push((e.record.id.as_str(), &*e.json));
                        new.push(&*e.json);
                    }
                    ids.push(e.record.id.as_str());
                }
                per_point.push(ids);
                fresh.push(new);
            }
            let results = || {
                locations.iter().enumerate().zip(&per_point).map(|((i, loc), ids)| BatchResult {
                    id: batch.id(i),
                    location: *loc,
                    jurisdictions: ids,
                })
            };
            let with_records = records_flag != Some(false);
            let serde = serde_json::to_vec(&BatchAnswer {
                index_version: 7,
                expires,
                count: locations.len(),
                jurisdictions: with_records.then_some(Records(records)),
                results: results().collect(),
            })
            .expect("serialises");
            assert!(per_point.iter().any(|ids| ids.len() >= 2), "some point is covered twice");
            assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
            // The streamed form: the head, then each point's new records and its result.
            let line = |l: BatchLine<'_>| serde_json::to_string(&l).expect("serialises") + "\n";
            let mut want = line(BatchLine::Batch(BatchHead { index_version: 7, expires, count: locations.len() }));
            for (result, new) in results().zip(&fresh) {
                if with_records {
                    // The record as pre-rendered (`JurisdictionView`'s JSON).
                    want.extend(new.iter().map(|json| format!("{{\"jurisdiction\":{}}}\n", json.get())));
                }
                want += &line(BatchLine::Result(result));
            }
            assert_eq!(String::from_utf8_lossy(&lines), want);
        }
    }

    /// The streamed form is chosen only when asked for, and not when JSON is preferred.
    #[test]
    fn wants_lines_negotiates() {
        let ask = |accept: &[&str]| {
            let mut h = HeaderMap::new();
            for a in accept {
                h.append(header::ACCEPT, HeaderValue::from_str(a).expect("a header value"));
            }
            wants_lines(&h)
        };
        assert!(!ask(&[]));
        assert!(!ask(&["*/*"]));
        assert!(!ask(&["application/json"]));
        assert!(ask(&["application/x-ndjson"]));
        assert!(ask(&["Application/NDJSON"]));
        assert!(ask(&["application/json", "application/x-ndjson"]));
        assert!(ask(&["application/json;q=0.5, application/x-ndjson"]));
        assert!(!ask(&["application/json, application/x-ndjson;q=0.9"]));
        assert!(!ask(&["application/x-ndjson;q=0"]));
        assert!(ask(&["application/x-ndjson; charset=utf-8; q=0.8, */*;q=0.1"]));
        assert!(!ask(&["application/x-ndjson;q=abc, application/json;q=1.5"]));
    }
}
