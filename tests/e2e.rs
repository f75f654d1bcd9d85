//! End to end: the real binary on a free port with a fresh temporary SQLite
//! database; it must migrate, import the bundled data and answer over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_bundled_data_from_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e2e.db");
    let started = Instant::now();
    let server = common::server::serve(&format!("sqlite://{}", db.display()), &dir.path().join("keys"), &[]);
    eprintln!("server up at {} after {:?}", server.base, started.elapsed());
    let client = reqwest::Client::new();
    let base = server.base.clone();

    let ready: serde_json::Value = client.get(format!("{base}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");

    let res = client.get(format!("{base}/v1/resolve?lat=39.1653&lon=-86.5264")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let ids: Vec<&str> = body["jurisdictions"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["country:USA", "us-state:18", "us-county:18105", "us-place:1805860"]);

    let res = client.get(format!("{base}/v1/resolve?lat=north&lon=1")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["field"], "lat");

    assert!(db.exists(), "the SQLite store was created");
}
