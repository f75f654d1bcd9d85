//! Running the real `geowebdns` binary in tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `geowebdns serve` process, killed when the test ends, whatever happens.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every line it wrote on stderr so far.
    pub logs: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Kills the process and returns every line it wrote on stderr.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.logs.lock().map(|l| l.to_vec()).unwrap_or_default()
    }
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
    serve_with_env(database_url, key_dir, extra, &[])
}

/// Like [`serve`], with extra environment variables (applied last, so they
/// may replace `GEOWEBDNS_LOG` or add `GEOWEBDNS_LOG_FORMAT=json`). Every
/// stderr line is kept in [`Server::logs`].
pub fn serve_with_env(database_url: &str, key_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("GEOWEBDNS_DATABASE_URL", database_url)
        .env("GEOWEBDNS_KEY_DIR", key_dir)
        .env("GEOWEBDNS_LOG", "info")
        // Tests never reach the internet: the bundled endpoints are real servers.
        .env("GEOWEBDNS_HARVEST_INTERVAL", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start geowebdns");
    let stderr = child.stderr.take().unwrap();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let kept = logs.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // `address=127.0.0.1:PORT` in text lines, `"address":"127.0.0.1:PORT"` in JSON ones.
            let text = line.split("address=").nth(1).map(|rest| rest.split_whitespace().next().unwrap_or_default());
            let json = line.split("\"address\":\"").nth(1).and_then(|rest| rest.split('"').next());
            if let Some(addr) = text.or(json) {
                let _ = tx.send(addr.to_owned());
            }
            kept.lock().unwrap().push(line);
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(300)).expect("server reported its address");
    Server { child, base: format!("http://{addr}"), logs, reader: Some(reader) }
}
