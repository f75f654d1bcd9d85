//! Overload protection: every request is bounded, and excess load is shed
//! at once with a clear answer instead of queueing forever.
//!
//! - **Header size**: requests whose headers exceed `max_header_bytes` get
//!   `431` (hyper also caps what it buffers).
//! - **Concurrency**: public routes share `max_concurrent` slots and admin
//!   routes (`/admin/…`) have their own `admin_max_concurrent`, so public
//!   load never starves the jurisdictions' writes. A request that finds no
//!   free slot is answered `503` with `Retry-After: 1` at once (load
//!   shedding, no queue).
//! - **Per-client rate limit** (optional, public routes only): a token bucket
//!   per client address (`rate_limit` requests per second, bursts of
//!   `rate_burst`); excess gets `429` with `Retry-After`. The client address is
//!   the TCP peer; behind a proxy, every client shares the proxy's address,
//!   so rate-limit at the proxy instead (this service does not trust
//!   `X-Forwarded-For`).
//! - **Time**: the request timeout (`Settings::request_timeout`) answers `503`
//!   with `Retry-After` as a problem document.
//!
//! Body size and batch size are checked where bodies are read.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limit settings.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Most public requests in flight.
    pub max_concurrent: usize,
    /// Most admin requests in flight (a pool of their own).
    pub admin_max_concurrent: usize,
    /// Public requests per second per client address; `None` turns the rate limit off.
    pub rate_limit: Option<NonZeroU32>,
    /// Burst size of the rate limit.
    pub rate_burst: NonZeroU32,
    /// Largest total size of a request's headers, in bytes.
    pub max_header_bytes: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_concurrent: 1024,
            admin_max_concurrent: 64,
            rate_limit: None,
            rate_burst: NonZeroU32::MIN.saturating_add(49),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// The shared state of the limits.
#[derive(Debug)]
pub struct Limits {
    public: Arc<Semaphore>,
    admin: Arc<Semaphore>,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    max_header_bytes: usize,
}

impl Limits {
    /// Limits as configured.
    pub fn new(s: &LimitSettings) -> Self {
        let rate =
            s.rate_limit.map(|per_second| RateLimiter::keyed(Quota::per_second(per_second).allow_burst(s.rate_burst)));
        Self {
            public: Arc::new(Semaphore::new(s.max_concurrent.max(1))),
            admin: Arc::new(Semaphore::new(s.admin_max_concurrent.max(1))),
            rate,
            max_header_bytes: s.max_header_bytes,
        }
    }

    /// Takes one public slot, as a request would (for tests and drains); `None` when all are taken.
    pub fn occupy_public(&self) -> Option<OwnedSemaphorePermit> {
        self.public.clone().try_acquire_owned().ok()
    }

    /// Forgets rate-limit state of clients idle long enough to be full again.
    pub fn forget_idle_clients(&self) {
        if let Some(rate) = &self.rate {
            rate.retain_recent();
        }
    }
}

/// The size of the request line's target and the headers, as counted
/// against `max_header_bytes`. The target is measured without rendering it
/// (`Uri::to_string` allocated on every request).
fn header_bytes(req: &Request) -> usize {
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>() + target
}

/// The checks applied to every request (see the module docs): the header
/// size, the rate limit and a concurrency slot, held until the answer is
/// made; or the refusal.
pub fn admit(state: &AppState, req: &Request) -> Result<OwnedSemaphorePermit, ApiError> {
    let limits = &state.limits;
    if header_bytes(req) > limits.max_header_bytes {
        state.metrics.refused("headers_too_large");
        return Err(ApiError::HeadersTooLarge(format!(
            "request line and headers exceed {} bytes",
            limits.max_header_bytes
        )));
    }
    let admin = req.uri().path().starts_with("/admin/");
    if !admin {
        if let Some(rate) = &limits.rate {
            let client = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
            if let Err(not_until) = rate.check_key(&client) {
                let wait =
                    not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                state.metrics.refused("rate_limited");
                return Err(ApiError::RateLimited { retry_after: retry_after.max(1) });
            }
        }
    }
    let (pool, kind, size) = if admin {
        (&limits.admin, "admin", state.settings.limits.admin_max_concurrent)
    } else {
        (&limits.public, "public", state.settings.limits.max_concurrent)
    };
    pool.clone().try_acquire_owned().map_err(|_| {
        state.metrics.refused(if admin { "overloaded_admin" } else { "overloaded_public" });
        ApiError::Overloaded {
            detail: format!("the server is at its limit of {size} {kind} requests in flight; retry shortly"),
            retry_after: 1,
        }
    })
}

/// The answer when a request runs out of time.
pub fn timed_out(timeout: std::time::Duration) -> Response {
    ApiError::Overloaded {
        detail: format!("the request took longer than {} ms and was stopped; retry later", timeout.as_millis()),
        retry_after: 1,
    }
    .into_response()
}

/// Marks a response whose body does the request's work as it is sent (a
/// streamed batch answer). For such a response, [`guard`] keeps the
/// request's concurrency permit and its deadline until the body ends,
/// instead of letting them go when the handler returns.
#[derive(Clone, Copy, Debug)]
pub struct Streamed;

/// A streamed response's body under its request's permit and deadline:
/// past the deadline the body ends with an error, which cuts the response
/// short (the client sees an incomplete chunked body), and the
/// `geowebdns_http_refused_total{reason="timeout"}` counter goes up.
struct Guarded {
    inner: axum::body::Body,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    timeout: std::time::Duration,
    state: AppState,
    _permit: OwnedSemaphorePermit,
}

impl axum::body::HttpBody for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future;
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.state.metrics.refused("timeout");
            let ms = self.timeout.as_millis();
            return std::task::Poll::Ready(Some(Err(
                format!("the answer took longer than {ms} ms and was cut short").into()
            )));
        }
        std::pin::Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Hands a [`Streamed`] response's body the request's `permit` and the
/// rest of its time (`timeout` from `started`); other responses pass
/// through untouched (their permit ends with the handler).
pub fn guard(
    state: &AppState,
    res: Response,
    permit: OwnedSemaphorePermit,
    started: tokio::time::Instant,
    timeout: std::time::Duration,
) -> Response {
    if res.extensions().get::<Streamed>().is_none() {
        return res;
    }
    let state = state.clone();
    res.map(|inner| {
        let deadline = Box::pin(tokio::time::sleep_until(started + timeout));
        axum::body::Body::new(Guarded { inner, deadline, timeout, state, _permit: permit })
    })
}
