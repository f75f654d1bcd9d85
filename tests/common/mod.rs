//! Shared test helpers: the bundled data loaded once per test binary, app
//! state around it, and request helpers that print the answer on failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use geowebdns::index::{self, Snapshot};
use geowebdns::{AppState, Settings};
use http_body_util::BodyExt;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// The bundled data imported into a SQLite file once per test binary.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// URL of the SQLite file holding the bundled data.
    pub url: String,
    /// The snapshot built from it.
    pub snapshot: Arc<Snapshot>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// Imports the bundled data (once) on a private runtime in its own thread, so
/// that every `#[tokio::test]` can share the result.
pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("fixture.db").display());
                let store = geowebdns::cli::prepare_store(&url, true).await.unwrap();
                let snapshot = index::load_snapshot(&store).await.unwrap();
                Fixture { _dir: dir, url, snapshot: Arc::new(snapshot) }
            })
        })
        .join()
        .expect("fixture thread")
    })
}

/// App state over the shared bundled fixture.
pub async fn state_with(settings: Settings) -> AppState {
    let f = fixture();
    let store = geowebdns::store::connect(&f.url).await.unwrap();
    AppState::new(store, f.snapshot.clone(), settings)
}

/// App state with default settings.
pub async fn state() -> AppState {
    state_with(Settings::default()).await
}

/// An answer: status, headers and body (parsed as JSON when it is JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
}

impl Answer {
    /// Asserts the status, printing the whole answer otherwise.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; headers {:?}; body {}",
            self.headers,
            String::from_utf8_lossy(&self.raw)
        );
        self
    }

    /// Asserts a problem+json answer with this status naming `field`.
    #[track_caller]
    pub fn problem(self, status: u16, field: Option<&str>) -> Self {
        let a = self.expect(status);
        assert_eq!(a.header("content-type"), "application/problem+json", "body {}", a.body);
        assert_eq!(a.body["status"], status, "body {}", a.body);
        assert!(a.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "body {}", a.body);
        if let Some(field) = field {
            assert_eq!(a.body["field"], field, "body {}", a.body);
        }
        a
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The ids of `jurisdictions` in a resolve answer.
    pub fn ids(&self) -> Vec<String> {
        self.body["jurisdictions"]
            .as_array()
            .unwrap_or_else(|| panic!("no jurisdictions in {}", self.body))
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Sends one request through the router.
pub async fn send(state: &AppState, req: Request<Body>) -> Answer {
    let res = geowebdns::app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let raw = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
    Answer { status, headers, body, raw }
}

/// GET `uri`.
pub async fn get(state: &AppState, uri: &str) -> Answer {
    send(state, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// POST a JSON body to `uri`.
pub async fn post_json(state: &AppState, uri: &str, body: &str) -> Answer {
    send(
        state,
        Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_owned())).unwrap(),
    )
    .await
}
