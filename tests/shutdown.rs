//! Graceful shutdown (issue 8 point 7): on SIGTERM or SIGINT `geowebdns
//! serve` stops accepting connections, lets the request in flight finish
//! with its full answer, closes idle keep-alive connections, closes the
//! store (SQLite checkpoints its WAL and removes it) and exits 0 with
//! `stopped` in its log. A connection that never finishes its request holds
//! the exit up to `--shutdown-grace` seconds and no longer.
//!
//! The request in flight is made deterministic by sending its body in two
//! halves: the signal goes out once the server's log shows it started
//! processing the request, and the second half once the server says it no
//! longer accepts connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::server::{start, Process};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const LOG: &str = "info,tower_http=debug";

fn connect(p: &Process) -> TcpStream {
    let s = TcpStream::connect(&p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads one response with a `content-length` from a keep-alive connection.
fn read_response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before a full response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("content-length");
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed in the middle of a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, head, buf[head_end..head_end + len].to_vec())
}

/// Whether the server closed the connection (EOF or reset) within the read timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected bytes on an idle connection: {:?}", String::from_utf8_lossy(&b[..n])),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => true,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("reading an idle connection: {e}"),
    }
}

/// Waits until a new connection to the server is refused (the listener is closed).
fn wait_refused(p: &Process, limit: Duration) {
    let start = Instant::now();
    loop {
        match TcpStream::connect(&p.addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            Err(e) => panic!("connecting: {e}"),
            Ok(_) => {
                assert!(start.elapsed() < limit, "new connections still accepted {limit:?} after the signal");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A batch of `n` points as a JSON body.
fn batch(n: usize) -> Vec<u8> {
    let points: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"lat": -80.0 + (i % 160) as f64, "lon": -170.0 + (i / 160) as f64 * 0.5, "id": format!("p{i}")}))
        .collect();
    serde_json::to_vec(&serde_json::json!({"points": points})).unwrap()
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("shutdown.db").display())
}

fn in_flight_request_finishes(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let mut p = start(&url, &dir.path().join("keys"), &["--no-bundled"], LOG);

    // An idle keep-alive connection: one request answered, then silence.
    let mut idle = connect(&p);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut idle).0, 200);

    // The request in flight: head and half the body now, the rest after the signal.
    let body = batch(5_000);
    let half = body.len() / 2;
    let mut busy = connect(&p);
    let mark = p.log_len();
    write!(
        busy,
        "POST /v1/resolve HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    busy.write_all(&body[..half]).unwrap();
    p.wait_for_log(mark, &["started processing request", "/v1/resolve"], Duration::from_secs(60));

    let mark = p.log_len();
    p.signal(signal);
    p.wait_for_log(mark, &["no longer accepting connections"], Duration::from_secs(60));
    // No new connection is accepted while the request is still in flight.
    wait_refused(&p, Duration::from_secs(30));
    // The idle keep-alive connection is closed at once, not at the end of the grace period.
    idle.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert!(closed_by_server(&mut idle), "idle keep-alive connection left open after {signal}");

    busy.write_all(&body[half..]).unwrap();
    let (status, head, answer) = read_response(&mut busy);
    assert_eq!(status, 200, "{head}");
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("a complete JSON answer");
    assert_eq!(answer["count"], 5_000);
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 5_000);
    assert_eq!(results[4_999]["id"], "p4999");
    assert!(head.contains("connection: close"), "the answer closes the connection: {head}");

    // Exits 0 well before the 30 s default grace period: nothing was left to wait for.
    let status =
        p.wait_exit(Duration::from_secs(25)).unwrap_or_else(|| panic!("still running; log:\n{}", p.log_text()));
    assert!(status.success(), "exit status {status}; log:\n{}", p.log_text());
    p.wait_for_log(mark, &["store closed"], Duration::from_secs(10));
    p.wait_for_log(mark, &[": stopped"], Duration::from_secs(10));
    let log = p.log_text();
    assert!(!log.contains("grace period"), "the grace period was not needed:\n{log}");
    // The store was closed: SQLite checkpointed the WAL into the file and removed it.
    let wal = dir.path().join("shutdown.db-wal");
    assert!(!wal.exists(), "{} left behind: the store was not closed", wal.display());
    assert!(dir.path().join("shutdown.db").exists());
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_and_closes_the_store() {
    in_flight_request_finishes("TERM");
}

#[test]
fn sigint_lets_the_request_in_flight_finish_and_closes_the_store() {
    in_flight_request_finishes("INT");
}

/// Clients that never finish their request (a body that stops halfway, a
/// request head that never ends) hold the exit for `--shutdown-grace`
/// seconds at most.
#[test]
fn stuck_connections_hold_the_exit_for_the_grace_period_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let mut p = start(
        &url,
        &dir.path().join("keys"),
        &["--no-bundled", "--shutdown-grace", "1", "--request-timeout", "600"],
        LOG,
    );
    // A body that stops halfway, the handler waiting for the rest.
    let body = batch(100);
    let mut stuck = connect(&p);
    let mark = p.log_len();
    write!(
        stuck,
        "POST /v1/resolve HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stuck.write_all(&body[..body.len() / 2]).unwrap();
    p.wait_for_log(mark, &["started processing request", "/v1/resolve"], Duration::from_secs(60));
    // A request head that never ends, on a connection of its own.
    let mut slow = connect(&p);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-slow: ").unwrap();

    let mark = p.log_len();
    let signalled = Instant::now();
    p.signal("TERM");
    let status = p
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running 30 s after SIGTERM with a 1 s grace period; log:\n{}", p.log_text()));
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}; log:\n{}", p.log_text());
    p.wait_for_log(mark, &["still open after the shutdown grace period"], Duration::from_secs(10));
    p.wait_for_log(mark, &[": stopped"], Duration::from_secs(10));
    eprintln!("exited {took:?} after SIGTERM with --shutdown-grace 1 and two stuck connections");
    // The stuck client gets no answer, only the end of the connection.
    stuck.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(closed_by_server(&mut stuck));
}
