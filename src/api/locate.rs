//! What serves a location, shared by `/v1/resolve`, `/v1/services` and
//! `/discovery.json`: the covering jurisdictions, plus near misses
//! (`within=METERS`) and the nearest jurisdiction of each uncovered tier
//! (`nearest=true`).
//!
//! Order of the hits: jurisdictions covering the point first, in answer order
//! (tier, larger area first, id); then near misses, nearest first; then the
//! nearest-of-tier answers, in tier order.

use super::cache;
use super::params::{self, Location, TierSet};
use crate::error::ApiError;
use crate::index::{Entry, Snapshot};
use crate::{AppState, Settings};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::sync::Arc;

/// How a jurisdiction matched the location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// Its boundary covers the point (inside or on the boundary).
    Exact,
    /// It does not cover the point, but its boundary lies within `within` metres.
    Near,
    /// No jurisdiction of its tier covers the point; this is the nearest one.
    Nearest,
}

/// The location options of a query string: tier filter, `within`, `nearest`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocateOptions {
    /// Only these tiers.
    pub tiers: Option<TierSet>,
    /// Also near misses within this many metres.
    pub within: Option<f64>,
    /// Also the nearest jurisdiction of each tier no jurisdiction covers.
    pub nearest: bool,
}

impl LocateOptions {
    /// Reads `tier`, `within` and `nearest`, checking `within` against the configured cap.
    pub fn parse<K: AsRef<str>, V: AsRef<str>>(q: &[(K, V)], settings: &Settings) -> Result<Self, ApiError> {
        let tiers = params::tiers(q)?;
        let within = match params::single(q, "within")? {
            None => None,
            Some(raw) => {
                let v = params::coordinate("within", raw, 0.0, f64::MAX)?;
                if v > settings.max_within_m {
                    return Err(ApiError::field(
                        "within",
                        format!("`within` is capped at {} metres on this server, got {v}", settings.max_within_m),
                    ));
                }
                Some(v)
            }
        };
        let nearest = params::boolean(q, "nearest")?.unwrap_or(false);
        Ok(Self { tiers, within, nearest })
    }

    /// Whether answers mark each jurisdiction with how it matched.
    pub fn annotated(&self) -> bool {
        self.within.is_some() || self.nearest
    }
}

/// One jurisdiction of a location answer.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    /// The snapshot entry.
    pub entry: &'a Arc<Entry>,
    /// How it matched.
    pub kind: MatchKind,
    /// Geodesic metres from the point to its boundary (0 for exact matches).
    pub distance_m: f64,
}

/// Every jurisdiction serving `loc` under `opts`, in the documented order.
pub fn locate<'a>(snapshot: &'a Snapshot, loc: Location, opts: &LocateOptions, settings: &Settings) -> Vec<Hit<'a>> {
    let mut slots = Vec::with_capacity(8);
    snapshot.resolve_into(loc.lon, loc.lat, &mut slots);
    let tier_ok = |s: u32| snapshot.entry(s).is_some_and(|e| opts.tiers.is_none_or(|t| t.contains(e.record.tier)));
    slots.retain(|&s| tier_ok(s));
    let mut hits: Vec<Hit<'a>> = slots
        .iter()
        .filter_map(|&s| snapshot.entry(s))
        .map(|entry| Hit { entry, kind: MatchKind::Exact, distance_m: 0.0 })
        .collect();
    if let Some(m) = opts.within {
        for near in snapshot.near(loc.lon, loc.lat, m, &slots, tier_ok) {
            if let Some(entry) = snapshot.entry(near.slot) {
                slots.push(near.slot);
                hits.push(Hit { entry, kind: MatchKind::Near, distance_m: near.distance_m });
            }
        }
    }
    if opts.nearest {
        let tiers = |t| opts.tiers.is_none_or(|set| set.contains(t));
        for near in snapshot.nearest_by_tier(loc.lon, loc.lat, settings.nearest_max_m, &slots, tiers) {
            if let Some(entry) = snapshot.entry(near.slot) {
                hits.push(Hit { entry, kind: MatchKind::Nearest, distance_m: near.distance_m });
            }
        }
    }
    hits
}

/// Rounds a distance for answers and ETags (decimetres).
pub fn round_m(d: f64) -> f64 {
    (d * 10.0).round() / 10.0
}

/// The weak ETag of a location answer: the route and the number of hits,
/// then for each hit its content hash, match kind and rounded distance,
/// folded with [`cache::Fold`].
pub fn etag(route: &str, hits: &[Hit<'_>]) -> String {
    let mut fold = cache::Fold::new(route).word(hits.len() as u64);
    for hit in hits {
        let kind = match hit.kind {
            MatchKind::Exact => 0,
            MatchKind::Near => 1,
            MatchKind::Nearest => 2,
        };
        // Decimetres (non-negative), with the kind in the top bits.
        let decimetres = (round_m(hit.distance_m) * 10.0) as u64;
        fold = fold.word(hit.entry.content_hash).word(kind << 62 ^ decimetres);
    }
    cache::etag_hex(fold.finish())
}

/// The OpenAPI schema of a jurisdiction in a location answer, as [`HitJson`]
/// renders it: the public record, with `match` and `distance_m` in front
/// when the query asked for near misses (`within`) or `nearest`. Only
/// describes the answer; nothing builds it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LocatedJurisdiction<'a> {
    /// How it matched (only with `within` or `nearest`).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    kind: Option<MatchKind>,
    /// Geodesic metres from the point to its boundary, 0 for `exact` (only with `within` or `nearest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0)]
    distance_m: Option<f64>,
    /// The public record.
    #[serde(flatten)]
    jurisdiction: crate::index::JurisdictionView<'a>,
}

/// A hit rendered as the entry's public JSON, with `match` and `distance_m`
/// spliced in front when the answer is annotated.
pub struct HitJson<'a> {
    hit: &'a Hit<'a>,
    annotated: bool,
}

impl<'a> HitJson<'a> {
    /// Wraps a hit for serialisation.
    pub fn new(hit: &'a Hit<'a>, annotated: bool) -> Self {
        Self { hit, annotated }
    }
}

impl Serialize for HitJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = &self.hit.entry.json;
        if !self.annotated {
            return raw.serialize(s);
        }
        let body = raw.get().trim_start().strip_prefix('{').unwrap_or("}");
        let kind = match self.hit.kind {
            MatchKind::Exact => "exact",
            MatchKind::Near => "near",
            MatchKind::Nearest => "nearest",
        };
        let sep = if body.trim_start().starts_with('}') { "" } else { "," };
        let text = format!("{{\"match\":\"{kind}\",\"distance_m\":{}{sep}{body}", round_m(self.hit.distance_m));
        let spliced = RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
        spliced.serialize(s)
    }
}

/// The location and options of a GET query, or the error naming the bad parameter.
pub fn query<K: AsRef<str>, V: AsRef<str>>(
    q: &[(K, V)],
    state: &AppState,
) -> Result<(Location, LocateOptions), ApiError> {
    Ok((params::location(q)?, LocateOptions::parse(q, &state.settings)?))
}
