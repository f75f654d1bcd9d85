//! Running the real `geowebdns` binary in tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reads a server's stderr on a thread of its own, pushing every line onto
/// `lines`, and sends the address the server reports (`address=IP:PORT` in
/// text lines, `"address":"IP:PORT"` in JSON ones) on the returned
/// channel. A line is kept before its address is sent, so that a caller
/// reading `lines` once it has the address finds the line that reported it.
fn read_log(
    stderr: std::process::ChildStderr,
    lines: Arc<Mutex<Vec<String>>>,
) -> (std::thread::JoinHandle<()>, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let text = line.split("address=").nth(1).map(|rest| rest.split_whitespace().next().unwrap_or_default());
            let json = line.split("\"address\":\"").nth(1).and_then(|rest| rest.split('"').next());
            let addr = text.or(json).map(str::to_owned);
            lines.lock().unwrap().push(line);
            if let Some(addr) = addr {
                let _ = tx.send(addr);
            }
        }
    });
    (reader, rx)
}

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
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (reader, rx) = read_log(child.stderr.take().unwrap(), logs.clone());
    let addr = rx.recv_timeout(Duration::from_secs(300)).expect("server reported its address");
    Server { child, base: format!("http://{addr}"), logs, reader: Some(reader) }
}

/// A `geowebdns serve` process under the test's control: its pid for
/// signals, every line of its log, and its exit status. Killed (SIGKILL)
/// when dropped if still running.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `geowebdns serve` like [`serve`], keeping its log lines (with
/// `log` as the log filter) and its process handle.
pub fn start(database_url: &str, key_dir: &Path, extra: &[&str], log: &str) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("GEOWEBDNS_DATABASE_URL", database_url)
        .env("GEOWEBDNS_KEY_DIR", key_dir)
        .env("GEOWEBDNS_LOG", log)
        .env("GEOWEBDNS_HARVEST_INTERVAL", "0")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start geowebdns");
    let lines = Arc::new(Mutex::new(Vec::new()));
    // The reader thread ends with the process's stderr; not joined.
    let (_, rx) = read_log(child.stderr.take().unwrap(), lines.clone());
    let addr = match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(addr) => addr,
        Err(_) => {
            let _ = child.kill();
            panic!("server did not report its address; log:\n{}", lines.lock().unwrap().join("\n"));
        }
    };
    Process { child, base: format!("http://{addr}"), addr, log: lines }
}

impl Process {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, ...) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Number of log lines so far (a mark for [`Process::wait_for_log`]).
    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for a log line after line `from` containing every one of `needles`; panics after `limit`.
    pub fn wait_for_log(&self, from: usize, needles: &[&str], limit: Duration) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(line) =
                self.log.lock().unwrap().iter().skip(from).find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.clone();
            }
            assert!(
                start.elapsed() < limit,
                "no log line with {needles:?} within {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit, at most `limit`; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
