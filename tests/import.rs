//! Importing files: the TIGER/Line shapefile, the invalid-geometry policies,
//! property mapping and parent derivation, through the library and the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geowebdns::import::{self, ImportError, ImportOptions, OnInvalid, PropertyMap};
use geowebdns::index;
use geowebdns::model::Tier;
use geowebdns::store::{self, Actor, DynStore};
use std::path::{Path, PathBuf};

async fn empty_store() -> DynStore {
    let s = store::connect("sqlite::memory:").await.unwrap();
    s.migrate().await.unwrap();
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const MIXED: &str = r#"{"type":"FeatureCollection","features":[
  {"type":"Feature","properties":{"id":"t:big","name":"Big","tier":"state"},
   "geometry":{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]}},
  {"type":"Feature","properties":{"id":"t:open","name":"Open ring","tier":"county"},
   "geometry":{"type":"Polygon","coordinates":[[[1,1],[3,1],[3,3],[1,3]]]}},
  {"type":"Feature","properties":{"id":"t:bowtie","name":"Bow tie","tier":"place"},
   "geometry":{"type":"Polygon","coordinates":[[[5,5],[7,7],[7,5],[5,7],[5,5]]]}},
  {"type":"Feature","properties":{"id":"t:nogeom","name":"No geometry","tier":"place"},"geometry":null},
  {"type":"Feature","properties":{"name":"No id","tier":"place"},
   "geometry":{"type":"Polygon","coordinates":[[[1,1],[2,1],[2,2],[1,1]]]}}
]}"#;

fn opts(on_invalid: OnInvalid) -> ImportOptions {
    ImportOptions { on_invalid, ..ImportOptions::default() }
}

#[tokio::test]
async fn repair_keeps_every_repairable_feature_and_reports_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "mixed.geojson", MIXED);
    let store = empty_store().await;
    let summary = import::import_file(&store, &path, &opts(OnInvalid::Repair), &Actor::local("test")).await.unwrap();
    assert_eq!(summary.read, 5);
    assert_eq!(summary.imported, 3, "{summary:?}");
    assert_eq!(summary.skipped, 2, "no geometry, no id");
    let about = |id: &str| summary.reports.iter().find(|r| r.id.as_deref() == Some(id)).cloned();
    assert_eq!(about("t:open").unwrap().action, "repaired");
    assert!(about("t:bowtie").unwrap().problem.contains("self-intersection"));
    assert_eq!(about("t:nogeom").unwrap().action, "skipped");
    assert!(summary.reports.iter().any(|r| r.index == 4 && r.id.is_none() && r.action == "skipped"));
    // Parents are derived: the county and the place sit inside the state.
    let snap = index::load_snapshot(&store).await.unwrap();
    assert_eq!(snap.get("t:open").unwrap().record.parent.as_deref(), Some("t:big"));
    assert_eq!(snap.get("t:bowtie").unwrap().record.parent.as_deref(), Some("t:big"));
    assert_eq!(snap.get("t:big").unwrap().record.parent, None);
    // The bow tie is resolvable by the even-odd rule.
    let ids: Vec<_> = snap.resolve(5.5, 6.0).iter().map(|e| e.record.id.clone()).collect();
    assert_eq!(ids, ["t:big", "t:bowtie"]);
}

#[tokio::test]
async fn skip_leaves_out_invalid_features() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "mixed.geojson", MIXED);
    let store = empty_store().await;
    let summary = import::import_file(&store, &path, &opts(OnInvalid::Skip), &Actor::local("test")).await.unwrap();
    assert_eq!(summary.imported, 1, "{summary:?}");
    assert_eq!(summary.skipped, 4);
    assert_eq!(store.count_jurisdictions().await.unwrap(), 1);
}

#[tokio::test]
async fn abort_writes_nothing_and_names_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "mixed.geojson", MIXED);
    let store = empty_store().await;
    let err = import::import_file(&store, &path, &opts(OnInvalid::Abort), &Actor::local("test")).await.unwrap_err();
    match err {
        ImportError::Aborted(r) => {
            assert_eq!(r.index, 1);
            assert_eq!(r.id.as_deref(), Some("t:open"));
            assert!(r.problem.contains("not closed"), "{}", r.problem);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.count_jurisdictions().await.unwrap(), 0);
    assert_eq!(store.latest_seq().await.unwrap(), 0);
}

#[tokio::test]
async fn explicit_parent_property_overrides_derivation() {
    let dir = tempfile::tempdir().unwrap();
    let text = MIXED.replace(
        r#""name":"Open ring","tier":"county""#,
        r#""name":"Open ring","tier":"county","parent":"elsewhere:1""#,
    );
    let path = write(dir.path(), "mixed.geojson", &text);
    let store = empty_store().await;
    import::import_file(&store, &path, &opts(OnInvalid::Repair), &Actor::local("test")).await.unwrap();
    let snap = index::load_snapshot(&store).await.unwrap();
    assert_eq!(snap.get("t:open").unwrap().record.parent.as_deref(), Some("elsewhere:1"));
}

#[tokio::test]
async fn tiger_shapefile_imports_with_property_mapping() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tl_2019_18_place.zip");
    let store = empty_store().await;
    let o = ImportOptions {
        on_invalid: OnInvalid::Repair,
        map: PropertyMap {
            id: "GEOID".into(),
            id_prefix: "us-place:".into(),
            name: "NAME".into(),
            default_tier: Some(Tier::Place),
            ..PropertyMap::default()
        },
        source: Some("US Census TIGER/Line 2019".into()),
        license: Some("Public domain".into()),
        progress: false,
        max_vertices: 0,
    };
    let summary = import::import_file(&store, &path, &o, &Actor::local("test")).await.unwrap();
    assert_eq!(summary.read, 679);
    assert_eq!(summary.imported, 679, "{:?}", summary.reports);
    let snap = index::load_snapshot(&store).await.unwrap();
    let b = snap.get("us-place:1805860").unwrap();
    assert_eq!(b.record.name, "Bloomington");
    assert_eq!(b.record.tier, Tier::Place);
    assert_eq!(b.record.external_ids.get("geoid").map(String::as_str), Some("1805860"));
    assert_eq!(b.record.source.as_deref(), Some("US Census TIGER/Line 2019"));
    let ids: Vec<_> = snap.resolve(-86.5264, 39.1653).iter().map(|e| e.record.id.clone()).collect();
    assert_eq!(ids, ["us-place:1805860"]);
}

#[tokio::test]
async fn cli_import_reports_per_feature_and_fails_on_abort() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "mixed.geojson", MIXED);
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let bin = env!("CARGO_BIN_EXE_geowebdns");
    let out = std::process::Command::new(bin)
        .args(["--database-url", &url, "import", path.to_str().unwrap(), "--on-invalid", "abort"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("feature #1 (t:open)") && err.contains("not closed"), "{err}");
    let out = std::process::Command::new(bin)
        .args(["--database-url", &url, "import", path.to_str().unwrap(), "--on-invalid", "skip"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("feature #2 (t:bowtie)") && err.contains("[skipped]"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 1"));
    let out = std::process::Command::new(bin)
        .args(["--database-url", &url, "resolve", "--lat", "1", "--lon", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jurisdictions"][0]["id"], "t:big");
}

#[tokio::test]
async fn bundled_data_is_imported_whole() {
    let fixture_store = empty_store().await;
    let summary = import::bundled::import_bundled(&fixture_store).await.unwrap();
    assert_eq!(summary.read, 8492);
    assert_eq!(
        summary.imported,
        8492,
        "every bundled feature is kept: {:?}",
        summary.reports.iter().filter(|r| r.action != "repaired").collect::<Vec<_>>()
    );
    assert_eq!(summary.endpoints, geowebdns::import::bundled::endpoints().unwrap().len());
    // Every bundled endpoint is attached to a bundled jurisdiction (a foreign key would have refused it otherwise).
    let snap = index::load_snapshot(&fixture_store).await.unwrap();
    for e in geowebdns::import::bundled::endpoints().unwrap() {
        assert!(snap.get(&e.jurisdiction_id).is_some(), "{}", e.id);
    }
    // Falls Church, VA collapsed to a line in the 1:5m data: kept, and a point on its outline resolves to it.
    let fc = snap.get("us-county:51610").expect("Falls Church kept");
    let c = fc.boundary().0[0].exterior().0[0];
    assert!(snap.resolve(c.x, c.y).iter().any(|e| e.record.id == "us-county:51610"));
}
