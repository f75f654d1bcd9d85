//! Several `geowebdns serve` processes sharing one database stay in step by
//! following the change log: a write through one is visible on the other
//! within a second. Runs on SQLite (a shared file) always, and on PostgreSQL
//! when a server is reachable (see `tests/common/pg.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::server::serve;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn issue_token(url: &str, key_dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(["token", "issue", "--scope", "admin", "--ttl", "10m", "--sub", "multi-instance-test"])
        .env("GEOWEBDNS_DATABASE_URL", url)
        .env("GEOWEBDNS_KEY_DIR", key_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn resolve_text(client: &reqwest::Client, base: &str) -> String {
    client.get(format!("{base}/v1/resolve?lat=39.1653&lon=-86.5264")).send().await.unwrap().text().await.unwrap()
}

/// Polls `base` until `pred` holds for the resolve answer, at most `limit`.
async fn within(client: &reqwest::Client, base: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if pred(&resolve_text(client, base).await) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not converged within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn writes_on_one_instance_show_on_the_other(url: &str, key_dir: &Path) {
    let server_a = serve(url, key_dir, &["--poll-interval-ms", "200"]);
    let server_b = serve(url, key_dir, &["--poll-interval-ms", "200"]);
    let (a, b) = (server_a.base.clone(), server_b.base.clone());
    let token = issue_token(url, key_dir);
    let client = reqwest::Client::new();
    let marker = "https://multi.example.org/open311/v2/";
    let res = client
        .post(format!("{a}/admin/v1/jurisdictions/us-place:1805860/endpoints"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"url": marker, "type": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert!(resolve_text(&client, &a).await.contains(marker), "visible at once on the writer");
    let took = within(&client, &b, Duration::from_secs(1), |t| t.contains(marker)).await;
    eprintln!("{url}: create visible on B after {took:?}");

    let res = client.delete(format!("{b}/admin/v1/endpoints/{id}")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let took = within(&client, &a, Duration::from_secs(1), |t| !t.contains(marker)).await;
    eprintln!("{url}: delete visible on A after {took:?}");

    let ready: serde_json::Value = client.get(format!("{a}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["lag"], 0, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_instances_sharing_a_file_stay_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    // Prepare the database once so the two instances do not both import the bundled data.
    geowebdns::cli::prepare_store(&url, true).await.unwrap();
    writes_on_one_instance_show_on_the_other(&url, &dir.path().join("keys")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_stay_in_step_through_listen_notify() {
    let Some(db) = common::pg::create_pg_database().await else { return };
    geowebdns::cli::prepare_store(&db.url, true).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    writes_on_one_instance_show_on_the_other(&db.url, &dir.path().join("keys")).await;
}
