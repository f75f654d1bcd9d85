//! Parsing of LoST requests (RFC 5222 sections 8 to 11) with `roxmltree`:
//! no DTD (roxmltree refuses one by default, and with it every entity
//! declaration), a node limit, namespaces checked on every element we read.

use super::error::LostError;
use super::xml::{EPSG_4326, GML_NS, GS_NS, LOST_NS};
use roxmltree::{Document, Node, ParsingOptions};

/// Most XML nodes in one request (a LoST request has a few dozen).
pub const MAX_NODES: u32 = 5_000;
/// Largest circle radius accepted, in metres.
pub const MAX_RADIUS_M: f64 = 1_000_000.0;
/// The only location profile this server understands.
pub const GEODETIC_2D: &str = "geodetic-2d";
/// Namespace of the civic profile (named in `unsupportedProfiles` when a
/// location without a `profile` attribute carries a civic address).
const CIVIC_NS: &str = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr";

/// A parsed LoST request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `<findService>` (section 8).
    FindService(FindService),
    /// `<listServices>` (section 9).
    ListServices {
        /// The service whose sub-services are wanted; top-level services when absent.
        service: Option<String>,
        /// The request's `<path>`.
        path: Vec<String>,
    },
    /// `<listServicesByLocation>` (section 10).
    ListServicesByLocation {
        /// The location chosen among the request's locations.
        location: Located,
        /// The service whose sub-services are wanted; top-level services when absent.
        service: Option<String>,
        /// The request's `<path>`.
        path: Vec<String>,
    },
    /// `<getServiceBoundary>` (section 11).
    GetServiceBoundary {
        /// The boundary key.
        key: String,
    },
}

/// A `<findService>` request.
#[derive(Debug, Clone, PartialEq)]
pub struct FindService {
    /// The location chosen among the request's locations.
    pub location: Located,
    /// The service URN as sent.
    pub service: String,
    /// The request's `<path>` (via sources, in order).
    pub path: Vec<String>,
    /// `serviceBoundary="value"` (default `reference`).
    pub boundary_by_value: bool,
    /// `validateLocation` (ignored: see the module docs).
    pub validate_location: bool,
    /// `recursive` (ignored: this server is authoritative for all it knows).
    pub recursive: bool,
}

/// The location a request is answered for, with the profiles skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// The `id` of the `<location>` used.
    pub id: String,
    /// Its shape.
    pub shape: Shape,
    /// Profiles of earlier `<location>` elements this server does not speak.
    pub skipped_profiles: Vec<String>,
}

/// A geodetic-2d shape, in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `gml:Point`.
    Point {
        /// Latitude.
        lat: f64,
        /// Longitude.
        lon: f64,
    },
    /// `gs:Circle`.
    Circle {
        /// Latitude of the centre.
        lat: f64,
        /// Longitude of the centre.
        lon: f64,
        /// Radius in metres.
        radius_m: f64,
    },
}

/// Parses a request body.
pub fn parse(text: &str) -> Result<Request, LostError> {
    let opts = ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..ParsingOptions::default() };
    let doc =
        Document::parse_with_options(text, opts).map_err(|e| LostError::BadRequest(format!("malformed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(LOST_NS) {
        return Err(LostError::BadRequest(format!(
            "the root element <{}> must be in the LoST namespace {LOST_NS}",
            root.tag_name().name()
        )));
    }
    match root.tag_name().name() {
        "findService" => find_service(root),
        "listServices" => {
            check_attributes(root, &[])?;
            let parts = Parts::of(root, &["service", "path"])?;
            Ok(Request::ListServices { service: parts.service()?, path: parts.path()? })
        }
        "listServicesByLocation" => {
            check_attributes(root, &["recursive"])?;
            boolean(root, "recursive", true)?;
            let parts = Parts::of(root, &["location", "service", "path"])?;
            let location = locate(&parts.locations)?;
            Ok(Request::ListServicesByLocation { location, service: parts.service()?, path: parts.path()? })
        }
        "getServiceBoundary" => {
            check_attributes(root, &["key"])?;
            Parts::of(root, &[])?;
            let key = root
                .attribute("key")
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| LostError::BadRequest("<getServiceBoundary> needs a key attribute".into()))?;
            Ok(Request::GetServiceBoundary { key: key.to_owned() })
        }
        other => Err(LostError::BadRequest(format!(
            "<{other}> is not a LoST request (expected findService, listServices, listServicesByLocation or getServiceBoundary)"
        ))),
    }
}

fn find_service(root: Node) -> Result<Request, LostError> {
    check_attributes(root, &["validateLocation", "serviceBoundary", "recursive"])?;
    let validate_location = boolean(root, "validateLocation", false)?;
    let recursive = boolean(root, "recursive", false)?;
    let boundary_by_value = match root.attribute("serviceBoundary") {
        None | Some("reference") => false,
        Some("value") => true,
        Some(other) => {
            return Err(LostError::BadRequest(format!(
                "serviceBoundary must be \"value\" or \"reference\", got \"{other}\""
            )))
        }
    };
    let parts = Parts::of(root, &["location", "service", "path"])?;
    let service =
        parts.service()?.ok_or_else(|| LostError::BadRequest("<findService> needs a <service> element".into()))?;
    let location = locate(&parts.locations)?;
    Ok(Request::FindService(FindService {
        location,
        service,
        path: parts.path()?,
        boundary_by_value,
        validate_location,
        recursive,
    }))
}

/// Refuses unqualified attributes other than `allowed` (qualified ones, say
/// `xsi:` or `xml:`, are left alone).
fn check_attributes(node: Node, allowed: &[&str]) -> Result<(), LostError> {
    for a in node.attributes() {
        if a.namespace().is_none() && !allowed.contains(&a.name()) {
            return Err(LostError::BadRequest(format!(
                "<{}> has no attribute \"{}\"",
                node.tag_name().name(),
                a.name()
            )));
        }
    }
    Ok(())
}

/// An `xsd:boolean` attribute.
fn boolean(node: Node, name: &str, default: bool) -> Result<bool, LostError> {
    match node.attribute(name).map(str::trim) {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(LostError::BadRequest(format!("{name} must be true or false, got \"{other}\""))),
    }
}

/// The LoST children of a request element, sorted by name.
struct Parts<'a, 'input> {
    locations: Vec<Node<'a, 'input>>,
    services: Vec<Node<'a, 'input>>,
    paths: Vec<Node<'a, 'input>>,
}

impl<'a, 'input> Parts<'a, 'input> {
    /// Sorts the element children of `root`: LoST elements named in
    /// `allowed` are kept, other LoST elements refused, elements of other
    /// namespaces skipped (the schema's extension point); text must be blank.
    fn of(root: Node<'a, 'input>, allowed: &[&str]) -> Result<Self, LostError> {
        let mut parts = Parts { locations: vec![], services: vec![], paths: vec![] };
        for child in root.children() {
            if child.is_text() {
                if child.text().is_some_and(|t| !t.trim().is_empty()) {
                    return Err(LostError::BadRequest(format!("unexpected text inside <{}>", root.tag_name().name())));
                }
                continue;
            }
            if !child.is_element() || child.tag_name().namespace() != Some(LOST_NS) {
                continue;
            }
            let name = child.tag_name().name();
            if !allowed.contains(&name) {
                return Err(LostError::BadRequest(format!(
                    "<{name}> is not allowed inside <{}>",
                    root.tag_name().name()
                )));
            }
            match name {
                "location" => parts.locations.push(child),
                "service" => parts.services.push(child),
                _ => parts.paths.push(child),
            }
        }
        if allowed.contains(&"location") && parts.locations.is_empty() {
            return Err(LostError::BadRequest(format!("<{}> needs a <location>", root.tag_name().name())));
        }
        Ok(parts)
    }

    /// The text of the one optional `<service>`.
    fn service(&self) -> Result<Option<String>, LostError> {
        match self.services.as_slice() {
            [] => Ok(None),
            [s] => {
                check_attributes(*s, &[])?;
                let text = s.text().map(str::trim).unwrap_or_default();
                if text.is_empty() || s.children().any(|c| c.is_element()) {
                    return Err(LostError::BadRequest("<service> must hold a service URN".into()));
                }
                Ok(Some(text.to_owned()))
            }
            _ => Err(LostError::BadRequest("a request holds at most one <service>".into())),
        }
    }

    /// The via sources of the one optional `<path>`.
    fn path(&self) -> Result<Vec<String>, LostError> {
        let path = match self.paths.as_slice() {
            [] => return Ok(vec![]),
            [p] => *p,
            _ => return Err(LostError::BadRequest("a request holds at most one <path>".into())),
        };
        check_attributes(path, &[])?;
        let mut vias = Vec::new();
        for via in path.children().filter(|c| c.is_element()) {
            if via.tag_name().namespace() != Some(LOST_NS) || via.tag_name().name() != "via" {
                return Err(LostError::BadRequest("<path> holds only <via> elements".into()));
            }
            check_attributes(via, &["source"])?;
            let source = via.attribute("source").unwrap_or_default();
            if !super::valid_source(source) {
                return Err(LostError::BadRequest(format!(
                    "via source \"{source}\" is not a dotted server name such as lost.example.org"
                )));
            }
            vias.push(source.to_owned());
        }
        if vias.is_empty() {
            return Err(LostError::BadRequest("<path> needs at least one <via>".into()));
        }
        Ok(vias)
    }
}

/// Picks the first `<location>` whose profile this server speaks
/// (RFC 5222 section 12), naming the profiles it skipped.
fn locate(locations: &[Node]) -> Result<Located, LostError> {
    let mut skipped: Vec<String> = Vec::new();
    for loc in locations {
        check_attributes(*loc, &["id", "profile"])?;
        let id = loc.attribute("id").map(str::trim).unwrap_or_default();
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            return Err(LostError::BadRequest("every <location> needs an id attribute (a token)".into()));
        }
        let shapes: Vec<Node> = loc.children().filter(|c| c.is_element()).collect();
        if shapes.is_empty() {
            return Err(LostError::BadRequest(format!("<location id=\"{id}\"> is empty")));
        }
        let profile = match loc.attribute("profile").map(str::trim) {
            Some(p) if is_nmtoken(p) => p.to_owned(),
            Some(p) => return Err(LostError::BadRequest(format!("profile \"{p}\" is not an NMTOKEN"))),
            None => infer_profile(&shapes),
        };
        if profile != GEODETIC_2D {
            if !skipped.contains(&profile) {
                skipped.push(profile);
            }
            continue;
        }
        let [shape] = shapes.as_slice() else {
            return Err(LostError::LocationInvalid(format!(
                "a geodetic-2d <location id=\"{id}\"> holds exactly one shape, found {}",
                shapes.len()
            )));
        };
        return Ok(Located { id: id.to_owned(), shape: parse_shape(*shape)?, skipped_profiles: skipped });
    }
    Err(LostError::LocationProfileUnrecognized { profiles: skipped })
}

/// The profile of a `<location>` sent without a `profile` attribute.
fn infer_profile(shapes: &[Node]) -> String {
    let first = shapes[0].tag_name();
    match (first.namespace(), first.name()) {
        (Some(GML_NS | GS_NS), _) => GEODETIC_2D.to_owned(),
        (Some(CIVIC_NS), _) => "civic".to_owned(),
        (_, name) => name.to_owned(),
    }
}

/// An `xsd:NMTOKEN`: name characters only (letters, digits, `.-_:`, and
/// the other Unicode name characters roughly approximated by alphanumerics).
fn is_nmtoken(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '\u{B7}'))
}

fn parse_shape(shape: Node) -> Result<Shape, LostError> {
    let tag = shape.tag_name();
    match (tag.namespace(), tag.name()) {
        (Some(GML_NS), "Point") => {
            srs(shape)?;
            let (lat, lon) = position(only_child(shape, GML_NS, "pos")?)?;
            Ok(Shape::Point { lat, lon })
        }
        (Some(GS_NS), "Circle") => {
            srs(shape)?;
            let pos = only_child(shape, GML_NS, "pos")?;
            let (lat, lon) = position(pos)?;
            let radius = only_child(shape, GS_NS, "radius")?;
            match radius.attribute("uom") {
                Some("urn:ogc:def:uom:EPSG::9001") => {}
                other => {
                    return Err(LostError::LocationInvalid(format!(
                        "gs:radius must be in metres (uom=\"urn:ogc:def:uom:EPSG::9001\"), got {other:?}"
                    )))
                }
            }
            let radius_m: f64 = radius
                .text()
                .map(str::trim)
                .and_then(|t| t.parse().ok())
                .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| LostError::LocationInvalid("gs:radius must be a number of metres, 0 or more".into()))?;
            if radius_m > MAX_RADIUS_M {
                return Err(LostError::LocationInvalid(format!(
                    "a circle radius is at most {MAX_RADIUS_M} m, got {radius_m}"
                )));
            }
            Ok(Shape::Circle { lat, lon, radius_m })
        }
        (Some(GML_NS | GS_NS), name) => Err(LostError::LocationInvalid(format!(
            "this server answers for a gml:Point or a gs:Circle; {name} is not supported"
        ))),
        (ns, name) => Err(LostError::LocationInvalid(format!(
            "a geodetic-2d location holds a GML or GeoShape element, not <{name}> in namespace {}",
            ns.unwrap_or("(none)")
        ))),
    }
}

/// Checks `srsName`: WGS 84 2D, `urn:ogc:def:crs:EPSG::4326` (a version
/// between the colons, as in `EPSG:6.6:4326`, is accepted).
fn srs(shape: Node) -> Result<(), LostError> {
    let name = shape.attribute("srsName").map(str::trim).unwrap_or_default();
    let ok = name == EPSG_4326
        || name
            .strip_prefix("urn:ogc:def:crs:EPSG:")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(version, code)| code == "4326" && version.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if ok {
        Ok(())
    } else if name.is_empty() {
        Err(LostError::SrsInvalid(format!("{} needs srsName=\"{EPSG_4326}\"", shape.tag_name().name())))
    } else {
        Err(LostError::SrsInvalid(format!("unsupported srsName \"{name}\"; this server speaks {EPSG_4326}")))
    }
}

fn only_child<'a, 'input>(parent: Node<'a, 'input>, ns: &str, name: &str) -> Result<Node<'a, 'input>, LostError> {
    let mut found = parent.children().filter(|c| c.is_element() && c.has_tag_name((ns, name)));
    match (found.next(), found.next()) {
        (Some(n), None) => Ok(n),
        _ => Err(LostError::LocationInvalid(format!(
            "{} needs exactly one {name} element in namespace {ns}",
            parent.tag_name().name()
        ))),
    }
}

/// A `gml:pos` of two numbers, latitude then longitude.
fn position(pos: Node) -> Result<(f64, f64), LostError> {
    let text = pos.text().unwrap_or_default();
    let nums: Vec<f64> = text
        .split_whitespace()
        .map(|t| t.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| LostError::LocationInvalid(format!("gml:pos \"{}\" is not two numbers", text.trim())))?;
    let [lat, lon] = nums.as_slice() else {
        return Err(LostError::LocationInvalid(format!(
            "gml:pos holds \"latitude longitude\" (2 numbers), got {}",
            nums.len()
        )));
    };
    if !lat.is_finite() || !(-90.0..=90.0).contains(lat) {
        return Err(LostError::LocationInvalid(format!("latitude {lat} is outside -90..90")));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(lon) {
        return Err(LostError::LocationInvalid(format!("longitude {lon} is outside -180..180")));
    }
    Ok((*lat, *lon))
}
