//! Running the real `geowebdns` binary in tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `geowebdns serve` process, killed when the test ends, whatever happens.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `geowebdns serve` on port 0 against `database_url` with extra
/// arguments, and reads the bound address from its log.
pub fn serve(database_url: &str, key_dir: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("GEOWEBDNS_DATABASE_URL", database_url)
        .env("GEOWEBDNS_KEY_DIR", key_dir)
        .env("GEOWEBDNS_LOG", "info")
        // Tests never reach the internet: the bundled endpoints are real servers.
        .env("GEOWEBDNS_HARVEST_INTERVAL", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start geowebdns");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("address=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(300)).expect("server reported its address");
    Server { child, base: format!("http://{addr}") }
}
