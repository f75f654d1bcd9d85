//! Security review items of issue 8 point 9, each proved through the real
//! router: SQL only with bound parameters (hostile strings round-trip
//! unchanged on both backends), no CORS on the admin API and the console,
//! security headers on the console. Key-file permissions and token lifetimes
//! are unit-tested next to the code in `src/auth.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{call, call_with, get, writable, Backend};
use geowebdns::Settings;
use serde_json::{json, Value};

/// Strings that break SQL built by concatenation, or that a careless layer
/// would escape, trim, normalise or interpret. None has leading or trailing
/// white space, which the API may trim by design.
const HOSTILE: &[&str] = &[
    "'; DROP TABLE jurisdictions; --",
    "Robert'); DELETE FROM endpoints WHERE ('1'='1",
    "\" OR \"1\"=\"1\" --",
    "' OR 1=1; UPDATE services SET service_name='pwned'; --",
    "' || pg_sleep(5) || '",
    "'; SELECT sqlite_version(); ATTACH DATABASE '/tmp/x' AS x; --",
    "$1 $2 ? ?1 :name @p %s %d {0} {}",
    "E'\\x27' || chr(39) || '\\\\'",
    "back\\slash \\' \\\" \\\\ \\n \\0",
    "/* open comment",
    "--",
    "%27%20OR%201%3D1",
    "<script>alert(1)</script>&amp;&lt;",
    "${jndi:ldap://example.invalid/a}",
    "NULL",
    "null",
    "line1\nline2\nline3\ttab",
    "日本語 \u{202e}RTL\u{202d} 🚰 zero\u{200b}width ﬁ Å Å",
    "'''''''''''''''''''''''''''''''''''''''",
];

fn hostile(i: usize) -> &'static str {
    HOSTILE[i % HOSTILE.len()]
}

/// A small square in the South Atlantic, far from every bundled boundary,
/// `k` squares east of the first so the jurisdictions do not overlap.
fn square(k: usize) -> (Value, (f64, f64)) {
    let (x, y) = (-20.0 + 0.2 * k as f64, -40.0);
    let s = 0.1;
    (
        json!({"type": "Polygon", "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}),
        (y + s / 2.0, x + s / 2.0),
    )
}

/// Every free-text field of a jurisdiction, an endpoint and its services
/// carries a hostile string; reading them back through the public and admin
/// routes gives the very same strings, and the tables are all still there.
async fn hostile_strings_round_trip_unchanged(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let before = get(s, "/v1/jurisdictions?limit=1000").await.expect(200).body;

    for k in 0..HOSTILE.len() {
        let id = format!("test:hostile-{k}");
        let (geometry, (lat, lon)) = square(k);
        let name = hostile(k);
        let external = json!({ hostile(k + 1): hostile(k + 2), "plain": hostile(k + 3) });
        let feature = json!({"type": "Feature", "properties": {
            "id": id, "name": name, "tier": "special_district",
            "source": hostile(k + 4), "license": hostile(k + 5), "external_ids": external,
        }, "geometry": geometry});
        call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&feature.to_string())).await.expect(201);

        let services: Vec<Value> = (0..3)
            .map(|i| {
                json!({
                    "service_code": format!("{}#{i}", hostile(k + i)),
                    "service_name": hostile(k + i + 1),
                    "description": hostile(k + i + 2),
                    "keywords": [hostile(k + i + 3), hostile(k + i + 4)],
                    "group": hostile(k + i + 5),
                })
            })
            .collect();
        let endpoint = json!({
            "specification": "http://wiki.open311.org/GeoReport_v2",
            "url": format!("https://311.example.org/open311/v2/?tenant={k}"),
            "type": "production",
            "formats": ["application/json"],
            "open311_jurisdiction_id": hostile(k + 6),
            "contact": hostile(k + 8),
            "changeset": hostile(k + 9),
            "services": services,
        });
        let created = call(
            s,
            "POST",
            &format!("/admin/v1/jurisdictions/{id}/endpoints"),
            Some(&admin),
            Some(&endpoint.to_string()),
        )
        .await
        .expect(201)
        .body;
        let ep_id = created["id"].as_str().unwrap().to_owned();

        // The jurisdiction record, as the public API and the admin API give it.
        let public = get(s, &format!("/v1/jurisdictions/{}", urlencode(&id))).await.expect(200).body;
        for record in [
            &public,
            &call(s, "GET", &format!("/admin/v1/jurisdictions/{}", urlencode(&id)), Some(&admin), None)
                .await
                .expect(200)
                .body,
        ] {
            let j = if record["properties"].is_object() { &record["properties"] } else { record };
            assert_eq!(j["name"], name, "{record}");
            assert_eq!(j["source"], hostile(k + 4), "{record}");
            assert_eq!(j["license"], hostile(k + 5), "{record}");
            assert_eq!(j["external_ids"], external, "{record}");
        }

        // The endpoint and its services, from the admin API and from resolve.
        let stored = call(s, "GET", &format!("/admin/v1/endpoints/{ep_id}"), Some(&admin), None).await.expect(200).body;
        let resolved = get(s, &format!("/v1/resolve?lat={lat}&lon={lon}")).await.expect(200).body;
        let via_resolve = resolved["jurisdictions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not resolved: {resolved}"))["endpoints"][0]
            .clone();
        for e in [&stored, &via_resolve] {
            for (field, want) in [("open311_jurisdiction_id", k + 6), ("contact", k + 8), ("changeset", k + 9)] {
                assert_eq!(e[field], hostile(want), "{field}: {e}");
            }
            let got = e["services"].as_array().unwrap();
            assert_eq!(got.len(), 3, "{e}");
            for (i, sent) in services.iter().enumerate() {
                let svc = got
                    .iter()
                    .find(|g| g["service_code"] == sent["service_code"])
                    .unwrap_or_else(|| panic!("{sent} missing from {e}"));
                for field in ["service_name", "description", "group"] {
                    assert_eq!(svc[field], sent[field], "service {i} {field}");
                }
                assert_eq!(svc["keywords"], sent["keywords"], "service {i} keywords");
            }
        }

        // A hostile search string is a search, not SQL: it finds the service named by it.
        let q = hostile(k + 1);
        let found = get(s, &format!("/v1/services?lat={lat}&lon={lon}&q={}", urlencode(q))).await.expect(200).body;
        let names: Vec<&str> =
            found["services"].as_array().unwrap().iter().filter_map(|x| x["service_name"].as_str()).collect();
        assert!(names.contains(&q), "q={q:?} found {names:?}");

        // The audit log keeps the hostile name as sent.
        let audit_uri = format!("/admin/v1/audit?jurisdiction={}", urlencode(&id));
        let audit = call(s, "GET", &audit_uri, Some(&admin), None).await.expect(200).body;
        assert!(holds(&audit, name), "the audit log lost {name:?}: {audit}");
    }

    // Nothing was dropped, deleted or rewritten: every bundled record is still listed unchanged.
    let after = get(s, "/v1/jurisdictions?limit=1000").await.expect(200).body;
    assert_eq!(after["total"].as_u64().unwrap(), before["total"].as_u64().unwrap() + HOSTILE.len() as u64);
    let bundled = |v: &Value| -> Vec<Value> {
        v["items"].as_array().unwrap().iter().filter(|j| j["id"].as_str().unwrap() < "test:").cloned().collect()
    };
    assert!(!bundled(&before).is_empty());
    assert_eq!(bundled(&before), bundled(&after), "a bundled record changed");
}

/// A NUL character cannot be stored by PostgreSQL's text type, and no
/// control character but newline and tab belongs in a text field: they are
/// refused on both backends alike as a 400 naming the field, never a 500.
async fn nul_characters_are_refused_by_field(b: Backend) {
    let Some(w) = writable(b, Settings::default()).await else { return };
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let (geometry, _) = square(40);
    let feature = json!({"type": "Feature", "properties": {"id": "test:nul", "name": "a\u{0}b", "tier": "special_district"}, "geometry": geometry});
    call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&feature.to_string()))
        .await
        .problem(400, Some("properties.name"));
    let feature = json!({"type": "Feature", "properties": {"id": "test:nul", "name": "ok", "tier": "special_district", "external_ids": {"k": "v\u{0}"}}, "geometry": geometry});
    call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&feature.to_string()))
        .await
        .problem(400, Some("properties.external_ids.k"));
    let feature = json!({"type": "Feature", "properties": {"id": "test:nul", "name": "ok", "tier": "special_district"}, "geometry": geometry});
    call(s, "POST", "/admin/v1/jurisdictions", Some(&admin), Some(&feature.to_string())).await.expect(201);
    for (field, body) in [
        (
            "contact",
            json!({"specification": "http://wiki.open311.org/GeoReport_v2", "url": "https://311.example.org/v2/", "contact": "x\u{0}"}),
        ),
        (
            "services[0].service_name",
            json!({"specification": "http://wiki.open311.org/GeoReport_v2", "url": "https://311.example.org/v2/", "services": [{"service_code": "a", "service_name": "b\u{0}"}]}),
        ),
        (
            "services[0].keywords",
            json!({"specification": "http://wiki.open311.org/GeoReport_v2", "url": "https://311.example.org/v2/", "services": [{"service_code": "a", "service_name": "b", "keywords": ["k\u{0}"]}]}),
        ),
        (
            "services[0].description",
            json!({"specification": "http://wiki.open311.org/GeoReport_v2", "url": "https://311.example.org/v2/", "services": [{"service_code": "a", "service_name": "b", "description": "bell\u{7}"}]}),
        ),
    ] {
        call(s, "POST", "/admin/v1/jurisdictions/test:nul/endpoints", Some(&admin), Some(&body.to_string()))
            .await
            .problem(400, Some(field));
    }
    // Nothing of the refused writes was stored.
    let listed =
        call(s, "GET", "/admin/v1/jurisdictions/test:nul/endpoints", Some(&admin), None).await.expect(200).body;
    assert!(!listed.to_string().contains("311.example.org"), "{listed}");
}

both_backends!(hostile_strings_round_trip_unchanged, nul_characters_are_refused_by_field);

/// Whether `s` appears, unchanged, as a string anywhere in `v`.
fn holds(v: &Value, s: &str) -> bool {
    match v {
        Value::String(x) => x == s,
        Value::Array(a) => a.iter().any(|x| holds(x, s)),
        Value::Object(o) => o.values().any(|x| holds(x, s)),
        _ => false,
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const ORIGIN: &str = "https://evil.example";

/// Public routes answer any origin (they need no credentials); the admin API
/// and the console send no CORS header at all, and a preflight for an admin
/// write is not approved, so another web page cannot script admin calls.
#[tokio::test]
async fn cors_opens_the_public_api_only() {
    let w = writable(Backend::Sqlite, Settings::default()).await.unwrap();
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let origin = [("origin", ORIGIN)];

    for uri in [
        "/v1/resolve?lat=39.1653&lon=-86.5264",
        "/v1/jurisdictions",
        "/discovery.json?lat=39.1653&lon=-86.5264",
        "/no/such/route",
    ] {
        let a = call_with(s, "GET", uri, None, None, &origin).await;
        assert_eq!(a.header("access-control-allow-origin"), "*", "{uri}: {:?}", a.headers);
    }
    let pre = call_with(
        s,
        "OPTIONS",
        "/v1/resolve",
        None,
        None,
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
    )
    .await;
    assert!(pre.status.as_u16() < 300, "{}", pre.status);
    assert_eq!(pre.header("access-control-allow-origin"), "*");

    for (method, uri) in [
        ("GET", "/admin/v1/whoami"),
        ("GET", "/admin/v1/audit"),
        ("GET", "/admin/"),
        ("GET", "/admin"),
        ("GET", "/admin/app.js"),
    ] {
        let a = call_with(s, method, uri, Some(&admin), None, &origin).await;
        let cors: Vec<_> = a.headers.keys().filter(|k| k.as_str().starts_with("access-control-")).collect();
        assert!(cors.is_empty(), "{uri} sent {cors:?}");
    }
    for uri in ["/admin/v1/jurisdictions", "/admin/v1/endpoints/x", "/admin/v1/import"] {
        for method in ["POST", "PATCH", "DELETE", "GET"] {
            let pre = call_with(
                s,
                "OPTIONS",
                uri,
                None,
                None,
                &[
                    ("origin", ORIGIN),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", "authorization, content-type"),
                ],
            )
            .await;
            let cors: Vec<_> = pre.headers.keys().filter(|k| k.as_str().starts_with("access-control-")).collect();
            assert!(cors.is_empty(), "preflight {method} {uri} approved: {cors:?}");
            assert!(pre.status.as_u16() >= 400, "preflight {method} {uri}: {}", pre.status);
        }
    }
    // The admin API still works for same-origin and non-browser clients.
    call_with(s, "GET", "/admin/v1/whoami", Some(&admin), None, &origin).await.expect(200);
}

/// The console's pages and assets carry a strict Content-Security-Policy
/// (own origin only, no inline script, no framing, no plugins), nosniff, no
/// referrer and no framing, through the whole application stack.
#[tokio::test]
async fn the_console_sends_security_headers() {
    let s = common::state().await;
    for uri in ["/admin/", "/admin/app.js", "/admin/api.js", "/admin/map.js", "/admin/style.css"] {
        let a = get(&s, uri).await;
        assert_eq!(a.status, 200, "{uri}");
        let csp = a.header("content-security-policy");
        for directive in ["default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"] {
            assert!(csp.contains(directive), "{uri}: CSP {csp:?} lacks {directive:?}");
        }
        let script = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src")).unwrap_or("");
        assert!(
            !script.contains("'unsafe-inline'") && !script.contains("'unsafe-eval'") && !script.contains('*'),
            "{csp}"
        );
        assert_eq!(a.header("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(a.header("x-frame-options"), "DENY", "{uri}");
        assert_eq!(a.header("referrer-policy"), "no-referrer", "{uri}");
    }
}

/// A small gzip upload to the bulk import cannot make the server inflate
/// more than `max_import_bytes`: the whole import is refused with a 400 that
/// says so, and nothing is written; under the limit the same document imports.
#[tokio::test]
async fn gzip_imports_are_capped_once_decompressed() {
    use std::io::Write;
    let settings = Settings { max_import_bytes: 1 << 20, ..Settings::default() };
    let w = writable(Backend::Sqlite, settings).await.unwrap();
    let s = &w.state;
    let admin = w.token("root", &["admin"]);
    let (geometry, (lat, lon)) = square(50);
    let doc = |padding: usize| {
        let feature = json!({"type": "Feature", "properties": {"id": "test:gz", "name": "Gzip", "tier": "special_district"}, "geometry": geometry});
        format!(r#"{{"type":"FeatureCollection","features":[{feature}]}}{}"#, " ".repeat(padding))
    };
    let gzip = |text: String| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    };
    let post = |body: Vec<u8>| {
        axum::http::Request::post("/admin/v1/import")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/gzip")
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    // 2 MiB of JSON in a few KiB of gzip.
    let bomb = gzip(doc(2 << 20));
    assert!(bomb.len() < 16 << 10, "{}", bomb.len());
    let a = common::send(s, post(bomb)).await.problem(400, None);
    assert_eq!(a.body["code"], "invalid_body");
    assert!(a.body["detail"].as_str().unwrap().contains("larger than 1048576 bytes"), "{}", a.body);
    let none = get(s, &format!("/v1/resolve?lat={lat}&lon={lon}")).await.expect(200).body;
    assert!(!none.to_string().contains("test:gz"), "{none}");

    common::send(s, post(gzip(doc(512 << 10)))).await.expect(200);
    let one = get(s, &format!("/v1/resolve?lat={lat}&lon={lon}")).await.expect(200).body;
    assert!(one.to_string().contains("test:gz"), "{one}");
}
