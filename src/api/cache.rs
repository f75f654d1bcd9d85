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
/// hasher piece by piece instead of building a value to hash).
pub fn etag_of(h: &DefaultHasher) -> String {
    etag_hex(h.finish())
}

/// The weak ETag of a 64-bit hash: `W/"` and the hash in 16 lower-case hex
/// digits. Written digit by digit: `format!` with a width cost ~1,600
/// instructions, most of a resolve answer's ETag.
pub fn etag_hex(v: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tag = *b"W/\"0000000000000000\"";
    for (i, digit) in tag[3..19].iter_mut().enumerate() {
        *digit = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    // ASCII by construction.
    String::from_utf8(tag.to_vec()).unwrap_or_default()
}

/// A cheap, deterministic fold of 64-bit words that are already hashes
/// (the snapshot entries' `content_hash`), for the ETags of location
/// answers, which are computed on every request. SipHash over the same
/// words cost ~700 instructions a `/v1/resolve` answer (callgrind; ~0.2 µs
/// in perf under `benches/load.sh`); this costs a multiply a word. Each
/// step (`rotate`, `xor`, multiply by an odd constant) is a bijection of
/// the running value for a fixed word, so answers that differ only in
/// their last word always differ in their tag, and
/// [`finish`](Self::finish) ends with an invertible avalanche (MurmurHash3's
/// `fmix64`) so that the tag's digits all depend on every word. The result
/// does not depend on the build or the platform.
#[derive(Debug, Clone, Copy)]
pub struct Fold(u64);

impl Fold {
    /// The multiplier of FxHash (an odd constant with well-spread bits).
    const K: u64 = 0x517c_c1b7_2722_0a95;

    /// Starts a fold from a label (the route), hashed with FNV-1a.
    pub fn new(label: &str) -> Self {
        let h = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        Self(h)
    }

    /// Folds in one word.
    #[must_use]
    pub fn word(self, word: u64) -> Self {
        Self((self.0.rotate_left(5) ^ word).wrapping_mul(Self::K))
    }

    /// The folded value, avalanched.
    pub fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison,
/// RFC 9110 section 13.1.2; `*` matches anything).
pub fn matches(request: &HeaderMap, etag: &str) -> bool {
    fn opaque(t: &str) -> &str {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t)
    }
    let mut values = request.get_all(header::IF_NONE_MATCH).iter().peekable();
    // Most requests bring none: nothing to compare then.
    if values.peek().is_none() {
        return false;
    }
    let ours = opaque(etag);
    values.filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| t.trim() == "*" || opaque(t) == ours)
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

/// How many headers a public answer leaves with: `content-type`, `etag`,
/// `cache-control`, `vary`, the CORS layer's three, `x-request-id` and
/// `content-length`, and one to spare.
const RESPONSE_HEADERS: usize = 10;

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
    // Room for all the headers the answer leaves with (these four, the CORS
    // ones, the request id and the length): the map would otherwise start
    // with room for six and grow (a reallocation and a rehash) on the way.
    h.reserve(RESPONSE_HEADERS);
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
    with_expires(state, str::to_owned)
}

/// Calls `f` with the text [`expires`] returns, without copying it.
pub fn with_expires<R>(state: &AppState, f: impl FnOnce(&str) -> R) -> R {
    expires_after(state.settings.cache_max_age, f)
}

/// [`with_expires`] for a max-age of `max_age` seconds.
fn expires_after<R>(max_age: u32, f: impl FnOnce(&str) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = time::OffsetDateTime::now_utc();
    let at = now + time::Duration::seconds(i64::from(max_age));
    let second = at.unix_timestamp();
    let text = || {
        let at = at.replace_nanosecond(0).unwrap_or(at);
        at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    };
    LAST.with(|last| match last.try_borrow_mut() {
        Ok(mut last) => {
            if last.0 != second {
                *last = (second, text());
            }
            f(&last.1)
        }
        // Called again from within `f`: formatted afresh rather than borrowed twice.
        Err(_) => f(&text()),
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
        assert!(!matches(&req("W/\"x\", \"y\""), &tag));
        let mut two = req("\"x\"");
        two.append(header::IF_NONE_MATCH, HeaderValue::from_str(&format!(" {tag} ")).expect("ascii"));
        assert!(matches(&two, &tag), "any of several headers");
        assert_ne!(etag(("a", 1)), etag(("a", 2)));
    }

    #[test]
    fn etag_is_the_hash_in_sixteen_hex_digits() {
        let mut h = DefaultHasher::new();
        ("resolve", 7u64).hash(&mut h);
        assert_eq!(etag_of(&h), format!("W/\"{:016x}\"", h.finish()));
        assert_eq!(etag(("resolve", 7u64)), etag_of(&h));
    }

    #[test]
    fn expires_can_be_asked_for_within_itself() {
        let (outer, inner) = expires_after(60, |outer| (outer.to_owned(), expires_after(60, str::to_owned)));
        assert!(outer.ends_with('Z') && inner.ends_with('Z'), "{outer} {inner}");
        assert!(time::OffsetDateTime::parse(&inner, &time::format_description::well_known::Rfc3339).is_ok(), "{inner}");
    }

    #[test]
    fn fold_is_fixed_and_tells_sequences_apart() {
        // The same words give the same value on every build and platform.
        let f = Fold::new("resolve").word(1).word(2).finish();
        assert_eq!(f, Fold::new("resolve").word(1).word(2).finish());
        assert_eq!(etag_hex(0x0123_4567_89ab_cdef), "W/\"0123456789abcdef\"");
        // Order, label, length and each word matter.
        assert_ne!(f, Fold::new("resolve").word(2).word(1).finish());
        assert_ne!(f, Fold::new("services").word(1).word(2).finish());
        assert_ne!(f, Fold::new("resolve").word(1).word(2).word(0).finish());
        // No two of many random short sequences share a value, and every
        // output bit is set about half the time.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut seen = std::collections::HashSet::new();
        let mut ones = [0u32; 64];
        let n = 50_000;
        for i in 0..n {
            // A distinct count (as an answer's number of hits), then words.
            let mut fold = Fold::new("resolve").word(i);
            for _ in 0..i % 9 {
                fold = fold.word(next());
            }
            let v = fold.finish();
            assert!(seen.insert(v), "collision at {i}");
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += u32::from(v >> bit & 1 == 1);
            }
        }
        for count in ones {
            assert!((n as u32 * 45 / 100..n as u32 * 55 / 100).contains(&count), "{ones:?}");
        }
    }
}
