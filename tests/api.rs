//! The public API through the real router (`tower::ServiceExt::oneshot`), on
//! the bundled real data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use axum::body::Body;
use axum::http::Request;
use common::{get, post_json, send, state_on, Backend};
use geowebdns::Settings;
use std::sync::Arc;

const BLOOMINGTON: &str = "lat=39.1653&lon=-86.5264";

async fn downtown_bloomington_resolves_to_every_tier_in_order(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let a = get(&s, &format!("/v1/resolve?{BLOOMINGTON}")).await.expect(200);
    assert_eq!(a.ids(), ["country:USA", "us-state:18", "us-county:18105", "us-place:1805860"]);
    assert_eq!(a.body["location"]["lat"], 39.1653);
    assert_eq!(a.body["location"]["lon"], -86.5264);
    assert!(a.body["index_version"].as_i64().unwrap() > 0);
    let city = &a.body["jurisdictions"][3];
    assert_eq!(city["name"], "Bloomington");
    assert_eq!(city["tier"], "place");
    assert_eq!(city["parent"], "us-county:18105", "parent is derived at import");
    assert_eq!(a.body["jurisdictions"][2]["parent"], "us-state:18");
    assert_eq!(a.body["jurisdictions"][1]["parent"], "country:USA");
    assert!(a.body["jurisdictions"][0]["parent"].is_null());
    let endpoints = city["endpoints"].as_array().expect("endpoints");
    assert!(
        endpoints.iter().any(|e| e["url"].as_str().unwrap().starts_with("https://bloomington.in.gov/crm/open311/v2")),
        "Bloomington's real Open311 server is bundled: {endpoints:?}"
    );
    assert!(a.header("etag").starts_with("W/\""));
    assert!(a.header("cache-control").contains("max-age=60"));
    assert_eq!(a.header("content-type"), "application/json");
}

async fn long_is_accepted_as_the_open311_spelling(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let a = get(&s, "/v1/resolve?lat=39.1653&long=-86.5264").await.expect(200);
    assert_eq!(a.ids().len(), 4);
}

async fn open_ocean_is_an_empty_list(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let a = get(&s, "/v1/resolve?lat=30.0&lon=-40.0").await.expect(200);
    assert!(a.ids().is_empty());
}

async fn tier_filter_keeps_only_named_tiers(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let a = get(&s, &format!("/v1/resolve?{BLOOMINGTON}&tier=county,place")).await.expect(200);
    assert_eq!(a.ids(), ["us-county:18105", "us-place:1805860"]);
}

async fn overlapping_special_districts_are_all_returned(b: Backend) {
    // Midtown Manhattan: city, county (New York County), and several NYC districts at once.
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let a = get(&s, "/v1/resolve?lat=40.7549&lon=-73.9840").await.expect(200);
    let ids = a.ids();
    assert!(ids.contains(&"us-county:36061".to_owned()), "{ids:?}");
    let districts = ids.iter().filter(|i| i.starts_with("nyc-")).count();
    assert!(districts >= 3, "school, council, police and community districts overlap: {ids:?}");
    // Ordered by tier: every special district after every place.
    let tiers: Vec<String> =
        a.body["jurisdictions"].as_array().unwrap().iter().map(|j| j["tier"].as_str().unwrap().to_owned()).collect();
    let rank = |t: &str| {
        ["country", "state", "county", "place", "special_district", "other"].iter().position(|x| *x == t).unwrap()
    };
    assert!(tiers.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])), "{tiers:?}");
}

async fn bad_locations_are_problems_naming_the_field(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    for (query, field) in [
        ("lon=-86.5", "lat"),
        ("lat=39.1", "lon"),
        ("lat=abc&lon=-86.5", "lat"),
        ("lat=NaN&lon=-86.5", "lat"),
        ("lat=inf&lon=-86.5", "lat"),
        ("lat=39.1&lon=", "lon"),
        ("lat=95&lon=-86.5", "lat"),
        ("lat=39.1&lon=-181", "lon"),
        ("lat=39.1&long=200", "long"),
        ("lat=39.1&lon=1&long=1", "lon"),
        ("lat=1&lat=2&lon=1", "lat"),
        ("lat=39.1&lon=-86.5&tier=city", "tier"),
    ] {
        get(&s, &format!("/v1/resolve?{query}")).await.problem(400, Some(field));
    }
    // A query string that is not even decodable as pairs.
    get(&s, "/v1/resolve?lat=%FF&lon=1").await.problem(400, None);
}

async fn batch_answers_per_point_without_repeating_records(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let body = r#"{"points":[
        {"lat":39.1653,"lon":-86.5264,"id":"a"},
        {"lat":39.17,"long":-86.53},
        {"lat":30.0,"lon":-40.0}
    ]}"#;
    let a = post_json(&s, "/v1/resolve", body).await.expect(200);
    assert_eq!(a.body["count"], 3);
    let results = a.body["results"].as_array().unwrap();
    assert_eq!(results[0]["id"], "a");
    assert_eq!(
        results[0]["jurisdictions"],
        serde_json::json!(["country:USA", "us-state:18", "us-county:18105", "us-place:1805860"])
    );
    assert_eq!(results[1]["jurisdictions"].as_array().unwrap().len(), 4);
    assert_eq!(results[2]["jurisdictions"], serde_json::json!([]));
    let records = a.body["jurisdictions"].as_object().unwrap();
    assert_eq!(records.len(), 4, "each record once");
    assert_eq!(records["us-place:1805860"]["name"], "Bloomington");
    // Ids only: the same results, no records.
    let ids_only = body.replacen('{', r#"{"records":false,"#, 1);
    let b = post_json(&s, "/v1/resolve", &ids_only).await.expect(200);
    assert!(b.body.get("jurisdictions").is_none(), "{}", b.body);
    assert_eq!(b.body["results"], a.body["results"]);
    let with = body.replacen('{', r#"{"records":true,"#, 1);
    let c = post_json(&s, "/v1/resolve", &with).await.expect(200);
    assert_eq!(c.body["jurisdictions"], a.body["jurisdictions"]);
    // A body the quick reader leaves to serde (here for its structured
    // `id` with an escape; its exponent it would read) is answered the same way.
    let slow = body.replace(r#""id":"a""#, r#""id":{"k":"\u0061\"b"}"#).replace("39.17,", "3917e-2,");
    let d = post_json(&s, "/v1/resolve", &slow).await.expect(200);
    assert_eq!(d.body["results"][0]["id"], serde_json::json!({"k": "a\"b"}));
    for (x, y) in d.body["results"].as_array().unwrap().iter().zip(results) {
        assert_eq!((&x["location"], &x["jurisdictions"]), (&y["location"], &y["jurisdictions"]));
    }
    assert_eq!(d.body["jurisdictions"], a.body["jurisdictions"]);
}

async fn batch_refusals(b: Backend) {
    let Some(s) = state_on(b, Settings { max_batch: 3, max_body_bytes: 2048, ..Settings::default() }).await else {
        return;
    };
    let four = r#"{"points":[{"lat":1,"lon":1},{"lat":1,"lon":1},{"lat":1,"lon":1},{"lat":1,"lon":1}]}"#;
    let a = post_json(&s, "/v1/resolve", four).await.problem(400, Some("points"));
    assert_eq!(a.body["code"], "batch_too_large");
    post_json(&s, "/v1/resolve", r#"{"points":[]}"#).await.problem(400, Some("points"));
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":1,"lon":1},{"lon":1}]}"#)
        .await
        .problem(400, Some("points[1].lat"));
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":1}]}"#).await.problem(400, Some("points[0].lon"));
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":100,"lon":1}]}"#).await.problem(400, Some("points[0].lat"));
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":1,"long":-190}]}"#).await.problem(400, Some("points[0].long"));
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":"x","lon":1}]}"#).await.problem(400, Some("points[0].lat"));
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":1,"lon":1}],"tier":"nope"}"#).await.problem(400, Some("tier"));
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":1,"lon":1}],"records":"no"}"#)
        .await
        .problem(400, Some("records"));
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":1,"lon":1e999}]}"#).await.problem(400, None);
    post_json(&s, "/v1/resolve", r#"{"points":[{"lat":1,"lon":1}"#).await.problem(400, None);
    post_json(&s, "/v1/resolve", r#"{"pts":[]}"#).await.problem(400, None);
    let big = format!(r#"{{"points":[{}]}}"#, vec![r#"{"lat":1,"lon":1}"#; 200].join(","));
    post_json(&s, "/v1/resolve", &big).await.problem(413, None);
    let a = send(&s, Request::post("/v1/resolve").header("content-type", "text/plain").body(Body::from("{}")).unwrap())
        .await;
    a.problem(415, None);
}

/// A large batch yields to the runtime between chunks, so a request that
/// comes in meanwhile is answered before the batch is done. `#[tokio::test]`
/// runs one thread: answering the batch in one go (without yields) would
/// finish it first and fail this test.
#[tokio::test]
async fn a_large_batch_lets_other_requests_through() {
    let Some(s) = state_on(Backend::Sqlite, Settings::default()).await else { return };
    let points: Vec<String> = (0..4000)
        .map(|i| {
            format!(
                r#"{{"lat":{:.4},"lon":{:.4}}}"#,
                25.0 + f64::from(i % 200) * 0.12,
                -124.0 + f64::from(i / 200) * 2.9
            )
        })
        .collect();
    let body = format!(r#"{{"records":false,"points":[{}]}}"#, points.join(","));
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let batch = tokio::spawn({
        let (state, done) = (s.state.clone(), done.clone());
        async move {
            let a = post_json(&state, "/v1/resolve", &body).await;
            done.lock().unwrap().push("batch");
            a
        }
    });
    let health = tokio::spawn({
        let (state, done) = (s.state.clone(), done.clone());
        async move {
            get(&state, "/healthz").await.expect(200);
            done.lock().unwrap().push("healthz");
        }
    });
    let a = batch.await.unwrap().expect(200);
    health.await.unwrap();
    assert_eq!(a.body["count"], 4000);
    assert_eq!(a.body["results"].as_array().unwrap().len(), 4000);
    assert_eq!(*done.lock().unwrap(), ["healthz", "batch"], "the health check waited for the whole batch");
}

async fn jurisdictions_list_filters_and_pages(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let a = get(&s, "/v1/jurisdictions?tier=county&parent=us-state:18&limit=50").await.expect(200);
    assert_eq!(a.body["total"], 92, "Indiana has 92 counties");
    let first: Vec<String> =
        a.body["items"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(first.len(), 50);
    assert!(first.windows(2).all(|w| w[0] < w[1]), "ordered by id");
    let next = a.body["next"].as_str().unwrap().to_owned();
    let b =
        get(&s, &format!("/v1/jurisdictions?tier=county&parent=us-state:18&limit=50&after={next}")).await.expect(200);
    let second: Vec<String> =
        b.body["items"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(second.len(), 42);
    assert!(b.body["next"].is_null());
    assert!(second.iter().all(|id| !first.contains(id)));
    let q = get(&s, "/v1/jurisdictions?q=bloomington&tier=place").await.expect(200);
    assert!(q.body["items"].as_array().unwrap().iter().any(|j| j["id"] == "us-place:1805860"));
    get(&s, "/v1/jurisdictions?limit=0").await.problem(400, Some("limit"));
    get(&s, "/v1/jurisdictions?limit=abc").await.problem(400, Some("limit"));
    get(&s, "/v1/jurisdictions?tier=galaxy").await.problem(400, Some("tier"));
}

async fn one_jurisdiction_and_its_boundary(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    let a = get(&s, "/v1/jurisdictions/us-place:1805860").await.expect(200);
    assert_eq!(a.body["name"], "Bloomington");
    // Ids with spaces (London boroughs) work percent-encoded.
    let b = get(&s, "/v1/jurisdictions/london-borough:Kingston%20upon%20Thames").await.expect(200);
    assert_eq!(b.body["name"], "Kingston upon Thames");
    get(&s, "/v1/jurisdictions/us-place:0").await.problem(404, None);
    get(&s, "/v1/jurisdictions/us-place:0/boundary").await.problem(404, None);

    // Hawaii: many islands; simplification must keep every one.
    let full = get(&s, "/v1/jurisdictions/us-state:15/boundary").await.expect(200);
    assert_eq!(full.header("content-type"), "application/geo+json");
    assert_eq!(full.body["type"], "Feature");
    assert_eq!(full.body["properties"]["tier"], "state");
    let parts = full.body["geometry"]["coordinates"].as_array().unwrap().len();
    assert!(parts >= 5);
    let simple = get(&s, "/v1/jurisdictions/us-state:15/boundary?simplify=5000").await.expect(200);
    assert_eq!(simple.body["geometry"]["coordinates"].as_array().unwrap().len(), parts, "no polygon removed");
    assert!(simple.raw.len() < full.raw.len(), "simplified is smaller");
    get(&s, "/v1/jurisdictions/us-state:15/boundary?simplify=-1").await.problem(400, Some("simplify"));
    get(&s, "/v1/jurisdictions/us-state:15/boundary?simplify=x").await.problem(400, Some("simplify"));
}

async fn health_readiness_and_unknown_routes(b: Backend) {
    let Some(s) = state_on(b, Settings::default()).await else { return };
    get(&s, "/healthz").await.expect(200);
    let r = get(&s, "/readyz").await.expect(200);
    assert_eq!(r.body["status"], "ready");
    assert_eq!(r.body["backend"], if b == Backend::Sqlite { "sqlite" } else { "postgres" });
    assert!(r.body["index"]["jurisdictions"].as_u64().unwrap() > 8000);
    get(&s, "/nope").await.problem(404, None);
    send(&s, Request::delete("/v1/resolve").body(Body::empty()).unwrap()).await.problem(405, None);
}

both_backends!(
    downtown_bloomington_resolves_to_every_tier_in_order,
    long_is_accepted_as_the_open311_spelling,
    open_ocean_is_an_empty_list,
    tier_filter_keeps_only_named_tiers,
    overlapping_special_districts_are_all_returned,
    bad_locations_are_problems_naming_the_field,
    batch_answers_per_point_without_repeating_records,
    batch_refusals,
    jurisdictions_list_filters_and_pages,
    one_jurisdiction_and_its_boundary,
    health_readiness_and_unknown_routes,
);

/// `Accept: application/x-ndjson` streams the batch answer: a head line,
/// then each point's first-seen records and its result, the same content
/// as the JSON answer.
#[tokio::test]
async fn a_streamed_batch_matches_the_json_answer() {
    let Some(s) = state_on(Backend::Sqlite, Settings::default()).await else { return };
    // More points than one streamed chunk, each with a client id.
    let points: Vec<serde_json::Value> = (0..700)
        .map(|i| {
            serde_json::json!({
                "id": format!("p{i}"),
                "lat": 26.0 + f64::from(i % 35) * 0.6,
                "lon": -123.0 + f64::from(i / 35) * 2.8,
            })
        })
        .collect();
    let lines_of = |body: &str| {
        Request::post("/v1/resolve")
            .header("content-type", "application/json")
            .header("accept", "application/json;q=0.5, application/x-ndjson")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    for records in [true, false] {
        let body = serde_json::json!({ "points": points, "records": records }).to_string();
        let json = post_json(&s, "/v1/resolve", &body).await.expect(200);
        let a = send(&s, lines_of(&body)).await.expect(200);
        assert_eq!(a.header("content-type"), "application/x-ndjson");
        assert!(a.header("vary").contains("Accept"), "{:?}", a.headers);
        assert_eq!(a.header("x-accel-buffering"), "no", "proxies pass the stream on as it comes");
        assert_ne!(a.header("etag"), json.header("etag"), "the two forms are different representations");
        let text = String::from_utf8(a.raw.clone()).unwrap();
        assert!(text.ends_with('\n'));
        let mut lines = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
        let head = lines.next().unwrap();
        assert_eq!(head["batch"]["count"], 700);
        assert_eq!(head["batch"]["index_version"], json.body["index_version"]);
        assert!(head["batch"]["expires"].is_string());
        let (mut sent, mut results) = (std::collections::BTreeMap::new(), Vec::new());
        for line in lines {
            let obj = line.as_object().unwrap();
            assert_eq!(obj.len(), 1, "one member a line: {line}");
            if let Some(record) = obj.get("jurisdiction") {
                assert!(records, "no records with \"records\": false");
                let id = record["id"].as_str().unwrap().to_owned();
                assert_eq!(*record, json.body["jurisdictions"][&id], "the same record as in the JSON answer");
                assert!(sent.insert(id, ()).is_none(), "each record once");
            } else {
                let result = &obj["result"];
                if records {
                    for id in result["jurisdictions"].as_array().unwrap() {
                        assert!(sent.contains_key(id.as_str().unwrap()), "{id} sent before the result naming it");
                    }
                }
                results.push(result.clone());
            }
        }
        assert_eq!(results, *json.body["results"].as_array().unwrap(), "the same results, in request order");
        if records {
            assert_eq!(sent.len(), json.body["jurisdictions"].as_object().unwrap().len());
            assert!(sent.len() > 20, "the points are spread over many jurisdictions");
        }
    }
    // Bad input is still a problem+json answer, not a stream.
    let a = send(&s, lines_of(r#"{"points":[{"lat":1,"lon":2},{"lat":91,"lon":2}]}"#)).await;
    a.problem(400, Some("points[1].lat"));
    // JSON stays the answer for wildcards and for a preferred JSON.
    for accept in ["*/*", "application/json, application/x-ndjson;q=0.5"] {
        let req = Request::post("/v1/resolve")
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(Body::from(r#"{"points":[{"lat":39.1653,"lon":-86.5264}]}"#))
            .unwrap();
        let a = send(&s, req).await.expect(200);
        assert_eq!(a.header("content-type"), "application/json", "Accept: {accept}");
    }
}
