//! Answers to parsed LoST requests, from one index snapshot.

use super::error::{write_exception, LostError};
use super::gml;
use super::request::{FindService, Located, Request, Shape};
use super::urn::{ServiceUrn, UrnError};
use super::xml::{token, Writer, GML_NS, LOST_NS};
use crate::index::{Entry, Snapshot};
use crate::model::Endpoint;
use geo::{BoundingRect, Destination, Haversine, Intersects, LineString, Point, Polygon, Rect};
use std::collections::BTreeSet;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// What an answer needs besides the snapshot.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// This server's name, in `source` and `via` attributes.
    pub server: &'a str,
    /// Seconds a mapping may be cached; 0 sends `NO-CACHE`.
    pub cache_max_age: u32,
    /// The time of the answer.
    pub now: OffsetDateTime,
}

/// Answers `req` from `snapshot`; an `Err` becomes an `<errors>` document.
pub fn answer(snapshot: &Snapshot, ctx: &Context, req: Request) -> Result<String, LostError> {
    match req {
        Request::FindService(f) => find_service(snapshot, ctx, f),
        Request::ListServices { service, path } => {
            check_path(ctx, &path)?;
            let offered = offered(snapshot.entries());
            let list = children(&offered, service.as_deref(), true)?;
            let mut w = Writer::new();
            w.open("listServicesResponse", &[("xmlns", LOST_NS)]);
            w.text("serviceList", &[], &list.join(" "));
            write_path(&mut w, ctx, &path);
            Ok(w.finish())
        }
        Request::ListServicesByLocation { location, service, path } => {
            check_path(ctx, &path)?;
            // The service must be ours and offered somewhere, even if not here.
            let everywhere = offered(snapshot.entries());
            children(&everywhere, service.as_deref(), true)?;
            let here = covering(snapshot, location.shape)?;
            let offered_here = offered(here.into_iter());
            let list = children(&offered_here, service.as_deref(), false)?;
            let mut w = Writer::new();
            w.open("listServicesByLocationResponse", &[("xmlns", LOST_NS)]);
            w.text("serviceList", &[], &list.join(" "));
            write_warnings(&mut w, ctx, &location);
            write_path(&mut w, ctx, &path);
            w.empty("locationUsed", &[("id", &location.id)]);
            Ok(w.finish())
        }
        Request::GetServiceBoundary { key } => {
            let not_found = || {
                LostError::NotFound(format!(
                    "no service boundary has key {}; the boundary may have changed: send findService again",
                    token(&key)
                ))
            };
            let (id, hash) = gml::parse_key(&key).ok_or_else(not_found)?;
            let entry = snapshot.get(&id).ok_or_else(not_found)?;
            if gml::boundary_hash(&id, &entry.boundary()) != hash {
                return Err(not_found());
            }
            let mut w = Writer::new();
            w.open("getServiceBoundaryResponse", &[("xmlns", LOST_NS), ("xmlns:gml", GML_NS)]);
            if !write_boundary(&mut w, entry) {
                return Err(LostError::NotFound(format!("jurisdiction {id} has an empty boundary")));
            }
            write_path(&mut w, ctx, &[]);
            Ok(w.finish())
        }
    }
}

fn find_service(snapshot: &Snapshot, ctx: &Context, f: FindService) -> Result<String, LostError> {
    check_path(ctx, &f.path)?;
    let urn = ours(&f.service)?;
    if !snapshot.entries().any(|e| e.endpoints.iter().any(|ep| urn.served_by(ep))) {
        return Err(LostError::ServiceNotImplemented(format!("no endpoint of this server offers {urn}")));
    }
    let here = covering(snapshot, f.location.shape)?;
    let serving: Vec<(&Arc<Entry>, Vec<&Endpoint>)> = here
        .into_iter()
        .filter_map(|e| {
            let eps: Vec<&Endpoint> = e.endpoints.iter().filter(|ep| urn.served_by(ep)).collect();
            (!eps.is_empty()).then_some((e, eps))
        })
        .collect();
    if serving.is_empty() {
        return Err(LostError::NotFound(format!("no jurisdiction at this location offers {urn}")));
    }
    let expires = if ctx.cache_max_age == 0 {
        "NO-CACHE".to_owned()
    } else {
        rfc3339(ctx.now + time::Duration::seconds(i64::from(ctx.cache_max_age)))
    };
    let service = urn.to_string();
    let mut w = Writer::new();
    let root_attrs: &[(&str, &str)] =
        if f.boundary_by_value { &[("xmlns", LOST_NS), ("xmlns:gml", GML_NS)] } else { &[("xmlns", LOST_NS)] };
    w.open("findServiceResponse", root_attrs);
    for (entry, endpoints) in serving {
        let record = &entry.record;
        let updated = std::iter::once(record.updated_at.as_str())
            .chain(endpoints.iter().map(|e| e.updated_at.as_str()))
            .filter_map(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .max()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let source_id = source_id(&record.id);
        let last_updated = rfc3339(updated);
        w.open(
            "mapping",
            &[("expires", &expires), ("lastUpdated", &last_updated), ("source", ctx.server), ("sourceId", &source_id)],
        );
        w.text("displayName", &[("xml:lang", "und")], &record.name);
        w.text("service", &[], &service);
        if f.boundary_by_value {
            write_boundary(&mut w, entry);
        } else {
            let key = gml::boundary_key(&record.id, &entry.boundary());
            w.empty("serviceBoundaryReference", &[("source", ctx.server), ("key", &key)]);
        }
        for ep in endpoints {
            w.text("uri", &[], &ep.url);
        }
        w.close();
    }
    write_warnings(&mut w, ctx, &f.location);
    write_path(&mut w, ctx, &f.path);
    w.empty("locationUsed", &[("id", &f.location.id)]);
    Ok(w.finish())
}

/// RFC 3339 in UTC, whole seconds (a valid `xsd:dateTime`).
fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The `sourceId` of a jurisdiction's mapping: its id, with `%` and
/// whitespace percent-encoded so it is an `xsd:token`.
fn source_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        if c == '%' || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses a service URN of our tree, or says why not.
fn ours(service: &str) -> Result<ServiceUrn, LostError> {
    // Malformed and unknown URNs alike: the service is not one this server implements.
    ServiceUrn::parse(service).map_err(|e: UrnError| LostError::ServiceNotImplemented(e.to_string()))
}

/// Writes the `<serviceBoundary>` of an entry; false when it has no polygon.
fn write_boundary(w: &mut Writer, entry: &Entry) -> bool {
    // Each part's first ring is its exterior.
    if entry.prepared.iter().all(|p| p.rings().next().map_or(0, <[_]>::len) < 4) {
        return false;
    }
    w.open("serviceBoundary", &[("profile", super::request::GEODETIC_2D)]);
    gml::write_polygons(w, &entry.boundary());
    w.close();
    true
}

/// Refuses a request that has already passed through this server.
fn check_path(ctx: &Context, path: &[String]) -> Result<(), LostError> {
    if path.iter().any(|v| v.eq_ignore_ascii_case(ctx.server)) {
        return Err(LostError::Loop(format!("{} is already on the request's path", ctx.server)));
    }
    Ok(())
}

/// `<path>`: the request's vias, then this server.
fn write_path(w: &mut Writer, ctx: &Context, path: &[String]) {
    w.open("path", &[]);
    for via in path {
        w.empty("via", &[("source", via)]);
    }
    w.empty("via", &[("source", ctx.server)]);
    w.close();
}

/// `<warnings>` for the locations skipped for their profile, if any.
fn write_warnings(w: &mut Writer, ctx: &Context, location: &Located) {
    if location.skipped_profiles.is_empty() {
        return;
    }
    w.open("warnings", &[("source", ctx.server)]);
    write_exception(w, &LostError::LocationProfileUnrecognized { profiles: location.skipped_profiles.clone() });
    w.close();
}

/// Every service URN the endpoints of `entries` offer.
fn offered<'s>(entries: impl Iterator<Item = &'s Arc<Entry>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in entries {
        for ep in &e.endpoints {
            for urn in ServiceUrn::all_of(ep) {
                out.insert(urn.to_string());
            }
        }
    }
    out
}

/// The immediate sub-services of `service` among `offered` (the top-level
/// services when `service` is `None`). With `must_exist`, a service offered
/// nowhere is `serviceNotImplemented`.
fn children(offered: &BTreeSet<String>, service: Option<&str>, must_exist: bool) -> Result<Vec<String>, LostError> {
    let parent = service.map(ours).transpose()?;
    if let Some(p) = &parent {
        if must_exist && !offered.contains(&p.to_string()) {
            return Err(LostError::ServiceNotImplemented(format!("no endpoint of this server offers {p}")));
        }
    }
    Ok(offered.iter().filter(|s| ServiceUrn::parse(s).is_ok_and(|u| u.parent() == parent)).cloned().collect())
}

/// Mean Earth radius (IUGG), as used by `geo`'s haversine.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The entries whose boundary covers a point, or meets a circle, in answer order.
fn covering(snapshot: &Snapshot, shape: Shape) -> Result<Vec<&Arc<Entry>>, LostError> {
    match shape {
        Shape::Point { lat, lon } => {
            let mut slots = Vec::with_capacity(8);
            snapshot.resolve_into(lon, lat, &mut slots);
            Ok(slots.iter().filter_map(|&s| snapshot.entry(s)).collect())
        }
        Shape::Circle { lat, lon, radius_m } if radius_m <= 0.0 => covering(snapshot, Shape::Point { lat, lon }),
        Shape::Circle { lat, lon, radius_m } => {
            let circle = circle_polygon(lat, lon, radius_m)?;
            let Some(bbox) = circle.bounding_rect() else { return Ok(vec![]) };
            // Only entries with an endpoint can appear in an answer, so only they are tested.
            Ok(snapshot
                .entries()
                .filter(|e| !e.endpoints.is_empty())
                // The stored bounding boxes first (no copy), then the same
                // tests as ever on the rebuilt boundary.
                .filter(|e| e.bbox().is_some_and(|(lo, hi)| Rect::new(lo, hi).intersects(&bbox)))
                .filter(|e| {
                    let boundary = e.boundary();
                    boundary.bounding_rect().is_some_and(|b| b.intersects(&bbox)) && circle.intersects(&boundary)
                })
                .collect())
        }
    }
}

/// A circle as a 64-sided polygon on the sphere. Circles that reach a pole
/// or cross the antimeridian are refused (`locationInvalid`).
fn circle_polygon(lat: f64, lon: f64, radius_m: f64) -> Result<Polygon<f64>, LostError> {
    let radius_deg = (radius_m / EARTH_RADIUS_M).to_degrees();
    if lat + radius_deg >= 90.0 || lat - radius_deg <= -90.0 {
        return Err(LostError::LocationInvalid("the circle reaches a pole; send a smaller radius".into()));
    }
    let center = Point::new(lon, lat);
    let mut ring = Vec::with_capacity(65);
    for i in 0..64 {
        let p = Haversine.destination(center, f64::from(i) * 360.0 / 64.0, radius_m);
        let delta = (p.x() - lon + 540.0).rem_euclid(360.0) - 180.0;
        let x = lon + delta;
        if !(-180.0..=180.0).contains(&x) {
            return Err(LostError::LocationInvalid("the circle crosses the antimeridian".into()));
        }
        ring.push((x, p.y()));
    }
    Ok(Polygon::new(LineString::from(ring), vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circles_near_poles_and_the_antimeridian_are_refused() {
        assert!(circle_polygon(89.9, 0.0, 20_000.0).is_err());
        assert!(circle_polygon(0.0, 179.99, 5_000.0).is_err());
        let p = circle_polygon(39.0, -86.0, 1000.0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.exterior().0.len(), 65, "closed");
    }

    #[test]
    fn source_ids_are_tokens() {
        assert_eq!(source_id("us-place:1805860"), "us-place:1805860");
        assert_eq!(source_id("a b%"), "a%20b%25");
    }
}
