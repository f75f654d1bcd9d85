//! Observability: `/metrics` (Prometheus text format), request ids, JSON
//! logs, and no secret in any log line.
//!
//! - `metrics_*`: through the router, in process: counters by route
//!   template, latency histograms, index gauges with the snapshot's real
//!   figures, build/swap timings, change-feed lag, harvest outcomes, refusals;
//!   the text is checked line by line against the exposition format.
//! - `request_ids_*`: every answer carries `x-request-id`; a plain client id is
//!   echoed, a hostile one replaced.
//! - `a_full_admin_session_logs_no_secret`: the real binary with JSON logs at
//!   debug level, through every admin route, the token CLI, refused and
//!   forged tokens, HS256 with a secret from the environment, and database
//!   URLs with passwords; then every log line is searched for every token,
//!   the JWT secret, the private key and the passwords, and every line
//!   written inside a request must carry its request id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{call, call_with, get, writable, Backend};
use geowebdns::{AppState, Settings};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BLOOMINGTON: &str = "us-place:1805860";
const IN_BLOOMINGTON: &str = "/v1/resolve?lat=39.1653&lon=-86.5264";

// ---------------------------------------------------------------------------
// A small reader of the Prometheus text exposition format (0.0.4).

/// One sample line: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A sample's labels, sorted, as (name, value) pairs.
type Labels = Vec<(String, String)>;
fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value `{s}`")),
    }
}

/// Parses `{a="x",b="y\"z"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name, false) {
            return Err(format!("bad label name `{name}`"));
        }
        let mut chars = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        rest = &rest[eq + 1 + 1 + end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses a whole exposition text, checking its grammar: `# HELP`/`# TYPE`
/// lines, a TYPE before the samples of its family, valid names, labels and
/// values, histograms whose buckets grow and end with `+Inf` equal to
/// `_count`. Returns the samples and the type of each family.
fn parse_exposition(text: &str) -> Result<(Vec<Sample>, HashMap<String, String>), String> {
    let mut samples = Vec::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.as_slice() {
                ["TYPE", name, kind] => {
                    if !is_name(name, true) {
                        return Err(at("bad metric name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                        return Err(at("bad type".into()));
                    }
                    if types.insert((*name).to_owned(), (*kind).to_owned()).is_some() {
                        return Err(at("TYPE twice".into()));
                    }
                }
                ["HELP", name, ..] if !is_name(name, true) => return Err(at("bad metric name".into())),
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(at("sample before its TYPE line".into()));
        }
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    // Histograms: cumulative buckets ending in +Inf == _count.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        // Buckets (le, cumulative count) of each label set but `le`.
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == format!("{family}_bucket")) {
            let le = parse_value(s.labels.get("le").ok_or(format!("{family}: bucket without le"))?)?;
            let key: Vec<_> =
                s.labels.iter().filter(|(k, _)| *k != "le").map(|(k, v)| (k.clone(), v.clone())).collect();
            series.entry(key).or_default().push((le, s.value));
        }
        for (key, buckets) in series {
            let counts: Vec<f64> = buckets.iter().map(|b| b.1).collect();
            if buckets.windows(2).any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1) {
                return Err(format!("{family}{key:?}: buckets not increasing: {buckets:?}"));
            }
            let count = samples
                .iter()
                .find(|s| {
                    s.name == format!("{family}_count")
                        && s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>() == key
                })
                .ok_or(format!("{family}{key:?}: no _count"))?;
            if buckets.last().map(|b| b.0) != Some(f64::INFINITY) || counts.last() != Some(&count.value) {
                return Err(format!("{family}{key:?}: +Inf bucket is not _count"));
            }
        }
    }
    Ok((samples, types))
}

/// The scraped metrics of a state.
struct Scrape {
    samples: Vec<Sample>,
    types: HashMap<String, String>,
    text: String,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels`; panics if there are several.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v)))
            .collect();
        assert!(found.len() <= 1, "several {name}{labels:?} in\n{}", self.text);
        found.first().map(|s| s.value)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{}", self.text))
    }
}

async fn scrape(state: &AppState) -> Scrape {
    let a = get(state, "/metrics").await.expect(200);
    assert_eq!(a.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    let text = String::from_utf8(a.raw).unwrap();
    let (samples, types) = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Scrape { samples, types, text }
}

#[test]
fn the_format_checker_refuses_broken_text() {
    let good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"q\\\"uote\"} 3\n";
    let (samples, _) = parse_exposition(good).unwrap();
    assert_eq!(samples[0].labels["a"], "q\"uote");
    for bad in [
        "x_total 3\n",                                                                    // no TYPE
        "# TYPE x counter\nx{a=\"b} 1\n",                                                 // unterminated
        "# TYPE x counter\nx{a=b} 1\n",                                                   // unquoted
        "# TYPE x counter\nx one\n",                                                      // not a number
        "# TYPE 9x counter\n9x 1\n",                                                      // bad name
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // decreasing
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n", // count mismatch
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------
// Metrics through the router.

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_report_the_index() {
    let state = common::state().await;
    get(&state, IN_BLOOMINGTON).await.expect(200);
    get(&state, IN_BLOOMINGTON).await.expect(200);
    get(&state, "/v1/resolve?lat=91&lon=0").await.problem(400, Some("lat"));
    get(&state, "/v1/jurisdictions/us-state:18").await.expect(200);
    get(&state, "/v1/jurisdictions/us-state:06").await.expect(200);
    get(&state, "/v1/jurisdictions/us-state:99").await.problem(404, None);
    get(&state, "/no/such/route/12345").await.problem(404, None);
    common::send(
        &state,
        axum::http::Request::builder().method("BREW").uri("/healthz").body(axum::body::Body::empty()).unwrap(),
    )
    .await
    .problem(405, None);

    let m = scrape(&state).await;
    let requests = "geowebdns_http_requests_total";
    assert_eq!(m.types[requests], "counter");
    assert_eq!(m.get(requests, &[("route", "/v1/resolve"), ("method", "GET"), ("status", "200")]), 2.0);
    assert_eq!(m.get(requests, &[("route", "/v1/resolve"), ("method", "GET"), ("status", "400")]), 1.0);
    let by_id = "/v1/jurisdictions/{id}";
    assert_eq!(m.get(requests, &[("route", by_id), ("method", "GET"), ("status", "200")]), 2.0);
    assert_eq!(m.get(requests, &[("route", by_id), ("method", "GET"), ("status", "404")]), 1.0);
    assert_eq!(m.get(requests, &[("route", "unmatched"), ("method", "GET"), ("status", "404")]), 1.0);
    assert_eq!(m.get(requests, &[("route", "/healthz"), ("method", "other"), ("status", "405")]), 1.0);
    // Never the raw path or an extension method: label values stay bounded.
    for bad in ["us-state", "12345", "BREW", "lat="] {
        assert!(!m.text.contains(bad), "`{bad}` in a label:\n{}", m.text);
    }
    let duration = "geowebdns_http_request_duration_seconds";
    assert_eq!(m.types[duration], "histogram");
    assert_eq!(m.get(&format!("{duration}_count"), &[("route", "/v1/resolve"), ("method", "GET")]), 3.0);
    assert!(m.get(&format!("{duration}_sum"), &[("route", "/v1/resolve"), ("method", "GET")]) > 0.0);
    assert_eq!(m.get("geowebdns_http_requests_in_flight", &[]), 1.0, "the scrape itself is in flight");

    // The index gauges hold the snapshot's real figures.
    let snapshot = state.index.current();
    let stats = snapshot.stats();
    assert!(stats.polygons > 1000 && stats.vertices > 100_000, "{stats:?}");
    assert_eq!(m.get("geowebdns_index_version", &[]), snapshot.version() as f64);
    assert_eq!(m.get("geowebdns_index_polygons", &[]), stats.polygons as f64);
    assert_eq!(m.get("geowebdns_index_vertices", &[]), stats.vertices as f64);
    assert_eq!(m.get("geowebdns_index_jurisdictions", &[]), stats.jurisdictions as f64);
    assert_eq!(m.get("geowebdns_index_endpoints", &[]), stats.endpoints as f64);
    assert!(m.get("geowebdns_index_age_seconds", &[]) >= 0.0);
    assert_eq!(m.get("geowebdns_store_up", &[]), 1.0);
    assert_eq!(m.get("geowebdns_store_latest_seq", &[]), snapshot.version() as f64);
    assert_eq!(m.get("geowebdns_change_feed_lag", &[]), 0.0);
    // The fixture's snapshot was built from the whole store once.
    assert_eq!(m.get("geowebdns_index_build_duration_seconds_count", &[("kind", "full")]), 1.0);
    assert!(m.get("geowebdns_index_build_duration_seconds_sum", &[("kind", "full")]) > 0.0);
    assert!(m.get("geowebdns_build_info", &[("version", env!("CARGO_PKG_VERSION"))]) == 1.0);

    // The scrape is counted too, on the next one.
    let again = scrape(&state).await;
    assert_eq!(again.get(requests, &[("route", "/metrics"), ("method", "GET"), ("status", "200")]), 1.0);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let state = common::state_with(Settings { metrics: false, ..Settings::default() }).await;
    get(&state, "/metrics").await.problem(404, None);
    // Nor does the served OpenAPI document describe it then; by default it does.
    let doc = get(&state, "/openapi.json").await.expect(200).body;
    assert!(doc["paths"]["/healthz"].is_object() && doc["paths"].get("/metrics").is_none(), "{}", doc["paths"]);
    let default = common::state().await;
    let doc = get(&default, "/openapi.json").await.expect(200).body;
    assert!(doc["paths"]["/metrics"]["get"].is_object());
}

/// Log lines written through a `tracing` subscriber, kept in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// A request shed under load (503, no free slot) is counted, and not
/// logged at ERROR: one error line a shed request would flood the logs
/// exactly when the server is overloaded. An internal error still is.
#[tokio::test]
async fn requests_shed_under_load_are_not_logged_as_errors() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // This test's runtime has one thread: every event of the request is
    // written on it, through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let limits = geowebdns::limits::LimitSettings { max_concurrent: 1, ..Default::default() };
    let state = common::state_with(Settings { limits, ..Settings::default() }).await;
    let held = state.limits.occupy_public().unwrap();
    let a = get(&state, "/healthz").await.problem(503, None);
    assert_eq!(a.body["code"], "overloaded");
    drop(held);
    let m = scrape(&state).await;
    assert_eq!(m.get("geowebdns_http_refused_total", &[("reason", "overloaded_public")]), 1.0);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("response failed") && text.contains("503"), "the failure is logged at DEBUG: {text}");
    assert!(!text.contains("ERROR"), "a shed request was logged as an error: {text}");

    // An internal error (a bug or a broken invariant) is still an ERROR.
    let internal = geowebdns::error::ApiError::Internal("test".into());
    let _ = axum::response::IntoResponse::into_response(internal);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("ERROR") && text.contains("internal error"), "{text}");
}

async fn metrics_follow_writes_lag_harvests_and_refusals(b: Backend) {
    let settings = Settings {
        limits: geowebdns::limits::LimitSettings { max_concurrent: 1, ..Default::default() },
        ..Settings::default()
    };
    let Some(w) = writable(b, settings).await else { return };
    let s = &w.state;
    let admin = w.token("ops", &["admin"]);
    let before = scrape(s).await;
    assert_eq!(before.value("geowebdns_index_build_duration_seconds_count", &[("kind", "incremental")]), None);

    // An admin write builds an incremental snapshot and swaps it in.
    let body = json!({"url": "http://127.0.0.1:9/open311/v2/", "type": "test"}).to_string();
    let ep = call(s, "POST", &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"), Some(&admin), Some(&body))
        .await
        .expect(201);
    let id = ep.body["id"].as_str().unwrap().to_owned();
    let after = scrape(s).await;
    assert_eq!(after.get("geowebdns_index_build_duration_seconds_count", &[("kind", "incremental")]), 1.0);
    assert_eq!(after.get("geowebdns_index_swap_duration_seconds_count", &[]), 1.0);
    assert!(after.get("geowebdns_index_version", &[]) > before.get("geowebdns_index_version", &[]));
    assert_eq!(after.get("geowebdns_change_feed_lag", &[]), 0.0);
    assert_eq!(
        after.get(
            "geowebdns_http_requests_total",
            &[("route", "/admin/v1/jurisdictions/{id}/endpoints"), ("method", "POST"), ("status", "201")]
        ),
        1.0
    );

    // The harvester refuses the loopback URL (default policy): a failure of kind `blocked`.
    let a = call(s, "POST", &format!("/admin/v1/endpoints/{id}/harvest"), Some(&admin), None).await.expect(200);
    assert_eq!(a.body["report"]["outcome"], "failed", "{}", a.body);
    let m = scrape(s).await;
    assert_eq!(m.get("geowebdns_harvests_total", &[("outcome", "failed"), ("error", "blocked")]), 1.0);
    assert_eq!(m.get("geowebdns_harvest_duration_seconds_count", &[]), 1.0);

    // A write through another instance on the same store: this one lags until it catches up.
    let other = AppState::new(s.store.clone(), s.index.current(), Settings::default()).with_keys(w.keys.clone());
    call(&other, "DELETE", &format!("/admin/v1/endpoints/{id}"), Some(&admin), None).await.expect(204);
    let m = scrape(s).await;
    assert!(m.get("geowebdns_change_feed_lag", &[]) >= 1.0, "{}", m.text);
    assert_eq!(m.get("geowebdns_store_latest_seq", &[]), other.index.current().version() as f64);
    geowebdns::index::follower::catch_up(&s.index, &s.store).await.unwrap();
    let m = scrape(s).await;
    assert_eq!(m.get("geowebdns_change_feed_lag", &[]), 0.0);
    assert_eq!(m.get("geowebdns_index_build_duration_seconds_count", &[("kind", "incremental")]), 3.0);

    // A full public pool sheds the next public request and counts it.
    let slot = s.limits.occupy_public().unwrap();
    get(s, IN_BLOOMINGTON).await.problem(503, None);
    drop(slot);
    let m = scrape(s).await;
    assert_eq!(m.get("geowebdns_http_refused_total", &[("reason", "overloaded_public")]), 1.0);
    assert_eq!(
        m.get("geowebdns_http_requests_total", &[("route", "/v1/resolve"), ("method", "GET"), ("status", "503")]),
        1.0
    );
}

both_backends!(metrics_follow_writes_lag_harvests_and_refusals);

// ---------------------------------------------------------------------------
// Request ids.

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

#[tokio::test]
async fn request_ids_are_on_every_answer_and_hostile_ones_are_replaced() {
    let state = common::state().await;
    // Made when absent, different every time, on successes and on every kind of error.
    let mut seen = std::collections::HashSet::new();
    for uri in [IN_BLOOMINGTON, IN_BLOOMINGTON, "/v1/resolve?lat=91&lon=0", "/nowhere", "/metrics", "/healthz"] {
        let a = get(&state, uri).await;
        let id = a.header("x-request-id").to_owned();
        assert!(is_uuid(&id), "{uri}: request id `{id}`");
        assert!(seen.insert(id), "{uri}: request id reused");
    }
    let a = call(&state, "GET", "/admin/v1/whoami", Some("garbage"), None).await;
    assert!(is_uuid(a.header("x-request-id")), "{:?}", a.headers);

    // A plain client id is kept, on success and on error.
    for (uri, status) in [(IN_BLOOMINGTON, 200), ("/v1/resolve?lat=x&lon=0", 400)] {
        let id = "client-7f3a_9.b:2";
        let a = call_with(&state, "GET", uri, None, None, &[("x-request-id", id)]).await.expect(status);
        assert_eq!(a.header("x-request-id"), id);
    }
    let longest = "a".repeat(geowebdns::request_id::MAX_LEN);
    let a = call_with(&state, "GET", "/healthz", None, None, &[("x-request-id", &longest)]).await;
    assert_eq!(a.header("x-request-id"), longest);

    // Hostile ids are replaced by a fresh UUID.
    let long = "b".repeat(1000);
    let hostile: Vec<&[u8]> = vec![
        long.as_bytes(),
        b"abc def",
        b"abc\tdef",
        b"\"quoted\"",
        b"line%0Abreak",
        b"forged\" level=ERROR msg=\"x",
        b"{\"json\":1}",
        "caf\u{e9}".as_bytes(),
        b"",
    ];
    for id in hostile {
        let req = axum::http::Request::get("/healthz")
            .header("x-request-id", axum::http::HeaderValue::from_bytes(id).unwrap())
            .body(axum::body::Body::empty())
            .unwrap();
        let a = common::send(&state, req).await.expect(200);
        let got = a.header("x-request-id");
        assert!(is_uuid(got), "{:?} answered with request id {got:?}", String::from_utf8_lossy(id));
        assert_eq!(a.headers.get_all("x-request-id").iter().count(), 1);
    }
    // Two ids, even plain ones: replaced.
    let req = axum::http::Request::get("/healthz")
        .header("x-request-id", "one")
        .header("x-request-id", "two")
        .body(axum::body::Body::empty())
        .unwrap();
    let a = common::send(&state, req).await.expect(200);
    assert!(is_uuid(a.header("x-request-id")), "{:?}", a.headers);
}

// ---------------------------------------------------------------------------
// No secret in any log line: the real binary, a whole admin session.

const JSON_DEBUG: &[(&str, &str)] = &[("GEOWEBDNS_LOG", "debug,geowebdns=trace"), ("GEOWEBDNS_LOG_FORMAT", "json")];

/// Runs the CLI with JSON debug logs; returns (stdout, stderr lines), asserting success if `ok`.
fn cli(args: &[&str], env: &[(&str, &str)], ok: bool) -> (String, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(args)
        .envs(JSON_DEBUG.iter().copied())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().map(str::to_owned).collect();
    assert_eq!(out.status.success(), ok, "geowebdns {args:?}: {stdout}\n{}", stderr.join("\n"));
    (stdout, stderr)
}

/// Starts `geowebdns serve` with a database URL that cannot be reached, waits
/// until it has said so (it retries forever), stops it, and returns its stderr.
fn unreachable_serve(url: &str, key_dir: &Path) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(JSON_DEBUG.iter().copied())
        .env("GEOWEBDNS_DATABASE_URL", url)
        .env("GEOWEBDNS_KEY_DIR", key_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !lines.iter().any(|l: &String| l.contains("database unreachable")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("serve never said the database is unreachable:\n{}", lines.join("\n")),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines.extend(rx.try_iter());
    lines
}

/// A client of one server that sends a fresh request id with every request
/// and remembers them.
struct Session<'a> {
    http: reqwest::Client,
    base: String,
    tag: &'a str,
    ids: Vec<String>,
}

impl Session<'_> {
    async fn send(&mut self, method: &str, path: &str, auth: Option<&str>, body: Option<String>, status: u16) -> Value {
        let id = format!("{}-{:03}", self.tag, self.ids.len());
        let mut req =
            self.http.request(method.parse().unwrap(), format!("{}{path}", self.base)).header("x-request-id", &id);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.headers()["x-request-id"], id.as_str());
        let got = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        self.ids.push(id);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn square(id: &str) -> String {
    let (x, y) = (-20.0, -40.0);
    json!({"type": "Feature", "properties": {"id": id, "name": format!("Square {id}"), "tier": "special_district"},
           "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 1.0, y], [x + 1.0, y + 1.0], [x, y + 1.0], [x, y]]]}})
    .to_string()
}

/// Checks the JSON log lines of one server: every line is a JSON object;
/// every line written inside a request carries a plain request id; every
/// request the test sent is in the logs. Returns how many lines were
/// written inside requests.
fn check_request_ids(name: &str, lines: &[String], sent: &[String]) -> usize {
    let mut inside = 0;
    let mut logged: std::collections::HashSet<String> = std::collections::HashSet::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{name}: {line}");
        let Some(spans) = v["spans"].as_array() else { continue };
        let Some(request) = spans.iter().find(|s| s["name"] == "request") else { continue };
        inside += 1;
        let id = request["request_id"].as_str().unwrap_or_else(|| panic!("{name}: no request id: {line}"));
        assert!(geowebdns::request_id::acceptable(id.as_bytes()), "{name}: request id {id:?}: {line}");
        assert!(request["route"].is_string() && request["method"].is_string(), "{name}: {line}");
        logged.insert(id.to_owned());
    }
    for id in sent {
        assert!(logged.contains(id), "{name}: no log line carries request id {id}");
    }
    inside
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_admin_session_logs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("obs.db").display());
    let key_dir = dir.path().join("keys");
    let key_dir_s = key_dir.to_str().unwrap().to_owned();
    let store_env: Vec<(&str, &str)> = vec![("GEOWEBDNS_DATABASE_URL", &url), ("GEOWEBDNS_KEY_DIR", &key_dir_s)];
    // Everything a process wrote on stderr, by process.
    let mut logs: Vec<(String, Vec<String>)> = Vec::new();
    // Every secret used; none may appear in any log line.
    let mut secrets: Vec<(String, String)> = Vec::new();

    // --- Server A: EdDSA keys, JSON logs at debug (trace for geowebdns).
    let server = common::server::serve_with_env(&url, &key_dir, &[], JSON_DEBUG);
    let pem = std::fs::read_to_string(key_dir.join("ed25519-private.pem")).unwrap();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(pem_body.len() > 40, "{pem}");
    secrets.push(("private key".into(), pem_body.clone()));

    let mut issue = |scope: &str, sub: &str| -> String {
        let (out, err) = cli(&["token", "issue", "--scope", scope, "--ttl", "1h", "--sub", sub], &store_env, true);
        logs.push((format!("token issue {sub}"), err));
        out.trim().to_owned()
    };
    let admin = issue("admin", "obs-ops");
    let city = issue(&format!("jurisdiction:{BLOOMINGTON}"), "obs-city");
    let doomed = issue("admin", "obs-doomed");
    for (what, t) in [("admin token", &admin), ("city token", &city), ("revoked token", &doomed)] {
        assert_eq!(t.split('.').count(), 3, "{t}");
        secrets.push((what.into(), t.clone()));
        secrets.push((format!("{what} signature"), t.rsplit('.').next().unwrap().to_owned()));
    }

    let mut a = Session { http: reqwest::Client::new(), base: server.base.clone(), tag: "obs-a", ids: Vec::new() };
    let (adm, cty) = (bearer(&admin), bearer(&city));
    a.send("GET", "/admin/v1/whoami", Some(&adm), None, 200).await;
    a.send("GET", "/admin/v1/whoami", Some(&cty), None, 200).await;
    // Jurisdictions: create, read, patch; bulk import; audit.
    a.send("POST", "/admin/v1/jurisdictions", Some(&adm), Some(square("test:obs-square")), 201).await;
    a.send("GET", "/admin/v1/jurisdictions/test:obs-square", Some(&adm), None, 200).await;
    a.send("PATCH", "/admin/v1/jurisdictions/test:obs-square", Some(&adm), Some(r#"{"name":"Obs"}"#.into()), 200).await;
    let fc = format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, square("test:obs-import"));
    a.send("POST", "/admin/v1/import", Some(&adm), Some(fc), 200).await;
    // Endpoints and services, with the city's own token.
    let body = json!({"url": "http://127.0.0.1:9/open311/v2/", "type": "test",
                      "services": [{"service_code": "POT", "service_name": "Pothole"}]});
    let ep = a
        .send(
            "POST",
            &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"),
            Some(&cty),
            Some(body.to_string()),
            201,
        )
        .await;
    let ep = format!("/admin/v1/endpoints/{}", ep["id"].as_str().unwrap());
    a.send("GET", &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"), Some(&cty), None, 200).await;
    a.send("GET", &ep, Some(&cty), None, 200).await;
    a.send("PATCH", &ep, Some(&cty), Some(r#"{"contact":"311@example.org"}"#.into()), 200).await;
    a.send(
        "PUT",
        &format!("{ep}/services"),
        Some(&cty),
        Some(r#"[{"service_code":"A","service_name":"A"}]"#.into()),
        200,
    )
    .await;
    a.send(
        "PUT",
        &format!("{ep}/services/B"),
        Some(&cty),
        Some(r#"{"service_code":"B","service_name":"B"}"#.into()),
        200,
    )
    .await;
    a.send("DELETE", &format!("{ep}/services/B"), Some(&cty), None, 200).await;
    // The harvester refuses the loopback address (no fetch leaves the machine).
    let h = a.send("POST", &format!("{ep}/harvest"), Some(&cty), None, 200).await;
    assert_eq!(h["report"]["outcome"], "failed", "{h}");
    a.send("GET", "/admin/v1/audit?limit=5", Some(&adm), None, 200).await;
    // Refusals: a scope the token lacks; deletes.
    a.send("POST", "/admin/v1/jurisdictions", Some(&cty), Some(square("test:nope")), 403).await;
    a.send("DELETE", &ep, Some(&cty), None, 204).await;
    a.send("DELETE", "/admin/v1/jurisdictions/test:obs-square", Some(&adm), None, 204).await;
    a.send("DELETE", "/admin/v1/jurisdictions/test:obs-import", Some(&adm), None, 204).await;

    // Revocation through the CLI.
    let jti =
        a.send("GET", "/admin/v1/whoami", Some(&bearer(&doomed)), None, 200).await["jti"].as_str().unwrap().to_owned();
    let (_, err) = cli(&["token", "revoke", &jti, "--reason", "test"], &store_env, true);
    logs.push(("token revoke".into(), err));
    let (list, err) = cli(&["token", "list"], &store_env, true);
    logs.push(("token list".into(), err));
    assert!(list.contains(&jti) && !list.contains(&doomed), "{list}");
    a.send("GET", "/admin/v1/whoami", Some(&bearer(&doomed)), None, 401).await;

    // Forged and garbage credentials: all refused, none logged.
    let other_keys = geowebdns::auth::Keys::load_or_create(&geowebdns::auth::KeySettings {
        key_dir: dir.path().join("other-keys"),
        ..Default::default()
    })
    .unwrap();
    let (foreign, _) = other_keys.issue("mallory", &["admin".parse().unwrap()], Duration::from_secs(600)).unwrap();
    let none_alg = format!(
        "{}.{}.",
        common::b64(br#"{"alg":"none","typ":"JWT"}"#),
        common::b64(br#"{"sub":"mallory","jti":"forged-obs","iat":1,"exp":99999999999,"scopes":["admin"]}"#)
    );
    let tampered = {
        let mut parts: Vec<&str> = admin.split('.').collect();
        let payload = common::b64(br#"{"sub":"mallory","jti":"x","iat":1,"exp":99999999999,"scopes":["admin"]}"#);
        parts[1] = &payload;
        parts.join(".")
    };
    let garbage = "obsgarbagetokenvalue0123456789";
    let basic = format!("Basic {}", common::b64(b"obsuser:obs-basic-password"));
    for (what, auth) in [
        ("foreign token", bearer(&foreign)),
        ("alg none token", bearer(&none_alg)),
        ("tampered token", bearer(&tampered)),
        ("garbage token", bearer(garbage)),
        ("basic credentials", basic.clone()),
    ] {
        a.send("GET", "/admin/v1/whoami", Some(&auth), None, 401).await;
        a.send("DELETE", &ep, Some(&auth), None, 401).await;
        secrets.push((what.into(), auth.split_once(' ').unwrap().1.to_owned()));
    }
    secrets.push(("basic password".into(), "obs-basic-password".into()));
    // A client that puts its token in the query string: the query is never logged.
    a.send("GET", &format!("{IN_BLOOMINGTON}&access_token={admin}"), None, None, 200).await;
    // Public routes, the console, health and metrics, for a complete run.
    a.send("GET", IN_BLOOMINGTON, None, None, 200).await;
    a.send("GET", "/v1/resolve?lat=91&lon=0", None, None, 400).await;
    a.send("GET", "/admin/", None, None, 200).await;
    a.send("GET", "/readyz", None, None, 200).await;
    let metrics = server_metrics(&server.base).await;
    assert!(metrics.contains("geowebdns_index_polygons "), "{metrics}");

    // --- Server B: HS256 with the secret from the environment, on the same database.
    let secret = "obs-hs256-secret-0123456789abcdefghijklmnop";
    secrets.push(("JWT secret".into(), secret.into()));
    let hs_env: Vec<(&str, &str)> =
        [JSON_DEBUG, &[("GEOWEBDNS_JWT_ALGORITHM", "hs256"), ("GEOWEBDNS_JWT_SECRET", secret)]].concat();
    let hs_server = common::server::serve_with_env(&url, &key_dir, &[], &hs_env);
    let mut hs_cli_env = store_env.clone();
    hs_cli_env.extend([("GEOWEBDNS_JWT_ALGORITHM", "hs256"), ("GEOWEBDNS_JWT_SECRET", secret)]);
    let (hs_token, err) =
        cli(&["token", "issue", "--scope", "admin", "--ttl", "1h", "--sub", "obs-hs"], &hs_cli_env, true);
    logs.push(("token issue hs256".into(), err));
    let hs_token = hs_token.trim().to_owned();
    secrets.push(("HS256 token".into(), hs_token.clone()));
    secrets.push(("HS256 token signature".into(), hs_token.rsplit('.').next().unwrap().to_owned()));
    let wrong = {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let claims =
            json!({"sub": "mallory", "jti": "wrong-secret", "iat": 1, "exp": 99_999_999_999i64, "scopes": ["admin"]});
        encode(&Header::default(), &claims, &EncodingKey::from_secret(b"not-the-secret-but-long-enough-1234567890"))
            .unwrap()
    };
    secrets.push(("wrongly signed HS256 token".into(), wrong.clone()));
    let mut b = Session { http: reqwest::Client::new(), base: hs_server.base.clone(), tag: "obs-b", ids: Vec::new() };
    let hs = bearer(&hs_token);
    b.send("GET", "/admin/v1/whoami", Some(&hs), None, 200).await;
    let ep = b
        .send(
            "POST",
            &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"),
            Some(&hs),
            Some(json!({"url": "https://hs.example.org/"}).to_string()),
            201,
        )
        .await;
    b.send("DELETE", &format!("/admin/v1/endpoints/{}", ep["id"].as_str().unwrap()), Some(&hs), None, 204).await;
    b.send("GET", "/admin/v1/whoami", Some(&bearer(&wrong)), None, 401).await;
    b.send("GET", "/admin/v1/whoami", Some(&adm), None, 401).await; // an EdDSA token on an HS256 instance

    // --- Database URLs with passwords: unreachable, malformed, and (when available) a real PostgreSQL.
    let password = "s3cretpass";
    secrets.push(("database password".into(), password.into()));
    secrets.push(("database password (query)".into(), "s3cretquery".into()));
    let unreachable = format!("postgres://obsuser:{password}@127.0.0.1:1/obsdb");
    let in_query = "postgres://obsuser@127.0.0.1:1/obsdb?password=s3cretquery";
    let malformed = format!("postgres://obsuser:{password}@127.0.0.1:notaport/obsdb");
    for db in [unreachable.as_str(), in_query, malformed.as_str()] {
        let (_, err) = cli(&["--database-url", db, "migrate"], &[], false);
        assert!(err.iter().any(|l| l.contains("error")), "{err:?}");
        logs.push((format!("migrate {db}"), err));
        let (_, err) = cli(&["token", "list"], &[("GEOWEBDNS_DATABASE_URL", db)], false);
        logs.push((format!("token list {db}"), err));
    }
    let lines = unreachable_serve(&unreachable, &key_dir);
    assert!(lines.iter().any(|l| l.contains("obsuser:***@127.0.0.1")), "the URL is shown redacted: {lines:?}");
    logs.push(("serve (unreachable database)".into(), lines));
    if let Some(db) = common::pg::create_pg_database().await {
        // The test server trusts local connections, so any password is accepted.
        let with_password = db.url.replacen("postgres://postgres@", &format!("postgres://postgres:{password}@"), 1);
        assert_ne!(with_password, db.url, "unexpected PostgreSQL URL shape {}", db.url);
        let (_, err) = cli(&["--database-url", &with_password, "migrate"], &[], true);
        logs.push(("migrate on PostgreSQL".into(), err));
        let mut pg_env = store_env.clone();
        pg_env[0] = ("GEOWEBDNS_DATABASE_URL", &with_password);
        let (pg_token, err) = cli(&["token", "issue", "--scope", "admin", "--sub", "obs-pg"], &pg_env, true);
        logs.push(("token issue on PostgreSQL".into(), err));
        secrets.push(("PostgreSQL-issued token".into(), pg_token.trim().to_owned()));
        let (_, err) = cli(&["token", "list"], &pg_env, true);
        logs.push(("token list on PostgreSQL".into(), err));
    }

    // --- Stop the servers and read everything they wrote.
    let a_lines = server.stop();
    let b_lines = hs_server.stop();
    let inside_a = check_request_ids("server A", &a_lines, &a.ids);
    let inside_b = check_request_ids("server B", &b_lines, &b.ids);
    assert!(inside_a >= 2 * a.ids.len() && inside_b >= 2 * b.ids.len(), "{inside_a} {inside_b}");
    // The debug lines about refused tokens were written (and are checked below).
    for needle in ["token refused", "token failed validation", "bad Authorization header"] {
        assert!(a_lines.iter().any(|l| l.contains(needle)), "no `{needle}` line");
    }
    logs.push(("server A".into(), a_lines));
    logs.push(("server B".into(), b_lines));

    let mut searched = 0;
    for (who, lines) in &logs {
        for line in lines {
            searched += 1;
            for (what, secret) in &secrets {
                assert!(!line.contains(secret.as_str()), "{who}: the {what} is in a log line: {line}");
            }
        }
    }
    eprintln!(
        "searched {searched} log lines of {} processes for {} secrets; {} + {} lines written inside {} requests",
        logs.len(),
        secrets.len(),
        inside_a,
        inside_b,
        a.ids.len() + b.ids.len()
    );
}

async fn server_metrics(base: &str) -> String {
    let res = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["x-request-id"].to_str().is_ok_and(is_uuid), "{:?}", res.headers());
    res.text().await.unwrap()
}
