//! HTTP caching of public answers: `ETag`, `If-None-Match` → 304,
//! `Cache-Control: public, max-age=N` and the `expires` time answers carry.
//!
//! ETags are *weak* (`W/"…"`) and derived from the records an answer is made
//! of (each snapshot entry carries a hash of its rendered JSON), not from the
//! index version: a write to one jurisdiction does not invalidate cached
//! answers about others. Weak, because bodies also carry fields such as
//! `index_version` and `expires` that may differ while the answer is the same.
//! Routes whose answer depends on the whole registry (listings, the change
//! feed) hash the index version instead.

use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::hash::{DefaultHasher, Hash, Hasher};

/// A weak ETag over anything hashable. `DefaultHasher::new()` uses fixed
/// keys, so every instance of one build computes the same tag.
pub fn etag(value: impl Hash) -> String {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    etag_of(&h)
}

/// The weak ETag of what `h` has hashed so far (for callers that feed the
/// hasher piece by piece instead of building a value to hash): `W/"` and
/// the hash in 16 lower-case hex digits. Written digit by digit: `format!`
/// with a width cost ~1,600 instructions, most of a resolve answer's ETag.
pub fn etag_of(h: &DefaultHasher) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = h.finish();
    let mut tag = *b"W/\"0000000000000000\"";
    for (i, digit) in tag[3..19].iter_mut().enumerate() {
        *digit = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    // ASCII by construction.
    String::from_utf8(tag.to_vec()).unwrap_or_default()
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison,
/// RFC 9110 section 13.1.2; `*` matches anything).
pub fn matches(request: &HeaderMap, etag: &str) -> bool {
    fn opaque(t: &str) -> &str {
        t.trim().trim_start_matches("W/")
    }
    let ours = opaque(etag);
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || opaque(t) == ours)
}

/// `ETag` and `Cache-Control` headers of a public answer.
pub fn headers(state: &AppState, etag: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    add_headers(&mut h, state, etag);
    h
}

/// Adds the `ETag`, `Cache-Control` and `Vary` headers of a public answer to `h`.
fn add_headers(h: &mut HeaderMap, state: &AppState, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, state.cache_control.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
}

/// A 304 when the request already holds this answer, otherwise a 200 with
/// the body `render` produces (called only when needed), typed `content_type`.
///
/// The headers go straight into the response's own map: building a
/// separate `HeaderMap` and merging it (`(headers, body).into_response()`)
/// cost ~2,500 instructions a `/v1/resolve` answer, a sixth of its handler.
pub fn respond<E>(
    state: &AppState,
    request: &HeaderMap,
    etag: &str,
    content_type: &'static str,
    render: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<Response, E> {
    if matches(request, etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        add_headers(response.headers_mut(), state, etag);
        return Ok(response);
    }
    let mut response = Response::new(Body::from(render()?));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    add_headers(h, state, etag);
    Ok(response)
}

/// Until when an answer made now may be cached: now plus the configured
/// max-age, RFC 3339 (compare LoST's `expires`, RFC 5222 section 5).
///
/// The text changes once a second, so each thread formats it at most once
/// a second and otherwise clones its last one (formatting was a measurable
/// share of a `/v1/resolve` request).
pub fn expires(state: &AppState) -> String {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = time::OffsetDateTime::now_utc();
    let at = now + time::Duration::seconds(i64::from(state.settings.cache_max_age));
    let second = at.unix_timestamp();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != second {
            let at = at.replace_nanosecond(0).unwrap_or(at);
            *last = (second, at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default());
        }
        last.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).expect("ascii"));
        h
    }

    #[test]
    fn weak_comparison_lists_and_star() {
        let tag = etag(("a", 1));
        assert!(tag.starts_with("W/\"") && tag.ends_with('"'));
        assert!(matches(&req(&tag), &tag));
        assert!(matches(&req(tag.trim_start_matches("W/")), &tag), "strong form of the same tag matches weakly");
        assert!(matches(&req(&format!("\"x\", {tag}")), &tag));
        assert!(matches(&req("*"), &tag));
        assert!(!matches(&req("\"x\""), &tag));
        assert!(!matches(&HeaderMap::new(), &tag));
        assert_ne!(etag(("a", 1)), etag(("a", 2)));
    }

    #[test]
    fn etag_is_the_hash_in_sixteen_hex_digits() {
        let mut h = DefaultHasher::new();
        ("resolve", 7u64).hash(&mut h);
        assert_eq!(etag_of(&h), format!("W/\"{:016x}\"", h.finish()));
        assert_eq!(etag(("resolve", 7u64)), etag_of(&h));
    }
}
