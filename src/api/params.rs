//! Parsing of query parameters shared by the public routes, with errors that
//! name the parameter at fault.

use crate::error::ApiError;
use crate::model::Tier;
use std::borrow::Cow;

/// A validated WGS84 location.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Location {
    /// Latitude in degrees, -90..=90.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    /// Longitude in degrees, -180..=180.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lon: f64,
}

/// The location parameters of `/v1/resolve`, `/v1/services` and
/// `/discovery.{json,xml}`, for the OpenAPI document. The routes read them
/// with [`location`], [`tiers`] and [`crate::api::locate::LocateOptions::parse`]
/// (which name the parameter at fault); this type only describes them.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LocationParams {
    /// Latitude in degrees (WGS84).
    #[param(minimum = -90.0, maximum = 90.0, example = 39.1653)]
    pub lat: f64,
    /// Longitude in degrees (WGS84). Required unless `long` is given; never both.
    #[param(minimum = -180.0, maximum = 180.0, example = -86.5264)]
    pub lon: Option<f64>,
    /// Longitude, the Open311 spelling of `lon`; never together with `lon`.
    #[param(minimum = -180.0, maximum = 180.0)]
    pub long: Option<f64>,
    /// Only these tiers: a comma-separated list of `country`, `state`,
    /// `county`, `place`, `special_district`, `other`.
    #[param(
        pattern = r"^ *(country|state|county|place|special_district|other)( *, *(country|state|county|place|special_district|other))* *$"
    )]
    pub tier: Option<String>,
    /// Also return jurisdictions whose boundary lies within this many metres
    /// (geodesic), marked `"match": "near"`; capped by the server's
    /// `--max-within-m` (default 10,000; a larger value is a 400).
    #[param(minimum = 0.0)]
    pub within: Option<f64>,
    /// Also return, for each tier no jurisdiction covers, the nearest one
    /// within the server's `--nearest-max-m`, marked `"match": "nearest"`.
    pub nearest: Option<bool>,
}

/// Parses one coordinate: a finite decimal number within `range`.
///
/// A value written as a JSON number (`-74.006015`, as clients write
/// coordinates) is read by [`json_scan::number_at`](crate::json_scan::number_at):
/// one pass and, for at most 15 digits, one exact division, where
/// `str::parse` took ~400 instructions a `/v1/resolve` request for the two
/// (callgrind). Both give the correctly rounded value; anything else
/// (`+1`, `.5`, `1.`, `007`, spaces around it) goes through `str::parse`.
pub fn coordinate(field: &str, raw: &str, min: f64, max: f64) -> Result<f64, ApiError> {
    let v = match crate::json_scan::number_at(raw, 0) {
        Some((v, end)) if end == raw.len() => v,
        _ => raw.trim().parse().map_err(|_| {
            ApiError::field(field, format!("`{field}` must be a decimal number, got `{}`", raw.escape_debug()))
        })?,
    };
    check_coordinate(field, v, min, max)
}

/// Checks a coordinate given as a number.
pub fn check_coordinate(field: &str, v: f64, min: f64, max: f64) -> Result<f64, ApiError> {
    if !v.is_finite() {
        return Err(ApiError::field(field, format!("`{field}` must be a finite number")));
    }
    if !(min..=max).contains(&v) {
        return Err(ApiError::field(field, format!("`{field}` must be between {min} and {max}, got {v}")));
    }
    Ok(v)
}

/// The decoded `name=value` pairs of a query string, in order: the same
/// decoding as axum's `Query<Vec<(String, String)>>` (which is
/// `serde_urlencoded` over `form_urlencoded`), without the serde and
/// `serde_path_to_error` layers around it (~2 % of a `/v1/resolve`
/// request's CPU under `benches/load.sh`). A pair with nothing to decode
/// (no `%` or `+`, as in `lat=39.16&lon=-86.52`) is borrowed from the query
/// string, which is already UTF-8: owned strings and `form_urlencoded`'s
/// byte-wise decoding were a sixth of the resolve handler's instructions.
/// It cannot fail.
pub fn pairs(query: Option<&str>) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut out = Vec::with_capacity(4);
    for piece in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        if piece.bytes().any(|b| b == b'%' || b == b'+') {
            // `form_urlencoded` over this one piece yields exactly its pair.
            out.extend(
                url::form_urlencoded::parse(piece.as_bytes())
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned()))),
            );
        } else {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            out.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
    }
    out
}

/// Finds a parameter's single value; a repeated parameter is an error.
pub fn single<'a, K: AsRef<str>, V: AsRef<str>>(pairs: &'a [(K, V)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut found = pairs.iter().filter(|(k, _)| k.as_ref() == name).map(|(_, v)| v.as_ref());
    let first = found.next();
    if found.next().is_some() {
        return Err(ApiError::field(name, format!("parameter `{name}` is given more than once")));
    }
    Ok(first)
}

/// Reads `lat` and `lon` (or its Open311 spelling `long`) from a query.
pub fn location<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Location, ApiError> {
    let lat = single(pairs, "lat")?.ok_or_else(|| ApiError::missing("lat"))?;
    let lat = coordinate("lat", lat, -90.0, 90.0)?;
    let lon = match (single(pairs, "lon")?, single(pairs, "long")?) {
        (Some(_), Some(_)) => return Err(ApiError::field("lon", "give either `lon` or `long`, not both")),
        (Some(v), None) => coordinate("lon", v, -180.0, 180.0)?,
        (None, Some(v)) => coordinate("long", v, -180.0, 180.0)?,
        (None, None) => return Err(ApiError::missing("lon")),
    };
    Ok(Location { lat, lon })
}

/// A set of tiers from a comma-separated `tier` parameter; `None` means all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierSet(u8);

impl TierSet {
    /// Whether the set admits `t`.
    pub fn contains(self, t: Tier) -> bool {
        self.0 & (1 << t.rank()) != 0
    }
}

/// Parses an optional `tier=country,state` filter.
pub fn tiers<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Option<TierSet>, ApiError> {
    let Some(raw) = single(pairs, "tier")? else { return Ok(None) };
    let mut bits = 0u8;
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let t: Tier = part.parse().map_err(|e: crate::model::UnknownTier| ApiError::field("tier", e.to_string()))?;
        bits |= 1 << t.rank();
    }
    if bits == 0 {
        return Err(ApiError::field("tier", "`tier` must name at least one tier"));
    }
    Ok(Some(TierSet(bits)))
}

/// Parses an optional integer parameter within `min..=max`.
pub fn integer<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    let Some(raw) = single(pairs, name)? else { return Ok(None) };
    let v: u64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::field(name, format!("`{name}` must be a whole number, got `{}`", raw.escape_debug())))?;
    if !(min..=max).contains(&v) {
        return Err(ApiError::field(name, format!("`{name}` must be between {min} and {max}, got {v}")));
    }
    Ok(Some(v))
}

/// Parses an optional boolean parameter (`true`/`false`/`1`/`0`).
pub fn boolean<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)], name: &str) -> Result<Option<bool>, ApiError> {
    match single(pairs, name)?.map(str::trim) {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(other) => {
            Err(ApiError::field(name, format!("`{name}` must be true or false, got `{}`", other.escape_debug())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn coordinates_read_as_str_parse_reads_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "90",
            "-90",
            "1.5",
            "+1.5",
            ".5",
            "1.",
            "007",
            " 12.25 ",
            "1e1",
            "1E-1",
            "-0.000001",
            "179.99999999999999999",
            "40.712800000000000001",
            "123456789012345.6",
            "12345678901234567",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for _ in 0..20_000 {
            let v: f64 = rng.gen_range(-180.0..180.0);
            let digits = rng.gen_range(0..18);
            texts.push(format!("{v:.digits$}"));
            texts.push(format!("{v}"));
        }
        for t in &texts {
            let ours = coordinate("lon", t, f64::MIN, f64::MAX).expect(t);
            let theirs: f64 = t.trim().parse().expect(t);
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{t}");
        }
        for bad in ["", "-", "1.2.3", "1,5", "0x10", "1e", "--1", "\u{661}"] {
            assert!(coordinate("lon", bad, -180.0, 180.0).is_err(), "{bad:?}");
        }
        for out in ["NaN", "inf", "-infinity", "1e400", "180.0000001"] {
            assert!(coordinate("lon", out, -180.0, 180.0).is_err(), "{out}");
        }
    }

    #[test]
    fn location_accepts_lon_and_long() {
        assert_eq!(location(&q(&[("lat", "1"), ("lon", "2")])).ok(), Some(Location { lat: 1.0, lon: 2.0 }));
        assert_eq!(location(&q(&[("lat", "1"), ("long", "2")])).ok(), Some(Location { lat: 1.0, lon: 2.0 }));
    }

    #[test]
    fn location_rejects_bad_values() {
        for (pairs, field) in [
            (q(&[("lon", "2")]), "lat"),
            (q(&[("lat", "1")]), "lon"),
            (q(&[("lat", "x"), ("lon", "2")]), "lat"),
            (q(&[("lat", "NaN"), ("lon", "2")]), "lat"),
            (q(&[("lat", "inf"), ("lon", "2")]), "lat"),
            (q(&[("lat", "91"), ("lon", "2")]), "lat"),
            (q(&[("lat", "1"), ("lon", "-180.5")]), "lon"),
            (q(&[("lat", "1"), ("lat", "2"), ("lon", "2")]), "lat"),
        ] {
            match location(&pairs) {
                Err(ApiError::BadRequest { field: Some(f), .. }) => assert_eq!(f, field, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    /// `pairs` decodes exactly as `form_urlencoded` (what axum's `Query` uses).
    #[test]
    fn pairs_decode_like_form_urlencoded() {
        use proptest::prelude::*;
        let reference =
            |q: &str| -> Vec<(String, String)> { url::form_urlencoded::parse(q.as_bytes()).into_owned().collect() };
        let ours = |q: &str| -> Vec<(String, String)> {
            pairs(Some(q)).into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
        };
        for q in [
            "",
            "&",
            "lat=1&lon=2",
            "a",
            "a=",
            "=b",
            "a==b",
            "a=1&&b=2&",
            "q=caf%C3%A9+au+lait",
            "x=%ZZ%",
            "t=%FF",
            "é=ü",
        ] {
            assert_eq!(ours(q), reference(q), "{q:?}");
        }
        assert!(pairs(None).is_empty());
        proptest!(|(q in "[a-z=&%+0-9A-F\\.é-]{0,24}")| {
            prop_assert_eq!(ours(&q), reference(&q));
        });
    }

    #[test]
    fn tiers_parse() {
        let set = tiers(&q(&[("tier", "county,place")])).expect("ok").expect("some");
        assert!(set.contains(Tier::County) && set.contains(Tier::Place) && !set.contains(Tier::State));
        assert!(tiers(&q(&[("tier", "city")])).is_err());
        assert!(tiers(&q(&[("tier", ",")])).is_err());
        assert_eq!(tiers(&q(&[])).ok(), Some(None));
    }
}
