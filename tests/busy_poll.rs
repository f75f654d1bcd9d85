//! `serve --busy-poll-us`: the real binary with busy polling on answers
//! every request, over one keep-alive connection and many, including
//! requests whose answer comes from the store's own threads (a task woken
//! from outside the runtime while a worker polls must not be missed), and
//! refuses a value that is not a number of microseconds up to one second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

/// Each request must be answered well within this; a lost wake-up would
/// leave one waiting until some unrelated event.
const PER_REQUEST: Duration = Duration::from_secs(20);

async fn round(client: &reqwest::Client, base: &str, i: usize) {
    let lat = 30.0 + (i % 17) as f64 * 0.5;
    let lon = -120.0 + (i % 23) as f64 * 2.0;
    let paths =
        ["/healthz".to_owned(), format!("/v1/resolve?lat={lat}&lon={lon}"), "/v1/changes?since=0&limit=5".to_owned()];
    for path in paths {
        let res = client.get(format!("{base}{path}")).timeout(PER_REQUEST).send().await.expect(&path);
        assert_eq!(res.status(), 200, "{path}");
        res.bytes().await.expect("body");
    }
}

#[tokio::test]
async fn a_busy_polling_server_answers_every_request_on_one_connection_and_many() {
    // The runtime's default worker count (one a CPU), and a single worker,
    // the case where the polling worker is also the only one to run tasks
    // woken from the store's threads.
    for workers in [None, Some("1")] {
        check_server(workers).await;
    }
}

async fn check_server(workers: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let env: Vec<(&str, &str)> = workers.map(|w| ("TOKIO_WORKER_THREADS", w)).into_iter().collect();
    let server = common::server::serve_with_env(&url, &dir.path().join("keys"), &["--busy-poll-us", "200"], &env);
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(logs.contains("busy_poll_us=200"), "the listening line reports the setting: {logs}");

    // One keep-alive connection, one request at a time: the worker polls
    // between every two of them.
    let one = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    for i in 0..150 {
        round(&one, &server.base, i).await;
    }
    // Several connections at once.
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..8 {
        let base = server.base.clone();
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..40 {
                round(&client, &base, c * 40 + i).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a client task");
    }
    server.stop();
}

#[test]
fn a_busy_poll_budget_that_is_not_a_number_or_over_a_second_is_refused() {
    for bad in ["lots", "-5", "1000001"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_geowebdns"))
            .args(["--database-url", "sqlite::memory:", "serve", &format!("--busy-poll-us={bad}")])
            .output()
            .expect("run geowebdns");
        assert_eq!(out.status.code(), Some(2), "{bad}: a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--busy-poll-us"), "{bad}: the error names the flag: {err}");
    }
}
