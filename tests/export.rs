//! `geowebdns export` / `geowebdns import` round-trip the whole registry
//! between backends (SQLite -> PostgreSQL, SQLite -> SQLite), through the real
//! binary; a malformed export is refused whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use geowebdns::api::params::Location;
use geowebdns::export::DumpError;
use geowebdns::import::{self, ImportError};
use geowebdns::index;
use geowebdns::model::{Endpoint, EndpointType, Jurisdiction, Service, Tier, GEOREPORT_V2};
use geowebdns::store::{self, Actor, DynStore, StoredJurisdiction};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_geowebdns");

/// Points whose answers must match on both sides: Bloomington, Manhattan, London.
const POINTS: &[(f64, f64)] = &[(39.1653, -86.5264), (40.7549, -73.9840), (51.5007, -0.1246)];

/// A boundary stored with unusual (but valid) formatting, to check it comes back byte for byte.
const ODD_BOUNDARY: &str = r#"{ "type": "Polygon", "coordinates": [ [ [-86.60, 39.10], [-86.40, 39.10], [-86.40, 39.30], [-86.60, 39.10] ] ] }"#;

/// The source registry: the bundled data plus an endpoint with two services and a
/// jurisdiction with an explicit parent, in a SQLite file, exported (gzipped) once.
struct Source {
    _dir: tempfile::TempDir,
    url: String,
    export: PathBuf,
}

static SOURCE: OnceLock<Source> = OnceLock::new();

fn source() -> &'static Source {
    SOURCE.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(build_source())
        })
        .join()
        .unwrap()
    })
}

async fn build_source() -> Source {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("source.db").display());
    let store = geowebdns::cli::prepare_store(&url, true).await.unwrap();
    let actor = Actor::local("test");
    let now = store::now_rfc3339();
    let district = Jurisdiction {
        id: "test:bloomington-district".into(),
        name: "Test district".into(),
        tier: Tier::SpecialDistrict,
        parent: Some("us-state:18".into()),
        parent_override: true,
        ocd_id: Some("ocd-division/country:us/state:in/test:1".into()),
        external_ids: [("code".to_owned(), "T1".to_owned())].into(),
        source: Some("hand drawn".into()),
        license: Some("CC0".into()),
        area_km2: geowebdns::geometry::area_km2(&geowebdns::geometry::parse_stored(ODD_BOUNDARY).unwrap()),
        created_at: now.clone(),
        updated_at: now.clone(),
        version: 1,
    };
    store
        .create_jurisdiction(&StoredJurisdiction { record: district, boundary: ODD_BOUNDARY.into() }, &actor)
        .await
        .unwrap();
    let service = |code: &str, name: &str| Service {
        service_code: code.into(),
        service_name: name.into(),
        description: Some(format!("{name} (test)")),
        metadata: code == "002",
        kind: "realtime".into(),
        keywords: vec!["test".into(), code.into()],
        group: Some("Streets".into()),
        source: geowebdns::model::ServiceSource::Manual,
    };
    let endpoint = Endpoint {
        id: "test:bloomington-extra".into(),
        jurisdiction_id: "us-place:1805860".into(),
        specification: GEOREPORT_V2.into(),
        url: "https://example.org/open311/v2/".into(),
        kind: EndpointType::Test,
        formats: vec!["application/json".into()],
        open311_jurisdiction_id: Some("example.org".into()),
        key_service: None,
        discovery_url: Some("https://example.org/open311/discovery.json".into()),
        docs_url: Some("https://example.org/docs".into()),
        terms_url: None,
        contact: Some("ops@example.org".into()),
        changeset: Some("2026-01-01T00:00:00Z".into()),
        last_checked: Some("2026-02-01T00:00:00Z".into()),
        last_ok: Some("2026-02-01T00:00:00Z".into()),
        status: "unknown".into(),
        created_at: now.clone(),
        updated_at: now,
        version: 1,
        health: geowebdns::model::Health::default(),
        services: vec![service("001", "Pothole"), service("002", "Graffiti")],
    };
    store.create_endpoint(&endpoint, &actor).await.unwrap();
    let export = dir.path().join("registry.geojson.gz");
    run_ok(&url, &["export", "--output", export.to_str().unwrap()]);
    Source { _dir: dir, url, export }
}

/// Runs the binary against `url`; asserts success; returns stdout.
fn run_ok(url: &str, args: &[&str]) -> String {
    let out = Command::new(BIN).args(["--database-url", url]).args(args).output().unwrap();
    assert!(out.status.success(), "geowebdns {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Parses an export (plain or gzipped) and removes what legitimately differs
/// between a registry and its restored copy: the export member and the stamps.
fn normalized_export(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out).unwrap();
        out
    } else {
        bytes
    };
    let mut v: Value = serde_json::from_slice(&text).unwrap();
    let header = v.as_object_mut().unwrap().remove("geowebdns_export").expect("the export member");
    assert_eq!(header["version"], 1);
    strip_stamps(&mut v);
    v
}

/// Removes `created_at`, `updated_at`, `exported_at`, `seq`, `version` and `index_version` everywhere.
fn strip_stamps(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for key in ["created_at", "updated_at", "exported_at", "seq", "version", "index_version", "last_updated"] {
                map.remove(key);
            }
            map.values_mut().for_each(strip_stamps);
        }
        Value::Array(list) => list.iter_mut().for_each(strip_stamps),
        _ => {}
    }
}

async fn open(url: &str) -> DynStore {
    geowebdns::cli::open_store(url).await.unwrap()
}

/// Every record of `a` and `b`, boundaries byte for byte, parents and
/// endpoints exactly, stamps aside; and the same resolve answers.
async fn assert_same_registry(a: &DynStore, b: &DynStore) {
    let (ja, jb) = (a.load_jurisdictions().await.unwrap(), b.load_jurisdictions().await.unwrap());
    assert_eq!(ja.len(), jb.len());
    for (x, y) in ja.iter().zip(&jb) {
        assert_eq!(x.record.id, y.record.id);
        assert!(x.boundary == y.boundary, "boundary of {} differs", x.record.id);
        let strip = |r: &Jurisdiction| Jurisdiction {
            created_at: String::new(),
            updated_at: String::new(),
            version: 0,
            ..r.clone()
        };
        assert_eq!(strip(&x.record), strip(&y.record));
        assert_eq!(x.record.parent_override, y.record.parent_override, "{}", x.record.id);
    }
    let (ea, eb) = (a.load_endpoints().await.unwrap(), b.load_endpoints().await.unwrap());
    let strip =
        |e: &Endpoint| Endpoint { created_at: String::new(), updated_at: String::new(), version: 0, ..e.clone() };
    assert_eq!(ea.iter().map(strip).collect::<Vec<_>>(), eb.iter().map(strip).collect::<Vec<_>>());

    let (sa, sb) = (index::load_snapshot(a).await.unwrap(), index::load_snapshot(b).await.unwrap());
    for &(lat, lon) in POINTS {
        let answer = |s: &index::Snapshot| {
            let body = geowebdns::api::resolve::answer_one(s, Location { lat, lon }, None).unwrap();
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            strip_stamps(&mut v);
            v
        };
        let (x, y) = (answer(&sa), answer(&sb));
        assert!(!x["jurisdictions"].as_array().unwrap().is_empty(), "{lat},{lon} resolves to something");
        assert_eq!(x, y, "answers for {lat},{lon} differ");
    }
}

/// Checks the pieces added on top of the bundled data survived.
async fn assert_additions_kept(store: &DynStore) {
    let district = store.get_jurisdiction("test:bloomington-district").await.unwrap().unwrap();
    assert_eq!(district.boundary, ODD_BOUNDARY, "the boundary text is kept byte for byte");
    assert!(district.record.parent_override);
    assert_eq!(district.record.parent.as_deref(), Some("us-state:18"));
    let e = store.get_endpoint("test:bloomington-extra").await.unwrap().unwrap();
    assert_eq!(e.services.len(), 2);
    assert_eq!(e.services[1].service_code, "002");
    assert!(e.services[1].metadata);
    assert_eq!(e.last_checked.as_deref(), Some("2026-02-01T00:00:00Z"));
    // Parents computed in the source (not explicit) come back as they were, not recomputed.
    let bloomington = store.get_jurisdiction("us-place:1805860").await.unwrap().unwrap();
    assert_eq!(bloomington.record.parent.as_deref(), Some("us-county:18105"));
    assert!(!bloomington.record.parent_override);
}

/// Restores the source export into `target_url` with the binary, exports it
/// again, and checks both exports and both registries match.
async fn round_trip(target_url: &str, dir: &Path) {
    let src = source();
    let out = run_ok(target_url, &["import", src.export.to_str().unwrap()]);
    assert!(out.contains("restored export") && out.contains("parents kept as exported"), "{out}");
    let again = dir.join("again.geojson");
    run_ok(target_url, &["export", "--output", again.to_str().unwrap()]);
    assert!(normalized_export(&src.export) == normalized_export(&again), "the two exports differ");

    let (a, b) = (open(&src.url).await, open(target_url).await);
    assert_same_registry(&a, &b).await;
    assert_additions_kept(&b).await;
    // The export holds the whole registry, endpoints and services included.
    let v = normalized_export(&again);
    let features = v["features"].as_array().unwrap();
    assert_eq!(features.len() as i64, a.count_jurisdictions().await.unwrap());
    let ids: Vec<&str> = features.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "features are ordered by id");
    let bloomington = features.iter().find(|f| f["id"] == "us-place:1805860").unwrap();
    assert_eq!(bloomington["properties"]["endpoints"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn sqlite_to_postgres_round_trip() {
    let Some(pg) = common::pg::create_pg_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    round_trip(&pg.url, dir.path()).await;
}

#[tokio::test]
async fn sqlite_to_sqlite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("target.db").display());
    round_trip(&url, dir.path()).await;
}

#[tokio::test]
async fn export_to_stdout_is_the_same_document() {
    let src = source();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stdout.geojson");
    std::fs::write(&path, run_ok(&src.url, &["export"])).unwrap();
    assert!(normalized_export(&path) == normalized_export(&src.export));
}

const MALFORMED: &str = r#"{"type":"FeatureCollection","geowebdns_export":{"version":1,"seq":3},"features":[
 {"type":"Feature","id":"t:ok","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]},
  "properties":{"id":"t:ok","name":"Fine","tier":"state","parent":null,"parent_override":false,"endpoints":[]}},
 {"type":"Feature","id":"t:bad-endpoint","geometry":{"type":"Polygon","coordinates":[[[2,2],[3,2],[3,3],[2,2]]]},
  "properties":{"id":"t:bad-endpoint","name":"Bad endpoint","tier":"county","parent":"t:ok","parent_override":true,
   "endpoints":[{"id":"e:1","jurisdiction_id":"t:bad-endpoint","specification":"x","url":"https://e.example/",
     "type":"bogus","formats":[],"status":"unknown","created_at":"2026-01-01T00:00:00Z",
     "updated_at":"2026-01-01T00:00:00Z","version":1,"services":[]}]}},
 {"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[4,4],[5,4],[5,5],[4,4]]]},
  "properties":{"name":"No id","tier":"place","endpoints":[]}}
]}"#;

#[tokio::test]
async fn malformed_export_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.geojson");
    std::fs::write(&path, MALFORMED).unwrap();
    let url = format!("sqlite://{}", dir.path().join("target.db").display());
    let out = Command::new(BIN).args(["--database-url", &url, "import", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid geowebdns export") && err.contains("nothing was written"), "{err}");
    assert!(err.contains("feature #1 (t:bad-endpoint): endpoint #0 (e:1)") && err.contains("bogus"), "{err}");
    assert!(err.contains("feature #2: no `id` property"), "{err}");
    let store = open(&url).await;
    assert_eq!(store.count_jurisdictions().await.unwrap(), 0, "nothing was written");
    assert_eq!(store.latest_seq().await.unwrap(), 0);

    // The library says the same, with every problem listed.
    let err = import::import_export_dump(&store, MALFORMED.as_bytes().to_vec(), "bad.geojson", &Actor::local("t"))
        .await
        .unwrap_err();
    match err {
        ImportError::Dump(DumpError::Invalid { problems, total, .. }) => assert_eq!(total, 2, "{problems:?}"),
        other => panic!("expected an invalid dump, got {other}"),
    }
    assert_eq!(store.count_jurisdictions().await.unwrap(), 0);

    // A parent that is neither in the export nor in the store is refused too.
    let orphan = MALFORMED
        .replace(r#""parent":"t:ok""#, r#""parent":"t:missing""#)
        .replace(r#""type":"bogus""#, r#""type":"test""#);
    let orphan = orphan.replace(r#""properties":{"name":"No id""#, r#""properties":{"id":"t:third","name":"No id""#);
    let err = import::import_export_dump(&store, orphan.clone().into_bytes(), "orphan.geojson", &Actor::local("t"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("parent `t:missing` is neither in the export nor in the store"), "{err}");
    assert_eq!(store.count_jurisdictions().await.unwrap(), 0);

    // Fixed, the same dump restores exactly: explicit parent kept, endpoint attached.
    let fixed = orphan.replace("t:missing", "t:ok");
    let summary =
        import::import_export_dump(&store, fixed.into_bytes(), "fixed.geojson", &Actor::local("t")).await.unwrap();
    assert_eq!((summary.jurisdictions, summary.endpoints, summary.source_seq), (3, 1, Some(3)));
    let child = store.get_jurisdiction("t:bad-endpoint").await.unwrap().unwrap();
    assert_eq!(child.record.parent.as_deref(), Some("t:ok"));
    assert!(child.record.parent_override);
    assert_eq!(child.boundary, r#"{"type":"Polygon","coordinates":[[[2,2],[3,2],[3,3],[2,2]]]}"#);
    // t:third sits in no higher tier's boundary and was given no parent: it stays without one.
    assert_eq!(store.get_jurisdiction("t:third").await.unwrap().unwrap().record.parent, None);
}

#[tokio::test]
async fn ordinary_geojson_is_still_imported_with_derived_parents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.geojson");
    std::fs::write(
        &path,
        r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","properties":{"id":"t:big","name":"Big","tier":"state"},
           "geometry":{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]}},
          {"type":"Feature","properties":{"id":"t:small","name":"Small","tier":"place"},
           "geometry":{"type":"Polygon","coordinates":[[[1,1],[2,1],[2,2],[1,2],[1,1]]]}}]}"#,
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("plain.db").display());
    let out = run_ok(&url, &["import", path.to_str().unwrap()]);
    assert!(out.contains("imported 2") && out.contains("parents set 1"), "{out}");
    let store = open(&url).await;
    assert_eq!(store.get_jurisdiction("t:small").await.unwrap().unwrap().record.parent.as_deref(), Some("t:big"));
}
