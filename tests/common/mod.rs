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

pub mod pg;
pub mod server;

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// The bundled data imported into a SQLite file once per test binary.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// URL of the SQLite file holding the bundled data.
    pub url: String,
    /// The snapshot built from it.
    pub snapshot: Arc<Snapshot>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// Runs `f` to completion on a private runtime in its own thread (for set-up
/// shared by every `#[tokio::test]` of a binary, each with its own runtime).
fn on_own_runtime<T: Send + 'static, F: std::future::Future<Output = T>>(f: impl FnOnce() -> F + Send + 'static) -> T {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(f())
    })
    .join()
    .expect("set-up thread")
}

/// Imports the bundled data into SQLite (once).
pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        on_own_runtime(|| async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("fixture.db").display());
            let store = geowebdns::cli::prepare_store(&url, true).await.unwrap();
            let snapshot = index::load_snapshot(&store).await.unwrap();
            Fixture { _dir: dir, url, snapshot: Arc::new(snapshot) }
        })
    })
}

/// The bundled data in a PostgreSQL template database, reused across runs
/// while the data and migrations are unchanged; `None` when PostgreSQL is not
/// reachable (outside CI).
pub struct PgFixture {
    /// Name of the template database.
    pub template: String,
    /// The snapshot built from it.
    pub snapshot: Arc<Snapshot>,
}

static PG_FIXTURE: OnceLock<Option<PgFixture>> = OnceLock::new();

fn pg_fixture() -> Option<&'static PgFixture> {
    PG_FIXTURE
        .get_or_init(|| {
            on_own_runtime(|| async {
                use sqlx::Connection;
                use std::hash::{Hash, Hasher};
                // Probe (and skip loudly) the same way as every PostgreSQL test.
                let probe = pg::create_pg_database().await?;
                drop(probe);
                let mut h = std::collections::hash_map::DefaultHasher::new();
                for f in geowebdns::import::bundled::FILES {
                    f.bytes.hash(&mut h);
                }
                geowebdns::import::bundled::ENDPOINTS_JSON.hash(&mut h);
                let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
                let mut migrations: Vec<_> =
                    std::fs::read_dir(root.join("migrations/postgres")).unwrap().map(|e| e.unwrap().path()).collect();
                migrations.sort();
                for m in migrations {
                    std::fs::read(m).unwrap().hash(&mut h);
                }
                let template = format!("gwd_fixture_{:016x}", h.finish());
                let admin = pg::postgres_server_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                let exists: Option<i32> = sqlx::query_scalar("select 1 from pg_database where datname = $1")
                    .bind(&template)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap();
                if exists.is_none() {
                    // Build under a temporary name, then rename: a half-built template is never reused.
                    let db = pg::create_pg_database().await.unwrap();
                    let store = geowebdns::cli::prepare_store(&db.url, true).await.unwrap();
                    drop(store);
                    let stale: Vec<String> =
                        sqlx::query_scalar("select datname from pg_database where datname like 'gwd_fixture_%'")
                            .fetch_all(&mut conn)
                            .await
                            .unwrap();
                    for old in stale {
                        let _ = sqlx::raw_sql(&format!("drop database if exists {old} with (force)"))
                            .execute(&mut conn)
                            .await;
                    }
                    sqlx::raw_sql(&format!(
                        "select pg_terminate_backend(pid) from pg_stat_activity where datname = '{}'",
                        db.name
                    ))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                    sqlx::raw_sql(&format!("alter database {} rename to {template}", db.name))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    std::mem::forget(db);
                }
                conn.close().await.unwrap();
                let copy = pg::copy_pg_database(&template).await;
                let store = geowebdns::store::connect(&copy.url).await.unwrap();
                let snapshot = index::load_snapshot(&store).await.unwrap();
                drop(store);
                Some(PgFixture { template, snapshot: Arc::new(snapshot) })
            })
        })
        .as_ref()
}

/// App state plus what must outlive it (a temporary directory or database).
pub struct TestState {
    pub state: AppState,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _db: Option<pg::PgDatabase>,
}

impl std::ops::Deref for TestState {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.state
    }
}

/// A private, writable copy of the bundled data on `backend`; `None` when that
/// backend is not available here (PostgreSQL outside CI, after a warning).
pub async fn state_on(backend: Backend, settings: Settings) -> Option<TestState> {
    match backend {
        Backend::Sqlite => {
            let f = fixture();
            let dir = tempfile::tempdir().unwrap();
            let src = f.url.trim_start_matches("sqlite://").to_owned();
            let dst = dir.path().join("copy.db");
            for suffix in ["", "-wal", "-shm"] {
                let from = format!("{src}{suffix}");
                if std::path::Path::new(&from).exists() {
                    std::fs::copy(&from, format!("{}{suffix}", dst.display())).unwrap();
                }
            }
            let url = format!("sqlite://{}", dst.display());
            let store = geowebdns::store::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            let state = AppState::new(store, f.snapshot.clone(), settings);
            Some(TestState { state, url, _dir: Some(dir), _db: None })
        }
        Backend::Postgres => {
            let f = pg_fixture()?;
            let db = pg::copy_pg_database(&f.template).await;
            let store = geowebdns::store::connect(&db.url).await.unwrap();
            store.migrate().await.unwrap();
            let state = AppState::new(store, f.snapshot.clone(), settings);
            Some(TestState { state, url: db.url.clone(), _dir: None, _db: Some(db) })
        }
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests from bodies
/// `async fn name(b: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// App state over the shared bundled fixture (SQLite).
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

/// A writable copy of the bundled data plus token keys, for admin tests.
pub struct Writable {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub key_settings: geowebdns::auth::KeySettings,
    pub keys: Arc<geowebdns::auth::Keys>,
    pub state: AppState,
    _test: TestState,
}

/// A private copy of the bundled data on `backend` with an Ed25519 key pair and
/// the admin API enabled; `None` when the backend is not available here.
pub async fn writable(backend: Backend, settings: Settings) -> Option<Writable> {
    let test = state_on(backend, settings).await?;
    let dir = tempfile::tempdir().unwrap();
    let key_settings = geowebdns::auth::KeySettings { key_dir: dir.path().join("keys"), ..Default::default() };
    let keys = Arc::new(geowebdns::auth::Keys::load_or_create(&key_settings).unwrap());
    let state = test.state.clone().with_keys(keys.clone());
    Some(Writable { dir, url: test.url.clone(), key_settings, keys, state, _test: test })
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
pub fn b64(data: &[u8]) -> String {
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
