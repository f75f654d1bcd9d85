//! Limits and overload through the real router: load is shed with 503 and
//! Retry-After instead of queueing, admin requests have slots of their own,
//! the per-client rate limit answers 429, oversized headers 431, slow
//! requests a 503 problem, and every one of them is a problem+json body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use common::{call, send, state_on, writable, Backend};
use geowebdns::limits::LimitSettings;
use geowebdns::Settings;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

const AT_BLOOMINGTON: &str = "/v1/resolve?lat=39.1653&lon=-86.5264";

fn from(addr: &str, uri: &str) -> Request<Body> {
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
    req
}

#[tokio::test]
async fn a_full_server_sheds_public_load_but_still_serves_admin() {
    let limits = LimitSettings { max_concurrent: 2, admin_max_concurrent: 2, ..LimitSettings::default() };
    let w = writable(Backend::Sqlite, Settings { limits, ..Settings::default() }).await.unwrap();
    let s = &w.state;
    send(s, from("10.1.1.1:1000", AT_BLOOMINGTON)).await.expect(200);
    // Every public slot taken (as by two slow requests in flight).
    let held: Vec<_> = (0..2).map(|_| s.limits.occupy_public().unwrap()).collect();
    let a = send(s, from("10.1.1.1:1000", AT_BLOOMINGTON)).await.problem(503, None);
    assert_eq!(a.body["code"], "overloaded");
    assert_eq!(a.header("retry-after"), "1");
    assert!(a.body["detail"].as_str().unwrap().contains("2 public requests"), "{}", a.body);
    // Shed at once, not queued: the answer came back while the slots are still held.
    // Admin requests have their own slots.
    let admin = w.token("root", &["admin"]);
    call(s, "GET", "/admin/v1/whoami", Some(&admin), None).await.expect(200);
    drop(held);
    send(s, from("10.1.1.1:1000", AT_BLOOMINGTON)).await.expect(200);
}

#[tokio::test]
async fn the_rate_limit_is_per_client_and_spares_admin_routes() {
    let limits = LimitSettings {
        rate_limit: NonZeroU32::new(1),
        rate_burst: NonZeroU32::new(3).unwrap(),
        ..LimitSettings::default()
    };
    let w = writable(Backend::Sqlite, Settings { limits, ..Settings::default() }).await.unwrap();
    let s = &w.state;
    for _ in 0..3 {
        send(s, from("192.0.2.7:5555", AT_BLOOMINGTON)).await.expect(200);
    }
    let a = send(s, from("192.0.2.7:5556", AT_BLOOMINGTON)).await.problem(429, None);
    assert_eq!(a.body["code"], "rate_limited");
    let retry: u64 = a.header("retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another client is not affected.
    send(s, from("192.0.2.8:5555", AT_BLOOMINGTON)).await.expect(200);
    // Admin routes are not rate limited.
    let admin = w.token("root", &["admin"]);
    for _ in 0..5 {
        call(s, "GET", "/admin/v1/whoami", Some(&admin), None).await.expect(200);
    }
    // The bucket refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(s, from("192.0.2.7:5555", AT_BLOOMINGTON)).await.expect(200);
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let limits = LimitSettings { max_header_bytes: 4096, ..LimitSettings::default() };
    let t = state_on(Backend::Sqlite, Settings { limits, ..Settings::default() }).await.unwrap();
    let req = Request::get(AT_BLOOMINGTON).header("x-padding", "a".repeat(8000)).body(Body::empty()).unwrap();
    let a = send(&t.state, req).await.problem(431, None);
    assert_eq!(a.body["code"], "headers_too_large");
    let long_query = format!("{AT_BLOOMINGTON}&tier={}", "country,".repeat(1000));
    send(&t.state, Request::get(long_query).body(Body::empty()).unwrap()).await.problem(431, None);
    send(&t.state, Request::get(AT_BLOOMINGTON).body(Body::empty()).unwrap()).await.expect(200);
}

#[tokio::test]
async fn a_request_that_runs_out_of_time_is_a_503_problem() {
    let t = state_on(Backend::Sqlite, Settings { request_timeout: Duration::from_millis(1), ..Settings::default() })
        .await
        .unwrap();
    // A page of 1,000 change-feed records with their boundaries: the store
    // reads megabytes of geometry over many awaits, so no machine answers it
    // within 1 ms. (A 5,000-point batch once finished inside a real
    // millisecond on a fast CI machine and answered 200.)
    let a = common::get(&t.state, "/v1/changes?since=0&limit=1000&boundaries=true").await.problem(503, None);
    assert_eq!(a.body["code"], "overloaded");
    assert_eq!(a.header("retry-after"), "1");
    assert!(a.body["detail"].as_str().unwrap().contains("longer than 1 ms"), "{}", a.body);
}

/// A streamed batch answer (NDJSON) of `n` points over the US.
fn streamed_batch(addr: &str, n: usize) -> Request<Body> {
    let points: Vec<String> = (0..n)
        .map(|i| {
            format!(r#"{{"lat":{:.3},"lon":{:.3}}}"#, 30.0 + (i % 100) as f64 * 0.15, -120.0 + (i / 100) as f64 * 1.7)
        })
        .collect();
    let mut req = Request::post("/v1/resolve")
        .header("content-type", "application/json")
        .header("accept", "application/x-ndjson")
        .body(Body::from(format!(r#"{{"points":[{}]}}"#, points.join(","))))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
    req
}

#[tokio::test]
async fn a_streamed_batch_holds_its_slot_until_its_body_ends() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let limits = LimitSettings { max_concurrent: 1, ..LimitSettings::default() };
    let t = state_on(Backend::Sqlite, Settings { limits, ..Settings::default() }).await.unwrap();
    let res = geowebdns::app(t.state.clone()).oneshot(streamed_batch("10.1.1.1:1000", 1000)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    // The handler has returned, but the work is in the body: the slot is still taken.
    let a = send(&t.state, from("10.1.1.2:1000", AT_BLOOMINGTON)).await.problem(503, None);
    assert_eq!(a.body["code"], "overloaded");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let lines = body.split(|&b| b == b'\n').filter(|l| l.starts_with(b"{\"result\":")).count();
    assert_eq!(lines, 1000);
    // The body has ended: the slot is free again.
    send(&t.state, from("10.1.1.2:1000", AT_BLOOMINGTON)).await.expect(200);
}

/// A streamed answer is counted in flight, and timed, until its body ends
/// or is dropped, not only until its head.
#[tokio::test]
async fn a_streamed_batch_is_in_flight_and_timed_until_its_body_ends() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let t = state_on(Backend::Sqlite, Settings::default()).await.unwrap();
    let scrape = || async {
        let metrics = common::get(&t.state, "/metrics").await.expect(200);
        String::from_utf8_lossy(&metrics.raw).into_owned()
    };
    let has = |text: &str, line: &str| text.lines().any(|l| l == line);
    const IN_FLIGHT: &str = "geowebdns_http_requests_in_flight";
    const TIMED: &str = "geowebdns_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/resolve\"}";
    for read in [true, false] {
        let res = geowebdns::app(t.state.clone()).oneshot(streamed_batch("10.1.1.1:1000", 1000)).await.unwrap();
        assert_eq!(res.status(), 200);
        // The answer, and the scrape itself.
        let text = scrape().await;
        assert!(has(&text, &format!("{IN_FLIGHT} 2")), "{text}");
        let before = usize::from(!read);
        assert!(has(&text, &format!("{TIMED} {before}")), "{text}");
        if read {
            res.into_body().collect().await.unwrap();
        } else {
            // A client that goes away before the end.
            drop(res);
        }
        let text = scrape().await;
        assert!(has(&text, &format!("{IN_FLIGHT} 1")), "{text}");
        assert!(has(&text, &format!("{TIMED} {}", before + 1)), "{text}");
    }
}

#[tokio::test]
async fn a_streamed_batch_past_its_deadline_is_cut_short() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let limits = LimitSettings { max_concurrent: 1, ..LimitSettings::default() };
    let settings = Settings { limits, request_timeout: Duration::from_millis(300), ..Settings::default() };
    let t = state_on(Backend::Sqlite, settings).await.unwrap();
    let res = geowebdns::app(t.state.clone()).oneshot(streamed_batch("10.1.1.1:1000", 1000)).await.unwrap();
    assert_eq!(res.status(), 200);
    // A client that does not read: the deadline passes while the answer waits.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = res.into_body().collect().await.expect_err("the answer is cut short");
    assert!(err.to_string().contains("longer than 300 ms"), "{err}");
    // The slot went with the body.
    send(&t.state, from("10.1.1.2:1000", AT_BLOOMINGTON)).await.expect(200);
    let metrics = common::get(&t.state, "/metrics").await.expect(200);
    let text = String::from_utf8_lossy(&metrics.raw);
    assert!(text.lines().any(|l| l.starts_with("geowebdns_http_refused_total{reason=\"timeout\"} 1")), "{text}");
}
