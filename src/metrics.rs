//! Prometheus metrics, served as text (exposition format 0.0.4) on
//! `GET /metrics`.
//!
//! Every metric lives in one [`Metrics`] per [`AppState`] (so tests running
//! several states in one process never mix their counts). Names:
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `geowebdns_http_requests_total` | counter | `route`, `method`, `status` | answered requests |
//! | `geowebdns_http_request_duration_seconds` | histogram | `route`, `method` | time to the response head; for a streamed batch answer, to the end of its body |
//! | `geowebdns_http_requests_in_flight` | gauge | | requests being answered (a streamed answer until its body ends) |
//! | `geowebdns_http_refused_total` | counter | `reason` | requests refused by a limit |
//! | `geowebdns_index_version` | gauge | | change-log `seq` of the snapshot answering |
//! | `geowebdns_index_jurisdictions`, `_polygons`, `_vertices`, `_endpoints` | gauge | | snapshot size |
//! | `geowebdns_index_age_seconds` | gauge | | time since the snapshot was swapped in |
//! | `geowebdns_index_build_duration_seconds` | histogram | `kind` (`full`, `incremental`) | reading and building a snapshot |
//! | `geowebdns_index_swap_duration_seconds` | histogram | | the atomic swap of a built snapshot |
//! | `geowebdns_store_up` | gauge | | 1 when the store answered this scrape |
//! | `geowebdns_store_latest_seq` | gauge | | the store's latest change (absent when it did not answer) |
//! | `geowebdns_change_feed_lag` | gauge | | `store_latest_seq - index_version` (absent when the store did not answer) |
//! | `geowebdns_harvests_total` | counter | `outcome` (`ok`, `not_modified`, `failed`), `error` | harvests of one endpoint |
//! | `geowebdns_harvest_duration_seconds` | histogram | | one endpoint's fetch |
//! | `geowebdns_build_info` | gauge | `version` | always 1 |
//!
//! `route` is the route template (`/v1/jurisdictions/{id}`), never the raw
//! path, so its values are bounded; a request that matches no route is
//! `unmatched`. `method` is one of the standard methods or `other`.

use crate::index::{BuildKind, IndexHandle};
use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::time::{Duration, Instant};

/// Content type of the exposition format served.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prefix of every metric name.
const PREFIX: &str = "geowebdns";

/// Latency buckets for HTTP requests, in seconds (0.25 ms to 30 s).
const HTTP_BUCKETS: &[f64] =
    &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Buckets for index builds and harvests, in seconds (1 ms to 2 min).
const SLOW_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Buckets for the atomic snapshot swap, in seconds (1 µs to 10 ms).
const SWAP_BUCKETS: &[f64] = &[0.000_001, 0.000_005, 0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.01];

// The definitions below are constants: building or registering them fails
// only on a programming error (a bad name, a duplicate), which the unit test
// `every_metric_is_exported` catches.
fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(PREFIX)
}

fn histogram_opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help).namespace(PREFIX).buckets(buckets.to_vec())
}

#[allow(clippy::expect_used)]
fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: &C) {
    registry.register(Box::new(c.clone())).expect("metric names are unique constants");
}

#[allow(clippy::expect_used)]
fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(opts(name, help), labels).expect("valid metric definition")
}

#[allow(clippy::expect_used)]
fn histogram_vec(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    HistogramVec::new(histogram_opts(name, help, buckets), labels).expect("valid metric definition")
}

#[allow(clippy::expect_used)]
fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(histogram_opts(name, help, buckets)).expect("valid metric definition")
}

#[allow(clippy::expect_used)]
fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(opts(name, help)).expect("valid metric definition")
}

/// The index build and swap timings, owned by the [`IndexHandle`] (every
/// snapshot is published through it) and exported by [`Metrics`].
#[derive(Clone)]
pub struct IndexMetrics {
    build: HistogramVec,
    swap: Histogram,
}

impl std::fmt::Debug for IndexMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexMetrics").finish_non_exhaustive()
    }
}

impl Default for IndexMetrics {
    fn default() -> Self {
        Self {
            build: histogram_vec(
                "index_build_duration_seconds",
                "Time to read the store and build an index snapshot (full: the whole registry; incremental: \
                 the jurisdictions a change touched).",
                SLOW_BUCKETS,
                &["kind"],
            ),
            swap: histogram(
                "index_swap_duration_seconds",
                "Time to swap a built snapshot in for readers (atomic pointer swap).",
                SWAP_BUCKETS,
            ),
        }
    }
}

impl IndexMetrics {
    /// Records how long a snapshot took to build.
    pub fn observe_build(&self, kind: BuildKind, took: Duration) {
        let kind = match kind {
            BuildKind::Full => "full",
            BuildKind::Incremental => "incremental",
        };
        self.build.with_label_values(&[kind]).observe(took.as_secs_f64());
    }

    /// Records how long a swap took.
    pub fn observe_swap(&self, took: Duration) {
        self.swap.observe(took.as_secs_f64());
    }
}

/// Every metric of one running service.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
    in_flight: IntGauge,
    refused: IntCounterVec,
    harvests: IntCounterVec,
    harvest_duration: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of a service whose snapshots are published through `index`.
    pub fn new(index: &IndexHandle) -> Self {
        let registry = Registry::new();
        let requests = counter_vec(
            "http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            &["route", "method", "status"],
        );
        let durations = histogram_vec(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response head, by route template and method.",
            HTTP_BUCKETS,
            &["route", "method"],
        );
        let in_flight = gauge("http_requests_in_flight", "HTTP requests being answered.");
        let refused = counter_vec(
            "http_refused_total",
            "Requests refused by a limit: headers_too_large, rate_limited, overloaded_public, overloaded_admin, \
             timeout.",
            &["reason"],
        );
        let harvests = counter_vec(
            "harvests_total",
            "Harvests of one endpoint's service list, by outcome (ok, not_modified, failed) and error kind \
             (none when it did not fail).",
            &["outcome", "error"],
        );
        let harvest_duration = histogram(
            "harvest_duration_seconds",
            "Time to fetch one endpoint's service list (connect, redirects and body).",
            SLOW_BUCKETS,
        );
        let build_info = IntGauge::with_opts(
            opts("build_info", "Always 1; the version label says which geowebdns is running.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        );
        for c in [&requests, &refused, &harvests] {
            register(&registry, c);
        }
        register(&registry, &durations);
        register(&registry, &in_flight);
        register(&registry, &harvest_duration);
        register(&registry, &index.metrics().build);
        register(&registry, &index.metrics().swap);
        if let Ok(info) = build_info {
            info.set(1);
            register(&registry, &info);
        }
        Self { registry, requests, durations, in_flight, refused, harvests, harvest_duration }
    }

    /// Counts a request refused by a limit (`reason` is one of a fixed set).
    pub fn refused(&self, reason: &'static str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    /// Counts one harvest: `outcome` is `ok`, `not_modified` or `failed`;
    /// `error` the kind of failure (`none` otherwise).
    pub fn harvest(&self, outcome: &'static str, error: &'static str, took: Duration) {
        self.harvests.with_label_values(&[outcome, error]).inc();
        self.harvest_duration.observe(took.as_secs_f64());
    }

    /// The exposition text: every metric, with the index and store gauges
    /// read now.
    pub async fn render(&self, state: &AppState) -> Result<String, prometheus::Error> {
        let snapshot = state.index.current();
        let stats = snapshot.stats();
        let now = Registry::new();
        let set = |name: &str, help: &str, value: i64| -> Result<(), prometheus::Error> {
            let g = IntGauge::with_opts(opts(name, help))?;
            g.set(value);
            now.register(Box::new(g))
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        set("index_version", "Change-log seq of the snapshot answering queries.", snapshot.version())?;
        set("index_jurisdictions", "Jurisdictions in the snapshot answering queries.", count(stats.jurisdictions))?;
        set("index_polygons", "Polygon parts in the snapshot's R-tree.", count(stats.polygons))?;
        set("index_vertices", "Boundary vertices in the snapshot.", count(stats.vertices))?;
        set("index_endpoints", "Open311 endpoints in the snapshot.", count(stats.endpoints))?;
        let age = prometheus::Gauge::with_opts(opts("index_age_seconds", "Time since the snapshot was swapped in."))?;
        age.set(state.index.age().as_secs_f64());
        now.register(Box::new(age))?;
        let latest = tokio::time::timeout(Duration::from_secs(2), state.store.latest_seq()).await;
        match latest {
            Ok(Ok(seq)) => {
                set("store_up", "1 when the store answered this scrape, 0 otherwise.", 1)?;
                set("store_latest_seq", "The store's latest change-log seq.", seq)?;
                set(
                    "change_feed_lag",
                    "Changes in the store not yet applied to the index (store_latest_seq - index_version).",
                    (seq - snapshot.version()).max(0),
                )?;
            }
            _ => set("store_up", "1 when the store answered this scrape, 0 otherwise.", 0)?,
        }
        let mut families = self.registry.gather();
        families.extend(now.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The `method` label: a standard method, or `other` (extension methods are
/// unbounded).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The route label of a request: its route template, or `unmatched`.
pub fn route_label(req: &Request) -> String {
    req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned())
}

/// One request being counted: in flight from [`Tracked::start`] until
/// [`Tracked::finish`] (or until dropped, when the request is cancelled);
/// a streamed answer ([`crate::limits::Streamed`]) until its body ends.
pub struct Tracked<'a> {
    metrics: &'a Metrics,
    started: Instant,
    /// The route template (a shared string, cloned without copying), or `None` for `unmatched`.
    route: Option<MatchedPath>,
    method: &'static str,
    /// Whether a streamed answer's body took over the in-flight count.
    handed_over: bool,
}

impl<'a> Tracked<'a> {
    /// Starts counting `req` as in flight.
    pub fn start(metrics: &'a Metrics, req: &Request) -> Self {
        metrics.in_flight.inc();
        Self {
            metrics,
            started: Instant::now(),
            route: req.extensions().get::<MatchedPath>().cloned(),
            method: method_label(req.method()),
            handed_over: false,
        }
    }

    /// Records the answer's status and the time to it. A streamed answer
    /// does its work as its body is sent: it stays in flight, and its time
    /// runs, until the body ends or is dropped ([`TimedBody`]).
    pub fn finish(mut self, res: Response) -> Response {
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let m = self.metrics;
        m.requests.with_label_values(&[route, self.method, res.status().as_str()]).inc();
        let duration = m.durations.with_label_values(&[route, self.method]);
        if res.extensions().get::<crate::limits::Streamed>().is_none() {
            duration.observe(self.started.elapsed().as_secs_f64());
            return res;
        }
        // The body takes over the in-flight count from here.
        let (in_flight, started) = (m.in_flight.clone(), self.started);
        self.handed_over = true;
        res.map(|inner| axum::body::Body::new(TimedBody { inner, started, duration: Some(duration), in_flight }))
    }
}

/// A streamed answer's body, counted in flight until it is dropped and
/// timed until it ends (or is dropped, when the client goes away).
struct TimedBody {
    inner: axum::body::Body,
    started: Instant,
    /// Observed once, then `None`.
    duration: Option<Histogram>,
    in_flight: IntGauge,
}

impl TimedBody {
    fn observe(&mut self) {
        if let Some(h) = self.duration.take() {
            h.observe(self.started.elapsed().as_secs_f64());
        }
    }
}

impl axum::body::HttpBody for TimedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None | Some(Err(_))) = polled {
            self.observe();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        self.observe();
        self.in_flight.dec();
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        if !self.handed_over {
            self.metrics.in_flight.dec();
        }
    }
}

/// `GET /metrics`: Prometheus text exposition format 0.0.4.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus metrics (text exposition format 0.0.4)", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
    )
)]
pub async fn serve(State(state): State<AppState>) -> Response {
    match state.metrics.render(&state).await {
        Ok(text) => ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n").into_response()
        }
    }
}

/// The `/metrics` route.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/metrics", axum::routing::get(serve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported() {
        let index = IndexHandle::new(std::sync::Arc::new(crate::index::Snapshot::empty()));
        let m = Metrics::new(&index);
        m.refused("timeout");
        m.harvest("failed", "timeout", Duration::from_millis(5));
        index.metrics().observe_build(BuildKind::Full, Duration::from_millis(3));
        index.metrics().observe_swap(Duration::from_micros(2));
        m.requests.with_label_values(&["/v1/resolve", "GET", "200"]).inc();
        m.durations.with_label_values(&["/v1/resolve", "GET"]).observe(0.001);
        let mut out = Vec::new();
        TextEncoder::new().encode(&m.registry.gather(), &mut out).expect("encodes");
        let text = String::from_utf8(out).expect("utf-8");
        for name in [
            "geowebdns_http_requests_total{method=\"GET\",route=\"/v1/resolve\",status=\"200\"} 1",
            "geowebdns_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/resolve\",le=\"0.001\"} 1",
            "geowebdns_http_requests_in_flight 0",
            "geowebdns_http_refused_total{reason=\"timeout\"} 1",
            "geowebdns_harvests_total{error=\"timeout\",outcome=\"failed\"} 1",
            "geowebdns_harvest_duration_seconds_count 1",
            "geowebdns_index_build_duration_seconds_count{kind=\"full\"} 1",
            "geowebdns_index_swap_duration_seconds_count 1",
            "geowebdns_build_info{version=\"",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").expect("method")), "other");
    }
}
