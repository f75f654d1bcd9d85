//! Boundary geometry: parsing GeoJSON into `geo` types, validation, repair
//! and (de)serialisation. Pure code, no I/O.
//!
//! Boundaries are `MultiPolygon<f64>` in WGS84 lon/lat. The point test in the
//! index uses the even-odd rule over every ring of a polygon, so OGC-invalid
//! input (self-touching rings, wrong winding, degenerate rings) still answers
//! sensibly; [`repair`] only does what is needed to make a boundary well
//! formed (closed rings, RFC 7946 winding, no degenerate rings), and reports
//! what it did.

use geo::algorithm::Validation;
use geo::orient::Direction;
use geo::{ChamberlainDuquetteArea, Orient};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::{json, Value};

/// Why a boundary was refused. Each variant names where the problem is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GeometryError {
    /// Only Polygon and MultiPolygon describe an area.
    #[error("boundary must be a Polygon or MultiPolygon, not {0}")]
    NotPolygonal(String),
    /// The geometry has no polygon at all.
    #[error("boundary is empty")]
    Empty,
    /// A position has fewer than two numbers.
    #[error("polygon {polygon} ring {ring} position {position}: a position needs longitude and latitude")]
    ShortPosition {
        /// Index of the polygon.
        polygon: usize,
        /// Index of the ring (0 = exterior).
        ring: usize,
        /// Index of the position.
        position: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("polygon {polygon} ring {ring} position {position}: coordinate is not a finite number")]
    NonFinite {
        /// Index of the polygon.
        polygon: usize,
        /// Index of the ring.
        ring: usize,
        /// Index of the position.
        position: usize,
    },
    /// Longitude outside [-180, 180] or latitude outside [-90, 90].
    #[error("polygon {polygon} ring {ring} position {position}: ({lon}, {lat}) is outside longitude [-180, 180] / latitude [-90, 90]")]
    OutOfRange {
        /// Index of the polygon.
        polygon: usize,
        /// Index of the ring.
        ring: usize,
        /// Index of the position.
        position: usize,
        /// The longitude given.
        lon: f64,
        /// The latitude given.
        lat: f64,
    },
    /// The first and last positions of a ring differ.
    #[error("polygon {polygon} ring {ring}: ring is not closed (first and last positions differ)")]
    RingNotClosed {
        /// Index of the polygon.
        polygon: usize,
        /// Index of the ring.
        ring: usize,
    },
    /// A ring has fewer than 4 positions.
    #[error("polygon {polygon} ring {ring}: ring has {positions} positions, at least 4 are needed")]
    RingTooShort {
        /// Index of the polygon.
        polygon: usize,
        /// Index of the ring.
        ring: usize,
        /// How many it has.
        positions: usize,
    },
    /// The polygon is not OGC-valid (self-intersection, overlapping parts...).
    #[error("invalid polygon: {0}")]
    Invalid(String),
    /// More vertices than the configured limit.
    #[error("boundary has {count} vertices, more than the limit of {limit}")]
    TooManyVertices {
        /// Vertices in the boundary.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Converts a GeoJSON geometry into a `MultiPolygon`, checking only structure:
/// polygonal type, positions with two finite numbers within lon/lat range.
/// Rings are taken as given (see [`check_rings`] and [`repair`]).
///
/// ```
/// let g: geojson::Geometry = serde_json::from_str(
///     r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#).unwrap();
/// let mp = geowebdns::geometry::from_geojson(&g).unwrap();
/// assert_eq!(mp.0.len(), 1);
/// ```
pub fn from_geojson(g: &geojson::Geometry) -> Result<MultiPolygon<f64>, GeometryError> {
    use geojson::GeometryValue as V;
    let polygons: Vec<&Vec<Vec<geojson::Position>>> = match &g.value {
        V::Polygon { coordinates } => vec![coordinates],
        V::MultiPolygon { coordinates } => coordinates.iter().collect(),
        other => return Err(GeometryError::NotPolygonal(other.type_name().to_owned())),
    };
    let mut out = Vec::with_capacity(polygons.len());
    for (pi, rings) in polygons.into_iter().enumerate() {
        let mut converted = Vec::with_capacity(rings.len());
        for (ri, ring) in rings.iter().enumerate() {
            let mut coords = Vec::with_capacity(ring.len());
            for (ci, pos) in ring.iter().enumerate() {
                let s = pos.as_slice();
                if s.len() < 2 {
                    return Err(GeometryError::ShortPosition { polygon: pi, ring: ri, position: ci });
                }
                let (lon, lat) = (s[0], s[1]);
                if !lon.is_finite() || !lat.is_finite() {
                    return Err(GeometryError::NonFinite { polygon: pi, ring: ri, position: ci });
                }
                if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
                    return Err(GeometryError::OutOfRange { polygon: pi, ring: ri, position: ci, lon, lat });
                }
                coords.push(Coord { x: lon, y: lat });
            }
            converted.push(coords);
        }
        // geo's Polygon::new closes open rings; check_rings reports them from the raw input.
        let mut rings = converted.into_iter();
        let exterior = LineString::new(rings.next().unwrap_or_default());
        out.push(Polygon::new(exterior, rings.map(LineString::new).collect()));
    }
    if out.is_empty() {
        return Err(GeometryError::Empty);
    }
    Ok(MultiPolygon::new(out))
}

/// Checks ring structure on the raw GeoJSON (closure and length), which
/// `geo::Polygon::new` would silently paper over.
pub fn check_rings(g: &geojson::Geometry) -> Vec<GeometryError> {
    use geojson::GeometryValue as V;
    let polygons: Vec<&Vec<Vec<geojson::Position>>> = match &g.value {
        V::Polygon { coordinates } => vec![coordinates],
        V::MultiPolygon { coordinates } => coordinates.iter().collect(),
        _ => return Vec::new(),
    };
    let mut problems = Vec::new();
    for (pi, rings) in polygons.into_iter().enumerate() {
        if rings.is_empty() {
            problems.push(GeometryError::RingTooShort { polygon: pi, ring: 0, positions: 0 });
        }
        for (ri, ring) in rings.iter().enumerate() {
            if ring.len() < 4 {
                problems.push(GeometryError::RingTooShort { polygon: pi, ring: ri, positions: ring.len() });
            } else if ring.first().map(|p| p.as_slice().get(..2)) != ring.last().map(|p| p.as_slice().get(..2)) {
                problems.push(GeometryError::RingNotClosed { polygon: pi, ring: ri });
            }
        }
    }
    problems
}

/// Number of vertices (ring positions, closing ones included).
pub fn vertex_count(mp: &MultiPolygon<f64>) -> usize {
    mp.0.iter().map(|p| p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>()).sum()
}

/// Strict validation for boundaries written through the admin API: well-formed
/// rings and OGC validity. Wrong winding is not an error: the result is
/// re-oriented (exterior counter-clockwise, holes clockwise, RFC 7946).
pub fn validate_strict(g: &geojson::Geometry, max_vertices: usize) -> Result<MultiPolygon<f64>, GeometryError> {
    let mp = from_geojson(g)?;
    if let Some(first) = check_rings(g).into_iter().next() {
        return Err(first);
    }
    let count = vertex_count(&mp);
    if count > max_vertices {
        return Err(GeometryError::TooManyVertices { count, limit: max_vertices });
    }
    if let Err(e) = mp.check_validation() {
        let near =
            mp.0.iter().find_map(first_crossing).map(|c| format!(" near ({}, {})", c.x, c.y)).unwrap_or_default();
        return Err(GeometryError::Invalid(format!("{e}{near}")));
    }
    Ok(mp.orient(Direction::Default))
}

/// The first point where two non-adjacent edges of a polygon's rings meet, if
/// any: where a self-intersection (or rings touching) is, for error messages.
/// A sweep over edges sorted by their smallest x keeps this near O(n log n).
pub fn first_crossing(poly: &Polygon<f64>) -> Option<Coord<f64>> {
    use geo::line_intersection::{line_intersection, LineIntersection};
    use geo::Line;
    // (ring, index in ring, ring length, line)
    let mut edges: Vec<(usize, usize, usize, Line<f64>)> = Vec::new();
    for (ri, ring) in std::iter::once(poly.exterior()).chain(poly.interiors()).enumerate() {
        let n = ring.0.len().saturating_sub(1);
        edges.extend(ring.lines().enumerate().map(|(i, l)| (ri, i, n, l)));
    }
    edges.sort_by(|a, b| a.3.start.x.min(a.3.end.x).total_cmp(&b.3.start.x.min(b.3.end.x)));
    let adjacent = |a: &(usize, usize, usize, Line<f64>), b: &(usize, usize, usize, Line<f64>)| {
        a.0 == b.0 && (a.1.abs_diff(b.1) == 1 || a.1.abs_diff(b.1) + 1 == a.2)
    };
    for (i, a) in edges.iter().enumerate() {
        let max_x = a.3.start.x.max(a.3.end.x);
        for b in edges[i + 1..].iter().take_while(|b| b.3.start.x.min(b.3.end.x) <= max_x) {
            if adjacent(a, b) || (a.0 == b.0 && a.1 == b.1) {
                continue;
            }
            match line_intersection(a.3, b.3) {
                Some(LineIntersection::SinglePoint { intersection, .. }) => return Some(intersection),
                Some(LineIntersection::Collinear { intersection }) => return Some(intersection.start),
                None => {}
            }
        }
    }
    None
}

/// What [`repair`] did to one boundary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepairReport {
    /// Human-readable notes, one per action taken or problem kept.
    pub notes: Vec<String>,
    /// Whether the geometry was changed.
    pub changed: bool,
}

/// Makes a boundary well formed without changing the area it covers under the
/// even-odd rule: drops consecutive duplicate positions, closes open rings,
/// drops rings with fewer than 4 positions (they enclose no area), drops
/// polygons whose exterior was dropped, and orients rings per RFC 7946.
/// A boundary that encloses no area at all is kept as given (and noted), so
/// that no feature is lost.
/// Remaining OGC problems (self-touching or self-intersecting rings) are kept
/// and noted: the index's even-odd point test handles them.
pub fn repair(g: &geojson::Geometry) -> Result<(MultiPolygon<f64>, RepairReport), GeometryError> {
    let mut report = RepairReport::default();
    for p in check_rings(g) {
        report.notes.push(format!("{p}: repaired"));
        report.changed = true;
    }
    let original = from_geojson(g)?;
    let mut polygons = Vec::with_capacity(original.0.len());
    for (pi, poly) in original.0.iter().cloned().enumerate() {
        let (exterior, interiors) = poly.into_inner();
        let Some(exterior) = clean_ring(exterior) else {
            report.notes.push(format!("polygon {pi}: exterior ring encloses no area, polygon dropped"));
            report.changed = true;
            continue;
        };
        let before = interiors.len();
        let interiors: Vec<_> = interiors.into_iter().filter_map(clean_ring).collect();
        if interiors.len() != before {
            report.notes.push(format!("polygon {pi}: {} degenerate hole(s) dropped", before - interiors.len()));
            report.changed = true;
        }
        polygons.push(Polygon::new(exterior, interiors));
    }
    if polygons.is_empty() {
        // Simplification can collapse a small jurisdiction to a line. Keep it as
        // given rather than lose the feature: points on its outline still resolve.
        if original.0.iter().all(|p| p.exterior().0.is_empty()) {
            return Err(GeometryError::Empty);
        }
        report.notes = vec![
            "boundary encloses no area (collapsed outline); kept as given, only points on its outline resolve to it"
                .to_owned(),
        ];
        report.changed = false;
        return Ok((original, report));
    }
    let mp = MultiPolygon::new(polygons);
    let oriented = mp.orient(Direction::Default);
    if oriented != mp {
        report.changed = true;
        report.notes.push("ring winding changed to RFC 7946 (exterior counter-clockwise)".to_owned());
    }
    if let Err(e) = oriented.check_validation() {
        report.notes.push(format!("kept OGC-invalid geometry ({e}); the point test uses the even-odd rule"));
    }
    Ok((oriented, report))
}

/// Removes consecutive duplicates and closes the ring; `None` when fewer than
/// 3 distinct positions remain (no area).
fn clean_ring(ring: LineString<f64>) -> Option<LineString<f64>> {
    let mut coords: Vec<Coord<f64>> = Vec::with_capacity(ring.0.len());
    for c in ring.0 {
        if coords.last() != Some(&c) {
            coords.push(c);
        }
    }
    if coords.len() > 1 && coords.first() == coords.last() {
        coords.pop();
    }
    if coords.len() < 3 {
        return None;
    }
    if let Some(&first) = coords.first() {
        coords.push(first);
    }
    Some(LineString::new(coords))
}

/// Area in km² on the sphere (Chamberlain–Duquette), used to order answers.
pub fn area_km2(mp: &MultiPolygon<f64>) -> f64 {
    mp.0.iter().map(|p| p.chamberlain_duquette_unsigned_area()).sum::<f64>() / 1.0e6
}

/// Serialises a boundary as a GeoJSON geometry value (Polygon when it has one
/// part, else MultiPolygon). Coordinates keep full `f64` precision, so
/// [`from_geojson`] of the result gives back the same geometry.
pub fn to_geojson_value(mp: &MultiPolygon<f64>) -> Value {
    fn ring(ls: &LineString<f64>) -> Value {
        Value::Array(ls.0.iter().map(|c| json!([c.x, c.y])).collect())
    }
    fn poly(p: &Polygon<f64>) -> Value {
        let mut rings = vec![ring(p.exterior())];
        rings.extend(p.interiors().iter().map(ring));
        Value::Array(rings)
    }
    match mp.0.as_slice() {
        [one] => json!({"type": "Polygon", "coordinates": poly(one)}),
        many => json!({"type": "MultiPolygon", "coordinates": many.iter().map(poly).collect::<Vec<_>>()}),
    }
}

/// Parses a boundary stored by this service (GeoJSON Polygon or
/// MultiPolygon text, as [`to_geojson_value`] writes it) back into geometry.
///
/// A fast path reads the text as `to_geojson_value` writes it straight
/// into `geo` types, with no intermediate JSON tree and most numbers by
/// one exact division (see [`crate::json_scan`]); anything it does not take
/// (`coordinates` before `type`, other members, positions of other than two
/// numbers, other types, values out of range, escapes) goes through the
/// general [`from_geojson`] path, so results and error messages are the
/// same either way.
pub fn parse_stored(text: &str) -> Result<MultiPolygon<f64>, String> {
    if let Some(mp) = fast::parse(text) {
        return Ok(mp);
    }
    let g: geojson::Geometry = serde_json::from_str(text).map_err(|e| e.to_string())?;
    from_geojson(&g).map_err(|e| e.to_string())
}

/// The fast path of [`parse_stored`].
mod fast {
    use crate::json_scan::Reader;
    use geo::{Coord, LineString, MultiPolygon, Polygon};

    /// `Some` only for an object of exactly `type` (Polygon or
    /// MultiPolygon) then `coordinates`, with no empty array in them and
    /// every position two finite numbers in range.
    pub fn parse(text: &str) -> Option<MultiPolygon<f64>> {
        let mut r = Reader::new(text);
        r.expect(b'{')?;
        if r.key()? != b"type" {
            return None;
        }
        let multi = match r.string()? {
            "Polygon" => false,
            "MultiPolygon" => true,
            _ => return None,
        };
        r.expect(b',')?;
        if r.key()? != b"coordinates" {
            return None;
        }
        let mp = if multi {
            let mut polygons = Vec::new();
            list(&mut r, |r| {
                polygons.push(polygon(r)?);
                Some(())
            })?;
            MultiPolygon(polygons)
        } else {
            MultiPolygon(vec![polygon(&mut r)?])
        };
        r.expect(b'}')?;
        r.at_end().then_some(mp)
    }

    /// A non-empty array, each element read by `element`.
    fn list<'a>(r: &mut Reader<'a>, mut element: impl FnMut(&mut Reader<'a>) -> Option<()>) -> Option<()> {
        r.expect(b'[')?;
        loop {
            element(r)?;
            if !r.more(b']')? {
                return Some(());
            }
        }
    }

    /// A polygon: a list of rings, the first the exterior.
    fn polygon(r: &mut Reader) -> Option<Polygon<f64>> {
        let mut exterior = None;
        let mut interiors = Vec::new();
        list(r, |r| {
            let mut ring = Vec::new();
            list(r, |r| {
                ring.push(position(r)?);
                Some(())
            })?;
            // As `from_geojson` does (geo's Polygon::new closes open rings).
            match exterior {
                None => exterior = Some(LineString::new(ring)),
                Some(_) => interiors.push(LineString::new(ring)),
            }
            Some(())
        })?;
        Some(Polygon::new(exterior?, interiors))
    }

    /// A position: `[longitude, latitude]`, both finite and in range.
    fn position(r: &mut Reader) -> Option<Coord<f64>> {
        r.expect(b'[')?;
        let (x, _) = r.number()?;
        r.expect(b',')?;
        let (y, _) = r.number()?;
        r.expect(b']')?;
        ((-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y)).then_some(Coord { x, y })
    }
}

/// Simplifies a boundary with Ramer–Douglas–Peucker at `meters` tolerance
/// (converted to degrees at the equator, 1° ≈ 111,320 m). Never removes a whole
/// polygon or ring: a ring that would fall below 4 positions is kept as it was.
pub fn simplify(mp: &MultiPolygon<f64>, meters: f64) -> MultiPolygon<f64> {
    use geo::Simplify;
    let eps = meters / 111_320.0;
    let keep = |orig: &LineString<f64>| {
        let s = orig.simplify(eps);
        if s.0.len() >= 4 {
            s
        } else {
            orig.clone()
        }
    };
    MultiPolygon::new(
        mp.0.iter().map(|p| Polygon::new(keep(p.exterior()), p.interiors().iter().map(keep).collect())).collect(),
    )
}

/// A point inside the boundary (geo's interior point of the largest part), used
/// to find a jurisdiction's parent.
pub fn interior_point(mp: &MultiPolygon<f64>) -> Option<Coord<f64>> {
    use geo::{Area, InteriorPoint};
    let largest = mp.0.iter().max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))?;
    largest.interior_point().map(|p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(s: &str) -> geojson::Geometry {
        serde_json::from_str(s).expect("test geometry")
    }

    #[test]
    fn rejects_non_polygons_and_bad_coordinates() {
        assert!(matches!(
            from_geojson(&geom(r#"{"type":"Point","coordinates":[0,0]}"#)),
            Err(GeometryError::NotPolygonal(t)) if t == "Point"
        ));
        assert!(matches!(
            from_geojson(&geom(r#"{"type":"Polygon","coordinates":[[[0,0],[200,0],[1,1],[0,0]]]}"#)),
            Err(GeometryError::OutOfRange { position: 1, .. })
        ));
        assert!(matches!(
            from_geojson(&geom(r#"{"type":"MultiPolygon","coordinates":[]}"#)),
            Err(GeometryError::Empty)
        ));
    }

    #[test]
    fn strict_validation_reports_rings_and_self_intersection() {
        let open = geom(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#);
        assert_eq!(validate_strict(&open, 100), Err(GeometryError::RingNotClosed { polygon: 0, ring: 0 }));
        let short = geom(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]}"#);
        assert!(matches!(validate_strict(&short, 100), Err(GeometryError::RingTooShort { positions: 3, .. })));
        let bowtie = geom(r#"{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}"#);
        match validate_strict(&bowtie, 100) {
            Err(GeometryError::Invalid(msg)) => assert!(msg.contains("near (0.5, 0.5)"), "{msg}"),
            other => panic!("{other:?}"),
        }
        let big = geom(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#);
        assert!(matches!(validate_strict(&big, 3), Err(GeometryError::TooManyVertices { count: 4, limit: 3 })));
    }

    #[test]
    fn strict_validation_reorients_clockwise_exterior() {
        let cw = geom(r#"{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[1,0],[0,0]]]}"#);
        let mp = validate_strict(&cw, 100).expect("valid");
        let ext = mp.0[0].exterior();
        // Counter-clockwise: positive signed area.
        use geo::Area;
        assert!(Polygon::new(ext.clone(), vec![]).signed_area() > 0.0);
    }

    #[test]
    fn repair_closes_rings_and_drops_degenerate_ones() {
        let g = geom(
            r#"{"type":"MultiPolygon","coordinates":[
                [[[0,0],[1,0],[1,1],[0,1]], [[0.2,0.2],[0.3,0.3],[0.2,0.2]]],
                [[[5,5],[6,6],[5,5]]]
            ]}"#,
        );
        let (mp, report) = repair(&g).expect("repairable");
        assert_eq!(mp.0.len(), 1, "the zero-area polygon is dropped");
        assert!(mp.0[0].interiors().is_empty(), "the degenerate hole is dropped");
        assert_eq!(mp.0[0].exterior().0.len(), 5);
        assert!(report.changed);
        assert!(report.notes.iter().any(|n| n.contains("not closed")));
    }

    #[test]
    fn stored_form_round_trips_exactly() {
        let g = geom(r#"{"type":"Polygon","coordinates":[[[0.1234567891234,0],[1,0],[1,1e-9],[0.1234567891234,0]]]}"#);
        let mp = from_geojson(&g).expect("valid");
        let text = to_geojson_value(&mp).to_string();
        assert_eq!(parse_stored(&text).expect("parses"), mp);
    }

    #[test]
    fn parse_stored_fast_path_agrees_with_the_general_one() {
        let general = |t: &str| -> Result<MultiPolygon<f64>, String> {
            let g: geojson::Geometry = serde_json::from_str(t).map_err(|e| e.to_string())?;
            from_geojson(&g).map_err(|e| e.to_string())
        };
        let fast_ones = [
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]],[[0.2,0.2],[0.3,0.2],[0.3,0.3],[0.2,0.2]]]}"#,
            r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[5,5],[6,5],[6,6]]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[-180,-90],[180,-90],[180,90],[-180,-90]]]}"#,
            " {\n \"type\" : \"Polygon\" , \"coordinates\" : [ [ [ 0 , 0 ] , [ 1e0 , 0 ] , [ 1 , 1 ] ] ] }\r\n",
            r#"{"type":"Polygon","coordinates":[[[0.1000000000000000055511151231257827021181583404541015625,-0],[1E-400,0],[1,1]]]}"#,
        ];
        let general_ones = [
            r#"{"type":"Polygon","bbox":[0,0,1,1],"coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0,7],[1,0,7],[1,1,7],[0,0,7]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]],"bbox":[0,0,1,1]}"#,
            r#"{"type":"Polygon","coordinates":[]}"#,
            r#"{"type":"Polygon","coordinates":[[]]}"#,
            r#"{"type":"MultiPolygon","coordinates":[[]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0],]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1e999],[0,0]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,-90.0000001],[0,0]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,"1"],[0,0]]]}"#,
            r#"{"type":"Polyg\u006fn","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]"#,
            r#"{"coordinates":[[[0,0],[1,0],[1,1],[0,0]]],"type":"Polygon"}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1],[1,1],[0,0]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[181,0],[1,1],[0,0]]]}"#,
            r#"{"type":"MultiPolygon","coordinates":[]}"#,
            r#"{"type":"Point","coordinates":[0,0]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]} x"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]],"type":"Polygon"}"#,
            "not json",
        ];
        for t in fast_ones {
            assert!(fast::parse(t).is_some(), "{t}");
            assert_eq!(parse_stored(t), general(t), "{t}");
        }
        for t in general_ones {
            assert!(fast::parse(t).is_none(), "{t}");
            assert_eq!(parse_stored(t), general(t), "{t}");
        }
    }

    /// Generated boundaries, written as they are stored: the fast path
    /// takes every one, bit for bit. Then each is broken at one place, and
    /// whatever the fast path still takes the general path reads the same.
    #[test]
    fn parse_stored_fast_path_agrees_on_generated_boundaries() {
        use rand::{Rng, SeedableRng};
        let general = |t: &str| -> Option<MultiPolygon<f64>> {
            let g: geojson::Geometry = serde_json::from_str(t).ok()?;
            from_geojson(&g).ok()
        };
        let bits = |mp: &MultiPolygon<f64>| -> Vec<(u64, u64)> {
            mp.0.iter()
                .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
                .flat_map(|ring| ring.0.iter().map(|c| (c.x.to_bits(), c.y.to_bits())))
                .collect()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7946);
        let (mut taken, tries) = (0, 4_000);
        for _ in 0..tries {
            let mut polygons = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                let mut rings = Vec::new();
                for _ in 0..rng.gen_range(1..3) {
                    let (cx, cy) = (rng.gen_range(-170.0..170.0), rng.gen_range(-80.0..80.0));
                    let scale = 10f64.powi(-rng.gen_range(0..6));
                    let mut ring: Vec<Coord<f64>> = (0..rng.gen_range(3..12))
                        .map(|_| {
                            let (dx, dy): (f64, f64) = (rng.gen_range(-5.0..5.0), rng.gen_range(-5.0..5.0));
                            let round = 10f64.powi(rng.gen_range(0..12));
                            Coord {
                                x: cx + (dx * scale * round).round() / round,
                                y: cy + (dy * scale * round).round() / round,
                            }
                        })
                        .collect();
                    ring.push(ring[0]);
                    rings.push(LineString::new(ring));
                }
                let exterior = rings.remove(0);
                polygons.push(Polygon::new(exterior, rings));
            }
            let mp = MultiPolygon(polygons);
            let text = to_geojson_value(&mp).to_string();
            let parsed = fast::parse(&text).expect("the stored form takes the fast path");
            assert_eq!(bits(&parsed), bits(&mp), "{text}");
            let broken = crate::json_scan::broken(&mut rng, text);
            if let Some(fast) = fast::parse(&broken) {
                taken += 1;
                let slow = general(&broken).unwrap_or_else(|| panic!("{broken}: fast took it, general did not"));
                assert_eq!(bits(&fast), bits(&slow), "{broken}");
            }
        }
        // Many changes (a digit for a digit) leave a readable boundary.
        assert!(taken > tries / 10, "the fast path took {taken} broken texts");
    }

    #[test]
    fn simplify_never_drops_rings() {
        let g = geom(r#"{"type":"Polygon","coordinates":[[[0,0],[0.0001,0],[0.0001,0.0001],[0,0]]]}"#);
        let mp = from_geojson(&g).expect("valid");
        let s = simplify(&mp, 10_000.0);
        assert_eq!(s.0.len(), 1);
        assert_eq!(s.0[0].exterior().0.len(), 4);
    }

    #[test]
    fn area_is_plausible() {
        // One degree square at the equator is about 12,364 km².
        let g = geom(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}"#);
        let a = area_km2(&from_geojson(&g).expect("valid"));
        assert!((a - 12_364.0).abs() < 100.0, "{a}");
    }
}
