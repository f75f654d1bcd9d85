//! The admin console in a real browser: runs `tests/console/run.mjs` (Node,
//! `playwright-core`, the system Chromium) against the real binary.
//!
//! Needs `node`, the npm modules of `tests/console` (`cd tests/console && npm ci`)
//! and Chromium (Debian packages `chromium` and `chromium-driver`); `.ci/run`
//! installs them. If one is missing this test FAILS and says what to install.
//! Developers without a browser may opt out with `GEOWEBDNS_SKIP_BROWSER_TESTS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn on_path(name: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {name}")]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn console_in_headless_chromium() {
    if std::env::var("GEOWEBDNS_SKIP_BROWSER_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("*** SKIPPED: console browser tests (GEOWEBDNS_SKIP_BROWSER_TESTS=1) ***");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let help = "install them, or set GEOWEBDNS_SKIP_BROWSER_TESTS=1 to skip the browser tests";
    assert!(on_path("node"), "the console browser tests need `node` (Debian package nodejs): {help}");
    assert!(
        root.join("tests/console/node_modules/playwright-core/package.json").exists(),
        "the console browser tests need playwright-core: run `(cd tests/console && npm ci)`, or {help}"
    );
    assert!(
        std::env::var_os("CHROMIUM_PATH").is_some() || on_path("chromium") || on_path("chromium-browser"),
        "the console browser tests need Chromium (Debian packages chromium and chromium-driver): {help}"
    );
    let out = Command::new("node")
        .arg(root.join("tests/console/run.mjs"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_geowebdns"))
        .current_dir(root)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "console browser tests failed ({}):\n{stdout}\n{stderr}", out.status);
}
