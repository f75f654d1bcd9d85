#![doc = include_str!("../README.md")]
//!
//! # Layout
//! - [`cli`]: the command line (`serve`, `migrate`, `import`, `export`, `resolve`, `token`).
//! - [`model`]: jurisdictions, endpoints, services, tiers.
//! - [`geometry`]: GeoJSON boundary parsing, validation and repair (pure).
//! - [`index`]: the immutable snapshot (R-tree + prepared polygons) and its atomic handle.
//! - [`store`]: the storage trait and its SQLite backend.
//! - [`import`]: file readers and the importer (GeoJSON, Shapefile, bundled data).
//! - [`export`]: the whole registry as one GeoJSON FeatureCollection, and its restore.
//! - [`api`]: public HTTP routes; [`admin`]: authenticated registry writes;
//!   [`auth`]: JWT keys, claims and scopes; [`error`]: the one problem+json error type;
//!   [`lost`]: the LoST (RFC 5222) XML protocol on `POST /lost`;
//!   [`console`]: the admin web console at `/admin/`;
//!   [`openapi`]: the OpenAPI 3.1 document at `/openapi.json`.
//! - [`metrics`]: Prometheus metrics on `/metrics`; [`request_id`]: the
//!   `x-request-id` of every request and its log span.

pub mod admin;
pub mod api;
pub mod auth;
pub mod busy_poll;
pub mod cli;
pub mod console;
pub mod error;
pub mod export;
pub mod geometry;
pub mod harvest;
pub mod import;
pub mod index;
mod json_scan;
pub mod limits;
pub mod lost;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod request_id;
pub mod store;

/// The process's allocator: jemalloc, built (see `.cargo/config.toml`) to
/// ask the kernel for transparent huge pages on every mapping it makes.
///
/// The lookup index is tens to hundreds of MB read at random: with 4 KiB
/// pages nearly every grid level and polygon test of a lookup also missed
/// the TLB and paid a page walk. In 2 MiB pages the same lookups took
/// about 30 % less time (bundled and TIGER sets, see BENCHMARKS.md, in-process
/// section), and jemalloc's thread caches also cost less than glibc's
/// malloc, which was about a tenth of an HTTP request's CPU. Declared in
/// the library so that the server, the benchmarks and the tests all run
/// on the same allocator.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::Router;
use error::ApiError;
use index::IndexHandle;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use store::DynStore;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

/// Limits and answer settings of a running service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most points in one `POST /v1/resolve`.
    pub max_batch: usize,
    /// `Cache-Control: max-age` of public answers, in seconds.
    pub cache_max_age: u32,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Time limit of one request.
    pub request_timeout: Duration,
    /// Most vertices in one boundary written through the admin API.
    pub max_vertices: usize,
    /// Largest size a gzip or zip upload to the admin bulk import may
    /// decompress to, in bytes.
    pub max_import_bytes: u64,
    /// Largest near-miss radius (`within=`) a query may ask for, in metres.
    pub max_within_m: f64,
    /// How far `nearest=true` searches, in metres.
    pub nearest_max_m: f64,
    /// The services harvester.
    pub harvest: harvest::HarvestSettings,
    /// Concurrency, rate and header limits.
    pub limits: limits::LimitSettings,
    /// This server's name in LoST `source` and `via` attributes (a dotted name).
    pub lost_server_name: String,
    /// Serve Prometheus metrics on `GET /metrics`.
    pub metrics: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_batch: 10_000,
            cache_max_age: 60,
            max_body_bytes: 4 << 20,
            request_timeout: Duration::from_secs(30),
            max_vertices: 250_000,
            max_import_bytes: 256 << 20,
            max_within_m: 10_000.0,
            nearest_max_m: 200_000.0,
            harvest: harvest::HarvestSettings::default(),
            limits: limits::LimitSettings::default(),
            lost_server_name: lost::DEFAULT_SERVER_NAME.to_owned(),
            metrics: true,
        }
    }
}

/// What every handler shares: one `Arc`, so the per-request copies axum makes
/// (the handler's state, each middleware's state) cost one reference count,
/// not eight (measured: dropping the eight-`Arc` copies was 5-7 % of a
/// trivial request's CPU under `benches/load.sh`). Fields are read through
/// `Deref` (`state.index`, `state.settings`, ...).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

/// The fields of [`AppState`].
pub struct AppStateInner {
    /// The store of record.
    pub store: DynStore,
    /// The current index snapshot.
    pub index: Arc<IndexHandle>,
    /// Limits and answer settings.
    pub settings: Arc<Settings>,
    /// Set once the first snapshot is loaded.
    pub ready: Arc<AtomicBool>,
    /// Token verification keys; `None` disables the admin API.
    pub keys: Option<Arc<auth::Keys>>,
    /// Serialises this instance's writes so snapshots are published in order.
    pub write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Concurrency slots and rate-limit state.
    pub limits: Arc<limits::Limits>,
    /// Request, index and harvest metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// `Cache-Control` of public answers (`public, max-age=N`), made once.
    pub cache_control: axum::http::HeaderValue,
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl AppState {
    /// State around a loaded snapshot (marked ready).
    pub fn new(store: DynStore, snapshot: Arc<index::Snapshot>, settings: Settings) -> Self {
        let limits = Arc::new(limits::Limits::new(&settings.limits));
        let index = Arc::new(IndexHandle::new(snapshot));
        let metrics = Arc::new(metrics::Metrics::new(&index));
        // Digits and ASCII: always a valid header value.
        let cache_control = axum::http::HeaderValue::from_str(&format!("public, max-age={}", settings.cache_max_age))
            .unwrap_or(axum::http::HeaderValue::from_static("no-cache"));
        Self(Arc::new(AppStateInner {
            store,
            index,
            settings: Arc::new(settings),
            ready: Arc::new(AtomicBool::new(true)),
            keys: None,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            limits,
            metrics,
            cache_control,
        }))
    }

    /// The same state with token keys, enabling the admin API.
    pub fn with_keys(self, keys: Arc<auth::Keys>) -> Self {
        let inner = &*self.0;
        Self(Arc::new(AppStateInner {
            store: inner.store.clone(),
            index: inner.index.clone(),
            settings: inner.settings.clone(),
            ready: inner.ready.clone(),
            keys: Some(keys),
            write_lock: inner.write_lock.clone(),
            limits: inner.limits.clone(),
            metrics: inner.metrics.clone(),
            cache_control: inner.cache_control.clone(),
        }))
    }
}

/// The whole HTTP application: public routes, problem+json fallbacks, limits,
/// CORS, metrics, request ids and tracing. Shared by `serve` and every test.
///
/// Layers added with `Router::layer` wrap every route separately, and axum
/// clones a route's whole layer stack for each request (and each
/// `middleware::from_fn` clones everything inside it again). Profiled under
/// `benches/load.sh` (BENCHMARKS.md), that cloning, boxing and dropping of
/// five nested middlewares was the largest user-space cost of a trivial
/// request; so the request-scoped work (metrics, CORS, limits, timeout) is
/// one middleware, [`edge`], and the request-id layers are tower-http's
/// services (which call their inner service without cloning it).
pub fn app(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let mut router = Router::new().merge(api::router()).merge(admin::router()).merge(lost::router());
    if state.settings.metrics {
        router = router.merge(metrics::router());
    }
    router
        .merge(console::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge))
        // Outermost first: a client's unacceptable request id is dropped, a
        // UUID made when there is none, the request's span opened with it,
        // and the id copied to the response.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_id::span)
                // A 5xx is logged where its cause is (an internal error at
                // ERROR with its detail, an unreachable store at WARN); a
                // request shed under load (503) is counted in
                // `geowebdns_http_refused_total`. tower-http's own "response
                // failed" line is only for debugging: at ERROR, it wrote one
                // line a shed request exactly when the server was overloaded.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::new(request_id::HEADER))
        .layer(SetRequestIdLayer::new(request_id::HEADER, request_id::MakeUuid))
        .layer(tower::util::MapRequestLayer::new(request_id::sanitized))
        .with_state(state)
}

/// Every request, inside its span: counted and timed ([`metrics`], outside
/// the limits so refused requests count too), then CORS for public paths
/// ([`public_cors`]), then the limits ([`limits::admit`]), then the request
/// timeout.
async fn edge(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let tracked = metrics::Tracked::start(&state.metrics, &req);
    let res = if is_admin_path(req.uri().path()) {
        limited(&state, req, next).await
    } else {
        public_cors(&state, req, next).await
    };
    tracked.finish(res)
}

/// The limits, then the handler under the request timeout (and a streamed
/// answer's body under the same permit and deadline: [`limits::guard`]).
async fn limited(
    state: &AppState,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let permit = match limits::admit(state, &req) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    let timeout = state.settings.request_timeout;
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => limits::guard(state, res, permit, started, timeout),
        Err(_) => {
            state.metrics.refused("timeout");
            limits::timed_out(timeout)
        }
    }
}

/// True for the admin API and the console: paths that CORS never opens.
pub fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// CORS for the public API only. Public answers are the same for everyone
/// and need no credentials, so any origin may read them (permissive CORS,
/// including on 404/429/503 problems so browser clients can read those).
/// The admin API and the console get no CORS headers at all, and a preflight
/// to them is answered by the router (405), so no other web origin can script
/// admin calls with a token a user pasted somewhere.
async fn public_cors(
    state: &AppState,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tower::ServiceExt;
    static CORS: std::sync::LazyLock<CorsLayer> = std::sync::LazyLock::new(CorsLayer::permissive);
    // tower-http's CORS wraps the rest of the request (limits, timeout,
    // handler) as a one-shot service: it answers preflights itself and adds
    // its headers to every other answer, refusals included.
    let mut next = Some(next);
    let rest = tower::service_fn(|req: axum::extract::Request| {
        let next = next.take();
        async move {
            Ok::<_, std::convert::Infallible>(match next {
                Some(next) => limited(state, req, next).await,
                None => ApiError::Internal("CORS called its inner service twice".into()).into_response(),
            })
        }
    });
    match tower::Layer::layer(&*CORS, rest).oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}
