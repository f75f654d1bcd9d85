//! `POST /lost`: the Location-to-Service Translation protocol (LoST,
//! RFC 5222), so standard LoST clients can find the Open311 endpoints that
//! serve a location. See `docs/lost.md` for the service URNs and every
//! choice made where the RFC leaves room.
//!
//! - Requests: `findService`, `listServices`, `listServicesByLocation`,
//!   `getServiceBoundary`, with `geodetic-2d` locations (`gml:Point`,
//!   `gs:Circle`).
//! - Every answer, errors included, is a `200` typed `application/lost+xml`
//!   (RFC 5222 section 14); nothing here answers problem+json or a 5xx (a
//!   panic while answering becomes `<internalError>`).
//! - Parsing is strict ([`request`]): a body limit of [`MAX_BODY_BYTES`] (or
//!   the service's smaller `max_body_bytes`), UTF-8 only, no DTD or entity
//!   declarations, at most [`request::MAX_NODES`] XML nodes, namespaces checked.

pub mod answer;
pub mod error;
pub mod gml;
pub mod request;
pub mod urn;
pub mod xml;

use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use error::LostError;

/// The LoST media type (RFC 5222 section 17.1).
pub const CONTENT_TYPE: &str = "application/lost+xml";
/// Largest LoST request body, in bytes (a LoST request is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The default server name in `source` and `via` attributes.
pub const DEFAULT_SERVER_NAME: &str = "geowebdns.invalid";

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/lost", post(lost))
}

/// True for a name the schema accepts in a `source` attribute
/// (`appUniqueString`: dot-separated labels of letters, digits and hyphens,
/// at least two labels), such as `lost.example.org`.
pub fn valid_source(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && !labels.last().is_some_and(|l| l.contains('-'))
}

/// True for the media types a LoST request may be sent as.
fn acceptable(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mut parts = ct.split(';');
    let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let utf8 = parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    utf8 && matches!(mime.as_str(), CONTENT_TYPE | "application/xml" | "text/xml")
}

fn reply(body: String) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], body).into_response()
}

/// A LoST (RFC 5222) request: `findService`, `listServices`,
/// `listServicesByLocation` or `getServiceBoundary`. Every answer, errors
/// included, is a 200 `application/lost+xml` document (RFC 5222 section 14).
#[utoipa::path(
    post,
    path = "/lost",
    tag = "lost",
    operation_id = "lost",
    request_body(
        content = String,
        content_type = "application/lost+xml",
        description = "A LoST request document in UTF-8 (`application/xml` and `text/xml` are accepted too)"
    ),
    responses((
        status = 200,
        description = "A LoST answer, or a LoST `<errors>` document (bad request, unknown service, location not found...)",
        body = String,
        content_type = "application/lost+xml"
    ))
)]
pub(crate) async fn lost(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let server = state.settings.lost_server_name.clone();
    let fail = |e: LostError| reply(e.to_xml(&server));
    if !acceptable(&headers) {
        return fail(LostError::BadRequest(format!(
            "send the request as {CONTENT_TYPE} (application/xml and text/xml are accepted), in UTF-8"
        )));
    }
    let limit = MAX_BODY_BYTES.min(state.settings.max_body_bytes);
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return fail(LostError::BadRequest(format!("the request body is unreadable or over {limit} bytes"))),
    };
    let snapshot = state.index.current();
    let ctx_server = server.clone();
    let cache_max_age = state.settings.cache_max_age;
    let work = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&bytes).map_err(|_| LostError::BadRequest("the body is not UTF-8".into()))?;
        let req = request::parse(text)?;
        let ctx = answer::Context { server: &ctx_server, cache_max_age, now: time::OffsetDateTime::now_utc() };
        answer::answer(&snapshot, &ctx, req)
    })
    .await;
    match work {
        Ok(Ok(doc)) => reply(doc),
        Ok(Err(e)) => fail(e),
        Err(e) => {
            tracing::error!(error = %e, "LoST request failed");
            fail(LostError::InternalError("the server failed to answer this request".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_follow_the_schema() {
        for ok in ["lost.example.org", "geowebdns.invalid", "a-b.c1", "x.y.z"] {
            assert!(valid_source(ok), "{ok}");
        }
        for bad in ["localhost", "host:8080", "lost.example.org.", ".x.y", "a..b", "a b.c", "a.b-", "", "a.b_c"] {
            assert!(!valid_source(bad), "{bad}");
        }
    }
}
