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

/// A writable copy of the bundled fixture database plus token keys, for admin tests.
pub struct Writable {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub key_settings: geowebdns::auth::KeySettings,
    pub keys: Arc<geowebdns::auth::Keys>,
    pub state: AppState,
}

/// Copies the fixture database (and its WAL) into a fresh directory, creates an
/// Ed25519 key pair there, and builds app state with the admin API enabled.
pub async fn writable(settings: Settings) -> Writable {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let src = f.url.trim_start_matches("sqlite://").to_owned();
    let dst = dir.path().join("admin.db");
    for suffix in ["", "-wal", "-shm"] {
        let from = format!("{src}{suffix}");
        if std::path::Path::new(&from).exists() {
            std::fs::copy(&from, format!("{}{suffix}", dst.display())).unwrap();
        }
    }
    let url = format!("sqlite://{}", dst.display());
    let key_settings = geowebdns::auth::KeySettings { key_dir: dir.path().join("keys"), ..Default::default() };
    let keys = Arc::new(geowebdns::auth::Keys::load_or_create(&key_settings).unwrap());
    let store = geowebdns::store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let state = AppState::new(store, f.snapshot.clone(), settings).with_keys(keys.clone());
    Writable { dir, url, key_settings, keys, state }
}

impl Writable {
    /// Issues a token with these scopes (1 hour).
    pub fn token(&self, sub: &str, scopes: &[&str]) -> String {
        let scopes: Vec<geowebdns::auth::Scope> = scopes.iter().map(|s| s.parse().unwrap()).collect();
        self.keys.issue(sub, &scopes, std::time::Duration::from_secs(3600)).unwrap().0
    }
}

/// Sends a request with a bearer token and an optional JSON body.
pub async fn call(state: &AppState, method: &str, uri: &str, token: Option<&str>, body: Option<&str>) -> Answer {
    call_with(state, method, uri, token, body, &[]).await
}

/// Like [`call`], with extra headers.
pub async fn call_with(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_owned())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    send(state, req).await
}

/// base64url without padding (RFC 7515), for hand-made tokens.
fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Tokens that must all be refused with 401: forged, wrong algorithm, expired, not yet valid.
pub fn forge(w: &Writable) -> Vec<(&'static str, String)> {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let claims = |iat: i64, exp: i64, nbf: Option<i64>| {
        let mut c =
            serde_json::json!({"sub": "mallory", "iat": iat, "exp": exp, "jti": "forged-1", "scopes": ["admin"]});
        if let Some(nbf) = nbf {
            c["nbf"] = nbf.into();
        }
        c
    };
    let t = now();
    let private = std::fs::read(w.key_settings.private_key_path()).unwrap();
    let public = std::fs::read(w.key_settings.public_key_path()).unwrap();
    let ours = EncodingKey::from_ed_pem(&private).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other_settings = geowebdns::auth::KeySettings { key_dir: other_dir.path().join("k"), ..Default::default() };
    let other = geowebdns::auth::Keys::load_or_create(&other_settings).unwrap();
    let (other_token, _) =
        other.issue("mallory", &["admin".parse().unwrap()], std::time::Duration::from_secs(600)).unwrap();
    let payload = b64(claims(t, t + 600, None).to_string().as_bytes());
    vec![
        ("alg none", format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#))),
        ("rs256 header", format!("{}.{payload}.{}", b64(br#"{"alg":"RS256","typ":"JWT"}"#), b64(b"junk-signature"))),
        (
            "hs256 signed with the public key",
            encode(&Header::new(Algorithm::HS256), &claims(t, t + 600, None), &EncodingKey::from_secret(&public))
                .unwrap(),
        ),
        ("another key pair", other_token),
        ("expired", encode(&Header::new(Algorithm::EdDSA), &claims(t - 7200, t - 3600, None), &ours).unwrap()),
        ("not yet valid", encode(&Header::new(Algorithm::EdDSA), &claims(t, t + 7200, Some(t + 3600)), &ours).unwrap()),
        ("tampered payload", {
            let good = encode(&Header::new(Algorithm::EdDSA), &claims(t, t + 600, None), &ours).unwrap();
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            parts[1] =
                b64(serde_json::json!({"sub": "mallory", "iat": t, "exp": t + 99999, "jti": "x", "scopes": ["admin"]})
                    .to_string()
                    .as_bytes());
            parts.join(".")
        }),
    ]
}
