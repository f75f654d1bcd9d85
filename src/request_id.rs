//! Request ids: every request gets an `x-request-id`, echoed on its response
//! and carried by every log line written while it is answered.
//!
//! A client may send its own id (a proxy's, a trace id) and it is kept when
//! it is short and plain: 1 to [`MAX_LEN`] characters out of `A-Z a-z 0-9 -
//! _ . :`. Anything else (several headers, spaces, control characters, quotes,
//! a long value) is replaced by a fresh UUID, so a client cannot forge log
//! lines or flood them through the id.
//!
//! The layers (in [`crate::app`]): [`sanitized`] drops an unacceptable id,
//! tower-http's `SetRequestIdLayer` makes a UUID ([`MakeUuid`]) when there is none,
//! `TraceLayer` opens the request's [`span`] (with the id), and
//! `PropagateRequestIdLayer` copies the id to the response.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use tower_http::request_id::{MakeRequestId, RequestId};

/// The request id header.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a client.
pub const MAX_LEN: usize = 64;

/// Whether a client's request id is kept as it is.
pub fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Makes a random (version 4) UUID for a request that brings no id, from
/// the thread's cryptographically secure generator (`rand::thread_rng`,
/// seeded from the OS). tower-http's `MakeRequestUuid` asked the kernel for
/// 16 random bytes on every request: that `getrandom` system call was 2.6 %
/// of the server's CPU in a one-connection ping-pong of `GET /healthz`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeUuid;

impl MakeRequestId for MakeUuid {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        HeaderValue::from_str(uuid.hyphenated().encode_lower(&mut text)).ok().map(RequestId::new)
    }
}

/// Removes the request id header unless there is exactly one acceptable id.
/// A plain function, for `tower::util::MapRequestLayer` (which, unlike axum's
/// `map_request`, does not clone the service it wraps for every request).
pub fn sanitized(mut req: Request) -> Request {
    let mut ids = req.headers().get_all(&HEADER).iter();
    let keep = match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => acceptable(id.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !keep {
        req.headers_mut().remove(&HEADER);
    }
    req
}

/// The span every log line of a request is written in: the request id, the
/// method, the route template and the path. Never headers (they carry
/// tokens) nor the query string.
///
/// The span is at `ERROR` level so that it is enabled whenever any logging
/// is: a warning logged inside a request under `--log warn` still carries the
/// request id.
pub fn span(req: &Request) -> tracing::Span {
    let id = req.headers().get(&HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str());
    tracing::error_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = %route,
        path = %req.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_ids_are_distinct_version_4_uuids() {
        let req = axum::http::Request::new(());
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                let id = MakeUuid.make_request_id(&req).expect("an id");
                let text = id.header_value().to_str().expect("ascii").to_owned();
                let parsed = uuid::Uuid::parse_str(&text).expect("a UUID");
                assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{text}");
                assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{text}");
                assert_eq!(text, parsed.hyphenated().to_string(), "lower-case, hyphenated");
                assert!(acceptable(text.as_bytes()));
                text
            })
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn plain_short_ids_are_kept_others_replaced() {
        assert!(acceptable(b"3f1c2a5e-8d1b-4b7e-9a0e-1c2d3e4f5a6b"));
        assert!(acceptable(b"Root.1-abc:def_9"));
        assert!(acceptable(&[b'a'; MAX_LEN]));
        assert!(!acceptable(&[b'a'; MAX_LEN + 1]));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"abc\ndef"));
        assert!(!acceptable(b"a b"));
        assert!(!acceptable(b"a\"b"));
        assert!(!acceptable("caf\u{e9}".as_bytes()));
    }
}
