//! The admin API through the real router: tokens and every refusal, scopes,
//! validation, If-Match, audit, bulk import, and the whole registration flow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{call, call_with, get, writable, Backend};
use geowebdns::Settings;
use serde_json::json;

const BLOOMINGTON: &str = "us-place:1805860";
const IN_BLOOMINGTON: &str = "/v1/resolve?lat=39.1653&lon=-86.5264";
// Indianapolis: same state, another city.
const IN_INDIANAPOLIS: &str = "/v1/resolve?lat=39.7684&lon=-86.1581";

fn endpoint_body() -> String {
    json!({
        "specification": "http://wiki.open311.org/GeoReport_v2",
        "url": "https://311.example.org/open311/v2/",
        "type": "test",
        "formats": ["application/json"],
        "open311_jurisdiction_id": "example.org",
        "services": [
            {"service_code": "001", "service_name": "Pothole", "description": "Holes in the road", "type": "realtime", "keywords": "road, street", "group": "Streets"},
            {"service_code": "002", "service_name": "Graffiti", "keywords": ["paint"], "group": "Sanitation"}
        ]
    })
    .to_string()
}

fn endpoint_urls(a: &common::Answer, id: &str) -> Vec<String> {
    a.body["jurisdictions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["id"] == id)
        .flat_map(|j| j["endpoints"].as_array().unwrap().iter().map(|e| e["url"].as_str().unwrap().to_owned()))
        .collect()
}

async fn every_bad_token_is_a_401_with_www_authenticate(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let s = &w.state;
    let uri = "/admin/v1/whoami";
    // Missing, wrong scheme, garbage.
    for (auth, code) in [
        (None, "token_missing"),
        (Some("Basic dXNlcjpwYXNz"), "token_malformed"),
        (Some("Bearer not.a.jwt"), "token_malformed"),
        (Some("Bearer "), "token_malformed"),
    ] {
        let mut headers = vec![];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let a = call_with(s, "GET", uri, None, None, &headers).await.problem(401, None);
        assert!(a.header("www-authenticate").starts_with("Bearer"), "{:?}", a.headers);
        assert_eq!(a.body["code"], code, "{auth:?}: {}", a.body);
    }
    let forged = common::forge(&w);
    for (name, token) in forged {
        let a = call(s, "GET", uri, Some(&token), None).await.problem(401, None);
        assert!(a.header("www-authenticate").starts_with("Bearer"), "{name}");
        // The reason stays a short code; no key material or library text leaks.
        assert!(a.body["detail"].as_str().unwrap().len() < 60, "{name}: {}", a.body);
    }
    // A good token works.
    let good = w.token("alice", &["admin"]);
    let a = call(s, "GET", uri, Some(&good), None).await.expect(200);
    assert_eq!(a.body["sub"], "alice");
}

async fn revoked_tokens_stop_working_at_once(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let token = w.token("bob", &["admin"]);
    let who = call(&w.state, "GET", "/admin/v1/whoami", Some(&token), None).await.expect(200);
    let jti = who.body["jti"].as_str().unwrap().to_owned();
    assert!(w.state.store.revoke_token(&jti, Some("test")).await.unwrap());
    let a = call(&w.state, "GET", "/admin/v1/whoami", Some(&token), None).await.problem(401, None);
    assert_eq!(a.body["code"], "token_revoked");
}

async fn jurisdiction_tokens_touch_only_their_own_entries(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let s = &w.state;
    let city = w.token("bloomington", &[&format!("jurisdiction:{BLOOMINGTON}")]);
    let other = w.token("chicago", &["jurisdiction:us-place:1714000"]);
    // Own endpoint: allowed.
    let created = call(
        s,
        "POST",
        &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"),
        Some(&city),
        Some(&endpoint_body()),
    )
    .await
    .expect(201);
    let ep = created.body["id"].as_str().unwrap().to_owned();
    // Another jurisdiction's token: every route on it is forbidden.
    call(s, "POST", &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"), Some(&other), Some(&endpoint_body()))
        .await
        .problem(403, None);
    call(s, "GET", &format!("/admin/v1/endpoints/{ep}"), Some(&other), None).await.problem(403, None);
    call(s, "PATCH", &format!("/admin/v1/endpoints/{ep}"), Some(&other), Some(r#"{"contact":"x"}"#))
        .await
        .problem(403, None);
    call(s, "DELETE", &format!("/admin/v1/endpoints/{ep}"), Some(&other), None).await.problem(403, None);
    call(s, "PUT", &format!("/admin/v1/endpoints/{ep}/services"), Some(&other), Some("[]")).await.problem(403, None);
    call(
        s,
        "PUT",
        &format!("/admin/v1/endpoints/{ep}/services/001"),
        Some(&other),
        Some(r#"{"service_code":"001","service_name":"x"}"#),
    )
    .await
    .problem(403, None);
    call(s, "DELETE", &format!("/admin/v1/endpoints/{ep}/services/001"), Some(&other), None).await.problem(403, None);
    call(s, "GET", &format!("/admin/v1/jurisdictions/{BLOOMINGTON}"), Some(&other), None).await.problem(403, None);
    // Even the city itself may not redraw, rename, create or delete jurisdictions, import, or read the audit log.
    call(s, "PATCH", &format!("/admin/v1/jurisdictions/{BLOOMINGTON}"), Some(&city), Some(r#"{"name":"Mine"}"#))
        .await
        .problem(403, None);
    call(s, "DELETE", &format!("/admin/v1/jurisdictions/{BLOOMINGTON}"), Some(&city), None).await.problem(403, None);
    call(s, "POST", "/admin/v1/jurisdictions", Some(&city), Some(&square_feature("t:x", 10.0)))
        .await
        .problem(403, None);
    call(s, "POST", "/admin/v1/import", Some(&city), Some(&collection(&[square_feature("t:y", 10.0)])))
        .await
        .problem(403, None);
    call(s, "GET", "/admin/v1/audit", Some(&city), None).await.problem(403, None);
    // Nothing the refused calls tried is visible.
    let a = get(s, IN_BLOOMINGTON).await.expect(200);
    assert!(!a.ids().contains(&"t:x".to_owned()));
}

fn square_feature(id: &str, size: f64) -> String {
    // A square in the South Atlantic, far from every bundled boundary.
    let (x, y) = (-20.0, -40.0);
    json!({"type": "Feature", "properties": {"id": id, "name": format!("Square {id}"), "tier": "special_district"},
           "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}})
    .to_string()
}

fn collection(features: &[String]) -> String {
    format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(","))
}

async fn registration_flow_from_cli_token_to_resolve_and_revocation(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let bin = env!("CARGO_BIN_EXE_geowebdns");
    let key_dir = w.key_settings.key_dir.to_str().unwrap();
    let out = std::process::Command::new(bin)
        .args([
            "--database-url",
            &w.url,
            "--key-dir",
            key_dir,
            "token",
            "issue",
            "--scope",
            &format!("jurisdiction:{BLOOMINGTON}"),
            "--ttl",
            "1h",
            "--sub",
            "bloomington-it",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "only the token on stdout");
    assert_eq!(token.split('.').count(), 3);

    let s = &w.state;
    let before = get(s, IN_BLOOMINGTON).await.expect(200);
    let v0 = before.body["index_version"].as_i64().unwrap();
    let created = call(
        s,
        "POST",
        &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"),
        Some(token),
        Some(&endpoint_body()),
    )
    .await
    .expect(201);
    assert_eq!(created.header("etag"), "\"1\"");
    assert!(created.header("location").starts_with("/admin/v1/endpoints/ep-"));
    assert_eq!(created.body["services"].as_array().unwrap().len(), 2);
    assert_eq!(created.body["services"][0]["keywords"], json!(["road", "street"]));

    // Visible at once inside the jurisdiction, with its services; not outside it.
    let inside = get(s, IN_BLOOMINGTON).await.expect(200);
    assert!(inside.body["index_version"].as_i64().unwrap() > v0, "index_version grows");
    assert!(endpoint_urls(&inside, BLOOMINGTON).contains(&"https://311.example.org/open311/v2/".to_owned()));
    let city =
        inside.body["jurisdictions"].as_array().unwrap().iter().find(|j| j["id"] == BLOOMINGTON).unwrap().clone();
    let ep = city["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "https://311.example.org/open311/v2/")
        .unwrap();
    assert_eq!(ep["services"][1]["service_name"], "Graffiti");
    let outside = get(s, IN_INDIANAPOLIS).await.expect(200);
    assert!(!outside.raw.windows(15).any(|w| w == b"311.example.org"), "not outside Bloomington");

    // Revoke from the CLI: the next write is refused.
    let jti = call(s, "GET", "/admin/v1/whoami", Some(token), None).await.expect(200).body["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let out =
        std::process::Command::new(bin).args(["--database-url", &w.url, "token", "revoke", &jti]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = std::process::Command::new(bin).args(["--database-url", &w.url, "token", "list"]).output().unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(listed.as_array().unwrap().iter().any(|t| t["jti"] == jti.as_str() && t["revoked_at"].is_string()));
    let a = call(
        s,
        "POST",
        &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"),
        Some(token),
        Some(&endpoint_body()),
    )
    .await
    .problem(401, None);
    assert_eq!(a.body["code"], "token_revoked");
}

async fn endpoint_validation_names_the_field(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let admin = w.token("root", &["admin"]);
    let uri = format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints");
    let seq0 = w.state.store.latest_seq().await.unwrap();
    for (body, field) in [
        (json!({"url": "ftp://example.org/"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "/relative/path"}), "url"),
        (json!({"url": "https://ok.example/", "type": "staging"}), "type"),
        (json!({"url": "https://ok.example/", "specification": "  "}), "specification"),
        (json!({"url": "https://ok.example/", "formats": ["json"]}), "formats[0]"),
        (json!({"url": "https://ok.example/", "key_service": "mailto:x@y"}), "key_service"),
        (
            json!({"url": "https://ok.example/", "services": [{"service_code": "1", "service_name": "a"}, {"service_code": "1", "service_name": "b"}]}),
            "services[1].service_code",
        ),
        (
            json!({"url": "https://ok.example/", "services": [{"service_code": "1", "service_name": "a", "type": "instant"}]}),
            "services[0].type",
        ),
        (
            json!({"url": "https://ok.example/", "services": [{"service_code": "", "service_name": "a"}]}),
            "services[0].service_code",
        ),
    ] {
        call(&w.state, "POST", &uri, Some(&admin), Some(&body.to_string())).await.problem(400, Some(field));
    }
    call(&w.state, "POST", &uri, Some(&admin), Some(r#"{"url":"https://ok.example/","colour":"red"}"#))
        .await
        .problem(400, None);
    call(&w.state, "POST", &uri, Some(&admin), Some("{")).await.problem(400, None);
    call(&w.state, "POST", "/admin/v1/jurisdictions/us-place:0/endpoints", Some(&admin), Some(&endpoint_body()))
        .await
        .problem(404, None);
    assert_eq!(w.state.store.latest_seq().await.unwrap(), seq0, "refused writes leave no trace");
}

async fn if_match_prevents_lost_updates_and_services_can_be_edited(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let ep = call(
        s,
        "POST",
        &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"),
        Some(&admin),
        Some(&endpoint_body()),
    )
    .await
    .expect(201);
    let id = ep.body["id"].as_str().unwrap().to_owned();
    let uri = format!("/admin/v1/endpoints/{id}");
    let a =
        call_with(s, "PATCH", &uri, Some(&admin), Some(r#"{"contact":"311@example.org"}"#), &[("if-match", "\"1\"")])
            .await
            .expect(200);
    assert_eq!(a.header("etag"), "\"2\"");
    // A second editor still holding version 1 is refused.
    let stale = call_with(s, "PATCH", &uri, Some(&admin), Some(r#"{"contact":"other"}"#), &[("if-match", "\"1\"")])
        .await
        .problem(412, None);
    assert_eq!(stale.body["code"], "precondition_failed");
    call_with(s, "DELETE", &uri, Some(&admin), None, &[("if-match", "\"1\"")]).await.problem(412, None);
    call_with(s, "PATCH", &uri, Some(&admin), Some("{}"), &[("if-match", "3")]).await.problem(400, Some("If-Match"));
    // Replace the service list, upsert one, delete one.
    let a = call_with(
        s,
        "PUT",
        &format!("{uri}/services"),
        Some(&admin),
        Some(r#"[{"service_code":"A","service_name":"Alpha"}]"#),
        &[("if-match", "\"2\"")],
    )
    .await
    .expect(200);
    assert_eq!(a.body["services"].as_array().unwrap().len(), 1);
    let a = call(
        s,
        "PUT",
        &format!("{uri}/services/B"),
        Some(&admin),
        Some(r#"{"service_code":"B","service_name":"Beta","group":"G"}"#),
    )
    .await
    .expect(200);
    assert_eq!(a.body["services"].as_array().unwrap().len(), 2);
    call(s, "PUT", &format!("{uri}/services/C"), Some(&admin), Some(r#"{"service_code":"D","service_name":"x"}"#))
        .await
        .problem(400, Some("service_code"));
    let a = call(s, "DELETE", &format!("{uri}/services/A"), Some(&admin), None).await.expect(200);
    assert_eq!(
        a.body["services"],
        json!([{"service_code":"B","service_name":"Beta","description":null,"metadata":false,"type":"realtime","keywords":[],"group":"G","source":"manual"}])
    );
    call(s, "DELETE", &format!("{uri}/services/A"), Some(&admin), None).await.problem(404, None);
    // The resolve answer shows the edited list.
    let r = get(s, IN_BLOOMINGTON).await.expect(200);
    assert!(String::from_utf8_lossy(&r.raw).contains("\"service_name\":\"Beta\""));
    // Delete it; it disappears from resolve.
    call(s, "DELETE", &uri, Some(&admin), None).await.expect(204);
    call(s, "GET", &uri, Some(&admin), None).await.problem(404, None);
    let r = get(s, IN_BLOOMINGTON).await.expect(200);
    assert!(!endpoint_urls(&r, BLOOMINGTON).contains(&"https://311.example.org/open311/v2/".to_owned()));
}

async fn jurisdictions_are_validated_created_redrawn_and_deleted(b: Backend) {
    let Some(w) = writable(b, Settings { max_vertices: 50, ..Settings::default() }).await else { return };
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let poly = |coords: serde_json::Value| {
        json!({"type": "Feature", "properties": {"id": "t:sq", "name": "Sq", "tier": "special_district"}, "geometry": {"type": "Polygon", "coordinates": coords}}).to_string()
    };
    for (body, field) in [
        (json!({"type": "Feature", "properties": {"id": "t:p", "name": "P", "tier": "place"}, "geometry": {"type": "Point", "coordinates": [0, 0]}}).to_string(), "geometry"),
        (poly(json!([[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]])), "geometry"),
        (poly(json!([[[0, 0], [1, 0], [1, 1], [0, 1]]])), "geometry"),
        (poly(json!([[[0, 0], [1, 0], [0, 0]]])), "geometry"),
        (poly(json!([[[0, 0], [200, 0], [1, 1], [0, 0]]])), "geometry"),
        (poly(json!([(0..60).map(|i| { let a = i as f64 / 60.0 * std::f64::consts::TAU; json!([a.cos(), a.sin()]) }).chain(std::iter::once(json!([1.0, 0.0]))).collect::<Vec<_>>()])), "geometry"),
        (json!({"type": "Feature", "properties": {"id": "t:q", "name": "Q", "tier": "city"}, "geometry": null}).to_string(), "properties.tier"),
        (json!({"type": "Feature", "properties": {"id": "a/b", "name": "Q", "tier": "place"}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}).to_string(), "properties.id"),
    ] {
        let a = call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&body)).await;
        if field == "properties.tier" {
            a.problem(400, None);
        } else {
            a.problem(400, Some(field));
        }
    }
    // Clockwise rings are re-oriented, not refused.
    let cw = poly(json!([[[-20, -40], [-20, -30], [-10, -30], [-10, -40], [-20, -40]]]));
    let a = call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&cw)).await.expect(201);
    assert_eq!(a.header("location"), "/v1/jurisdictions/t:sq");
    assert_eq!(a.body["boundary"]["coordinates"][0][1], json!([-10.0, -40.0]), "exterior made counter-clockwise");
    call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&cw)).await.problem(409, None);
    let r = get(s, "/v1/resolve?lat=-35&lon=-15").await.expect(200);
    assert_eq!(r.ids(), ["t:sq"]);
    // Redraw the boundary elsewhere.
    let moved =
        json!({"boundary": {"type": "Polygon", "coordinates": [[[0, -40], [10, -40], [10, -30], [0, -30], [0, -40]]]}})
            .to_string();
    call(s, "PATCH", "/admin/v1/jurisdictions/t:sq", Some(&admin), Some(&moved)).await.expect(200);
    assert!(get(s, "/v1/resolve?lat=-35&lon=-15").await.expect(200).ids().is_empty());
    assert_eq!(get(s, "/v1/resolve?lat=-35&lon=5").await.expect(200).ids(), ["t:sq"]);
    call(s, "PATCH", "/admin/v1/jurisdictions/t:sq", Some(&admin), Some(r#"{"parent":"nope:1"}"#))
        .await
        .problem(400, Some("parent"));
    // Deleting a jurisdiction with endpoints needs cascade.
    call(s, "POST", "/admin/v1/jurisdictions/t:sq/endpoints", Some(&admin), Some(r#"{"url":"https://sq.example/"}"#))
        .await
        .expect(201);
    call(s, "DELETE", "/admin/v1/jurisdictions/t:sq", Some(&admin), None).await.problem(409, None);
    call(s, "DELETE", "/admin/v1/jurisdictions/t:sq?cascade=true", Some(&admin), None).await.expect(204);
    assert!(get(s, "/v1/resolve?lat=-35&lon=5").await.expect(200).ids().is_empty());
    get(s, "/v1/jurisdictions/t:sq").await.problem(404, None);
}

async fn new_jurisdictions_get_a_derived_parent(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let admin = w.token("root", &["admin"]);
    // A small district inside Bloomington.
    let f = json!({"type": "Feature", "properties": {"id": "t:district", "name": "Downtown district", "tier": "special_district"},
        "geometry": {"type": "Polygon", "coordinates": [[[-86.54, 39.16], [-86.52, 39.16], [-86.52, 39.17], [-86.54, 39.17], [-86.54, 39.16]]]}});
    let a = call(&w.state, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&f.to_string())).await.expect(201);
    assert_eq!(a.body["parent"], BLOOMINGTON);
    let r = get(&w.state, IN_BLOOMINGTON).await.expect(200);
    assert_eq!(r.ids().last().map(String::as_str), Some("t:district"));
}

async fn audit_log_records_who_did_what(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let city = w.token("bloomington-it", &[&format!("jurisdiction:{BLOOMINGTON}")]);
    call(s, "POST", &format!("/admin/v1/jurisdictions/{BLOOMINGTON}/endpoints"), Some(&city), Some(&endpoint_body()))
        .await
        .expect(201);
    let a = call(
        s,
        "GET",
        &format!("/admin/v1/audit?jurisdiction={BLOOMINGTON}&since=2000-01-01T00:00:00Z&limit=1000"),
        Some(&admin),
        None,
    )
    .await
    .expect(200);
    let items = a.body["items"].as_array().unwrap();
    let mine =
        items.iter().find(|e| e["action"] == "endpoint.create" && e["actor_sub"] == "bloomington-it").expect("audited");
    assert!(mine["actor_jti"].is_string());
    assert!(mine["before"].is_null());
    assert_eq!(mine["after"]["url"], "https://311.example.org/open311/v2/");
    call(s, "GET", "/admin/v1/audit?since=yesterday", Some(&admin), None).await.problem(400, Some("since"));
    call(s, "GET", "/admin/v1/audit?limit=0", Some(&admin), None).await.problem(400, Some("limit"));
    let none = call(s, "GET", "/admin/v1/audit?since=2999-01-01T00:00:00Z", Some(&admin), None).await.expect(200);
    assert_eq!(none.body["items"], json!([]));
}

async fn bulk_import_is_all_or_nothing(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let seq0 = s.store.latest_seq().await.unwrap();
    let bad = collection(&[square_feature("t:a", 1.0), json!({"type": "Feature", "properties": {"id": "t:b", "name": "B", "tier": "place"}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}).to_string()]);
    let a = call(s, "POST", "/admin/v1/import", Some(&admin), Some(&bad)).await.problem(400, Some("features[1]"));
    assert_eq!(a.body["code"], "invalid_feature");
    assert_eq!(s.store.latest_seq().await.unwrap(), seq0, "nothing written");
    assert!(get(s, "/v1/resolve?lat=-39.5&lon=-19.5").await.expect(200).ids().is_empty());
    let good = collection(&[square_feature("t:a", 1.0), square_feature("t:c", 2.0)]);
    let a = call(s, "POST", "/admin/v1/import", Some(&admin), Some(&good)).await.expect(200);
    assert_eq!(a.body["imported"], 2);
    assert_eq!(get(s, "/v1/resolve?lat=-39.5&lon=-19.5").await.expect(200).ids(), ["t:c", "t:a"], "larger area first");
    // A county drawn around both: they are re-parented in the same import.
    let seq1 = s.store.latest_seq().await.unwrap();
    let county = json!({"type": "Feature", "properties": {"id": "t:county", "name": "County", "tier": "county"},
        "geometry": {"type": "Polygon", "coordinates": [[[-21, -41], [-10, -41], [-10, -30], [-21, -30], [-21, -41]]]}});
    call(s, "POST", "/admin/v1/import", Some(&admin), Some(&collection(&[county.to_string()]))).await.expect(200);
    assert_eq!(get(s, "/v1/jurisdictions/t:a").await.expect(200).body["parent"], "t:county");
    assert_eq!(get(s, "/v1/jurisdictions/t:c").await.expect(200).body["parent"], "t:county");
    assert_eq!(s.store.latest_seq().await.unwrap(), seq1 + 3, "one change per record, one transaction");
    call(s, "POST", "/admin/v1/import", Some(&admin), Some("not json")).await.problem(400, None);
}

both_backends!(
    every_bad_token_is_a_401_with_www_authenticate,
    revoked_tokens_stop_working_at_once,
    jurisdiction_tokens_touch_only_their_own_entries,
    registration_flow_from_cli_token_to_resolve_and_revocation,
    endpoint_validation_names_the_field,
    if_match_prevents_lost_updates_and_services_can_be_edited,
    jurisdictions_are_validated_created_redrawn_and_deleted,
    new_jurisdictions_get_a_derived_parent,
    audit_log_records_who_did_what,
    bulk_import_is_all_or_nothing,
);
