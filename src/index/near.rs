//! Near misses: jurisdictions whose boundary lies within some distance of a
//! point that they do not cover (a GPS fix on a pier, a few metres off a
//! border), and the nearest jurisdiction of a tier when none covers the point.
//!
//! This is off the hot path, so it favours simplicity over speed:
//! 1. candidates come from the R-tree: every polygon part whose bounding box
//!    meets a box around the point that is certainly larger than the search
//!    radius (degrees of longitude shrink with latitude; near the poles the box
//!    spans every longitude);
//! 2. for each candidate, every ring edge is measured in a local
//!    equirectangular projection centred on the point (metres east and north),
//!    which finds the closest boundary point;
//! 3. the distance reported is the *geodesic* distance (WGS84 ellipsoid,
//!    Karney's algorithm via `geo::Geodesic`) from the point to that closest
//!    boundary point. Within tens of kilometres the projection picks the same
//!    closest point as an exact geodesic search to well under a metre; farther
//!    away it may pick a slightly different point, so the reported distance is
//!    still a true geodesic distance to a boundary point, an upper bound on the
//!    exact minimum within a fraction of a percent.
//!
//! Longitudes are unwrapped relative to the point, so a boundary just across
//! the antimeridian is measured the short way round; the candidate box itself
//! does not wrap, so such a boundary is only found from its own side of ±180°.

use super::Snapshot;
use crate::model::Tier;
use geo::{Coord, Distance, Geodesic, MultiPolygon, Point};

/// Metres per degree of latitude, a lower bound (the true value is 110,574 m
/// at the equator and more towards the poles), so boxes built with it are
/// never too small.
const MIN_M_PER_DEG_LAT: f64 = 110_500.0;
/// Metres per degree of longitude at the equator, an upper bound.
const MAX_M_PER_DEG_LON: f64 = 111_400.0;
/// Scale used by the local projection (the mean of the two).
const M_PER_DEG: f64 = 111_195.0;

/// A jurisdiction that does not cover the point but lies near it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearMatch {
    /// Its slot in the snapshot (see [`Snapshot::entry`]).
    pub slot: u32,
    /// Geodesic distance from the point to its boundary, in metres.
    pub distance_m: f64,
}

/// The closest boundary point of `boundary` to `(lon, lat)` and the geodesic
/// distance to it, in metres. `None` for an empty boundary.
pub fn boundary_distance(boundary: &MultiPolygon<f64>, lon: f64, lat: f64) -> Option<(Coord<f64>, f64)> {
    let rings = boundary.0.iter().flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()));
    rings_distance(rings.map(|r| r.0.as_slice()), lon, lat)
}

/// [`boundary_distance`] over the rings of a boundary (every polygon's
/// exterior and holes, in any order), e.g. [`super::Entry::rings`].
pub fn rings_distance<'a>(
    rings: impl Iterator<Item = &'a [Coord<f64>]>,
    lon: f64,
    lat: f64,
) -> Option<(Coord<f64>, f64)> {
    let cos = lat.to_radians().cos().max(1e-9);
    let project = |c: Coord<f64>| {
        let mut dx = c.x - lon;
        if dx > 180.0 {
            dx -= 360.0;
        } else if dx < -180.0 {
            dx += 360.0;
        }
        (dx * cos * M_PER_DEG, (c.y - lat) * M_PER_DEG)
    };
    let mut best: Option<(f64, (f64, f64))> = None;
    let mut visit = |ring: &[Coord<f64>]| {
        let mut coords = ring.iter().map(|&c| project(c));
        let Some(mut a) = coords.next() else { return };
        // A one-point ring still has a distance.
        consider(&mut best, a, a);
        for b in coords {
            consider(&mut best, a, b);
            a = b;
        }
    };
    for ring in rings {
        visit(ring);
    }
    let (_, (x, y)) = best?;
    let mut q_lon = lon + x / (cos * M_PER_DEG);
    if q_lon > 180.0 {
        q_lon -= 360.0;
    } else if q_lon < -180.0 {
        q_lon += 360.0;
    }
    let q = Coord { x: q_lon, y: (lat + y / M_PER_DEG).clamp(-90.0, 90.0) };
    let d = Geodesic.distance(Point::new(lon, lat), Point::from(q));
    Some((q, if d.is_finite() { d } else { f64::INFINITY }))
}

/// Keeps in `best` the point of segment `a`-`b` closest to the origin, if it
/// is closer than the one held (squared projected distance first).
fn consider(best: &mut Option<(f64, (f64, f64))>, a: (f64, f64), b: (f64, f64)) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let p = (a.0 + t * dx, a.1 + t * dy);
    let d2 = p.0 * p.0 + p.1 * p.1;
    if best.is_none_or(|(bd, _)| d2 < bd) {
        *best = Some((d2, p));
    }
}

/// A lon/lat box certainly containing every point within `meters` of `(lon, lat)`.
fn search_box(lon: f64, lat: f64, meters: f64) -> ([f64; 2], [f64; 2]) {
    let dlat = meters / MIN_M_PER_DEG_LAT * 1.01;
    let (lat_min, lat_max) = ((lat - dlat).max(-90.0), (lat + dlat).min(90.0));
    // The widest parallel in the band decides how many degrees of longitude `meters` spans.
    let widest = lat_min.abs().max(lat_max.abs());
    let m_per_deg_lon = widest.to_radians().cos() * MAX_M_PER_DEG_LON;
    let dlon = if widest >= 89.9 || m_per_deg_lon <= 0.0 { 360.0 } else { meters / m_per_deg_lon * 1.01 };
    if dlon >= 180.0 {
        return ([-180.0, lat_min], [180.0, lat_max]);
    }
    ([(lon - dlon).max(-180.0), lat_min], [(lon + dlon).min(180.0), lat_max])
}

impl Snapshot {
    /// Jurisdictions not in `covering` whose boundary lies within `meters` of
    /// the point, nearest first (then in answer order). `keep` filters slots
    /// (e.g. by tier) before any distance is computed.
    pub fn near(
        &self,
        lon: f64,
        lat: f64,
        meters: f64,
        covering: &[u32],
        keep: impl Fn(u32) -> bool,
    ) -> Vec<NearMatch> {
        let (min, max) = search_box(lon, lat, meters);
        let mut slots = Vec::new();
        self.slots_in_box(min, max, &mut slots);
        slots.sort_unstable();
        slots.dedup();
        let mut found: Vec<NearMatch> = slots
            .into_iter()
            .filter(|s| !covering.contains(s) && keep(*s))
            .filter_map(|slot| {
                let entry = self.entry(slot)?;
                let (_, d) = rings_distance(entry.rings(), lon, lat)?;
                (d <= meters).then_some(NearMatch { slot, distance_m: d })
            })
            .collect();
        found.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then_with(|| self.cmp_slots(a.slot, b.slot)));
        found
    }

    /// For each tier in `tiers` that no slot of `covering` belongs to, the
    /// nearest jurisdiction of that tier within `max_meters`, if any. Ties go
    /// to the earlier in answer order. Results are in tier order.
    pub fn nearest_by_tier(
        &self,
        lon: f64,
        lat: f64,
        max_meters: f64,
        covering: &[u32],
        tiers: impl Fn(Tier) -> bool,
    ) -> Vec<NearMatch> {
        let covered: Vec<Tier> = covering.iter().filter_map(|&s| self.entry(s)).map(|e| e.record.tier).collect();
        let missing: Vec<Tier> = Tier::ALL.into_iter().filter(|t| tiers(*t) && !covered.contains(t)).collect();
        let mut best: Vec<Option<NearMatch>> = vec![None; missing.len()];
        if missing.is_empty() || max_meters <= 0.0 {
            return Vec::new();
        }
        // Grow the search radius until every missing tier has an answer closer
        // than the radius (anything closer would have been a candidate), or
        // the radius reaches the cap.
        let mut radius = 1_000.0_f64.min(max_meters);
        loop {
            let found = self
                .near(lon, lat, radius, covering, |s| self.entry(s).is_some_and(|e| missing.contains(&e.record.tier)));
            for m in found {
                let Some(tier) = self.entry(m.slot).map(|e| e.record.tier) else { continue };
                let Some(i) = missing.iter().position(|&t| t == tier) else { continue };
                if best[i].is_none_or(|b| m.distance_m < b.distance_m) {
                    best[i] = Some(m);
                }
            }
            let settled = best.iter().all(|b| b.is_some_and(|b| b.distance_m <= radius));
            if settled || radius >= max_meters {
                break;
            }
            radius = (radius * 4.0).min(max_meters);
        }
        best.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn square(x0: f64, y0: f64, s: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![(x: x0, y: y0), (x: x0 + s, y: y0), (x: x0 + s, y: y0 + s), (x: x0, y: y0 + s)]])
    }

    #[test]
    fn distance_to_an_edge_matches_the_geodesic() {
        // A square whose west edge is the meridian 0.01°E; the point is on the equator at 0°.
        let b = square(0.01, -1.0, 1.0);
        let (q, d) = boundary_distance(&b, 0.0, 0.0).expect("non-empty");
        assert!((q.x - 0.01).abs() < 1e-9 && q.y.abs() < 1e-9, "{q:?}");
        let exact = Geodesic.distance(Point::new(0.0, 0.0), Point::new(0.01, 0.0));
        assert!((d - exact).abs() < 1e-6, "{d} vs {exact}");
        assert!((d - 1113.2).abs() < 1.0, "{d}");
    }

    #[test]
    fn distance_at_high_latitude_uses_shrunken_longitude() {
        // At 60°N a degree of longitude is about half as long.
        let b = square(0.02, 59.0, 1.0);
        let (_, d) = boundary_distance(&b, 0.0, 60.0).expect("non-empty");
        let exact = Geodesic.distance(Point::new(0.0, 60.0), Point::new(0.02, 60.0));
        assert!((d - exact).abs() < 0.5, "{d} vs {exact}");
    }

    #[test]
    fn holes_count_as_boundary() {
        let outer = square(-1.0, -1.0, 2.0).0.remove(0);
        let hole = square(-0.1, -0.1, 0.2).0.remove(0).exterior().clone();
        let b = MultiPolygon(vec![geo::Polygon::new(outer.exterior().clone(), vec![hole])]);
        let (_, d) = boundary_distance(&b, 0.0, 0.0).expect("non-empty");
        assert!(d < 11_200.0 && d > 11_000.0, "{d}");
    }

    #[test]
    fn antimeridian_is_measured_the_short_way() {
        // A strip from 179.99°E to 179.995°E; the point is 0.006° of longitude east of it, across ±180°.
        let b = MultiPolygon(vec![
            polygon![(x: 179.99, y: -1.0), (x: 179.995, y: -1.0), (x: 179.995, y: 1.0), (x: 179.99, y: 1.0)],
        ]);
        let (q, d) = boundary_distance(&b, -179.999, 0.0).expect("non-empty");
        let exact = Geodesic.distance(Point::new(-179.999, 0.0), Point::new(179.995, 0.0));
        assert!((q.x - 179.995).abs() < 1e-9, "{q:?}");
        assert!((d - exact).abs() < 0.01 && d < 700.0, "{d} vs {exact}");
    }

    #[test]
    fn search_box_is_large_enough_and_clamped() {
        let (min, max) = search_box(10.0, 50.0, 1_000.0);
        let east = Geodesic.distance(Point::new(10.0, 50.0), Point::new(max[0], 50.0));
        let north = Geodesic.distance(Point::new(10.0, 50.0), Point::new(10.0, max[1]));
        assert!(east > 1_000.0 && north > 1_000.0 && min[0] < 10.0 && min[1] < 50.0);
        let (min, max) = search_box(0.0, 89.95, 20_000.0);
        assert_eq!((min[0], max[0], max[1]), (-180.0, 180.0, 90.0));
    }
}
