//! Property-based fuzzing of every parser that takes outside input (issue 8,
//! point 1), plus the replay of the seed corpus in `tests/fuzz/corpus/`.
//!
//! Every parser gets arbitrary bytes/strings AND structure-aware inputs
//! (GeoJSON-shaped JSON with hostile numbers and wrong types, deep nesting,
//! XML with random elements/namespaces/entities, JWT-shaped `a.b.c` strings,
//! query strings with repeated keys and percent-escapes). Each must:
//!
//! * never panic (proptest catches the panic and shrinks the input);
//! * through the HTTP router, answer a rejection as a 4xx
//!   `application/problem+json` with a matching `status` member, never a
//!   5xx; `POST /lost` answers everything as a 200 `application/lost+xml`
//!   document that is itself well-formed XML;
//! * keep its own invariants where it accepts (a parsed boundary has only
//!   finite, in-range coordinates and round-trips through its stored form; a
//!   strictly validated boundary is OGC-valid; a forged token never verifies).
//!
//! Runs are deterministic: a fixed RNG seed per target (override with
//! `FUZZ_SEED=<u64>`), and `FUZZ_SCALE=<n>` multiplies the case counts for a
//! longer local run (e.g. `FUZZ_SCALE=20 cargo test --test fuzz_parsers`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request};
use axum::response::IntoResponse;
use common::{b64, Answer, Backend};
use geowebdns::{AppState, Settings};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

// ---------------------------------------------------------------- harness

/// Runs `test` on `cases` inputs from `strategy` with a fixed seed; panics
/// with the minimised failing input.
fn check<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let scale: u32 = std::env::var("FUZZ_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x6765_6f77_6562_646e);
    // A different fixed seed per target, so targets do not share inputs.
    let salt = name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let config = Config {
        cases: cases.saturating_mul(scale),
        rng_seed: RngSeed::Fixed(seed ^ salt),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The rule for every HTTP answer outside `/lost`: no 5xx, and every error a
/// problem+json document with the same status.
fn check_http(what: &str, a: &Answer) -> Result<(), TestCaseError> {
    let status = a.status.as_u16();
    prop_assert!(status < 500, "{what}: {status} {}", String::from_utf8_lossy(&a.raw));
    if status >= 400 {
        prop_assert_eq!(a.header("content-type"), "application/problem+json", "{}: {}", what, a.body);
        prop_assert_eq!(a.body["status"].as_u64(), Some(u64::from(status)), "{}: {}", what, a.body);
        prop_assert!(a.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {}", a.body);
    }
    Ok(())
}

/// The rule for `/lost`: a 200 LoST XML document, well formed.
fn check_lost(a: &Answer) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.status.as_u16(), 200, "{}", String::from_utf8_lossy(&a.raw));
    prop_assert_eq!(a.header("content-type"), "application/lost+xml");
    let text = std::str::from_utf8(&a.raw).map_err(|e| TestCaseError::fail(format!("not UTF-8: {e}")))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    prop_assert_eq!(doc.root_element().tag_name().namespace(), Some("urn:ietf:params:xml:ns:lost1"), "{}", text);
    // An internal error would mean a panic or a bug while answering.
    prop_assert!(!text.contains("internalError"), "{text}");
    Ok(())
}

/// An `ApiError` returned by a pure parser must be a client error.
fn check_api_error(what: &str, e: geowebdns::error::ApiError) -> Result<(), TestCaseError> {
    let res = e.into_response();
    prop_assert!(res.status().is_client_error(), "{what}: {}", res.status());
    Ok(())
}

/// Counts how often a target got past its outer checks, so that a
/// generator that stops reaching the deep code makes the test fail instead
/// of passing vacuously.
#[derive(Default)]
struct Reach(std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>>);

impl Reach {
    fn hit(&self, what: &'static str) {
        *self.0.lock().unwrap().entry(what).or_default() += 1;
    }

    /// Asserts that each of `whats` was reached at least `min` times.
    #[track_caller]
    fn assert(&self, whats: &[&'static str], min: usize) {
        let m = self.0.lock().unwrap();
        for w in whats {
            let n = m.get(w).copied().unwrap_or(0);
            assert!(n >= min, "{w} reached only {n} times (< {min}); all: {m:?}");
        }
    }
}

// ------------------------------------------------------------- generators

/// Number text: mostly plausible coordinates, sometimes hostile.
fn num() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (-180i32..=180).prop_map(|v| v.to_string()),
        4 => (-180.0f64..=180.0).prop_map(|v| format!("{v}")),
        2 => prop::sample::select(vec![
            "1e999", "-1e999", "NaN", "Infinity", "-0", "-0.0", "1e308", "-1.7976931348623157e308", "5e-324",
            "180.00000000000003", "90.0000001", "-90", "1E2", "0.1e1", "123456789012345678901234567890",
            "\"1\"", "null", "true", "[]", "{}", "1e-7", "179.9999999", "-180",
        ])
        .prop_map(String::from),
        1 => any::<f64>().prop_map(|v| serde_json::Number::from_f64(v).map_or_else(|| "0".to_owned(), |n| n.to_string())),
        1 => any::<i64>().prop_map(|v| v.to_string()),
    ]
}

/// A JSON string literal: plausible words, unicode, control characters.
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", "x", "us-state:36", "Polygon", "MultiPolygon", "FeatureCollection", "Feature", "country", "state",
            "county", "place", "special_district", "other", "https://example.org/open311/v2", "http://127.0.0.1/",
            "ftp://x/", "admin", "jurisdiction:us-state:36", "a\u{0}b", "\u{202e}rtl", "😀", "%00", "<script>",
            "'; drop table jurisdictions; --", "application/json",
        ])
        .prop_map(|s| serde_json::to_string(s).unwrap()),
        2 => any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => "[a-z0-9:_-]{0,300}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ]
}

/// Any JSON text, with keys biased towards the ones our parsers read.
fn json_any() -> impl Strategy<Value = String> {
    let leaf =
        prop_oneof![num(), json_string(), Just("null".to_owned()), Just("true".to_owned()), Just("false".to_owned())];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key(), inner), 0..6).prop_map(|v| {
                let members: Vec<String> =
                    v.into_iter().map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap())).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "type", "coordinates", "geometry", "properties", "features", "id", "name", "tier", "parent", "ocd_id",
            "external_ids", "source", "license", "bbox", "crs", "points", "lat", "lon", "long", "endpoints",
            "geowebdns_export", "service_code", "service_name", "description", "metadata", "keywords", "group",
            "url", "spec", "formats", "boundary", "services", "endpoints", "discovery", "changeset", "contact",
            "key_service", "version", "format", "geometries",
        ])
        .prop_map(String::from),
        1 => any::<String>(),
    ]
}

/// Deeply nested arrays or objects (past serde_json's recursion limit).
fn deep() -> impl Strategy<Value = String> {
    (1usize..3000, any::<bool>()).prop_map(|(n, arrays)| {
        if arrays {
            format!("{}{}", "[".repeat(n), "]".repeat(n))
        } else {
            format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n))
        }
    })
}

fn position() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (num(), num()).prop_map(|(a, b)| format!("[{a},{b}]")),
        1 => prop::collection::vec(num(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
        1 => json_any(),
    ]
}

fn ring() -> impl Strategy<Value = String> {
    (prop::collection::vec(position(), 0..12), any::<bool>()).prop_map(|(mut v, close)| {
        if close && !v.is_empty() {
            v.push(v[0].clone());
        }
        format!("[{}]", v.join(","))
    })
}

/// Coordinates of a polygon whose numbers are all sane, so that the
/// validation and repair code past the range checks is reached often.
fn sane_polygon_coords() -> impl Strategy<Value = String> {
    let pos = (-10i32..10, -10i32..10).prop_map(|(a, b)| format!("[{},{}]", f64::from(a) / 2.0, f64::from(b) / 2.0));
    let ring = (prop::collection::vec(pos, 0..9), any::<bool>()).prop_map(|(mut v, close)| {
        if close && !v.is_empty() {
            v.push(v[0].clone());
        }
        format!("[{}]", v.join(","))
    });
    prop::collection::vec(ring, 0..4).prop_map(|v| format!("[{}]", v.join(",")))
}

fn polygon_coords() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(ring(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
        3 => sane_polygon_coords(),
    ]
}

/// A valid polygon: a rectangle, optionally with a rectangular hole, anywhere.
fn good_polygon_coords() -> impl Strategy<Value = String> {
    ((-179.0f64..178.0, -89.0f64..88.0), prop_oneof![Just(1e-7), 0.001f64..1.0], any::<bool>()).prop_map(
        |((x, y), s, hole)| {
            let r = |x0: f64, y0: f64, x1: f64, y1: f64| {
                format!("[[{x0},{y0}],[{x1},{y0}],[{x1},{y1}],[{x0},{y1}],[{x0},{y0}]]")
            };
            if hole {
                format!("[{},{}]", r(x, y, x + s, y + s), r(x + s / 4.0, y + s / 4.0, x + s / 2.0, y + s / 2.0))
            } else {
                format!("[{}]", r(x, y, x + s, y + s))
            }
        },
    )
}

/// GeoJSON geometry text: polygons and multipolygons mostly, wrong types sometimes.
fn geometry_json() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => good_polygon_coords().prop_map(|c| format!(r#"{{"type":"Polygon","coordinates":{c}}}"#)),
        4 => polygon_coords().prop_map(|c| format!(r#"{{"type":"Polygon","coordinates":{c}}}"#)),
        3 => prop::collection::vec(polygon_coords(), 0..4)
            .prop_map(|v| format!(r#"{{"type":"MultiPolygon","coordinates":[{}]}}"#, v.join(","))),
        1 => (prop::sample::select(vec!["Point", "LineString", "GeometryCollection", "MultiPoint", "Polygon", "polygon", "Feature"]), json_any())
            .prop_map(|(t, c)| format!(r#"{{"type":"{t}","coordinates":{c},"geometries":[]}}"#)),
        1 => json_any(),
    ]
}

fn properties_json() -> impl Strategy<Value = String> {
    (
        prop::option::of(json_string()),
        prop::option::of(json_string()),
        prop::option::of(prop_oneof![
            prop::sample::select(vec![
                "\"country\"",
                "\"state\"",
                "\"county\"",
                "\"place\"",
                "\"special_district\"",
                "\"other\"",
                "\"planet\"",
                "3"
            ])
            .prop_map(String::from),
            json_string()
        ]),
        prop::collection::vec((key(), json_any()), 0..3),
    )
        .prop_map(|(id, name, tier, extra)| {
            let mut m = Vec::new();
            if let Some(id) = id {
                m.push(format!("\"id\":{id}"));
            }
            if let Some(name) = name {
                m.push(format!("\"name\":{name}"));
            }
            if let Some(tier) = tier {
                m.push(format!("\"tier\":{tier}"));
            }
            for (k, v) in extra {
                m.push(format!("{}:{v}", serde_json::to_string(&k).unwrap()));
            }
            format!("{{{}}}", m.join(","))
        })
}

fn feature_json() -> impl Strategy<Value = String> {
    let good = (0u32..1000, prop::sample::select(vec!["country", "state", "county", "place", "special_district", "other"]), good_polygon_coords())
        .prop_map(|(n, tier, c)| {
            format!(r#"{{"type":"Feature","properties":{{"id":"fuzz:{n}","name":"Fuzz {n}","tier":"{tier}"}},"geometry":{{"type":"Polygon","coordinates":{c}}}}}"#)
        });
    let any =
        (properties_json(), geometry_json(), prop::option::of(json_any())).prop_map(|(p, g, extra)| match extra {
            Some(x) => format!(r#"{{"type":"Feature","properties":{p},"geometry":{g},"bbox":{x}}}"#),
            None => format!(r#"{{"type":"Feature","properties":{p},"geometry":{g}}}"#),
        });
    prop_oneof![1 => good, 2 => any]
}

fn feature_collection_json() -> impl Strategy<Value = String> {
    (prop::collection::vec(feature_json(), 0..4), prop::option::of(json_any())).prop_map(|(f, header)| match header {
        Some(h) => format!(r#"{{"type":"FeatureCollection","geowebdns_export":{h},"features":[{}]}}"#, f.join(",")),
        None => format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, f.join(",")),
    })
}

/// JSON documents of every kind the JSON parsers see.
fn json_doc() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => feature_collection_json(),
        2 => feature_json(),
        2 => geometry_json(),
        2 => json_any(),
        1 => deep(),
        1 => any::<String>(),
    ]
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A zip archive of the given members (stored or deflated).
fn zip(members: &[(String, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, data) in members {
        w.start_file(name.as_str(), options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Bytes that look like a shapefile header (magic 9994, version 1000, a
/// shape type) followed by random records, or plain random bytes.
fn shp_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            prop::sample::select(vec![0i32, 1, 3, 5, 8, 11, 13, 15, 25, 31, 99]),
            any::<i32>(),
            prop::collection::vec(any::<u8>(), 0..400)
        )
            .prop_map(|(shape, len, rest)| {
                let mut v = Vec::new();
                v.extend_from_slice(&9994i32.to_be_bytes());
                v.extend_from_slice(&[0u8; 20]);
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(&1000i32.to_le_bytes());
                v.extend_from_slice(&shape.to_le_bytes());
                v.extend_from_slice(&[0u8; 64]);
                v.extend_from_slice(&rest);
                v
            }),
        prop::collection::vec(any::<u8>(), 0..400),
    ]
}

/// Upload bodies: JSON documents raw/gzipped, random bytes, zipped shapefile parts.
fn upload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json_doc().prop_map(String::into_bytes),
        2 => json_doc().prop_map(|t| gzip(t.as_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..512),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(|mut v| {
            // gzip magic followed by junk
            v.splice(0..0, [0x1f, 0x8b, 0x08, 0x00]);
            v
        }),
        2 => (shp_bytes(), prop::collection::vec(any::<u8>(), 0..300), prop::collection::vec(any::<u8>(), 0..200), any::<bool>(), any::<u8>())
            .prop_map(|(shp, dbf, shx, deflate, which)| {
                let mut members = vec![("a.shp".to_owned(), shp), ("a.dbf".to_owned(), dbf), ("a.shx".to_owned(), shx)];
                match which % 5 {
                    0 => members.truncate(1),
                    1 => members.push(("a.prj".to_owned(), b"GEOGCS[\"junk\"]".to_vec())),
                    2 => members.push(("b.shp".to_owned(), vec![])),
                    3 => members.push(("../../etc/passwd.geojson".to_owned(), b"{}".to_vec())),
                    _ => {}
                }
                zip(&members, deflate)
            }),
    ]
}

/// XML text from element names, attributes and text with entities.
fn xml_node(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    let text = prop_oneof![
        4 => prop::sample::select(vec![
            "37.775 -122.4194", "-122.4194 37.775", "0 0", "91 181", "NaN NaN", "1e999 0", "1 2 3", "", "  ",
            "urn:service:sos", "urn:service:sos.police", "urn:nena:service:sos", "100", "-5", "&amp;", "&lt;",
            "&#0;", "&#x10FFFF;", "&#xD800;", "&undefined;", "&lol9;", "<![CDATA[<x>]]>", "<!-- c -->",
            "<?pi x?>", "geodetic-2d", "civic", "EPSG::4326", "true", "false", "pothole", "311",
        ])
        .prop_map(String::from),
        1 => any::<String>().prop_map(|s| s.replace('<', "&lt;").replace('&', "&amp;")),
        1 => any::<String>(),
    ];
    let attr = (
        prop::sample::select(vec![
            "xmlns",
            "xmlns:gml",
            "xmlns:gs",
            "xmlns:p2",
            "profile",
            "id",
            "srsName",
            "uom",
            "recursive",
            "serviceBoundary",
            "key",
            "validateLocation",
            "source",
            "gml:id",
            "xml:lang",
            "x",
        ]),
        prop::sample::select(vec![
            "urn:ietf:params:xml:ns:lost1",
            "http://www.opengis.net/gml",
            "http://www.opengis.net/pidflo/1.0",
            "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr",
            "geodetic-2d",
            "civic",
            "urn:ogc:def:crs:EPSG::4326",
            "urn:ogc:def:uom:EPSG::9001",
            "true",
            "false",
            "reference",
            "value",
            "",
            "&amp;",
            "\"",
            "x",
        ]),
    )
        .prop_map(|(k, v)| format!(" {k}=\"{}\"", v.replace('"', "&quot;")));
    let leaf = text.clone();
    leaf.prop_recursive(5, 40, 5, move |inner| {
        (
            prop::sample::select(names),
            prop::collection::vec(attr.clone(), 0..4),
            prop::collection::vec(inner, 0..5),
            0u8..10,
        )
            .prop_map(|(name, attrs, children, mode)| match mode {
                0 => format!("<{name}{}/>", attrs.concat()),
                1 => format!("<{name}{}>{}</wrong>", attrs.concat(), children.concat()),
                2 => format!("<{name}{}>{}", attrs.concat(), children.concat()),
                _ => format!("<{name}{}>{}</{name}>", attrs.concat(), children.concat()),
            })
    })
}

const LOST_NAMES: &[&str] = &[
    "findService",
    "listServices",
    "listServicesByLocation",
    "getServiceBoundary",
    "location",
    "service",
    "path",
    "via",
    "gml:Point",
    "gml:pos",
    "gs:Circle",
    "gs:radius",
    "p2:Point",
    "p2:pos",
    "civicAddress",
    "serviceBoundary",
    "serviceBoundaryReference",
    "lost:findService",
    "x:y",
    "findServiceResponse",
    "extension",
];

const GEOREPORT_NAMES: &[&str] = &[
    "services",
    "service",
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
    "discovery",
    "changeset",
    "contact",
    "key_service",
    "endpoints",
    "endpoint",
    "specification",
    "url",
    "formats",
    "format",
    "item",
    "x",
];

fn xml_doc(names: &'static [&'static str], root: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(root),
        prop::collection::vec(xml_node(names), 0..6),
        0u8..6,
        prop::sample::select(vec![
            "urn:ietf:params:xml:ns:lost1",
            "urn:ietf:params:xml:ns:lost2",
            "",
            "http://www.w3.org/XML/1998/namespace",
        ]),
    )
        .prop_map(|(root, children, prolog, ns)| {
            let head = match prolog {
                0 => "<?xml version=\"1.0\" encoding=\"UTF-8\"?>".to_owned(),
                1 => "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]>".to_owned(),
                2 => "\u{feff}".to_owned(),
                3 => "<?xml version=\"1.1\"?><!-- x -->".to_owned(),
                _ => String::new(),
            };
            format!(
                "{head}<{root} xmlns=\"{ns}\" xmlns:gml=\"http://www.opengis.net/gml\" xmlns:gs=\"http://www.opengis.net/pidflo/1.0\">{}</{root}>",
                children.concat()
            )
        })
}

fn lost_doc() -> impl Strategy<Value = String> {
    let good = (
        prop::sample::select(vec!["findService", "listServicesByLocation"]),
        (-95.0f64..95.0, -185.0f64..185.0),
        prop::option::of(0.0f64..2_000_000.0),
        prop::sample::select(vec!["urn:service:open311", "urn:service:sos", "urn:service:open311.pothole", "bogus"]),
        prop::sample::select(vec!["", r#" serviceBoundary="value""#, r#" serviceBoundary="reference" recursive="true""#, r#" recursive="maybe""#]),
    )
        .prop_map(|(root, (lat, lon), radius, service, attrs)| {
            let shape = match radius {
                Some(r) => format!(r#"<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>{lat} {lon}</gml:pos><gs:radius uom="urn:ogc:def:uom:EPSG::9001">{r}</gs:radius></gs:Circle>"#),
                None => format!(r#"<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>{lat} {lon}</gml:pos></gml:Point>"#),
            };
            format!(
                r#"<{root} xmlns="urn:ietf:params:xml:ns:lost1" xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0"{attrs}><location id="l1" profile="geodetic-2d">{shape}</location><service>{service}</service></{root}>"#
            )
        });
    prop_oneof![
        3 => good,
        4 => xml_doc(LOST_NAMES, &["findService", "listServices", "listServicesByLocation", "getServiceBoundary", "other"]),
        1 => any::<String>(),
        1 => "(<[a-z:]{0,6}( [a-z]{1,3}=\"[^\"]{0,5}\")?>|</[a-z:]{0,6}>|&[a-z#0-9]{0,5};|[ -~]{0,5}){0,30}",
    ]
}

fn georeport_doc() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
    let ct = prop::option::of(
        prop::sample::select(vec![
            "application/json",
            "application/xml",
            "text/xml; charset=utf-8",
            "text/html",
            "application/json; charset=latin1",
            "",
            ";;",
            "application/problem+json",
        ])
        .prop_map(String::from),
    );
    let service = (0u32..50, json_string(), prop::option::of(json_any()), prop::option::of(json_string())).prop_map(
        |(code, name, meta, group)| {
            let mut m = vec![format!(r#""service_code":"{code}""#), format!(r#""service_name":{name}"#)];
            if let Some(meta) = meta {
                m.push(format!(r#""metadata":{meta}"#));
            }
            if let Some(group) = group {
                m.push(format!(r#""group":{group}"#));
            }
            format!("{{{}}}", m.join(","))
        },
    );
    let body = prop_oneof![
        2 => prop::collection::vec(service, 0..6).prop_map(|v| format!("[{}]", v.join(",")).into_bytes()),
        1 => prop::collection::vec((0u32..50, "[ -~]{0,12}"), 0..5).prop_map(|v| {
            let items: String = v.iter().map(|(c, n)| format!("<service><service_code>{c}</service_code><service_name>{}</service_name></service>", n.replace('&', "&amp;").replace('<', "&lt;"))).collect();
            format!("<?xml version=\"1.0\"?><services>{items}</services>").into_bytes()
        }),
        3 => xml_doc(GEOREPORT_NAMES, &["services", "discovery", "service"]).prop_map(String::into_bytes),
        3 => json_any().prop_map(String::into_bytes),
        2 => prop::collection::vec(
            prop::collection::vec((key(), json_any()), 0..6).prop_map(|v| {
                let m: Vec<String> = v.into_iter().map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap())).collect();
                format!("{{{}}}", m.join(","))
            }),
            0..5,
        )
        .prop_map(|v| format!("[{}]", v.join(",")).into_bytes()),
        1 => deep().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ];
    (body, ct)
}

/// A base64url-ish segment: real base64url of random JSON or bytes, or junk.
fn b64_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => json_any().prop_map(|j| b64(j.as_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| b64(&b)),
        1 => "[A-Za-z0-9_=+/-]{0,60}",
        1 => prop::sample::select(vec!["", "e30", "bnVsbA", "W10", "eyJhbGciOiJub25lIn0", "eyJhbGciOiJFZERTQSJ9", "eyJhbGciOiJIUzI1NiJ9", "=", "%%"]).prop_map(String::from),
    ]
}

fn header_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => (prop::sample::select(vec!["none", "None", "EdDSA", "HS256", "RS256", "ES256", "PS256", "", "eddsa"]), prop::option::of(json_any()))
            .prop_map(|(alg, extra)| {
                let h = match extra {
                    Some(x) => format!(r#"{{"alg":"{alg}","typ":"JWT","kid":{x}}}"#),
                    None => format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
                };
                b64(h.as_bytes())
            }),
        1 => b64_segment(),
    ]
}

fn claims_json() -> impl Strategy<Value = String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let good = (
        json_string(),
        -600i64..600,
        prop::sample::select(vec![
            r#"["admin"]"#,
            r#"["jurisdiction:us-state:36"]"#,
            r#"["admin","jurisdiction:x"]"#,
            "[]",
            r#"["root"]"#,
        ]),
    )
        .prop_map(move |(sub, d, scopes)| {
            format!(r#"{{"sub":{sub},"iat":{now},"exp":{},"jti":"j-{d}","scopes":{scopes}}}"#, now + d)
        });
    let any = (
        prop::option::of(json_string()),
        prop::option::of(prop_oneof![Just(now.to_string()), num()]),
        prop::option::of(prop_oneof![Just((now + 600).to_string()), num()]),
        prop::option::of(prop_oneof![Just(now.to_string()), num()]),
        prop::option::of(json_string()),
        prop::option::of(prop_oneof![
            prop::collection::vec(
                prop::sample::select(vec![
                    "\"admin\"",
                    "\"jurisdiction:us-state:36\"",
                    "\"jurisdiction:\"",
                    "\"root\"",
                    "1",
                    "null"
                ]),
                0..3
            )
            .prop_map(|v| format!("[{}]", v.join(","))),
            json_any()
        ]),
        prop::option::of(json_any()),
    )
        .prop_map(|(sub, iat, exp, nbf, jti, scopes, aud)| {
            let mut m = Vec::new();
            for (k, v) in
                [("sub", sub), ("iat", iat), ("exp", exp), ("nbf", nbf), ("jti", jti), ("scopes", scopes), ("aud", aud)]
            {
                if let Some(v) = v {
                    m.push(format!("\"{k}\":{v}"));
                }
            }
            format!("{{{}}}", m.join(","))
        });
    prop_oneof![good, any]
}

/// JWT-shaped strings, all of which must be refused (none is signed by our key).
fn forged_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (header_segment(), claims_json().prop_map(|c| b64(c.as_bytes())), b64_segment()).prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        2 => (b64_segment(), b64_segment(), b64_segment()).prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        1 => prop::collection::vec(b64_segment(), 0..6).prop_map(|v| v.join(".")),
        1 => any::<String>(),
    ]
}

/// A query-string component: known names/values, percent-escapes (valid,
/// invalid, encoded UTF-8 and NUL), or random text percent-encoded.
fn query_atom(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(known).prop_map(String::from),
        2 => num().prop_map(|n| url::form_urlencoded::byte_serialize(n.as_bytes()).collect()),
        1 => prop::sample::select(vec!["%", "%2", "%zz", "%00", "%FF%FE", "%E2%82", "%C3%A9", "+", "%2B", "%26", "%3D", "", "=", "a=b", "%25"]).prop_map(String::from),
        1 => any::<String>().prop_map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect()),
    ]
}

const QUERY_KEYS: &[&str] = &[
    "lat",
    "lon",
    "long",
    "tier",
    "type",
    "within",
    "nearest",
    "limit",
    "after",
    "since",
    "q",
    "parent",
    "ocd_id",
    "group",
    "simplify",
    "boundaries",
    "cascade",
    "jurisdiction",
    "until",
    "format",
    "x",
];
const QUERY_VALUES: &[&str] = &[
    "40.7128",
    "-74.006",
    "0",
    "90",
    "-90",
    "180",
    "-180",
    "91",
    "1e3",
    "NaN",
    "inf",
    "-0",
    "country",
    "state,county",
    "place,,",
    "true",
    "false",
    "yes",
    "1",
    "18446744073709551616",
    "-1",
    "100000",
    "2024-01-01T00:00:00Z",
    "us-state:36",
    "jurisdiction",
    "endpoint",
    "service",
    "0.5",
    "",
];

fn query_string() -> impl Strategy<Value = String> {
    prop::collection::vec((query_atom(QUERY_KEYS), prop::option::of(query_atom(QUERY_VALUES))), 0..8).prop_map(
        |pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| v.map_or_else(|| k.clone(), |v| format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join("&")
        },
    )
}

fn query_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    query_string().prop_map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
}

// -------------------------------------------------------------- pure parsers

fn geometry_checks(text: &str, reach: &Reach) -> Result<(), TestCaseError> {
    use geo::Validation;
    let _ = geowebdns::geometry::parse_stored(text);
    let Ok(g) = serde_json::from_str::<geojson::Geometry>(text) else { return Ok(()) };
    let _ = geowebdns::geometry::check_rings(&g);
    if let Ok(mp) = geowebdns::geometry::from_geojson(&g) {
        reach.hit("from_geojson ok");
        for c in mp.0.iter().flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors())).flat_map(|r| r.0.iter()) {
            prop_assert!(c.x.is_finite() && c.y.is_finite() && c.x.abs() <= 180.0 && c.y.abs() <= 90.0, "{c:?}");
        }
        // Stored form round-trips exactly.
        let stored = geowebdns::geometry::to_geojson_value(&mp).to_string();
        prop_assert_eq!(geowebdns::geometry::parse_stored(&stored).map_err(TestCaseError::fail)?, mp.clone());
        let _ = geowebdns::geometry::area_km2(&mp);
        let _ = geowebdns::geometry::interior_point(&mp);
        let _ = geowebdns::geometry::simplify(&mp, 100.0);
    }
    if let Ok(mp) = geowebdns::geometry::validate_strict(&g, 1_000) {
        reach.hit("validate_strict ok");
        prop_assert!(mp.is_valid(), "validate_strict accepted an invalid geometry: {text}");
    }
    if let Ok((mp, _report)) = geowebdns::geometry::repair(&g) {
        reach.hit("repair ok");
        // What repair keeps must be indexable and queryable.
        let idx = geowebdns::index::spatial::SpatialIndex::build(vec![(1, geowebdns::index::spatial::prepare(&mp))]);
        let mut out = Vec::new();
        for c in mp.0.iter().flat_map(|p| p.exterior().0.iter()).take(4) {
            out.clear();
            idx.query(c.x, c.y, &mut out);
            prop_assert_eq!(&out, &vec![1], "a vertex of a repaired boundary must resolve to it: {:?}", c);
        }
    }
    Ok(())
}

#[test]
fn geometry_parsers_never_panic() {
    let reach = Reach::default();
    check("geometry/json", 384, geometry_json(), |t| geometry_checks(&t, &reach));
    check("geometry/any", 128, prop_oneof![json_doc(), any::<String>()], |t| geometry_checks(&t, &reach));
    reach.assert(&["from_geojson ok", "validate_strict ok", "repair ok"], 10);
}

fn import_checks(bytes: &[u8], reach: &Reach) -> Result<(), TestCaseError> {
    use geowebdns::import::{map_features, reader, ImportOptions, OnInvalid};
    let _ = reader::geojson_text(bytes, "fuzz");
    let _ = geowebdns::export::parse_dump(bytes, "fuzz");
    let Ok(features) = reader::read_features_from_bytes(bytes, "fuzz") else { return Ok(()) };
    reach.hit("read ok");
    for on_invalid in [OnInvalid::Skip, OnInvalid::Repair, OnInvalid::Abort] {
        let opts = ImportOptions { on_invalid, max_vertices: 1_000, ..ImportOptions::default() };
        if let Ok((records, summary)) = map_features(&features, &opts) {
            prop_assert_eq!(summary.imported, records.len());
            if !records.is_empty() {
                reach.hit("mapped records");
            }
            for r in &records {
                prop_assert!(geowebdns::geometry::parse_stored(&r.boundary).is_ok(), "{}", r.boundary);
            }
        }
    }
    Ok(())
}

#[test]
fn import_readers_never_panic() {
    let reach = Reach::default();
    check("import", 320, upload(), |b| import_checks(&b, &reach));
    reach.assert(&["read ok", "mapped records"], 10);
}

#[test]
fn query_parameter_parsers_never_panic() {
    use geowebdns::api::{locate::LocateOptions, params};
    let settings = Settings::default();
    check("params", 512, query_pairs(), |q| {
        let results = [
            params::location(&q).err(),
            params::tiers(&q).err(),
            params::integer(&q, "limit", 1, 1000).err(),
            params::boolean(&q, "nearest").err(),
            LocateOptions::parse(&q, &settings).err(),
        ];
        for e in results.into_iter().flatten() {
            check_api_error(&format!("{q:?}"), e)?;
        }
        if let Ok(loc) = params::location(&q) {
            prop_assert!(loc.lat.abs() <= 90.0 && loc.lon.abs() <= 180.0, "{q:?}");
        }
        Ok(())
    });
}

#[test]
fn jwt_and_bearer_parsers_never_panic() {
    use geowebdns::auth::{bearer_token, KeySettings, Keys};
    let dir = tempfile::tempdir().unwrap();
    let ed = Keys::load_or_create(&KeySettings { key_dir: dir.path().join("k"), ..KeySettings::default() }).unwrap();
    let hs = Keys::load_verify_only(&KeySettings {
        algorithm: geowebdns::auth::Algorithm::HS256,
        hs256_secret: Some("0123456789abcdef0123456789abcdef-fuzz".into()),
        ..KeySettings::default()
    })
    .unwrap();
    check("jwt", 512, forged_token(), |t| {
        for keys in [&ed, &hs] {
            match keys.verify(&t) {
                Ok(p) => return Err(TestCaseError::fail(format!("forged token accepted: {t} -> {}", p.sub))),
                Err(e) => prop_assert_eq!(e.status(), 401, "{}: {:?}", t, e),
            }
        }
        Ok(())
    });
    // Tokens correctly signed by our key with random claims: accepted only
    // with a non-empty subject, jti and valid scopes.
    let private = std::fs::read(dir.path().join("k").join("ed25519-private.pem")).unwrap();
    let encoding = jsonwebtoken::EncodingKey::from_ed_pem(&private).unwrap();
    let reach = Reach::default();
    check("jwt/signed", 256, claims_json(), |claims| {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&claims) else { return Ok(()) };
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA), &value, &encoding)
            .unwrap();
        match ed.verify(&token) {
            Ok(p) => {
                reach.hit("accepted");
                prop_assert!(!p.sub.is_empty() && !p.jti.is_empty() && !p.scopes.is_empty(), "{claims}");
                prop_assert!(value.get("aud").is_none(), "a token with aud was accepted: {claims}");
            }
            Err(e) => prop_assert_eq!(e.status(), 401, "{}: {:?}", claims, e),
        }
        Ok(())
    });
    reach.assert(&["accepted"], 3);
    let header = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..60),
        (prop::sample::select(vec!["Bearer", "bearer", "BEARER", "Basic", "", "Bearer ", "Bearer\t"]), "[ -~]{0,40}")
            .prop_map(|(s, t)| format!("{s} {t}").into_bytes()),
    ];
    check("bearer", 512, prop::collection::vec(header, 0..3), |values| {
        let mut headers = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                headers.append(axum::http::header::AUTHORIZATION, v);
            }
        }
        match bearer_token(&headers) {
            Ok(t) => prop_assert!(!t.is_empty() && !t.contains(char::is_whitespace), "{t:?}"),
            Err(e) => prop_assert_eq!(e.status(), 401),
        }
        Ok(())
    });
}

#[test]
fn lost_request_parser_never_panics() {
    let reach = Reach::default();
    check("lost/parse", 512, lost_doc(), |t| {
        let parsed = geowebdns::lost::request::parse(&t);
        if parsed.is_ok() {
            reach.hit("parsed");
        }
        if let Err(e) = parsed {
            // The error document must be well formed XML.
            let xml = e.to_xml("fuzz.example.org");
            prop_assert!(roxmltree::Document::parse(&xml).is_ok(), "{xml}");
        }
        Ok(())
    });
    reach.assert(&["parsed"], 5);
}

#[test]
fn harvest_parsers_never_panic() {
    use geowebdns::harvest::parse::{parse_discovery, parse_service_list};
    let reach = Reach::default();
    check("harvest", 512, georeport_doc(), |(body, ct)| {
        if parse_service_list(&body, ct.as_deref()).is_ok_and(|l| !l.services.is_empty()) {
            reach.hit("services");
        }
        if parse_discovery(&body, ct.as_deref()).is_ok() {
            reach.hit("discovery");
        }
        Ok(())
    });
    reach.assert(&["services", "discovery"], 3);
}

#[test]
fn admin_body_parsers_never_panic() {
    use geowebdns::admin::bodies::{EndpointWrite, JurisdictionFeature, ServiceWrite};
    let bodies = prop_oneof![3 => feature_json(), 1 => json_any(), 1 => georeport_doc().prop_map(|(b, _)| String::from_utf8_lossy(&b).into_owned())];
    check("admin/bodies", 384, bodies, |t| {
        if let Ok(f) = serde_json::from_str::<JurisdictionFeature>(&t) {
            if let Err(e) = f.into_stored(1_000) {
                check_api_error(&t, e)?;
            }
        }
        if let Ok(s) = serde_json::from_str::<ServiceWrite>(&t) {
            if let Err(e) = s.into_service("") {
                check_api_error(&t, e)?;
            }
        }
        if let Ok(list) = serde_json::from_str::<Vec<ServiceWrite>>(&t) {
            if let Err(e) = geowebdns::admin::bodies::services(list, "") {
                check_api_error(&t, e)?;
            }
        }
        if let Ok(e) = serde_json::from_str::<EndpointWrite>(&t) {
            if let Err(e) = e.into_endpoint("us-state:36") {
                check_api_error(&t, e)?;
            }
        }
        Ok(())
    });
}

// ------------------------------------------------------------- HTTP router

async fn post(state: &AppState, uri: &str, ct: &str, body: Vec<u8>, token: Option<&str>) -> Answer {
    let mut req = Request::post(uri).header("content-type", ct);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    common::send(state, req.body(Body::from(body)).unwrap()).await
}

#[test]
fn public_routes_answer_hostile_queries_with_problems() {
    let rt = runtime();
    let state = rt.block_on(common::state());
    let routes = prop::sample::select(vec![
        "/v1/resolve",
        "/v1/jurisdictions",
        "/v1/jurisdictions/us-state:36",
        "/v1/jurisdictions/us-state:36/boundary",
        "/v1/jurisdictions/%00/boundary",
        "/v1/services",
        "/v1/changes",
        "/discovery.json",
        "/discovery.xml",
        "/healthz",
        "/nope",
    ]);
    let reach = Reach::default();
    check("http/get", 192, (routes, query_string()), |(route, q)| {
        let uri = format!("{route}?{q}");
        let Ok(req) = Request::get(&uri).body(Body::empty()) else { return Ok(()) };
        let a = rt.block_on(common::send(&state, req));
        if a.status.is_success() {
            reach.hit("get 2xx");
        }
        check_http(&uri, &a)
    });
    let good = prop::collection::vec((-90.0f64..90.0, -180.0f64..180.0), 0..20).prop_map(|v| {
        let pts: Vec<String> =
            v.iter().enumerate().map(|(i, (lat, lon))| format!(r#"{{"lat":{lat},"lon":{lon},"id":{i}}}"#)).collect();
        format!(r#"{{"points":[{}]}}"#, pts.join(","))
    });
    let body = prop_oneof![
        2 => good,
        3 => (prop::collection::vec((prop::option::of(num()), prop::option::of(num()), prop::option::of(json_any()), any::<bool>()), 0..6), prop::option::of(json_string()))
            .prop_map(|(points, tier)| {
                let pts: Vec<String> = points.into_iter().map(|(lat, lon, id, long)| {
                    let mut m = Vec::new();
                    if let Some(lat) = lat { m.push(format!("\"lat\":{lat}")) }
                    if let Some(lon) = lon { m.push(format!("\"{}\":{lon}", if long { "long" } else { "lon" })) }
                    if let Some(id) = id { m.push(format!("\"id\":{id}")) }
                    format!("{{{}}}", m.join(","))
                }).collect();
                match tier {
                    Some(t) => format!(r#"{{"points":[{}],"tier":{t}}}"#, pts.join(",")),
                    None => format!(r#"{{"points":[{}]}}"#, pts.join(",")),
                }
            }),
        1 => json_any(),
        1 => deep(),
        1 => any::<String>(),
    ];
    let ct = prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/xml",
    ]);
    check("http/batch", 128, (body, ct), |(b, ct)| {
        let a = rt.block_on(post(&state, "/v1/resolve", ct, b.clone().into_bytes(), None));
        if a.status.is_success() {
            reach.hit("batch 2xx");
        }
        check_http(&b, &a)
    });
    reach.assert(&["get 2xx", "batch 2xx"], 3);
}

#[test]
fn lost_route_answers_everything_with_lost_xml() {
    let rt = runtime();
    let state = rt.block_on(common::state());
    let ct = prop::sample::select(vec![
        "application/lost+xml",
        "application/xml; charset=utf-8",
        "text/xml; charset=\"UTF-8\"",
        "application/json",
        "application/lost+xml; charset=latin1",
    ]);
    let body =
        prop_oneof![4 => lost_doc().prop_map(String::into_bytes), 1 => prop::collection::vec(any::<u8>(), 0..200)];
    let reach = Reach::default();
    check("http/lost", 160, (body, ct), |(b, ct)| {
        let a = rt.block_on(post(&state, "/lost", ct, b, None));
        // Parsed and handed to the answerer (an answer, notFound...).
        if !a.raw.windows(11).any(|w| w == b"<badRequest") {
            reach.hit("answered");
        }
        check_lost(&a)
    });
    reach.assert(&["answered"], 3);
}

#[test]
fn admin_routes_answer_hostile_bodies_and_tokens_with_problems() {
    let rt = runtime();
    let w = Arc::new(rt.block_on(common::writable(Backend::Sqlite, Settings::default())).unwrap());
    let admin = w.token("fuzzer", &["admin"]);
    // Hostile tokens on an admin route: always 401 problem+json.
    check("http/token", 96, forged_token(), |t| {
        let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) else { return Ok(()) };
        let req = Request::get("/admin/v1/whoami").header("authorization", v).body(Body::empty()).unwrap();
        let a = rt.block_on(common::send(&w.state, req));
        prop_assert_eq!(a.status.as_u16(), 401, "{}", t);
        check_http(&t, &a)
    });
    // Hostile bodies on every admin write route, with a valid admin token.
    let target = prop::sample::select(vec![
        ("POST", "/admin/v1/jurisdictions"),
        ("PATCH", "/admin/v1/jurisdictions/us-state:36"),
        ("POST", "/admin/v1/jurisdictions/us-state:36/endpoints"),
        ("PATCH", "/admin/v1/endpoints/nope"),
        ("PUT", "/admin/v1/endpoints/nope/services"),
        ("PUT", "/admin/v1/endpoints/nope/services/pothole"),
        ("POST", "/admin/v1/import"),
        ("GET", "/admin/v1/audit"),
        ("DELETE", "/admin/v1/jurisdictions/does-not-exist"),
    ]);
    let body = prop_oneof![
        2 => feature_json().prop_map(String::into_bytes),
        1 => json_any().prop_map(String::into_bytes),
        1 => upload(),
    ];
    let reach = Reach::default();
    check("http/admin", 96, (target, body, query_string()), |((method, path), b, q)| {
        let uri = format!("{path}?{q}");
        let Ok(req) = Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(Body::from(b.clone()))
        else {
            return Ok(());
        };
        let a = rt.block_on(common::send(&w.state, req));
        if a.status.is_success() {
            reach.hit("admin 2xx");
        }
        check_http(&format!("{method} {uri} {}", String::from_utf8_lossy(&b)), &a)
    });
    reach.assert(&["admin 2xx"], 3);
}

// ------------------------------------------------------------ seed corpus

/// Replays every file of `tests/fuzz/corpus/<target>/` through its parser
/// (and, for HTTP-facing parsers, through the router) with the same checks.
#[test]
fn seed_corpus_replays_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let rt = runtime();
    let state = rt.block_on(common::state());
    let w = rt.block_on(common::writable(Backend::Sqlite, Settings::default())).unwrap();
    let admin = w.token("fuzzer", &["admin"]);
    let dir = tempfile::tempdir().unwrap();
    let keys = geowebdns::auth::Keys::load_or_create(&geowebdns::auth::KeySettings {
        key_dir: dir.path().join("k"),
        ..Default::default()
    })
    .unwrap();
    let mut replayed = 0;
    let mut targets: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    targets.sort();
    for target in targets {
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let what = file.display().to_string();
            let fail = |e: TestCaseError| panic!("{what}: {e}");
            match name.as_str() {
                "geometry" => geometry_checks(&text, &Reach::default()).unwrap_or_else(fail),
                "import" => {
                    import_checks(&bytes, &Reach::default()).unwrap_or_else(fail);
                    let a = rt.block_on(post(
                        &w.state,
                        "/admin/v1/import",
                        "application/json",
                        bytes.clone(),
                        Some(&admin),
                    ));
                    check_http(&what, &a).unwrap_or_else(fail);
                }
                "query" => {
                    let q = text.trim_end_matches('\n');
                    for route in ["/v1/resolve", "/v1/jurisdictions", "/v1/services", "/v1/changes", "/discovery.json"]
                    {
                        let a = rt.block_on(common::get(&state, &format!("{route}?{q}")));
                        check_http(&what, &a).unwrap_or_else(fail);
                    }
                }
                "batch" => {
                    let a = rt.block_on(post(&state, "/v1/resolve", "application/json", bytes.clone(), None));
                    check_http(&what, &a).unwrap_or_else(fail);
                }
                "jwt" => {
                    let t = text.trim_end_matches('\n');
                    let e = keys.verify(t).expect_err(&what);
                    assert_eq!(e.status(), 401, "{what}: {e:?}");
                    let req = Request::get("/admin/v1/whoami").header("authorization", format!("Bearer {t}"));
                    let a = rt.block_on(common::send(&w.state, req.body(Body::empty()).unwrap()));
                    assert_eq!(a.status.as_u16(), 401, "{what}");
                    check_http(&what, &a).unwrap_or_else(fail);
                }
                "lost" => {
                    let _ = geowebdns::lost::request::parse(&text);
                    let a = rt.block_on(post(&state, "/lost", "application/lost+xml", bytes.clone(), None));
                    check_lost(&a).unwrap_or_else(fail);
                }
                "harvest" => {
                    for ct in [None, Some("application/json"), Some("application/xml")] {
                        let _ = geowebdns::harvest::parse::parse_service_list(&bytes, ct);
                        let _ = geowebdns::harvest::parse::parse_discovery(&bytes, ct);
                    }
                }
                "admin" => {
                    for (method, path) in [
                        ("POST", "/admin/v1/jurisdictions"),
                        ("PATCH", "/admin/v1/jurisdictions/us-state:36"),
                        ("POST", "/admin/v1/jurisdictions/us-state:36/endpoints"),
                    ] {
                        let a = rt.block_on(common::call(&w.state, method, path, Some(&admin), Some(&text)));
                        check_http(&what, &a).unwrap_or_else(fail);
                    }
                }
                other => panic!("unknown corpus target {other}"),
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 40, "only {replayed} corpus files");
}

/// Regression (found by `jwt/signed`): a token signed with our key and an
/// `aud` claim jsonwebtoken cannot parse (`[null]`, a number, an object) was
/// accepted, although tokens with `aud` are documented as refused.
#[test]
fn signed_token_with_any_aud_is_refused() {
    use geowebdns::auth::{KeySettings, Keys};
    let dir = tempfile::tempdir().unwrap();
    let settings = KeySettings { key_dir: dir.path().join("k"), ..KeySettings::default() };
    let keys = Keys::load_or_create(&settings).unwrap();
    let encoding =
        jsonwebtoken::EncodingKey::from_ed_pem(&std::fs::read(settings.private_key_path()).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sign = |aud: Option<serde_json::Value>| {
        let mut c = serde_json::json!({"sub": "x", "iat": now, "exp": now + 600, "jti": "j", "scopes": ["admin"]});
        if let Some(aud) = aud {
            c["aud"] = aud;
        }
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA), &c, &encoding).unwrap()
    };
    assert!(keys.verify(&sign(None)).is_ok(), "the control token must verify");
    for aud in [
        serde_json::json!([null]),
        serde_json::json!(5),
        serde_json::json!({}),
        serde_json::json!(null),
        serde_json::json!("geowebdns"),
        serde_json::json!(["geowebdns"]),
    ] {
        let e = keys.verify(&sign(Some(aud.clone()))).expect_err(&aud.to_string());
        assert_eq!(e.status(), 401, "{aud}: {e:?}");
    }
}
