//! LoST (RFC 5222) on `POST /lost` through the real router, on the bundled
//! real data: the RFC's request examples adapted to it, every error case,
//! and every answer validated with `jing` against the RFC's RELAX NG schema
//! (`docs/lost/lost.rng`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{call, send, writable, Backend};
use geowebdns::lost::error::LostError;
use geowebdns::{AppState, Settings};
use serde_json::json;
use std::path::Path;

const LOST: &str = "urn:ietf:params:xml:ns:lost1";
const SERVER: &str = "geowebdns.invalid";
const BLOOMINGTON: &str = "us-place:1805860";
const MONROE_COUNTY: &str = "us-county:18105";

/// Collects every answer of a test and validates them all with one `jing` run.
struct Checked {
    state: AppState,
    docs: Vec<(String, String)>,
    validated: bool,
}

impl Drop for Checked {
    fn drop(&mut self) {
        if !self.validated && !std::thread::panicking() {
            panic!("a test must call validate() on its answers");
        }
    }
}

/// One answer, parsed.
struct Doc {
    text: String,
}

impl Doc {
    fn xml(&self) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
    fn root(&self) -> String {
        self.xml().root_element().tag_name().name().to_owned()
    }
    /// Elements in the LoST namespace named `name`, anywhere.
    fn all(&self, name: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        self.xml()
            .descendants()
            .filter(|n| n.has_tag_name((LOST, name)))
            .map(|n| {
                let mut m: std::collections::BTreeMap<String, String> =
                    n.attributes().map(|a| (a.name().to_owned(), a.value().to_owned())).collect();
                m.insert("#text".into(), n.text().unwrap_or_default().trim().to_owned());
                m
            })
            .collect()
    }
    fn texts(&self, name: &str) -> Vec<String> {
        self.all(name).into_iter().map(|m| m["#text"].clone()).collect()
    }
    /// Asserts an `<errors>` answer holding `element`, and returns its message.
    #[track_caller]
    fn error(&self, element: &str) -> String {
        assert_eq!(self.root(), "errors", "{}", self.text);
        let e = self.all(element);
        assert_eq!(e.len(), 1, "expected <{element}> in {}", self.text);
        assert_eq!(self.all("errors")[0]["source"], SERVER);
        e[0].get("message").cloned().unwrap_or_default()
    }
    fn path(&self) -> Vec<String> {
        self.all("via").into_iter().map(|m| m["source"].clone()).collect()
    }
    fn service_list(&self) -> Vec<String> {
        self.texts("serviceList")[0].split_whitespace().map(str::to_owned).collect()
    }
}

impl Checked {
    async fn new() -> Self {
        Self::with(common::state().await)
    }
    fn with(state: AppState) -> Self {
        Self { state, docs: Vec::new(), validated: false }
    }

    /// POSTs `body` with `content_type`; every answer must be a 200 `application/lost+xml`.
    async fn send_as(&mut self, content_type: Option<&str>, body: impl Into<Body>) -> Doc {
        let mut req = Request::post("/lost");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let a = send(&self.state, req.body(body.into()).unwrap()).await.expect(200);
        assert_eq!(a.header("content-type"), "application/lost+xml");
        let text = String::from_utf8(a.raw).unwrap();
        assert!(roxmltree::Document::parse(&text).is_ok(), "not well-formed: {text}");
        self.docs.push((format!("answer-{}", self.docs.len()), text.clone()));
        Doc { text }
    }

    async fn post(&mut self, body: &str) -> Doc {
        self.send_as(Some("application/lost+xml"), body.to_owned()).await
    }

    /// Validates every answer so far against the RFC 5222 schema.
    fn validate(&mut self) {
        self.validated = true;
        let docs = std::mem::take(&mut self.docs);
        jing(&docs);
    }
}

/// Runs `jing docs/lost/lost.rng` over the documents; fails (with the
/// offending document) when one does not validate, or when `jing` is missing.
fn jing(docs: &[(String, String)]) {
    if docs.is_empty() {
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/lost/lost.rng");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, text) in docs {
        let f = dir.path().join(format!("{name}.xml"));
        std::fs::write(&f, text).unwrap();
        files.push(f);
    }
    let out = match std::process::Command::new("jing").arg(&schema).args(&files).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`jing` is not installed: install the Debian package `jing` (apt-get install -y jing)")
        }
        Err(e) => panic!("running jing: {e}"),
    };
    if !out.status.success() {
        let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let bad: Vec<&str> =
            docs.iter().filter(|(name, _)| report.contains(&format!("{name}.xml"))).map(|(_, t)| t.as_str()).collect();
        panic!("jing refused answers:\n{report}\n{}", bad.join("\n----\n"));
    }
}

fn find_service(attrs: &str, lat: f64, lon: f64, service: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<findService xmlns="urn:ietf:params:xml:ns:lost1" xmlns:p2="http://www.opengis.net/gml" {attrs}>
  <location id="6020688f1ce1896d" profile="geodetic-2d">
    <p2:Point id="point1" srsName="urn:ogc:def:crs:EPSG::4326">
      <p2:pos>{lat} {lon}</p2:pos>
    </p2:Point>
  </location>
  <service>{service}</service>
</findService>"#
    )
}

fn circle_request(lat: f64, lon: f64, radius: f64, service: &str) -> String {
    format!(
        r#"<findService xmlns="urn:ietf:params:xml:ns:lost1" xmlns:gml="http://www.opengis.net/gml"
             xmlns:gs="http://www.opengis.net/pidflo/1.0">
  <location id="c1" profile="geodetic-2d">
    <gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">
      <gml:pos>{lat} {lon}</gml:pos>
      <gs:radius uom="urn:ogc:def:uom:EPSG::9001">{radius}</gs:radius>
    </gs:Circle>
  </location>
  <service>{service}</service>
</findService>"#
    )
}

fn by_location(lat: f64, lon: f64, service: Option<&str>) -> String {
    let service = service.map(|s| format!("<service>{s}</service>")).unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<listServicesByLocation xmlns="urn:ietf:params:xml:ns:lost1" xmlns:p2="http://www.opengis.net/gml" recursive="true">
  <location id="d2d3d76afsd" profile="geodetic-2d">
    <p2:Point id="point2" srsName="urn:ogc:def:crs:EPSG::4326"><p2:pos>{lat} {lon}</p2:pos></p2:Point>
  </location>
  {service}
</listServicesByLocation>"#
    )
}

fn get_boundary(key: &str) -> String {
    format!(r#"<getServiceBoundary xmlns="urn:ietf:params:xml:ns:lost1" key="{key}"/>"#)
}

/// RFC 5222 figures 4 and 5, moved to San Francisco's real Open311 server:
/// `serviceBoundary="value"` returns the city's polygons in GML.
#[tokio::test]
async fn find_service_by_value_answers_san_francisco() {
    let mut s = Checked::new().await;
    let d = s
        .post(&find_service(r#"serviceBoundary="value" recursive="true""#, 37.775, -122.422, "urn:service:open311"))
        .await;
    assert_eq!(d.root(), "findServiceResponse", "{}", d.text);
    let mappings = d.all("mapping");
    assert_eq!(mappings.len(), 1, "{}", d.text);
    let m = &mappings[0];
    assert_eq!(m["sourceId"], "us-place:0667000");
    assert_eq!(m["source"], SERVER);
    assert!(m["expires"].ends_with('Z') && m["lastUpdated"].ends_with('Z'), "{m:?}");
    assert_eq!(d.texts("displayName"), ["San Francisco"]);
    assert_eq!(d.texts("service"), ["urn:service:open311"]);
    assert_eq!(d.texts("uri"), ["https://mobile311.sfgov.org/open311/v2/"], "production only, not the test server");
    assert_eq!(d.all("serviceBoundary")[0]["profile"], "geodetic-2d");
    assert!(d.all("serviceBoundaryReference").is_empty());
    let xml = d.xml();
    let polygons: Vec<_> =
        xml.descendants().filter(|n| n.has_tag_name(("http://www.opengis.net/gml", "Polygon"))).collect();
    assert!(!polygons.is_empty());
    assert!(polygons.iter().all(|p| p.attribute("srsName") == Some("urn:ogc:def:crs:EPSG::4326")));
    // Positions are "lat lon": San Francisco's latitudes are near 37.7, longitudes near -122.4.
    let pos = xml.descendants().find(|n| n.has_tag_name(("http://www.opengis.net/gml", "posList"))).unwrap();
    let nums: Vec<f64> = pos.text().unwrap().split_whitespace().map(|t| t.parse().unwrap()).collect();
    assert!(nums.len() >= 8 && nums.len().is_multiple_of(2));
    assert!(nums.chunks(2).all(|c| (37.0..38.5).contains(&c[0]) && (-123.5..-122.0).contains(&c[1])), "{nums:?}");
    assert_eq!(nums[..2], nums[nums.len() - 2..], "rings are closed");
    assert_eq!(d.path(), [SERVER]);
    assert_eq!(d.all("locationUsed")[0]["id"], "6020688f1ce1896d");
    s.validate();
}

/// The default is a reference; getServiceBoundary (RFC 5222 section 11)
/// returns the same polygons, and a forged or stale key is notFound.
#[tokio::test]
async fn boundary_references_resolve_with_get_service_boundary() {
    let mut s = Checked::new().await;
    let d = s.post(&find_service("", 39.1653, -86.5264, "urn:service:open311")).await;
    assert_eq!(d.all("mapping")[0]["sourceId"], BLOOMINGTON);
    assert_eq!(d.texts("uri"), ["https://bloomington.in.gov/crm/open311/v2/"]);
    let r = &d.all("serviceBoundaryReference")[0];
    assert_eq!(r["source"], SERVER);
    let key = r["key"].clone();
    assert!(d.all("serviceBoundary").is_empty());

    let b = s.post(&get_boundary(&key)).await;
    assert_eq!(b.root(), "getServiceBoundaryResponse", "{}", b.text);
    assert_eq!(b.all("serviceBoundary")[0]["profile"], "geodetic-2d");
    assert!(b.text.contains("<gml:posList>39."), "lat first: {}", &b.text[..b.text.len().min(600)]);
    assert_eq!(b.path(), [SERVER]);
    // The same polygons as by value.
    let v = s.post(&find_service(r#"serviceBoundary="value""#, 39.1653, -86.5264, "urn:service:open311")).await;
    let polys = |d: &Doc| {
        d.xml()
            .descendants()
            .filter(|n| n.has_tag_name(("http://www.opengis.net/gml", "posList")))
            .map(|n| n.text().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(polys(&b), polys(&v));

    let tampered = format!("{}0{}", &key[..5], &key[6..]);
    for bad in [tampered.as_str(), "7214148E0433AFE2FA2D48003D31172E", "gwd1-0000000000000000-us-place:1805860"] {
        s.post(&get_boundary(bad)).await.error("notFound");
    }
    s.validate();
}

/// The key changes whenever the geometry changes: after a boundary edit the
/// old key is notFound and findService hands out a new one.
#[tokio::test]
async fn boundary_keys_change_with_the_geometry() {
    let w = writable(Backend::Sqlite, Settings::default()).await.unwrap();
    let admin = w.token("root", &["admin"]);
    let mut s = Checked::with(w.state.clone());
    let key = |d: &Doc| d.all("serviceBoundaryReference")[0]["key"].clone();
    let old = key(&s.post(&find_service("", 39.1653, -86.5264, "urn:service:open311")).await);
    // Same data, same key (keys are stable across requests and instances).
    assert_eq!(key(&s.post(&find_service("", 39.1653, -86.5264, "urn:service:open311")).await), old);
    // A rename does not touch the geometry: same key.
    call(
        &w.state,
        "PATCH",
        &format!("/admin/v1/jurisdictions/{BLOOMINGTON}"),
        Some(&admin),
        Some(r#"{"name":"Bloomington IN"}"#),
    )
    .await
    .expect(200);
    let renamed = s.post(&find_service("", 39.1653, -86.5264, "urn:service:open311")).await;
    assert_eq!(renamed.texts("displayName"), ["Bloomington IN"]);
    assert_eq!(key(&renamed), old);
    let square = json!({"boundary": {"type": "Polygon", "coordinates": [[[-86.6, 39.1], [-86.4, 39.1], [-86.4, 39.25], [-86.6, 39.25], [-86.6, 39.1]]]}});
    call(&w.state, "PATCH", &format!("/admin/v1/jurisdictions/{BLOOMINGTON}"), Some(&admin), Some(&square.to_string()))
        .await
        .expect(200);
    s.post(&get_boundary(&old)).await.error("notFound");
    let new = key(&s.post(&find_service("", 39.1653, -86.5264, "urn:service:open311")).await);
    assert_ne!(new, old);
    let b = s.post(&get_boundary(&new)).await;
    assert!(
        b.text.contains("<gml:posList>39.1 -86.6 39.1 -86.4 39.25 -86.4 39.25 -86.6 39.1 -86.6</gml:posList>"),
        "{}",
        b.text
    );
    s.validate();
}

/// RFC 5582 section 7.3: overlapping coverage returns every answer, here
/// the county and the city, with the service URN tree of their services.
#[tokio::test]
async fn overlapping_jurisdictions_and_the_service_urn_tree() {
    let w = writable(Backend::Sqlite, Settings::default()).await.unwrap();
    let admin = w.token("root", &["admin"]);
    let county = json!({
        "url": "https://311.county.example.org/open311/v2/",
        "services": [
            {"service_code": "POTHOLE_01", "service_name": "Pothole", "group": "Streets & Sidewalks"},
            {"service_code": "GR-2", "service_name": "Graffiti", "group": "Sanitation"},
            {"service_code": "noise", "service_name": "Noise"}
        ]
    });
    call(
        &w.state,
        "POST",
        &format!("/admin/v1/jurisdictions/{MONROE_COUNTY}/endpoints"),
        Some(&admin),
        Some(&county.to_string()),
    )
    .await
    .expect(201);
    let mut s = Checked::with(w.state.clone());
    let d = s.post(&find_service("", 39.1653, -86.5264, "URN:Service:Open311")).await;
    let ids: Vec<String> = d.all("mapping").into_iter().map(|m| m["sourceId"].clone()).collect();
    assert_eq!(ids, [MONROE_COUNTY, BLOOMINGTON], "county first, then the city: {}", d.text);
    assert_eq!(d.texts("service"), ["urn:service:open311", "urn:service:open311"]);
    assert_eq!(d.texts("displayName"), ["Monroe", "Bloomington"]);

    // Only the county lists services: a group or code URN finds it alone.
    for urn in [
        "urn:service:open311.streets-sidewalks",
        "urn:service:open311.streets-sidewalks.pothole-01",
        "urn:service:open311.ungrouped.noise",
    ] {
        let d = s.post(&find_service("", 39.1653, -86.5264, urn)).await;
        assert_eq!(d.all("mapping").len(), 1, "{urn}: {}", d.text);
        assert_eq!(d.texts("uri"), ["https://311.county.example.org/open311/v2/"], "{urn}");
        assert_eq!(d.texts("service"), [urn]);
    }
    // A code in another group, or a group nobody offers: serviceNotImplemented.
    s.post(&find_service("", 39.1653, -86.5264, "urn:service:open311.sanitation.pothole-01"))
        .await
        .error("serviceNotImplemented");
    // Offered, but not here (Indianapolis is outside Monroe County): notFound.
    s.post(&find_service("", 39.7684, -86.1581, "urn:service:open311.sanitation")).await.error("notFound");

    // RFC 5222 section 9: listServices gives the immediate sub-services.
    let top = s.post(r#"<listServices xmlns="urn:ietf:params:xml:ns:lost1"/>"#).await;
    assert_eq!(top.root(), "listServicesResponse");
    assert_eq!(top.service_list(), ["urn:service:open311", "urn:service:open311-test"]);
    let groups = s
        .post(r#"<listServices xmlns="urn:ietf:params:xml:ns:lost1"><service>urn:service:open311</service></listServices>"#)
        .await;
    assert_eq!(
        groups.service_list(),
        ["urn:service:open311.sanitation", "urn:service:open311.streets-sidewalks", "urn:service:open311.ungrouped"]
    );
    let codes = s
        .post(r#"<listServices xmlns="urn:ietf:params:xml:ns:lost1"><service>urn:service:open311.sanitation</service></listServices>"#)
        .await;
    assert_eq!(codes.service_list(), ["urn:service:open311.sanitation.gr-2"]);

    // Section 10: listServicesByLocation, here and elsewhere.
    let here = s.post(&by_location(39.1653, -86.5264, Some("urn:service:open311"))).await;
    assert_eq!(here.root(), "listServicesByLocationResponse");
    assert_eq!(here.service_list().len(), 3);
    assert_eq!(here.all("locationUsed")[0]["id"], "d2d3d76afsd");
    let sf = s.post(&by_location(37.775, -122.422, Some("urn:service:open311"))).await;
    assert!(sf.service_list().is_empty(), "San Francisco's server lists no services: {}", sf.text);
    s.validate();
}

/// Test servers answer under their own top-level service.
#[tokio::test]
async fn test_servers_are_under_open311_test() {
    let mut s = Checked::new().await;
    let d = s.post(&find_service("", 39.1653, -86.5264, "urn:service:open311-test")).await;
    assert_eq!(d.texts("uri"), ["https://bloomington.in.gov/test/open311/v2/"]);
    let l = s.post(&by_location(37.775, -122.422, None)).await;
    assert_eq!(l.service_list(), ["urn:service:open311", "urn:service:open311-test"]);
    // Open ocean: no services (an empty list, not an error).
    let ocean = s.post(&by_location(30.0, -40.0, None)).await;
    assert!(ocean.service_list().is_empty());
    s.validate();
}

/// A circle returns every jurisdiction its area meets: 60 km around
/// Bloomington reaches Columbus, Indiana; radius 0 is the centre point.
#[tokio::test]
async fn circles_return_every_jurisdiction_they_meet() {
    let mut s = Checked::new().await;
    let wide = s.post(&circle_request(39.1653, -86.5264, 60_000.0, "urn:service:open311")).await;
    let ids: Vec<String> = wide.all("mapping").into_iter().map(|m| m["sourceId"].clone()).collect();
    assert!(ids.contains(&BLOOMINGTON.to_owned()) && ids.contains(&"us-place:1814734".to_owned()), "{}", wide.text);
    assert_eq!(wide.all("locationUsed")[0]["id"], "c1");
    for radius in ["0", "100"] {
        let d = s.post(&circle_request(39.1653, -86.5264, radius.parse().unwrap(), "urn:service:open311")).await;
        let ids: Vec<String> = d.all("mapping").into_iter().map(|m| m["sourceId"].clone()).collect();
        assert_eq!(ids, [BLOOMINGTON], "radius {radius}");
    }
    for (lat, lon, r) in
        [(89.99, 0.0, 50_000.0), (0.0, 179.999, 5_000.0), (39.0, -86.0, 2_000_000.0), (39.0, -86.0, -1.0)]
    {
        s.post(&circle_request(lat, lon, r, "urn:service:open311")).await.error("locationInvalid");
    }
    let wrong_uom = circle_request(39.1653, -86.5264, 10.0, "urn:service:open311").replace("EPSG::9001", "EPSG::9002");
    s.post(&wrong_uom).await.error("locationInvalid");
    s.validate();
}

/// Section 5.5/8.4.3: the request's path comes back with our via appended; a
/// request that already passed through this server is a loop.
#[tokio::test]
async fn path_is_extended_and_loops_refused() {
    let mut s = Checked::new().await;
    let with_path = |via: &str| {
        find_service("", 37.775, -122.422, "urn:service:open311").replace(
            "</findService>",
            &format!(r#"<path><via source="resolver.example"/><via source="{via}"/></path></findService>"#),
        )
    };
    let d = s.post(&with_path("authoritative.example")).await;
    assert_eq!(d.path(), ["resolver.example", "authoritative.example", SERVER]);
    let msg = s.post(&with_path("GeoWebDNS.invalid")).await.error("loop");
    assert!(msg.contains(SERVER), "{msg}");
    let lp = s
        .post(&format!(
            r#"<listServices xmlns="{LOST}"><service>urn:service:open311</service><path><via source="a.example"/></path></listServices>"#
        ))
        .await;
    assert_eq!(lp.path(), ["a.example", SERVER]);
    s.post(&format!(r#"<listServices xmlns="{LOST}"><path><via source="{SERVER}"/></path></listServices>"#))
        .await
        .error("loop");
    s.post(&with_path("localhost")).await.error("badRequest");
    s.validate();
}

/// Section 12: the first location with a profile we speak is used, the
/// others named in a warning; none at all is locationProfileUnrecognized.
#[tokio::test]
async fn location_profiles() {
    let civic = r#"<location id="civic1" profile="civic">
    <civicAddress xmlns="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr">
      <country>US</country><A1>IN</A1><A3>Bloomington</A3><RD>Kirkwood</RD>
    </civicAddress>
  </location>"#;
    let mut s = Checked::new().await;
    let both = find_service(r#"validateLocation="true""#, 39.1653, -86.5264, "urn:service:open311")
        .replace(r#"<location id="6020688f1ce1896d""#, &format!(r#"{civic}<location id="6020688f1ce1896d""#));
    let d = s.post(&both).await;
    assert_eq!(d.root(), "findServiceResponse", "{}", d.text);
    assert_eq!(d.all("locationUsed")[0]["id"], "6020688f1ce1896d");
    let warning = &d.all("locationProfileUnrecognized")[0];
    assert_eq!(warning["unsupportedProfiles"], "civic");
    assert_eq!(d.all("warnings")[0]["source"], SERVER);
    assert!(d.all("locationValidation").is_empty(), "validateLocation is ignored for geodetic locations");

    let only_civic =
        format!(r#"<findService xmlns="{LOST}">{civic}<service>urn:service:open311</service></findService>"#);
    let e = s.post(&only_civic).await;
    e.error("locationProfileUnrecognized");
    assert_eq!(e.all("locationProfileUnrecognized")[0]["unsupportedProfiles"], "civic");
    // No profile attribute: inferred from the content.
    let inferred = find_service("", 39.1653, -86.5264, "urn:service:open311").replace(r#" profile="geodetic-2d""#, "");
    assert_eq!(s.post(&inferred).await.root(), "findServiceResponse");
    let unknown = only_civic
        .replace(r#" profile="civic""#, "")
        .replace("urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr", "urn:example:address");
    let e = s.post(&unknown).await;
    e.error("locationProfileUnrecognized");
    assert_eq!(e.all("locationProfileUnrecognized")[0]["unsupportedProfiles"], "civicAddress");
    s.validate();
}

/// Locations we cannot use: bad coordinates, SRS, shapes.
#[tokio::test]
async fn invalid_locations() {
    let mut s = Checked::new().await;
    let base = find_service("", 39.1653, -86.5264, "urn:service:open311");
    for (from, to) in [
        ("39.1653 -86.5264", "91 -86.5"),
        ("39.1653 -86.5264", "39.1 -181"),
        ("39.1653 -86.5264", "39.1653"),
        ("39.1653 -86.5264", "39.1653 -86.5264 200"),
        ("39.1653 -86.5264", "north west"),
        ("39.1653 -86.5264", "NaN -86"),
        ("<p2:pos>39.1653 -86.5264</p2:pos>", ""),
    ] {
        s.post(&base.replace(from, to)).await.error("locationInvalid");
    }
    // SRSInvalid (RFC 5222 section 13.1) is not in the schema: a locationInvalid saying so.
    for srs in ["urn:ogc:def:crs:EPSG::4979", "urn:ogc:def::crs:EPSG::4326", "EPSG:3857"] {
        let msg = s.post(&base.replace("urn:ogc:def:crs:EPSG::4326", srs)).await.error("locationInvalid");
        assert!(msg.starts_with("SRSInvalid:"), "{msg}");
    }
    let msg = s.post(&base.replace(r#" srsName="urn:ogc:def:crs:EPSG::4326""#, "")).await.error("locationInvalid");
    assert!(msg.starts_with("SRSInvalid:"), "{msg}");
    // A versioned CRS URN is the same CRS.
    let versioned = base.replace("EPSG::4326", "EPSG:6.6:4326");
    assert_eq!(s.post(&versioned).await.root(), "findServiceResponse");
    // A polygon location is geodetic-2d, but not one we answer for.
    let polygon = base.replace(
        r#"<p2:Point id="point1" srsName="urn:ogc:def:crs:EPSG::4326">
      <p2:pos>39.1653 -86.5264</p2:pos>
    </p2:Point>"#,
        r#"<p2:Polygon srsName="urn:ogc:def:crs:EPSG::4326"><p2:exterior><p2:LinearRing><p2:posList>39 -86 39.1 -86 39.1 -86.1 39 -86</p2:posList></p2:LinearRing></p2:exterior></p2:Polygon>"#,
    );
    s.post(&polygon).await.error("locationInvalid");
    // Some of the RFC's figures bind gml to a wrong namespace: not GML.
    s.post(&base.replace("http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2"))
        .await
        .error("locationInvalid");
    s.validate();
}

/// notFound and serviceNotImplemented (section 13.1).
#[tokio::test]
async fn unknown_services_and_unserved_places() {
    let mut s = Checked::new().await;
    // The RFC's own example service: not ours.
    s.post(&find_service("", 37.775, -122.422, "urn:service:sos.police")).await.error("serviceNotImplemented");
    s.post(&find_service("", 37.775, -122.422, "http://example.org/")).await.error("serviceNotImplemented");
    s.post(&find_service("", 37.775, -122.422, "urn:service:open311.a.b.c")).await.error("serviceNotImplemented");
    s.post(&format!(r#"<listServices xmlns="{LOST}"><service>urn:service:sos</service></listServices>"#))
        .await
        .error("serviceNotImplemented");
    s.post(&by_location(37.775, -122.422, Some("urn:service:sos"))).await.error("serviceNotImplemented");
    // Open ocean, and a US county with no Open311 server.
    s.post(&find_service("", 30.0, -40.0, "urn:service:open311")).await.error("notFound");
    s.post(&find_service("", 39.7684, -86.1581, "urn:service:open311")).await.error("notFound");
    s.validate();
}

/// Malformed, hostile or off-schema requests are a LoST badRequest, never a
/// panic, a problem+json or a 5xx.
#[tokio::test]
async fn bad_requests() {
    let mut s = Checked::new().await;
    let ok = find_service("", 37.775, -122.422, "urn:service:open311");
    let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<listServices xmlns="urn:ietf:params:xml:ns:lost1"><service>&lol2;</service></listServices>"#;
    let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<listServices xmlns="urn:ietf:params:xml:ns:lost1"><service>&xxe;</service></listServices>"#;
    let many = format!(r#"<listServices xmlns="{LOST}" xmlns:x="urn:x">{}</listServices>"#, "<x:e/>".repeat(6_000));
    let cases: Vec<(&str, String)> = vec![
        ("empty body", String::new()),
        ("not XML", "findService please".into()),
        ("truncated", ok[..ok.len() - 20].to_owned()),
        ("DTD with entities", billion_laughs.into()),
        ("external entity", xxe.into()),
        ("no namespace", ok.replace(r#"xmlns="urn:ietf:params:xml:ns:lost1""#, "")),
        ("wrong namespace", ok.replace("urn:ietf:params:xml:ns:lost1", "urn:ietf:params:xml:ns:lost2")),
        ("unknown root", format!(r#"<findServices xmlns="{LOST}"/>"#)),
        (
            "a response as request",
            format!(r#"<listServicesResponse xmlns="{LOST}"><serviceList/></listServicesResponse>"#),
        ),
        ("errors as request", format!(r#"<errors xmlns="{LOST}" source="a.example"/>"#)),
        ("no location", format!(r#"<findService xmlns="{LOST}"><service>urn:service:open311</service></findService>"#)),
        ("no service", ok.replace("<service>urn:service:open311</service>", "")),
        ("two services", ok.replace("</service>", "</service><service>urn:service:open311</service>")),
        ("empty service", ok.replace("urn:service:open311", " ")),
        ("unknown LoST child", ok.replace("</findService>", "<bogus/></findService>")),
        ("stray text", ok.replace("</findService>", "hello</findService>")),
        ("bad serviceBoundary", ok.replace("<findService ", r#"<findService serviceBoundary="both" "#)),
        ("bad boolean", ok.replace("<findService ", r#"<findService recursive="yes" "#)),
        ("unknown attribute", ok.replace("<findService ", r#"<findService color="red" "#)),
        ("location without id", ok.replace(r#" id="6020688f1ce1896d""#, "")),
        ("empty path", ok.replace("</findService>", "<path/></findService>")),
        ("via without source", ok.replace("</findService>", "<path><via/></path></findService>")),
        ("getServiceBoundary without key", format!(r#"<getServiceBoundary xmlns="{LOST}"/>"#)),
        ("too many nodes", many),
        ("oversized", format!("{}<!--{}-->", ok, "x".repeat(70 * 1024))),
    ];
    for (label, body) in cases {
        let d = s.post(&body).await;
        assert_eq!(d.root(), "errors", "{label}: {}", d.text);
        assert_eq!(d.all("badRequest").len(), 1, "{label}: {}", d.text);
    }
    // Not XML on the wire, wrong media type, missing media type, not UTF-8.
    for ct in [Some("application/json"), None, Some("application/lost+xml; charset=iso-8859-1")] {
        s.send_as(ct, ok.clone()).await.error("badRequest");
    }
    assert_eq!(s.send_as(Some("text/xml; charset=UTF-8"), ok.clone()).await.root(), "findServiceResponse");
    assert_eq!(s.send_as(Some("application/xml"), ok.clone()).await.root(), "findServiceResponse");
    s.send_as(Some("application/lost+xml"), vec![0xff, 0xfe, 0x3c, 0x00]).await.error("badRequest");
    s.validate();
}

/// A service configured with a smaller body limit applies it to LoST too,
/// still as a LoST badRequest (not a 413).
#[tokio::test]
async fn the_service_body_limit_applies() {
    let mut s = Checked::with(common::state_with(Settings { max_body_bytes: 512, ..Settings::default() }).await);
    let ok = find_service("", 37.775, -122.422, "urn:service:open311");
    assert!(ok.len() < 512);
    assert_eq!(s.post(&ok).await.root(), "findServiceResponse");
    s.post(&format!("{ok}<!--{}-->", "x".repeat(600))).await.error("badRequest");
    s.validate();
}

/// Every error of the schema renders to a document the schema accepts
/// (internalError only happens when answering fails, so it is checked here).
#[test]
fn every_error_renders_schema_valid() {
    let errors = [
        LostError::BadRequest("bad <request> & \"quotes\"\n  spread".into()),
        LostError::LocationProfileUnrecognized { profiles: vec!["civic".into(), "geodetic-3d".into()] },
        LostError::LocationProfileUnrecognized { profiles: vec![] },
        LostError::LocationInvalid("x".into()),
        LostError::SrsInvalid("y".into()),
        LostError::NotFound("z".into()),
        LostError::ServiceNotImplemented("s".into()),
        LostError::Loop("l".into()),
        LostError::InternalError("i".into()),
    ];
    let docs: Vec<(String, String)> =
        errors.iter().enumerate().map(|(i, e)| (format!("error-{i}"), e.to_xml("lost.example.org"))).collect();
    jing(&docs);
}

/// The route speaks only POST; other methods get the service's usual 405.
#[tokio::test]
async fn only_post() {
    let state = common::state().await;
    common::get(&state, "/lost").await.problem(405, None);
}
