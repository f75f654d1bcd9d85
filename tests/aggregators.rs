//! The aggregator routes through the real router, on the bundled real data:
//! the merged service list, Service Discovery, near misses, HTTP caching and
//! the change feed (with a mirror rebuilt from the feed alone).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{call, call_with, get, state_on, writable, Backend};
use geowebdns::Settings;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const BLOOMINGTON: &str = "us-place:1805860";
const MONROE_COUNTY: &str = "us-county:18105";
const INDIANA: &str = "us-state:18";
const AT_BLOOMINGTON: &str = "lat=39.1653&lon=-86.5264";

/// Registers a test endpoint (not real: `example.org`) with services on a jurisdiction.
async fn register(w: &common::Writable, token: &str, jurisdiction: &str, kind: &str, services: Value) -> String {
    let body = json!({
        "specification": "http://wiki.open311.org/GeoReport_v2",
        "url": format!("https://{}.example.org/open311/v2/", jurisdiction.replace(':', "-")),
        "type": kind,
        "formats": ["application/json"],
        "open311_jurisdiction_id": format!("{jurisdiction}.example.org"),
        "contact": format!("311 desk of {jurisdiction}"),
        "services": services,
    });
    let a = call(
        &w.state,
        "POST",
        &format!("/admin/v1/jurisdictions/{jurisdiction}/endpoints"),
        Some(token),
        Some(&body.to_string()),
    )
    .await
    .expect(201);
    a.body["id"].as_str().unwrap().to_owned()
}

fn svc(code: &str, name: &str, group: &str, keywords: &str) -> Value {
    json!({"service_code": code, "service_name": name, "description": format!("{name} reports"), "group": group, "keywords": keywords})
}

async fn services_merge_every_tier_with_provenance(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let admin = w.token("root", &["admin"]);
    let county = register(
        &w,
        &admin,
        MONROE_COUNTY,
        "production",
        json!([svc("C1", "Dead animal", "Roads", "carcass"), svc("C2", "Weeds", "Parks", "mowing")]),
    )
    .await;
    let state =
        register(&w, &admin, INDIANA, "production", json!([svc("S1", "Pothole on a state road", "Roads", "")])).await;
    let city_test = register(&w, &admin, BLOOMINGTON, "test", json!([svc("T1", "Test pothole", "Roads", "")])).await;
    let s = &w.state;

    let a = get(s, &format!("/v1/services?{AT_BLOOMINGTON}")).await.expect(200);
    let items = a.body["services"].as_array().unwrap();
    let codes: Vec<&str> = items.iter().map(|i| i["service_code"].as_str().unwrap()).collect();
    // Tier order (state before county), then the server's order; test endpoints left out by default.
    assert_eq!(codes, ["S1", "C1", "C2"], "{}", a.body);
    assert_eq!(a.body["count"], 3);
    let c1 = &items[1];
    assert_eq!(c1["jurisdiction"]["id"], MONROE_COUNTY);
    assert_eq!(c1["jurisdiction"]["tier"], "county");
    assert_eq!(c1["jurisdiction"]["match"], "exact");
    assert_eq!(c1["endpoint"]["id"], county.as_str());
    assert_eq!(c1["endpoint"]["jurisdiction_id"], format!("{MONROE_COUNTY}.example.org"));
    assert!(c1["endpoint"]["url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(c1["keywords"], json!(["carcass"]));
    assert_eq!(items[0]["endpoint"]["id"], state.as_str());
    assert!(a.body["expires"].as_str().unwrap().ends_with('Z'));

    // Filters.
    let only = |q: &str| {
        let q = q.to_owned();
        async move {
            let a = get(s, &format!("/v1/services?{AT_BLOOMINGTON}&{q}")).await.expect(200);
            a.body["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["service_code"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(only("q=POTHOLE").await, ["S1"]);
    assert_eq!(only("q=mowing").await, ["C2"], "keywords are searched");
    assert_eq!(only("q=animal%20reports").await, ["C1"], "descriptions are searched");
    assert_eq!(only("group=roads").await, ["S1", "C1"]);
    assert_eq!(only("tier=county").await, ["C1", "C2"]);
    assert_eq!(only("type=test").await, ["T1"]);
    assert_eq!(only("type=all&group=Roads").await, ["S1", "C1", "T1"]);
    let t1 = get(s, &format!("/v1/services?{AT_BLOOMINGTON}&type=test")).await.expect(200);
    assert_eq!(t1.body["services"][0]["endpoint"]["id"], city_test.as_str());

    // Elsewhere in Indiana only the state's service applies.
    let a = get(s, "/v1/services?lat=39.7684&lon=-86.1581").await.expect(200);
    assert_eq!(a.body["services"].as_array().unwrap().len(), 1);

    // Bad input names the parameter.
    get(s, &format!("/v1/services?{AT_BLOOMINGTON}&type=staging")).await.problem(400, Some("type"));
    get(s, "/v1/services?lat=99&lon=0").await.problem(400, Some("lat"));
    get(s, &format!("/v1/services?{AT_BLOOMINGTON}&group=a&group=b")).await.problem(400, Some("group"));
}

async fn discovery_lists_every_endpoint_serving_the_point(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let admin = w.token("root", &["admin"]);
    register(&w, &admin, MONROE_COUNTY, "production", json!([])).await;
    let s = &w.state;
    let a = get(s, &format!("/discovery.json?{AT_BLOOMINGTON}")).await.expect(200);
    let endpoints = a.body["endpoints"].as_array().unwrap();
    // The real, bundled Bloomington server and the county's test registration.
    let urls: Vec<&str> = endpoints.iter().map(|e| e["url"].as_str().unwrap()).collect();
    assert!(urls.iter().any(|u| u.starts_with("https://bloomington.in.gov/crm/open311/v2")), "{urls:?}");
    assert!(urls.iter().any(|u| u.contains("us-county-18105.example.org")), "{urls:?}");
    // County before city: tier order.
    assert_eq!(endpoints[0]["jurisdiction"]["id"], MONROE_COUNTY);
    for e in endpoints {
        for field in ["specification", "url", "changeset", "type"] {
            assert!(e[field].is_string(), "{field} in {e}");
        }
        assert!(e["formats"].is_array());
    }
    assert!(a.body["changeset"].is_string());
    assert!(a.body["contact"].as_str().unwrap().contains("see each endpoint's contact"), "{}", a.body);
    let prod = get(s, &format!("/discovery.json?{AT_BLOOMINGTON}&type=production")).await.expect(200);
    assert!(prod.body["endpoints"].as_array().unwrap().iter().all(|e| e["type"] == "production"));

    let x = get(s, &format!("/discovery.xml?{AT_BLOOMINGTON}")).await.expect(200);
    assert!(x.header("content-type").starts_with("application/xml"));
    let text = String::from_utf8(x.raw.clone()).unwrap();
    assert!(text.starts_with("<?xml"), "{text}");
    assert_eq!(text.matches("<endpoint>").count(), endpoints.len(), "{text}");
    assert!(text.contains("<format>application/json</format>"), "{text}");
    // Open ocean: a valid, empty document.
    let a = get(s, "/discovery.json?lat=30&lon=-40").await.expect(200);
    assert_eq!(a.body["endpoints"], json!([]));
    get(s, "/discovery.json?lat=30").await.problem(400, Some("lon"));
}

async fn answers_are_cached_by_the_records_they_are_made_of(b: Backend) {
    let Some(w) = writable(b, Settings { cache_max_age: 17, ..Settings::default() }).await else { return };
    let admin = w.token("root", &["admin"]);
    let s = &w.state;
    let uri = format!("/v1/resolve?{AT_BLOOMINGTON}");
    let first = get(s, &uri).await.expect(200);
    let etag = first.header("etag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(first.header("cache-control"), "public, max-age=17");
    let expires = first.body["expires"].as_str().unwrap();
    assert!(expires > geowebdns::store::now_rfc3339().as_str(), "{expires}");
    for j in first.body["jurisdictions"].as_array().unwrap() {
        assert!(j["last_updated"].is_string(), "{j}");
        for e in j["endpoints"].as_array().unwrap() {
            assert!(e["last_updated"].is_string(), "{e}");
        }
    }
    // Same answer: 304 with no body, same tag.
    let again = call_with(s, "GET", &uri, None, None, &[("if-none-match", &etag)]).await.expect(304);
    assert!(again.raw.is_empty());
    assert_eq!(again.header("etag"), etag);
    assert_eq!(again.header("cache-control"), "public, max-age=17");
    call_with(s, "GET", &uri, None, None, &[("if-none-match", "W/\"other\"")]).await.expect(200);

    // A write elsewhere (Chicago) leaves the tag of this answer alone...
    register(&w, &admin, "us-place:1714000", "test", json!([])).await;
    call_with(s, "GET", &uri, None, None, &[("if-none-match", &etag)]).await.expect(304);
    // ...a write to a jurisdiction in the answer changes it.
    register(&w, &admin, MONROE_COUNTY, "test", json!([])).await;
    let changed = call_with(s, "GET", &uri, None, None, &[("if-none-match", &etag)]).await.expect(200);
    assert_ne!(changed.header("etag"), etag);

    // Every public GET route honours If-None-Match.
    for uri in [
        format!("/v1/services?{AT_BLOOMINGTON}"),
        format!("/discovery.json?{AT_BLOOMINGTON}"),
        format!("/discovery.xml?{AT_BLOOMINGTON}"),
        format!("/v1/jurisdictions/{BLOOMINGTON}"),
        format!("/v1/jurisdictions/{BLOOMINGTON}/boundary"),
        "/v1/jurisdictions?tier=state".to_owned(),
        "/v1/changes?since=0&limit=5".to_owned(),
    ] {
        let a = get(s, &uri).await.expect(200);
        let tag = a.header("etag").to_owned();
        assert!(!tag.is_empty(), "{uri}");
        call_with(s, "GET", &uri, None, None, &[("if-none-match", &tag)]).await.expect(304);
    }
}

async fn within_returns_near_misses_with_their_distance(b: Backend) {
    let Some(s) = state_on(b, Settings { max_within_m: 5_000.0, ..Settings::default() }).await else { return };
    let s = &s.state;
    // Pier 39, San Francisco: inside the full-resolution TIGER city (whose limits run
    // into the bay), but some 380 m off the 1:10m county, state and country outlines.
    let pier = "lat=37.8087&lon=-122.4098";
    let exact = get(s, &format!("/v1/resolve?{pier}")).await.expect(200);
    assert_eq!(exact.ids(), ["us-place:0667000"]);
    let a = get(s, &format!("/v1/resolve?{pier}&within=2000")).await.expect(200);
    let js = a.body["jurisdictions"].as_array().unwrap();
    let ids: Vec<&str> = js.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["us-place:0667000", "country:USA", "us-state:06", "us-county:06075"]);
    let county = &js[3];
    assert_eq!(county["match"], "near");
    let d = county["distance_m"].as_f64().unwrap();
    assert!(d > 300.0 && d <= 500.0, "{d}");
    // Oracle: no boundary vertex is closer than the reported distance (less a
    // centimetre), and the nearest vertex is at most one edge length farther.
    let boundary = get(s, "/v1/jurisdictions/us-county:06075/boundary").await.expect(200);
    let geom: geojson::Geometry = serde_json::from_value(boundary.body["geometry"].clone()).unwrap();
    let geom: geo::Geometry<f64> = geom.try_into().unwrap();
    let here = geo::Point::new(-122.4098, 37.8087);
    let nearest_vertex = geo::CoordsIter::coords_iter(&geom)
        .map(|c| geo::Distance::distance(&geo::Geodesic, here, geo::Point::from(c)))
        .fold(f64::INFINITY, f64::min);
    assert!(d <= nearest_vertex + 0.01 && nearest_vertex - d < 5_000.0, "{d} vs vertex {nearest_vertex}");
    // Navy Pier, Chicago: the end of the pier is outside even the city, by about 200 m.
    let navy = get(s, "/v1/resolve?lat=41.8919&lon=-87.5960&within=1000&tier=place").await.expect(200);
    assert_eq!(navy.ids(), ["us-place:1714000"]);
    assert_eq!(navy.body["jurisdictions"][0]["match"], "near");
    let d_navy = navy.body["jurisdictions"][0]["distance_m"].as_f64().unwrap();
    assert!(d_navy > 100.0 && d_navy < 400.0, "{d_navy}");
    // Covering jurisdictions come first and are marked exact.
    for j in js.iter().take_while(|j| j["match"] == "exact") {
        assert!(exact.ids().contains(&j["id"].as_str().unwrap().to_owned()));
        assert_eq!(j["distance_m"], 0.0);
    }
    assert_eq!(js.iter().filter(|j| j["match"] == "exact").count(), exact.ids().len());
    // Near misses are ordered by distance.
    let near: Vec<f64> =
        js.iter().filter(|j| j["match"] == "near").map(|j| j["distance_m"].as_f64().unwrap()).collect();
    assert!(near.windows(2).all(|w| w[0] <= w[1]), "{near:?}");
    // A radius shorter than the miss finds nothing near.
    let tight = get(s, &format!("/v1/resolve?{pier}&within={}", (d / 2.0).floor())).await.expect(200);
    assert_eq!(tight.ids(), ["us-place:0667000"]);
    // The services and discovery routes take the same parameter.
    let disc = get(s, &format!("/discovery.json?{pier}&within=2000")).await.expect(200);
    assert!(disc.body["endpoints"].is_array());
    get(s, &format!("/v1/services?{pier}&within=2000")).await.expect(200);
    // The cap and bad values are refused, naming the parameter.
    get(s, &format!("/v1/resolve?{pier}&within=5001")).await.problem(400, Some("within"));
    get(s, &format!("/v1/resolve?{pier}&within=-1")).await.problem(400, Some("within"));
    get(s, &format!("/v1/resolve?{pier}&within=abc")).await.problem(400, Some("within"));
    get(s, &format!("/v1/resolve?{pier}&nearest=maybe")).await.problem(400, Some("nearest"));
}

async fn nearest_finds_the_closest_jurisdiction_of_each_uncovered_tier(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let s = &s.state;
    // At sea, about 20 km east of Nantucket: no jurisdiction covers the point.
    let sea = "lat=41.28&lon=-69.75";
    assert!(get(s, &format!("/v1/resolve?{sea}")).await.expect(200).ids().is_empty());
    let a = get(s, &format!("/v1/resolve?{sea}&nearest=true&tier=country,state,county")).await.expect(200);
    let js = a.body["jurisdictions"].as_array().unwrap();
    let ids: Vec<&str> = js.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["country:USA", "us-state:25", "us-county:25019"], "{}", a.body);
    for j in js {
        assert_eq!(j["match"], "nearest");
        let d = j["distance_m"].as_f64().unwrap();
        assert!(d > 5_000.0 && d < 60_000.0, "{j}");
    }
    // A point inside Bloomington: every requested tier is covered, nothing is added.
    let a = get(s, &format!("/v1/resolve?{AT_BLOOMINGTON}&nearest=true&tier=country,state,county,place")).await;
    assert_eq!(a.expect(200).ids().len(), 4);
}

/// The registry as a mirror sees it: jurisdictions (record + boundary) and endpoints, by id.
type Mirror = (BTreeMap<String, Value>, BTreeMap<String, Value>);

async fn follow_feed(s: &geowebdns::AppState, mirror: &mut Mirror, mut since: i64, limit: u32) -> i64 {
    loop {
        let a = get(s, &format!("/v1/changes?since={since}&limit={limit}")).await.expect(200);
        let changes = a.body["changes"].as_array().unwrap();
        assert!(changes.len() <= limit as usize);
        let seqs: Vec<i64> = changes.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]) && seqs.iter().all(|&q| q > since), "{seqs:?}");
        for c in changes {
            let id = c["id"].as_str().unwrap().to_owned();
            let map = if c["entity"] == "jurisdiction" { &mut mirror.0 } else { &mut mirror.1 };
            match c["op"].as_str().unwrap() {
                "upsert" => {
                    map.insert(id, c["record"].clone());
                }
                "delete" => {
                    assert!(c.get("record").is_none());
                    map.remove(&id);
                }
                other => panic!("op {other}"),
            }
        }
        since = a.body["next"].as_i64().unwrap();
        if !a.body["more"].as_bool().unwrap() {
            assert_eq!(since, a.body["latest_seq"].as_i64().unwrap());
            return since;
        }
    }
}

async fn registry_of(s: &geowebdns::AppState) -> Mirror {
    let mut js = BTreeMap::new();
    for j in s.store.load_jurisdictions().await.unwrap() {
        let geometry: Value = serde_json::from_str(&j.boundary).unwrap();
        js.insert(
            j.record.id.clone(),
            json!({"type": "Feature", "id": j.record.id, "geometry": geometry, "properties": j.record}),
        );
    }
    let mut es = BTreeMap::new();
    for e in s.store.load_endpoints().await.unwrap() {
        es.insert(e.id.clone(), serde_json::to_value(&e).unwrap());
    }
    (js, es)
}

/// Asserts two mirrors are equal, naming the first record that differs (not printing 15 MB).
#[track_caller]
fn assert_same(mirror: &Mirror, registry: &Mirror) {
    for (what, m, r) in [("jurisdiction", &mirror.0, &registry.0), ("endpoint", &mirror.1, &registry.1)] {
        let mk: Vec<&String> = m.keys().collect();
        let rk: Vec<&String> = r.keys().collect();
        if mk != rk {
            let extra: Vec<_> = m.keys().filter(|k| !r.contains_key(*k)).take(5).collect();
            let missing: Vec<_> = r.keys().filter(|k| !m.contains_key(*k)).take(5).collect();
            panic!("{what} ids differ: mirror has extra {extra:?}, lacks {missing:?}");
        }
        for (k, v) in m {
            if v != &r[k] {
                let text = |v: &Value| {
                    let mut v = v.clone();
                    v["geometry"] = Value::Null;
                    v.to_string()
                };
                panic!("{what} {k} differs:\nmirror   {}\nregistry {}", text(v), text(&r[k]));
            }
        }
    }
}

async fn a_mirror_built_from_the_feed_alone_equals_the_registry(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let admin = w.token("root", &["admin"]);
    let s = &w.state;
    // A full dump from 0.
    let mut mirror = Mirror::default();
    let seq = follow_feed(s, &mut mirror, 0, 1000).await;
    assert_same(&mirror, &registry_of(s).await);
    assert!(mirror.0.len() > 8000, "every bundled jurisdiction is in the dump");

    // Writes of every kind: create, update, replace services, delete, a jurisdiction
    // created then deleted with its endpoints (tombstones), a renamed jurisdiction.
    let e1 = register(&w, &admin, BLOOMINGTON, "test", json!([svc("A", "A", "G", "")])).await;
    let e2 = register(&w, &admin, MONROE_COUNTY, "test", json!([])).await;
    call(s, "PATCH", &format!("/admin/v1/endpoints/{e1}"), Some(&admin), Some(r#"{"contact":"desk"}"#))
        .await
        .expect(200);
    call(
        s,
        "PUT",
        &format!("/admin/v1/endpoints/{e2}/services"),
        Some(&admin),
        Some(&json!([svc("B", "B", "G", "x")]).to_string()),
    )
    .await
    .expect(200);
    call(s, "DELETE", &format!("/admin/v1/endpoints/{e1}"), Some(&admin), None).await.expect(204);
    let f = json!({"type": "Feature", "properties": {"id": "t:district", "name": "District", "tier": "special_district"},
        "geometry": {"type": "Polygon", "coordinates": [[[-86.54, 39.16], [-86.52, 39.16], [-86.52, 39.17], [-86.54, 39.17], [-86.54, 39.16]]]}});
    call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&f.to_string())).await.expect(201);
    register(&w, &admin, "t:district", "test", json!([])).await;
    call(s, "DELETE", "/admin/v1/jurisdictions/t:district?cascade=true", Some(&admin), None).await.expect(204);
    call(s, "PATCH", &format!("/admin/v1/jurisdictions/{MONROE_COUNTY}"), Some(&admin), Some(r#"{"name":"Monroe"}"#))
        .await
        .expect(200);

    // Incremental catch-up with small pages, from where the dump ended.
    let end = follow_feed(s, &mut mirror, seq, 2).await;
    assert!(end > seq);
    let registry = registry_of(s).await;
    assert_same(&mirror, &registry);
    assert!(!mirror.1.contains_key(&e1) && mirror.1.contains_key(&e2) && !mirror.0.contains_key("t:district"));
    assert_eq!(mirror.0[MONROE_COUNTY]["properties"]["name"], "Monroe");

    // The same writes replayed from 0 in odd-sized pages give the same mirror.
    let mut fresh = Mirror::default();
    follow_feed(s, &mut fresh, 0, 997).await;
    assert_same(&fresh, &registry);

    // Tombstones are visible as such.
    let a = get(s, &format!("/v1/changes?since={seq}&limit=1000&boundaries=false")).await.expect(200);
    let gone: Vec<&Value> = a.body["changes"].as_array().unwrap().iter().filter(|c| c["op"] == "delete").collect();
    assert!(gone.iter().any(|c| c["entity"] == "endpoint" && c["id"] == e1.as_str()));
    assert!(gone.iter().any(|c| c["entity"] == "jurisdiction" && c["id"] == "t:district"));
    let monroe = a.body["changes"].as_array().unwrap().iter().find(|c| c["id"] == MONROE_COUNTY).unwrap();
    assert!(monroe["record"]["geometry"].is_null(), "boundaries=false leaves geometry out");
    // At the end: an empty page.
    let a = get(s, &format!("/v1/changes?since={end}")).await.expect(200);
    assert_eq!(
        (a.body["count"].as_i64(), a.body["more"].as_bool(), a.body["next"].as_i64()),
        (Some(0), Some(false), Some(end))
    );

    // Bad input.
    get(s, "/v1/changes").await.problem(400, Some("since"));
    get(s, "/v1/changes?since=-1").await.problem(400, Some("since"));
    get(s, "/v1/changes?since=x").await.problem(400, Some("since"));
    get(s, "/v1/changes?since=0&limit=0").await.problem(400, Some("limit"));
    get(s, "/v1/changes?since=0&limit=1001").await.problem(400, Some("limit"));
}

both_backends!(
    services_merge_every_tier_with_provenance,
    discovery_lists_every_endpoint_serving_the_point,
    answers_are_cached_by_the_records_they_are_made_of,
    within_returns_near_misses_with_their_distance,
    nearest_finds_the_closest_jurisdiction_of_each_uncovered_tier,
    a_mirror_built_from_the_feed_alone_equals_the_registry,
);
