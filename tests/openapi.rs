//! The OpenAPI document at `/openapi.json`: it is OpenAPI 3.1, it describes
//! every route the router serves (and nothing it does not), and real answers
//! of the real router validate against the schemas it gives for them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call, call_with, get, post_json, send, writable, Answer, Backend};
use geowebdns::Settings;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

const IN_BLOOMINGTON: &str = "lat=39.1653&lon=-86.5264";
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The document as the server serves it.
async fn served() -> Value {
    let s = common::state().await;
    let a = get(&s, "/openapi.json").await.expect(200);
    assert_eq!(a.header("content-type"), "application/json");
    a.body
}

/// Every (path, method) the document describes, methods lower-case.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((path.clone(), m.to_owned()));
            }
        }
    }
    out
}

/// Every `.route("PATH", method(handler).method(handler)...)` with a literal
/// path in `src/`, read from the source. `src/console.rs` is left out: the
/// web console (HTML, scripts, styles) is not part of the API.
fn routes_in_source() -> BTreeSet<(String, String)> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut out = BTreeSet::new();
    for f in files {
        if f.ends_with("console.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests' mock servers are not the application's routes.
        let mut rest = text.split("#[cfg(test)]").next().unwrap_or_default();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let args = rest.trim_start();
            let Some(args) = args.strip_prefix('"') else { continue };
            let end = args.find('"').unwrap();
            let path = &args[..end];
            // The call's arguments: up to the parenthesis closing `.route(`.
            let mut depth = 1;
            let mut close = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[..close];
            let mut methods = 0;
            for m in METHODS {
                let mut from = 0;
                while let Some(i) = call[from..].find(&format!("{m}(")) {
                    let i = from + i;
                    let before = call[..i].chars().next_back();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        out.insert((path.to_owned(), m.to_owned()));
                        methods += 1;
                    }
                    from = i + 1;
                }
            }
            assert!(methods > 0, "no method found for route {path} in {}", f.display());
        }
    }
    out
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_served_at_openapi_json() {
    let doc = served().await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "openapi {}", doc["openapi"]);
    assert_eq!(doc, serde_json::to_value(geowebdns::openapi::document()).unwrap());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Every operation: an id, and every error answer a problem document.
    let mut ids = BTreeSet::new();
    for (path, method) in documented(&doc) {
        let op = &doc["paths"][&path][&method];
        assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()), "duplicate operationId at {method} {path}");
        for (status, r) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
        }
        let admin = path.starts_with("/admin/");
        assert_eq!(op.get("security").is_some(), admin, "{method} {path}: bearer security exactly on admin routes");
        if admin {
            assert!(op["responses"]["401"].is_object(), "{method} {path} documents 401");
        }
        // Every path parameter is declared.
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            assert!(
                op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path")),
                "{method} {path}: path parameter {name} is declared"
            );
        }
    }
    // The Problem schema is what error.rs sends.
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: BTreeSet<&str> =
        problem["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, BTreeSet::from(["type", "title", "status", "detail", "code"]));
    assert!(problem["properties"]["field"].is_object());
}

#[tokio::test]
async fn every_route_of_the_router_is_documented_and_every_documented_route_is_served() {
    let doc = served().await;
    let documented = documented(&doc);
    let source = routes_in_source();
    assert!(source.len() >= 29, "the source scan found too few routes: {source:?}");
    let missing: Vec<_> = source.difference(&documented).collect();
    assert!(missing.is_empty(), "routes registered but not in /openapi.json: {missing:?}");
    let extra: Vec<_> = documented.difference(&source).collect();
    assert!(extra.is_empty(), "documented but not registered: {extra:?}");
    // And through the live router: each documented operation reaches a
    // handler (not the not-found or method-not-allowed fallbacks).
    let s = common::state().await;
    for (path, method) in &documented {
        let uri = path.replace(['{', '}'], "");
        let a = call(&s, &method.to_uppercase(), &uri, None, None).await;
        let fallback = a.body["code"] == "method_not_allowed"
            || (a.body["code"] == "not_found" && a.body["detail"] == "no such route");
        assert!(!fallback, "{method} {path} is not routed: {} {}", a.status, a.body);
    }
}

/// Validates real answers against the schemas the document gives for them.
struct Checker {
    doc: Value,
    checked: usize,
}

impl Checker {
    fn new() -> Self {
        Self { doc: serde_json::to_value(geowebdns::openapi::document()).unwrap(), checked: 0 }
    }

    /// The schema of `method path` answering `status` as `content_type`, with
    /// the document's components so its `$ref`s resolve.
    fn schema(&self, method: &str, path: &str, status: u16, content_type: &str) -> Value {
        let op = &self.doc["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        let response = &op["responses"][status.to_string()];
        assert!(response.is_object(), "{method} {path} does not document {status}");
        let mut schema = response["content"][content_type]["schema"].clone();
        assert!(schema.is_object(), "{method} {path} {status} has no {content_type} schema");
        schema["components"] = self.doc["components"].clone();
        schema
    }

    fn errors(&self, method: &str, path: &str, a: &Answer) -> Vec<String> {
        let ct = a.header("content-type").split(';').next().unwrap().trim().to_owned();
        let schema = self.schema(method, path, a.status.as_u16(), &ct);
        let validator = jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        validator.iter_errors(&a.body).map(|e| e.to_string()).collect()
    }

    /// Asserts that the answer validates against its documented schema.
    #[track_caller]
    fn check(&mut self, method: &str, path: &str, a: &Answer) {
        assert!(!a.raw.is_empty(), "{method} {path}: empty body");
        let errors = self.errors(method, path, a);
        assert!(errors.is_empty(), "{method} {path} {}: {errors:#?}\nbody {}", a.status, a.body);
        self.checked += 1;
    }
}

#[tokio::test]
async fn real_answers_validate_against_their_documented_schemas() {
    let Some(w) = writable(Backend::Sqlite, Settings::default()).await else { return };
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let mut c = Checker::new();

    // Admin writes first, so the public answers below carry endpoints and services.
    let who = call(s, "GET", "/admin/v1/whoami", Some(&admin), None).await.expect(200);
    c.check("GET", "/admin/v1/whoami", &who);
    let feature = json!({"type": "Feature", "properties": {"id": "t:square", "name": "Square", "tier": "special_district", "ocd_id": "ocd-division/country:zz/square:1", "external_ids": {"code": "SQ"}},
        "geometry": {"type": "Polygon", "coordinates": [[[-20.0, -40.0], [-19.0, -40.0], [-19.0, -39.0], [-20.0, -39.0], [-20.0, -40.0]]]}});
    let created =
        call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&feature.to_string())).await.expect(201);
    c.check("POST", "/admin/v1/jurisdictions", &created);
    let endpoint = json!({"url": "https://311.example.org/open311/v2/", "type": "production", "contact": "ops@example.org",
        "services": [{"service_code": "001", "service_name": "Pothole", "keywords": "road, street", "group": "Streets"}]});
    let ep = call(s, "POST", "/admin/v1/jurisdictions/t:square/endpoints", Some(&admin), Some(&endpoint.to_string()))
        .await
        .expect(201);
    c.check("POST", "/admin/v1/jurisdictions/{id}/endpoints", &ep);
    let ep_id = ep.body["id"].as_str().unwrap().to_owned();
    let a = call(s, "GET", "/admin/v1/jurisdictions/t:square", Some(&admin), None).await.expect(200);
    c.check("GET", "/admin/v1/jurisdictions/{id}", &a);
    let a = call(
        s,
        "PATCH",
        "/admin/v1/jurisdictions/t:square",
        Some(&admin),
        Some(r#"{"license": null, "source": "test"}"#),
    )
    .await
    .expect(200);
    c.check("PATCH", "/admin/v1/jurisdictions/{id}", &a);
    let a = call(s, "GET", "/admin/v1/jurisdictions/t:square/endpoints", Some(&admin), None).await.expect(200);
    c.check("GET", "/admin/v1/jurisdictions/{id}/endpoints", &a);
    let a = call(s, "GET", &format!("/admin/v1/endpoints/{ep_id}"), Some(&admin), None).await.expect(200);
    c.check("GET", "/admin/v1/endpoints/{id}", &a);
    let a = call(
        s,
        "PATCH",
        &format!("/admin/v1/endpoints/{ep_id}"),
        Some(&admin),
        Some(r#"{"docs_url": "https://example.org/docs"}"#),
    )
    .await
    .expect(200);
    c.check("PATCH", "/admin/v1/endpoints/{id}", &a);
    let services = r#"[{"service_code": "001", "service_name": "Pothole", "keywords": ["road"]}, {"service_code": "002", "service_name": "Graffiti", "type": "batch"}]"#;
    let a = call(s, "PUT", &format!("/admin/v1/endpoints/{ep_id}/services"), Some(&admin), Some(services))
        .await
        .expect(200);
    c.check("PUT", "/admin/v1/endpoints/{id}/services", &a);
    let a = call(
        s,
        "PUT",
        &format!("/admin/v1/endpoints/{ep_id}/services/003"),
        Some(&admin),
        Some(r#"{"service_code": "003", "service_name": "Noise"}"#),
    )
    .await
    .expect(200);
    c.check("PUT", "/admin/v1/endpoints/{id}/services/{code}", &a);
    let a =
        call(s, "DELETE", &format!("/admin/v1/endpoints/{ep_id}/services/003"), Some(&admin), None).await.expect(200);
    c.check("DELETE", "/admin/v1/endpoints/{id}/services/{code}", &a);
    let import = json!({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"id": "t:other", "name": "Other", "tier": "other"},
        "geometry": {"type": "Polygon", "coordinates": [[[-30.0, -40.0], [-29.0, -40.0], [-29.0, -39.0], [-30.0, -40.0]]]}}]});
    let a = call(s, "POST", "/admin/v1/import", Some(&admin), Some(&import.to_string())).await.expect(200);
    c.check("POST", "/admin/v1/import", &a);
    let a = call(s, "GET", "/admin/v1/audit?limit=3", Some(&admin), None).await.expect(200);
    c.check("GET", "/admin/v1/audit", &a);

    // Public answers.
    let here = "lat=-39.5&lon=-19.5";
    for q in
        [IN_BLOOMINGTON.to_owned(), here.to_owned(), format!("{here}&within=500&nearest=true"), "lat=0&lon=-150".into()]
    {
        let a = get(s, &format!("/v1/resolve?{q}")).await.expect(200);
        c.check("GET", "/v1/resolve", &a);
        let a = get(s, &format!("/v1/services?{q}&type=all")).await.expect(200);
        c.check("GET", "/v1/services", &a);
        let a = get(s, &format!("/discovery.json?{q}")).await.expect(200);
        c.check("GET", "/discovery.json", &a);
    }
    let a = get(s, &format!("/v1/services?{here}")).await.expect(200);
    assert!(a.body["count"].as_u64().unwrap() >= 2, "the services written above are listed: {}", a.body);
    let batch = r#"{"points": [{"lat": 39.1653, "lon": -86.5264, "id": "a"}, {"lat": -39.5, "long": -19.5, "id": 7}, {"lat": 0, "lon": -150}], "tier": "country,special_district"}"#;
    let a = post_json(s, "/v1/resolve", batch).await.expect(200);
    c.check("POST", "/v1/resolve", &a);
    // The streamed form: every line validates against the documented line schema.
    let req = axum::http::Request::post("/v1/resolve")
        .header("content-type", "application/json")
        .header("accept", "application/x-ndjson")
        .body(axum::body::Body::from(batch))
        .unwrap();
    let a = send(s, req).await.expect(200);
    let schema = c.schema("POST", "/v1/resolve", 200, "application/x-ndjson");
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let lines: Vec<Value> =
        String::from_utf8(a.raw.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines[0]["batch"]["count"] == 3, "the head first: {}", lines[0]);
    assert_eq!(lines.iter().filter(|l| l.get("result").is_some()).count(), 3);
    assert!(lines.iter().filter(|l| l.get("jurisdiction").is_some()).count() >= 2, "USA and the square");
    for wrong in [json!({"neither": 1}), json!({"result": {"location": {"lat": 1, "lon": 2}, "jurisdictions": [7]}})] {
        assert!(!validator.is_valid(&wrong), "the line schema refuses {wrong}");
    }
    for line in &lines {
        let errors: Vec<String> = validator.iter_errors(line).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "POST /v1/resolve (NDJSON): {errors:#?}\nline {line}");
    }
    c.checked += 1;
    let a = get(s, "/v1/jurisdictions?limit=3&tier=county").await.expect(200);
    c.check("GET", "/v1/jurisdictions", &a);
    let a = get(s, "/v1/jurisdictions/t:square").await.expect(200);
    c.check("GET", "/v1/jurisdictions/{id}", &a);
    let a = get(s, "/v1/jurisdictions/us-state:15/boundary?simplify=1000").await.expect(200);
    c.check("GET", "/v1/jurisdictions/{id}/boundary", &a);
    let latest = s.store.latest_seq().await.unwrap();
    for q in [format!("since={}", latest - 6), "since=0&limit=5&boundaries=false".into()] {
        let a = get(s, &format!("/v1/changes?{q}")).await.expect(200);
        c.check("GET", "/v1/changes", &a);
    }
    c.check("GET", "/healthz", &get(s, "/healthz").await.expect(200));
    c.check("GET", "/readyz", &get(s, "/readyz").await.expect(200));

    // Problems.
    c.check("GET", "/v1/resolve", &get(s, "/v1/resolve?lat=91&lon=0").await.problem(400, Some("lat")));
    c.check(
        "POST",
        "/v1/resolve",
        &post_json(s, "/v1/resolve", r#"{"points": [{"lat": "x"}]}"#).await.problem(400, None),
    );
    c.check("GET", "/v1/jurisdictions/{id}", &get(s, "/v1/jurisdictions/nope").await.problem(404, None));
    c.check("GET", "/admin/v1/whoami", &call(s, "GET", "/admin/v1/whoami", None, None).await.problem(401, None));
    let a =
        call_with(s, "PATCH", "/admin/v1/jurisdictions/t:square", Some(&admin), Some("{}"), &[("if-match", "\"1\"")])
            .await;
    c.check("PATCH", "/admin/v1/jurisdictions/{id}", &a.problem(412, None));

    // Deletes answer 204 without a body.
    call(s, "DELETE", &format!("/admin/v1/endpoints/{ep_id}"), Some(&admin), None).await.expect(204);
    assert!(c.checked >= 35, "{} answers checked", c.checked);
}

#[tokio::test]
async fn the_schemas_refuse_answers_that_break_them() {
    // The validation above is not vacuous: answers that break the document are refused.
    let s = common::state().await;
    let c = Checker::new();
    let mut a = get(&s, &format!("/v1/resolve?{IN_BLOOMINGTON}")).await.expect(200);
    assert!(c.errors("GET", "/v1/resolve", &a).is_empty());
    a.body["jurisdictions"][0]["tier"] = json!("planet");
    assert!(!c.errors("GET", "/v1/resolve", &a).is_empty(), "an unknown tier is refused");
    let mut a = get(&s, &format!("/v1/resolve?{IN_BLOOMINGTON}")).await.expect(200);
    a.body.as_object_mut().unwrap().remove("index_version");
    assert!(!c.errors("GET", "/v1/resolve", &a).is_empty(), "a missing required member is refused");
    let mut a = get(&s, "/v1/resolve?lat=91&lon=0").await.problem(400, Some("lat"));
    a.body["status"] = json!("400");
    assert!(!c.errors("GET", "/v1/resolve", &a).is_empty(), "a problem with a string status is refused");
}
