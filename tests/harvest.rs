//! The harvester against real local HTTP servers standing in for Open311
//! endpoints (on loopback ports started here): a correct GeoReport v2 server
//! in JSON and XML with conditional GET, a slow one, one that returns
//! garbage, one with an endless body, one that fails with 500, and one that
//! redirects to a private address. Each outcome is checked in the stored
//! health and services, through the admin API and the public answers.
//! No test reaches the internet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::{call, get as http_get, writable, Backend};
use geowebdns::harvest::fetch::FetchPolicy;
use geowebdns::harvest::HarvestSettings;
use geowebdns::Settings;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BLOOMINGTON: &str = "us-place:1805860";
const AT_BLOOMINGTON: &str = "lat=39.1653&lon=-86.5264";

/// What the fake servers saw.
#[derive(Default)]
struct Seen {
    /// `jurisdiction_id` query values, by path.
    jurisdiction_ids: Vec<(String, Option<String>)>,
    /// Requests answered 304.
    not_modified: usize,
    /// Authorization or Cookie headers received (must stay empty).
    credentials: usize,
}

type Shared = Arc<Mutex<Seen>>;

const SERVICES_JSON: &str = r#"[
  {"service_code":"001","service_name":"Pothole","description":"Holes in the street","metadata":false,"type":"realtime","keywords":"road, street","group":"Streets"},
  {"service_code":"002","service_name":"Graffiti","metadata":"true","type":"batch","keywords":"paint","group":"Sanitation"},
  {"service_code":"bad"}
]"#;

const SERVICES_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<services>
  <service><service_code>10</service_code><service_name>Streetlight out</service_name><metadata>false</metadata><type>realtime</type><keywords>light, lamp</keywords><group>Lights</group></service>
</services>"#;

fn note(seen: &Shared, path: &str, headers: &HeaderMap, q: &HashMap<String, String>) {
    let mut s = seen.lock().unwrap();
    s.jurisdiction_ids.push((path.to_owned(), q.get("jurisdiction_id").cloned()));
    if headers.contains_key(header::AUTHORIZATION) || headers.contains_key(header::COOKIE) {
        s.credentials += 1;
    }
}

async fn good(State(seen): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    note(&seen, "good", &headers, &q);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some("\"list-1\"") {
        seen.lock().unwrap().not_modified += 1;
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, "\"list-1\"")]).into_response();
    }
    ([(header::CONTENT_TYPE, "application/json; charset=utf-8"), (header::ETAG, "\"list-1\"")], SERVICES_JSON)
        .into_response()
}

async fn xml(State(seen): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    note(&seen, "xml", &headers, &q);
    ([(header::CONTENT_TYPE, "text/xml")], SERVICES_XML).into_response()
}

async fn discovery() -> Response {
    let base = "http://127.0.0.1/unused/";
    Json(json!({"changeset": "2026-01-02T03:04:05Z", "contact": "x", "endpoints": [
        {"specification": "http://wiki.open311.org/GeoReport_v2", "url": base, "changeset": "2026-01-02T03:04:05Z", "type": "production", "formats": ["application/json"]}
    ]}))
    .into_response()
}

use axum::Json;

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(5)).await;
    ([(header::CONTENT_TYPE, "application/json")], "[]").into_response()
}

async fn garbage() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], "<html>{{{ not json").into_response()
}

async fn html() -> Response {
    ([(header::CONTENT_TYPE, "text/html")], "<html><body>Service list moved</body></html>").into_response()
}

async fn huge() -> Response {
    // 4 MiB where the harvester accepts 256 KiB.
    ([(header::CONTENT_TYPE, "application/json")], vec![b' '; 4 << 20]).into_response()
}

async fn bad_xml() -> Response {
    ([(header::CONTENT_TYPE, "application/xml")], "<services><service><service_code>1</service_code>").into_response()
}

async fn error500() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
}

async fn to_private() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "http://10.0.0.1/open311/v2/services.json")]).into_response()
}

/// Starts the fake Open311 servers on a loopback port; returns its base URL.
async fn fake_servers(seen: Shared) -> String {
    let app = Router::new()
        .route("/good/services.json", get(good))
        .route("/good/discovery.json", get(discovery))
        .route("/xml/services.xml", get(xml))
        .route("/slow/services.json", get(slow))
        .route("/garbage/services.json", get(garbage))
        .route("/html/services.json", get(html))
        .route("/huge/services.json", get(huge))
        .route("/error/services.json", get(error500))
        .route("/badxml/services.xml", get(bad_xml))
        .route("/private/services.json", get(to_private))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn settings(allow_loopback: bool) -> Settings {
    Settings {
        harvest: HarvestSettings {
            interval: None,
            policy: FetchPolicy {
                timeout: Duration::from_millis(800),
                max_bytes: 256 * 1024,
                allow_loopback,
                ..FetchPolicy::default()
            },
            ..HarvestSettings::default()
        },
        ..Settings::default()
    }
}

async fn register(w: &common::Writable, token: &str, url: &str, formats: &[&str], discovery: Option<String>) -> String {
    let body = json!({
        "specification": "http://wiki.open311.org/GeoReport_v2",
        "url": url,
        "type": "production",
        "formats": formats,
        "open311_jurisdiction_id": "bloomington.example",
        "discovery_url": discovery,
        "services": [{"service_code": "manual-1", "service_name": "Entered by hand"}, {"service_code": "001", "service_name": "Pothole (manual)"}],
    });
    let a = call(
        &w.state,
        "POST",
        &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"),
        Some(token),
        Some(&body.to_string()),
    )
    .await
    .expect(201);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn harvest(w: &common::Writable, token: &str, id: &str) -> Value {
    call(&w.state, "POST", &format!("/admin/v1/endpoints/{id}/harvest"), Some(token), None).await.expect(200).body
}

async fn a_correct_server_is_harvested_with_conditional_get(b: Backend) {
    let Some(w) = writable(b, settings(true)).await else { return };
    let seen = Shared::default();
    let base = fake_servers(seen.clone()).await;
    let admin = w.token("root", &["admin"]);
    let id = register(
        &w,
        &admin,
        &format!("{base}/good/"),
        &["application/json"],
        Some(format!("{base}/good/discovery.json")),
    )
    .await;

    let first = harvest(&w, &admin, &id).await;
    assert_eq!(first["report"]["outcome"], "ok", "{first}");
    assert_eq!(first["report"]["services_found"], 2, "the entry without a name is skipped: {first}");
    assert_eq!(first["report"]["services_changed"], true);
    assert!(!first["report"]["warnings"].as_array().unwrap().is_empty(), "the skipped entry is reported");
    let e = &first["endpoint"];
    assert_eq!(e["status"], "up");
    assert_eq!(e["http_status"], 200);
    assert_eq!(e["consecutive_failures"], 0);
    assert!(e["last_error"].is_null());
    assert!(e["latency_ms"].as_u64().is_some());
    assert_eq!(e["last_ok"], e["last_checked"]);
    assert_eq!(e["changeset"], "2026-01-02T03:04:05Z", "the discovery document's changeset is kept");
    let services: Vec<(String, String)> = e["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["service_code"].as_str().unwrap().to_owned(), s["source"].as_str().unwrap().to_owned()))
        .collect();
    // Manual services stay and win over the harvested service with the same code.
    assert_eq!(
        services,
        [("manual-1", "manual"), ("001", "manual"), ("002", "harvested")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let graffiti = &e["services"][2];
    assert_eq!((graffiti["metadata"].as_bool(), graffiti["type"].as_str()), (Some(true), Some("batch")));
    assert_eq!(seen.lock().unwrap().jurisdiction_ids[0], ("good".into(), Some("bloomington.example".into())));
    assert_eq!(seen.lock().unwrap().credentials, 0, "never sends credentials");

    // Visible to the public answers at once.
    let a = http_get(&w.state, &format!("/v1/services?{AT_BLOOMINGTON}&q=graffiti")).await.expect(200);
    assert_eq!(a.body["services"][0]["source"], "harvested");
    assert_eq!(a.body["services"][0]["endpoint"]["id"], id.as_str());

    // Again: the ETag is sent back, the server answers 304, nothing is rewritten.
    let version = first["endpoint"]["version"].as_i64().unwrap();
    let second = harvest(&w, &admin, &id).await;
    assert_eq!(second["report"]["outcome"], "not_modified", "{second}");
    assert_eq!(second["report"]["services_changed"], false);
    assert_eq!(second["endpoint"]["version"], version, "health alone is no registry edit");
    assert_eq!(second["endpoint"]["services"], first["endpoint"]["services"]);
    assert_eq!(seen.lock().unwrap().not_modified, 1);

    // The harvest is audited as the harvester's write; health updates are not.
    let audit =
        call(&w.state, "GET", &format!("/admin/v1/audit?jurisdiction={BLOOMINGTON}&limit=1000"), Some(&admin), None)
            .await
            .expect(200);
    let harvests: Vec<&Value> =
        audit.body["items"].as_array().unwrap().iter().filter(|a| a["action"] == "endpoint.harvest").collect();
    assert_eq!(harvests.len(), 1, "{}", audit.body);
    assert_eq!(harvests[0]["actor_sub"], "harvester");

    // Manual edits keep harvested services.
    call(
        &w.state,
        "PUT",
        &format!("/admin/v1/endpoints/{id}/services"),
        Some(&admin),
        Some(r#"[{"service_code":"m2","service_name":"Other"}]"#),
    )
    .await
    .expect(200);
    let e = call(&w.state, "GET", &format!("/admin/v1/endpoints/{id}"), Some(&admin), None).await.expect(200);
    let codes: Vec<&str> =
        e.body["services"].as_array().unwrap().iter().map(|s| s["service_code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["m2", "002"], "the harvested 001 was shadowed by the manual one");
    // An edit drops the validators, so the next harvest reads the whole list again.
    let third = harvest(&w, &admin, &id).await;
    assert_eq!(third["report"]["outcome"], "ok", "{third}");
    let codes: Vec<&str> =
        third["endpoint"]["services"].as_array().unwrap().iter().map(|s| s["service_code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["m2", "001", "002"]);
}

async fn an_xml_only_server_is_read_as_xml(b: Backend) {
    let Some(w) = writable(b, settings(true)).await else { return };
    let seen = Shared::default();
    let base = fake_servers(seen.clone()).await;
    let admin = w.token("root", &["admin"]);
    let id = register(&w, &admin, &format!("{base}/xml"), &["text/xml"], None).await;
    let r = harvest(&w, &admin, &id).await;
    assert_eq!(r["report"]["outcome"], "ok", "{r}");
    assert!(r["report"]["url"].as_str().unwrap().contains("/xml/services.xml?jurisdiction_id=bloomington.example"));
    let harvested: Vec<&Value> =
        r["endpoint"]["services"].as_array().unwrap().iter().filter(|s| s["source"] == "harvested").collect();
    assert_eq!(harvested.len(), 1);
    assert_eq!(harvested[0]["service_name"], "Streetlight out");
    assert_eq!(harvested[0]["keywords"], json!(["light", "lamp"]));
}

async fn bad_servers_are_recorded_as_failures(b: Backend) {
    let Some(w) = writable(b, settings(true)).await else { return };
    let seen = Shared::default();
    let base = fake_servers(seen.clone()).await;
    let admin = w.token("root", &["admin"]);
    for (path, status, error_contains) in [
        ("badxml", Some(200), "unusable service list"),
        ("slow", None, "timed out"),
        ("garbage", Some(200), "unusable service list"),
        ("html", Some(200), "unusable service list"),
        ("huge", None, "larger than"),
        ("error", Some(500), "500"),
        ("private", None, "10.0.0.1"),
    ] {
        let formats: &[&str] = if path == "badxml" { &["text/xml"] } else { &["application/json"] };
        let id = register(&w, &admin, &format!("{base}/{path}/"), formats, None).await;
        let started = std::time::Instant::now();
        let r = harvest(&w, &admin, &id).await;
        assert!(started.elapsed() < Duration::from_secs(4), "{path}: the timeout bounds every fetch");
        assert_eq!(r["report"]["outcome"], "failed", "{path}: {r}");
        let e = &r["endpoint"];
        assert_eq!(e["status"], "down", "{path}");
        assert_eq!(e["http_status"].as_u64().map(|s| s as u16), status, "{path}: {e}");
        assert_eq!(e["consecutive_failures"], 1, "{path}");
        let error = e["last_error"].as_str().unwrap();
        assert!(error.to_lowercase().contains(error_contains), "{path}: {error}");
        assert!(e["last_ok"].is_null(), "{path}");
        // Only the manual services: a failure never drops or adds anything.
        assert_eq!(e["services"].as_array().unwrap().len(), 2, "{path}");
        // A second failure counts up.
        let r = harvest(&w, &admin, &id).await;
        assert_eq!(r["endpoint"]["consecutive_failures"], 2, "{path}");
    }
    // The server kept answering throughout.
    http_get(&w.state, &format!("/v1/resolve?{AT_BLOOMINGTON}")).await.expect(200);
}

async fn loopback_is_refused_unless_enabled(b: Backend) {
    let Some(w) = writable(b, settings(false)).await else { return };
    let seen = Shared::default();
    let base = fake_servers(seen.clone()).await;
    let admin = w.token("root", &["admin"]);
    let id = register(&w, &admin, &format!("{base}/good/"), &["application/json"], None).await;
    let r = harvest(&w, &admin, &id).await;
    assert_eq!(r["report"]["outcome"], "failed");
    assert!(r["endpoint"]["last_error"].as_str().unwrap().contains("blocked"), "{r}");
    assert!(seen.lock().unwrap().jurisdiction_ids.is_empty(), "nothing reached the server");
    // The status flip is public (the index shows it), health details too.
    let a = http_get(&w.state, &format!("/v1/resolve?{AT_BLOOMINGTON}&tier=place")).await.expect(200);
    let ep =
        a.body["jurisdictions"][0]["endpoints"].as_array().unwrap().iter().find(|e| e["id"] == id.as_str()).cloned();
    assert_eq!(ep.unwrap()["status"], "down");
}

async fn harvest_route_respects_scopes(b: Backend) {
    let Some(w) = writable(b, settings(true)).await else { return };
    let admin = w.token("root", &["admin"]);
    let other = w.token("chicago", &["jurisdiction:us-place:1714000"]);
    let own = w.token("bloomington", &[&format!("jurisdiction:{BLOOMINGTON}")]);
    let id = register(&w, &admin, "http://127.0.0.1:9/nothing/", &["application/json"], None).await;
    call(&w.state, "POST", &format!("/admin/v1/endpoints/{id}/harvest"), Some(&other), None).await.problem(403, None);
    call(&w.state, "POST", &format!("/admin/v1/endpoints/{id}/harvest"), None, None).await.problem(401, None);
    call(&w.state, "POST", "/admin/v1/endpoints/nope/harvest", Some(&admin), None).await.problem(404, None);
    // Its own jurisdiction may: the refused connection is a recorded failure, not an error.
    let r = call(&w.state, "POST", &format!("/admin/v1/endpoints/{id}/harvest"), Some(&own), None).await.expect(200);
    assert_eq!(r.body["report"]["outcome"], "failed");
}

both_backends!(
    a_correct_server_is_harvested_with_conditional_get,
    an_xml_only_server_is_read_as_xml,
    bad_servers_are_recorded_as_failures,
    loopback_is_refused_unless_enabled,
    harvest_route_respects_scopes,
);

/// The background pass harvests every due endpoint, and only those. It runs
/// on a store of its own holding one jurisdiction, so that none of the real,
/// bundled endpoints is ever fetched.
#[tokio::test]
async fn the_background_pass_harvests_what_is_due() {
    use geowebdns::index::{load_snapshot, Snapshot};
    let dir = tempfile::tempdir().unwrap();
    let store =
        geowebdns::store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("h.db").display())).await.unwrap();
    store.migrate().await.unwrap();
    let mut s = settings(true);
    s.harvest.interval = Some(Duration::from_secs(3600));
    let keys_settings = geowebdns::auth::KeySettings { key_dir: dir.path().join("keys"), ..Default::default() };
    let keys = Arc::new(geowebdns::auth::Keys::load_or_create(&keys_settings).unwrap());
    let state = geowebdns::AppState::new(store.clone(), Arc::new(Snapshot::empty()), s).with_keys(keys.clone());
    let admin = keys.issue("root", &["admin".parse().unwrap()], Duration::from_secs(600)).unwrap().0;
    let feature = json!({"type": "Feature", "properties": {"id": "t:town", "name": "Town", "tier": "place"},
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}});
    call(&state, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&feature.to_string())).await.expect(201);
    let seen = Shared::default();
    let base = fake_servers(seen.clone()).await;
    for path in ["good", "error"] {
        let body = json!({"specification": "http://wiki.open311.org/GeoReport_v2", "url": format!("{base}/{path}/"), "type": "production", "formats": ["application/json"]});
        call(&state, "POST", "/admin/v1/jurisdictions/t:town/endpoints", Some(&admin), Some(&body.to_string()))
            .await
            .expect(201);
    }
    assert_eq!(geowebdns::harvest::run_once(&state).await.unwrap(), 2, "never-checked endpoints are due");
    assert_eq!(geowebdns::harvest::run_once(&state).await.unwrap(), 0, "nothing is due again within the interval");
    let snapshot = load_snapshot(&store).await.unwrap();
    let eps = &snapshot.get("t:town").unwrap().endpoints;
    let status: Vec<(&str, &str)> =
        eps.iter().map(|e| (e.url.rsplit('/').nth(1).unwrap(), e.status.as_str())).collect();
    assert!(status.contains(&("good", "up")) && status.contains(&("error", "down")), "{status:?}");
    // Backoff: the failing endpoint waits interval × 2^(n-1) after n failures.
    let failing = eps.iter().find(|e| e.status == "down").unwrap();
    let wait = geowebdns::harvest::wait_after(failing, &state.settings.harvest, Duration::from_secs(3600));
    assert_eq!(wait, Some(Duration::from_secs(3600)));
}
