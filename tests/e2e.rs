//! End to end: the real binary on a free port with a fresh temporary SQLite
//! database; it must migrate, import the bundled data and answer over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server when the test ends, whatever happens.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `geowebdns serve` on port 0 and reads the bound address from its log.
fn start(db: &std::path::Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("GEOWEBDNS_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("GEOWEBDNS_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start geowebdns");
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("address=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(240)).expect("server reported its address");
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_bundled_data_from_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e2e.db");
    let started = Instant::now();
    let (_server, addr) = start(&db);
    eprintln!("server up at {addr} after {:?}", started.elapsed());
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");

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
