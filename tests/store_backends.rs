//! Store conformance suite: every [`Store`] method, run against both backends.
//!
//! Each test body is a backend-generic `async fn(DynStore)`; the
//! `backend_tests!` macro runs it as `sqlite::<name>` (a temporary file) and
//! `postgres::<name>` (a fresh database per test on the server named by
//! `GEOWEBDNS_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`,
//! dropped afterwards). Without a reachable PostgreSQL server the PostgreSQL
//! tests are skipped with a warning, unless `CI` is set, where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::{create_pg_database, PgDatabase};

use geowebdns::model::{Endpoint, EndpointType, Jurisdiction, Service, Tier, GEOREPORT_V2};
use geowebdns::store::{
    self, Actor, AuditEntry, AuditFilter, DynStore, ImportBatch, StoreError, StoredJurisdiction, TokenRecord,
};
use std::collections::BTreeMap;
use std::time::Duration;

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/// A migrated store and whatever must outlive it.
struct Backend {
    store: DynStore,
    _guard: Guard,
}

enum Guard {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { _db: PgDatabase },
}

async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Backend { store, _guard: Guard::Sqlite { _dir: dir } }
}

async fn pg_backend() -> Option<Backend> {
    let db = create_pg_database().await?;
    let store = store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    Some(Backend { store, _guard: Guard::Postgres { _db: db } })
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests from backend-generic bodies.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::sqlite_backend().await;
                    assert_eq!(backend.store.backend(), "sqlite");
                    super::$name(backend.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(backend) = super::pg_backend().await else { return };
                    assert_eq!(backend.store.backend(), "postgres");
                    super::$name(backend.store.clone()).await;
                }
            )*
        }
    };
}

backend_tests!(
    migrate_twice,
    import_round_trip,
    latest_seq_increments,
    computed_parents,
    jurisdiction_crud,
    delete_jurisdiction_cascade,
    endpoint_crud,
    tokens,
    audit_filters,
    failed_writes_leave_no_trace,
    ordering_is_bytewise,
    changes_since,
    load_entries_in_order,
    load_entries_names_first_bad_boundary,
);

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A GeoJSON square of side `size` degrees at (`x`, `y`), written with odd spacing
/// and exponents so that a lossless round trip is visible.
fn square(x: f64, y: f64, size: f64) -> String {
    let (x2, y2) = (x + size, y + size);
    format!(
        r#"{{"type": "Polygon","coordinates":[[[{x},{y}],[{x2},{y}],[{x2},{y2}],[{x},{y2}],[{x},{y}]]], "note":1e-7}}"#
    )
}

fn jurisdiction(id: &str, tier: Tier, parent: Option<&str>) -> StoredJurisdiction {
    let n = id.len() as f64;
    StoredJurisdiction {
        record: Jurisdiction {
            id: id.to_owned(),
            name: format!("Saint-Étienne “{id}” 🗺"),
            tier,
            parent: parent.map(str::to_owned),
            parent_override: parent.is_some(),
            ocd_id: Some(format!("ocd-division/test/{id}")),
            external_ids: BTreeMap::from([
                ("fips".to_owned(), format!("{:05}", id.len())),
                ("z".to_owned(), "ü".into()),
            ]),
            source: Some("test suite".to_owned()),
            license: None,
            area_km2: 1_234.567_890_123_456 + n,
            created_at: String::new(),
            updated_at: String::new(),
            version: 0,
        },
        boundary: square(-86.5 + n / 10.0, 39.25, 0.1),
    }
}

fn service(code: &str, name: &str) -> Service {
    Service {
        service_code: code.to_owned(),
        service_name: name.to_owned(),
        description: Some(format!("{name} — description")),
        metadata: code.starts_with('z'),
        kind: "realtime".to_owned(),
        keywords: vec!["a".to_owned(), "b c".to_owned()],
        group: if code.starts_with('z') { None } else { Some("streets".to_owned()) },
        source: geowebdns::model::ServiceSource::Manual,
    }
}

/// An endpoint with two services, deliberately not in code order.
fn endpoint(id: &str, jurisdiction_id: &str) -> Endpoint {
    Endpoint {
        id: id.to_owned(),
        jurisdiction_id: jurisdiction_id.to_owned(),
        specification: GEOREPORT_V2.to_owned(),
        url: format!("https://311.example.org/{id}/v2"),
        kind: EndpointType::Production,
        formats: vec!["application/json".to_owned(), "text/xml".to_owned()],
        open311_jurisdiction_id: Some("example.org".to_owned()),
        key_service: None,
        discovery_url: Some("https://311.example.org/discovery.json".to_owned()),
        docs_url: None,
        terms_url: None,
        contact: Some("311@example.org".to_owned()),
        changeset: Some("2024-05-01T00:00:00Z".to_owned()),
        last_checked: None,
        last_ok: None,
        status: "unknown".to_owned(),
        created_at: String::new(),
        updated_at: String::new(),
        version: 0,
        health: geowebdns::model::Health::default(),
        services: vec![service("zz-pothole", "Pothole"), service("aa-graffiti", "Graffiti")],
    }
}

fn actor() -> Actor {
    Actor { sub: "tester".to_owned(), jti: Some("jti-test".to_owned()) }
}

/// Asserts that a stored jurisdiction is `input` as written, apart from the
/// fields the store owns (times and version).
#[track_caller]
fn assert_same_jurisdiction(stored: &StoredJurisdiction, input: &StoredJurisdiction) {
    let mut expected = input.record.clone();
    expected.created_at = stored.record.created_at.clone();
    expected.updated_at = stored.record.updated_at.clone();
    expected.version = stored.record.version;
    assert_eq!(stored.record, expected);
    assert_eq!(stored.boundary, input.boundary, "boundary text must round-trip byte for byte");
    assert!(time_ok(&stored.record.created_at), "{}", stored.record.created_at);
    assert!(time_ok(&stored.record.updated_at), "{}", stored.record.updated_at);
}

#[track_caller]
fn assert_same_endpoint(stored: &Endpoint, input: &Endpoint) {
    let mut expected = input.clone();
    expected.created_at = stored.created_at.clone();
    expected.updated_at = stored.updated_at.clone();
    expected.version = stored.version;
    assert_eq!(stored, &expected);
    assert!(time_ok(&stored.created_at), "{}", stored.created_at);
}

/// RFC 3339, UTC, second precision: the exact text both backends store.
fn time_ok(t: &str) -> bool {
    t.len() == 20
        && t.ends_with('Z')
        && time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok()
}

fn all(store_filter: AuditFilter) -> AuditFilter {
    AuditFilter { limit: 1000, ..store_filter }
}

async fn audit_all(store: &DynStore) -> Vec<AuditEntry> {
    store.audit(&all(AuditFilter::default())).await.unwrap()
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Conflict(_))), "expected Conflict, got {r:?}");
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, entity: &str, id: &str) {
    match r {
        Err(StoreError::NotFound { entity: e, id: i }) => assert_eq!((e, i.as_str()), (entity, id)),
        other => panic!("expected NotFound {entity} {id}, got {other:?}"),
    }
}

#[track_caller]
fn assert_stale<T: std::fmt::Debug>(r: Result<T, StoreError>, current: i64) {
    match r {
        Err(StoreError::Stale { current: c, .. }) => assert_eq!(c, current),
        other => panic!("expected Stale at {current}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

async fn migrate_twice(store: DynStore) {
    // The backend helper migrated once already.
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.latest_seq().await.unwrap(), 0);
    assert_eq!(store.count_jurisdictions().await.unwrap(), 0);
    assert!(store.load_jurisdictions().await.unwrap().is_empty());
    assert!(store.load_endpoints().await.unwrap().is_empty());
    assert!(store.list_tokens().await.unwrap().is_empty());
    assert!(audit_all(&store).await.is_empty());
}

async fn import_round_trip(store: DynStore) {
    let js = vec![
        jurisdiction("us-state:18", Tier::State, None),
        jurisdiction("us-county:18105", Tier::County, Some("us-state:18")),
        jurisdiction("us-place:1805860", Tier::Place, None),
    ];
    let es = vec![endpoint("bloomington", "us-place:1805860"), endpoint("monroe", "us-county:18105")];
    let batch = ImportBatch { jurisdictions: js.clone(), endpoints: es.clone() };
    let outcome = store.import(batch.clone(), &Actor::local("cli"), "import").await.unwrap();
    assert_eq!(outcome.seq, 5, "one change per record, starting at 1");
    assert_eq!(store.latest_seq().await.unwrap(), 5);
    assert_eq!(store.count_jurisdictions().await.unwrap(), 3);

    let loaded = store.load_jurisdictions().await.unwrap();
    let ids: Vec<_> = loaded.iter().map(|j| j.record.id.as_str()).collect();
    assert_eq!(ids, ["us-county:18105", "us-place:1805860", "us-state:18"], "ordered by id");
    for stored in &loaded {
        let input = js.iter().find(|j| j.record.id == stored.record.id).unwrap();
        assert_same_jurisdiction(stored, input);
        assert_eq!(stored.record.version, 1);
        assert_eq!(stored.record.created_at, stored.record.updated_at);
    }
    let endpoints = store.load_endpoints().await.unwrap();
    let ids: Vec<_> = endpoints.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["monroe", "bloomington"], "ordered by jurisdiction, then id");
    for stored in &endpoints {
        let input = es.iter().find(|e| e.id == stored.id).unwrap();
        assert_same_endpoint(stored, input);
        assert_eq!(stored.services[0].service_code, "zz-pothole", "service order kept");
    }
    assert_eq!(store.get_jurisdiction("us-county:18105").await.unwrap().unwrap().boundary, js[1].boundary);

    let audit = audit_all(&store).await;
    assert_eq!(audit.len(), 5);
    assert!(audit.iter().all(|a| a.action == "import" && a.actor_sub == "cli" && a.actor_jti.is_none()));
    assert!(audit.iter().all(|a| a.before.is_none() && a.after.is_some()));
    assert_eq!(audit[0].entity, "jurisdiction");
    assert_eq!(audit[0].after.as_ref().unwrap()["id"], "us-state:18");
    assert!(audit[0].after.as_ref().unwrap().get("boundary").is_none());
    assert_eq!(audit[3].entity, "endpoint");
    assert_eq!(audit[3].jurisdiction_id.as_deref(), Some("us-place:1805860"));
    assert_eq!(audit[3].after.as_ref().unwrap()["services"][1]["service_code"], "aa-graffiti");

    // Importing again upserts: versions grow, creation times stay.
    let first = store.load_jurisdictions().await.unwrap();
    let mut again = batch;
    again.jurisdictions[0].record.name = "Indiana".to_owned();
    again.endpoints[0].services.reverse();
    let outcome = store.import(again, &Actor::local("cli"), "import").await.unwrap();
    assert_eq!(outcome.seq, 10);
    let second = store.load_jurisdictions().await.unwrap();
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(b.record.version, 2);
        assert_eq!(a.record.created_at, b.record.created_at);
    }
    assert_eq!(second[2].record.name, "Indiana");
    let e = store.get_endpoint("bloomington").await.unwrap().unwrap();
    assert_eq!(e.version, 2);
    let codes: Vec<_> = e.services.iter().map(|s| s.service_code.as_str()).collect();
    assert_eq!(codes, ["aa-graffiti", "zz-pothole"], "services replaced in the new order");

    // An empty import changes nothing and reports the current seq.
    let outcome = store.import(ImportBatch::default(), &Actor::local("cli"), "import").await.unwrap();
    assert_eq!(outcome.seq, 10);
    assert_eq!(store.latest_seq().await.unwrap(), 10);
}

/// Enough rows for many batches on every preparing thread, with boundaries
/// of very different sizes (so batches finish out of order) and endpoints
/// on some of them.
async fn load_entries_in_order(store: DynStore) {
    let mut js = Vec::new();
    let mut es = Vec::new();
    for i in 0..700 {
        let id = format!("us-place:{:07}", (i * 7919) % 10_000);
        let mut j = jurisdiction(&id, Tier::Place, None);
        let (x, y) = (-120.0 + (i % 40) as f64, 30.0 + (i / 40) as f64 * 0.5);
        // Every 50th row a ring of 20,000 vertices (~500 KB of text).
        let n = if i % 50 == 0 { 20_000 } else { 4 + i % 9 };
        let ring: Vec<String> = (0..=n)
            .map(|k| {
                let a = std::f64::consts::TAU * (k % n) as f64 / n as f64;
                format!("[{},{}]", x + 0.2 * a.cos(), y + 0.2 * a.sin())
            })
            .collect();
        j.boundary = format!(r#"{{"type":"Polygon","coordinates":[[{}]]}}"#, ring.join(","));
        if i % 3 == 0 {
            es.push(endpoint(&format!("e{i}"), &id));
        }
        js.push(j);
    }
    store.import(ImportBatch { jurisdictions: js.clone(), endpoints: es }, &actor(), "import").await.unwrap();

    let rows = store.load_jurisdictions().await.unwrap();
    let endpoints = store.load_endpoints().await.unwrap();
    let entries = geowebdns::index::load_entries(&store, endpoints.clone()).await.unwrap();
    assert_eq!(entries.len(), rows.len());
    for (entry, row) in entries.iter().zip(&rows) {
        assert_eq!(entry.record.id, row.record.id, "entries come in id order");
        let mine: Vec<_> = endpoints.iter().filter(|e| e.jurisdiction_id == row.record.id).map(|e| &e.id).collect();
        let attached: Vec<_> = entry.endpoints.iter().map(|e| &e.id).collect();
        assert_eq!(attached, mine, "{}'s endpoints", row.record.id);
        let input = js.iter().find(|j| j.record.id == row.record.id).unwrap();
        let boundary = geowebdns::geometry::parse_stored(&input.boundary).unwrap();
        assert!(entry.has_boundary(&boundary), "{}'s boundary", row.record.id);
    }
}

/// Unreadable stored boundaries (the store keeps boundary text as written)
/// fail the load, naming the first one in id order whichever thread met it.
async fn load_entries_names_first_bad_boundary(store: DynStore) {
    let mut js: Vec<_> = (0..300).map(|i| jurisdiction(&format!("us-place:{i:04}"), Tier::Place, None)).collect();
    js[120].boundary = r#"{"type":"Polygon","coordinates":[[[0,0],[1"#.to_owned();
    js[280].boundary = "not json".to_owned();
    store.import(ImportBatch { jurisdictions: js, endpoints: Vec::new() }, &actor(), "import").await.unwrap();
    for _ in 0..5 {
        match geowebdns::index::load_entries(&store, Vec::new()).await {
            Err(e) => assert!(e.to_string().contains("`us-place:0120`"), "{e}"),
            Ok(_) => panic!("loaded unreadable boundaries"),
        }
    }
}

async fn latest_seq_increments(store: DynStore) {
    assert_eq!(store.latest_seq().await.unwrap(), 0);
    let mut last = 0;
    let mut step = |seq: i64, last_seen: i64| {
        assert!(seq > last, "seq {seq} after {last}");
        assert_eq!(seq, last_seen);
        last = seq;
    };
    let s = store.create_jurisdiction(&jurisdiction("a", Tier::State, None), &actor()).await.unwrap().seq;
    step(s, store.latest_seq().await.unwrap());
    let s = store.create_endpoint(&endpoint("e", "a"), &actor()).await.unwrap().seq;
    step(s, store.latest_seq().await.unwrap());
    let s = store.update_endpoint(&endpoint("e", "a"), None, &actor(), "endpoint.update").await.unwrap().seq;
    step(s, store.latest_seq().await.unwrap());
    let s = store.update_jurisdiction(&jurisdiction("a", Tier::State, None), Some(1), &actor()).await.unwrap().seq;
    step(s, store.latest_seq().await.unwrap());
    let s = store.delete_endpoint("e", Some(2), &actor()).await.unwrap().seq;
    step(s, store.latest_seq().await.unwrap());
    let s = store.delete_jurisdiction("a", false, None, &actor()).await.unwrap().seq;
    step(s, store.latest_seq().await.unwrap());
    assert_eq!(last, 6);
    // Tokens are not registry records: no change-log rows.
    store.revoke_token("x", None).await.unwrap();
    assert_eq!(store.latest_seq().await.unwrap(), 6);
}

async fn computed_parents(store: DynStore) {
    let mut free = jurisdiction("free", Tier::Place, None);
    free.record.parent_override = false;
    let pinned = jurisdiction("pinned", Tier::Place, Some("state"));
    let mut orphan = jurisdiction("orphan", Tier::Place, None);
    orphan.record.parent_override = false;
    let state = jurisdiction("state", Tier::State, None);
    let batch = ImportBatch { jurisdictions: vec![free, pinned, orphan, state], endpoints: vec![] };
    let seq = store.import(batch, &Actor::local("cli"), "import").await.unwrap().seq;
    let audit_before = audit_all(&store).await.len();

    let parents = vec![
        ("free".to_owned(), Some("state".to_owned())),
        ("pinned".to_owned(), Some("other".to_owned())),
        ("orphan".to_owned(), None),
        ("missing".to_owned(), Some("state".to_owned())),
    ];
    let outcome = store.set_computed_parents(&parents).await.unwrap();
    assert_eq!(outcome.seq, seq + 1, "only `free` changed");
    assert_eq!(store.latest_seq().await.unwrap(), seq + 1);
    let free = store.get_jurisdiction("free").await.unwrap().unwrap();
    assert_eq!(free.record.parent.as_deref(), Some("state"));
    assert_eq!(free.record.version, 2);
    assert!(!free.record.parent_override);
    let pinned = store.get_jurisdiction("pinned").await.unwrap().unwrap();
    assert_eq!(pinned.record.parent.as_deref(), Some("state"), "explicit parents are kept");
    assert_eq!(pinned.record.version, 1);
    assert_eq!(store.get_jurisdiction("orphan").await.unwrap().unwrap().record.version, 1);
    assert_eq!(audit_all(&store).await.len(), audit_before, "computed parents are not audited");

    // Same parents again: nothing to do, seq unchanged.
    assert_eq!(store.set_computed_parents(&parents).await.unwrap().seq, seq + 1);
    // Back to none.
    let outcome = store.set_computed_parents(&[("free".to_owned(), None)]).await.unwrap();
    assert_eq!(outcome.seq, seq + 2);
    assert_eq!(store.get_jurisdiction("free").await.unwrap().unwrap().record.parent, None);
}

async fn jurisdiction_crud(store: DynStore) {
    assert!(store.get_jurisdiction("j").await.unwrap().is_none());
    let j = jurisdiction("j", Tier::County, None);
    let seq = store.create_jurisdiction(&j, &actor()).await.unwrap().seq;
    assert_eq!(seq, 1);
    let stored = store.get_jurisdiction("j").await.unwrap().unwrap();
    assert_same_jurisdiction(&stored, &j);
    assert_eq!(stored.record.version, 1);

    assert_conflict(store.create_jurisdiction(&j, &actor()).await);
    let mut same_ocd = jurisdiction("k", Tier::County, None);
    same_ocd.record.ocd_id = j.record.ocd_id.clone();
    assert_conflict(store.create_jurisdiction(&same_ocd, &actor()).await);
    assert_eq!(store.latest_seq().await.unwrap(), 1);
    assert_eq!(store.count_jurisdictions().await.unwrap(), 1);

    // Update without and with a boundary change.
    let mut changed = j.clone();
    changed.record.name = "Renamed".to_owned();
    changed.record.ocd_id = None;
    changed.record.external_ids.clear();
    assert_eq!(store.update_jurisdiction(&changed, Some(1), &actor()).await.unwrap().seq, 2);
    let stored = store.get_jurisdiction("j").await.unwrap().unwrap();
    assert_same_jurisdiction(&stored, &changed);
    assert_eq!(stored.record.version, 2);
    assert_stale(store.update_jurisdiction(&changed, Some(1), &actor()).await, 2);
    changed.boundary = square(10.0, 10.0, 0.5);
    assert_eq!(store.update_jurisdiction(&changed, None, &actor()).await.unwrap().seq, 3);
    assert_eq!(store.get_jurisdiction("j").await.unwrap().unwrap().boundary, changed.boundary);
    assert_not_found(
        store.update_jurisdiction(&jurisdiction("nope", Tier::Other, None), None, &actor()).await,
        "jurisdiction",
        "nope",
    );

    let audit = audit_all(&store).await;
    let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["jurisdiction.create", "jurisdiction.update", "jurisdiction.update_boundary"]);
    assert_eq!(audit[0].actor_jti.as_deref(), Some("jti-test"));
    assert!(audit[0].before.is_none());
    assert_eq!(audit[0].after.as_ref().unwrap()["version"], 1);
    assert_eq!(audit[1].before.as_ref().unwrap()["name"], j.record.name.as_str());
    assert_eq!(audit[1].after.as_ref().unwrap()["name"], "Renamed");
    assert_eq!(audit[1].after.as_ref().unwrap()["version"], 2);
    assert_eq!(audit[2].after.as_ref().unwrap()["version"], 3);

    // Delete: stale, then right version, then gone.
    assert_stale(store.delete_jurisdiction("j", false, Some(2), &actor()).await, 3);
    assert_eq!(store.delete_jurisdiction("j", false, Some(3), &actor()).await.unwrap().seq, 4);
    assert!(store.get_jurisdiction("j").await.unwrap().is_none());
    assert_not_found(store.delete_jurisdiction("j", false, None, &actor()).await, "jurisdiction", "j");
    assert_not_found(store.delete_jurisdiction("j", true, Some(1), &actor()).await, "jurisdiction", "j");
    let last = audit_all(&store).await.pop().unwrap();
    assert_eq!(last.action, "jurisdiction.delete");
    assert_eq!(last.before.as_ref().unwrap()["name"], "Renamed");
    assert!(last.after.is_none());
    assert_eq!(store.latest_seq().await.unwrap(), 4);
    // The id can be used again.
    store.create_jurisdiction(&j, &actor()).await.unwrap();
    assert_eq!(store.get_jurisdiction("j").await.unwrap().unwrap().record.version, 1);
}

async fn delete_jurisdiction_cascade(store: DynStore) {
    let batch = ImportBatch {
        jurisdictions: vec![
            jurisdiction("top", Tier::State, None),
            jurisdiction("mid", Tier::County, Some("top")),
            jurisdiction("low", Tier::Place, Some("mid")),
            jurisdiction("lone", Tier::County, Some("top")),
        ],
        endpoints: vec![endpoint("mid-311", "mid"), endpoint("mid-test", "mid"), endpoint("top-311", "top")],
    };
    let seq = store.import(batch, &Actor::local("cli"), "import").await.unwrap().seq;
    let audit_len = audit_all(&store).await.len();

    // Endpoints and children both block a plain delete.
    assert_conflict(store.delete_jurisdiction("mid", false, None, &actor()).await);
    store.delete_endpoint("top-311", None, &actor()).await.unwrap();
    let seq = seq + 1;
    assert_conflict(store.delete_jurisdiction("top", false, None, &actor()).await);
    assert_eq!(store.latest_seq().await.unwrap(), seq);
    assert_eq!(store.count_jurisdictions().await.unwrap(), 4);

    let outcome = store.delete_jurisdiction("mid", true, Some(1), &actor()).await.unwrap();
    assert_eq!(outcome.seq, seq + 4, "two endpoint deletes, one re-parented child, the jurisdiction");
    assert_eq!(store.latest_seq().await.unwrap(), outcome.seq);
    assert!(store.get_jurisdiction("mid").await.unwrap().is_none());
    assert!(store.get_endpoint("mid-311").await.unwrap().is_none());
    assert!(store.endpoints_of("mid").await.unwrap().is_empty());
    assert!(store.load_endpoints().await.unwrap().is_empty(), "endpoints and their services are gone");
    let low = store.get_jurisdiction("low").await.unwrap().unwrap();
    assert_eq!(low.record.parent.as_deref(), Some("top"), "children move up to the grandparent");
    assert_eq!(low.record.version, 2);
    assert_eq!(store.get_jurisdiction("lone").await.unwrap().unwrap().record.version, 1);

    let audit = audit_all(&store).await;
    let tail: Vec<_> = audit[audit_len..].iter().map(|a| (a.action.as_str(), a.entity_id.as_str())).collect();
    assert_eq!(
        tail,
        [
            ("endpoint.delete", "top-311"),
            ("endpoint.delete", "mid-311"),
            ("endpoint.delete", "mid-test"),
            ("jurisdiction.delete", "mid")
        ]
    );
    assert!(audit[audit_len + 1..].iter().all(|a| a.jurisdiction_id.as_deref() == Some("mid")));
    assert_eq!(audit[audit_len + 1].before.as_ref().unwrap()["services"].as_array().unwrap().len(), 2);

    // Cascading a root: children become roots.
    store.delete_jurisdiction("top", true, None, &actor()).await.unwrap();
    assert_eq!(store.get_jurisdiction("low").await.unwrap().unwrap().record.parent, None);
    assert_eq!(store.get_jurisdiction("lone").await.unwrap().unwrap().record.parent, None);
    assert_eq!(store.count_jurisdictions().await.unwrap(), 2);
}

async fn endpoint_crud(store: DynStore) {
    store.create_jurisdiction(&jurisdiction("j1", Tier::Place, None), &actor()).await.unwrap();
    store.create_jurisdiction(&jurisdiction("j2", Tier::Place, None), &actor()).await.unwrap();
    assert!(store.get_endpoint("e").await.unwrap().is_none());
    assert!(store.endpoints_of("j1").await.unwrap().is_empty());

    let mut e = endpoint("e", "j1");
    e.services.push(service("mm-noise", "Noise"));
    let seq = store.create_endpoint(&e, &actor()).await.unwrap().seq;
    assert_eq!(seq, 3);
    let stored = store.get_endpoint("e").await.unwrap().unwrap();
    assert_same_endpoint(&stored, &e);
    let codes: Vec<_> = stored.services.iter().map(|s| s.service_code.as_str()).collect();
    assert_eq!(codes, ["zz-pothole", "aa-graffiti", "mm-noise"], "the server's order, not code order");
    assert_eq!(store.endpoints_of("j1").await.unwrap(), vec![stored.clone()]);
    store.create_endpoint(&endpoint("d", "j1"), &actor()).await.unwrap();
    let ids: Vec<_> = store.endpoints_of("j1").await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["d", "e"]);

    assert_conflict(store.create_endpoint(&e, &actor()).await);
    let seq = store.latest_seq().await.unwrap();

    // Update: move to j2, new services, then a stale retry.
    let mut moved = e.clone();
    moved.jurisdiction_id = "j2".to_owned();
    moved.url = "https://new.example.org/v2".to_owned();
    moved.services = vec![service("bb", "B"), service("ab", "A")];
    moved.contact = None;
    let outcome = store.update_endpoint(&moved, Some(1), &actor(), "endpoint.update").await.unwrap();
    assert_eq!(outcome.seq, seq + 1);
    let stored = store.get_endpoint("e").await.unwrap().unwrap();
    assert_same_endpoint(&stored, &moved);
    assert_eq!(stored.version, 2);
    assert!(store.endpoints_of("j1").await.unwrap().iter().all(|x| x.id != "e"));
    assert_eq!(store.endpoints_of("j2").await.unwrap().len(), 1);
    assert_stale(store.update_endpoint(&moved, Some(1), &actor(), "endpoint.update").await, 2);
    assert_not_found(
        store.update_endpoint(&endpoint("x", "j1"), None, &actor(), "endpoint.update").await,
        "endpoint",
        "x",
    );

    // Constraint violations are conflicts: a dangling jurisdiction, a repeated service code.
    let mut dangling = moved.clone();
    dangling.jurisdiction_id = "nowhere".to_owned();
    assert_conflict(store.update_endpoint(&dangling, None, &actor(), "endpoint.update").await);
    let mut twice = moved.clone();
    twice.services.push(service("bb", "B again"));
    assert_conflict(store.update_endpoint(&twice, None, &actor(), "endpoint.update").await);
    assert_eq!(store.latest_seq().await.unwrap(), seq + 1);
    assert_eq!(store.get_endpoint("e").await.unwrap().unwrap(), stored, "failed updates changed nothing");

    // A health-check style update with its own audit action.
    let mut checked = stored.clone();
    checked.status = "up".to_owned();
    store.update_endpoint(&checked, Some(2), &actor(), "endpoint.check").await.unwrap();

    let audit =
        store.audit(&all(AuditFilter { jurisdiction_id: Some("j2".to_owned()), ..Default::default() })).await.unwrap();
    let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["jurisdiction.create", "endpoint.update", "endpoint.check"]);
    assert_eq!(audit[1].before.as_ref().unwrap()["jurisdiction_id"], "j1");
    assert_eq!(audit[1].after.as_ref().unwrap()["jurisdiction_id"], "j2");
    assert_eq!(audit[1].after.as_ref().unwrap()["services"][0]["service_code"], "bb");

    // Delete.
    assert_stale(store.delete_endpoint("e", Some(2), &actor()).await, 3);
    let seq = store.latest_seq().await.unwrap();
    assert_eq!(store.delete_endpoint("e", Some(3), &actor()).await.unwrap().seq, seq + 1);
    assert!(store.get_endpoint("e").await.unwrap().is_none());
    assert_not_found(store.delete_endpoint("e", None, &actor()).await, "endpoint", "e");
    let last = audit_all(&store).await.pop().unwrap();
    assert_eq!((last.action.as_str(), last.jurisdiction_id.as_deref()), ("endpoint.delete", Some("j2")));
    assert!(last.after.is_none() && last.before.is_some());
    let ids: Vec<_> = store.load_endpoints().await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["d"]);
}

async fn tokens(store: DynStore) {
    let token = |jti: &str, issued: &str| TokenRecord {
        jti: jti.to_owned(),
        sub: format!("sub-{jti}"),
        scopes: vec!["registry:write".to_owned(), "endpoint:check".to_owned()],
        issued_at: issued.to_owned(),
        expires_at: "2099-01-01T00:00:00Z".to_owned(),
        revoked_at: None,
    };
    let old = token("t-old", "2024-01-01T00:00:00Z");
    let new = token("t-new", "2025-06-30T12:00:00Z");
    let twin = token("t-aaa", "2025-06-30T12:00:00Z");
    store.record_token(&old).await.unwrap();
    store.record_token(&new).await.unwrap();
    store.record_token(&twin).await.unwrap();
    assert_conflict(store.record_token(&old).await);
    assert_eq!(store.list_tokens().await.unwrap(), vec![twin.clone(), new.clone(), old.clone()]);

    assert!(!store.is_revoked("t-new").await.unwrap());
    assert!(store.revoke_token("t-new", Some("leaked")).await.unwrap());
    assert!(!store.revoke_token("t-new", None).await.unwrap(), "second revoke is a no-op");
    assert!(store.is_revoked("t-new").await.unwrap());
    assert!(!store.is_revoked("t-old").await.unwrap());
    // Unknown ids can be revoked too (tokens issued elsewhere).
    assert!(store.revoke_token("never-recorded", None).await.unwrap());
    assert!(store.is_revoked("never-recorded").await.unwrap());

    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 3);
    let revoked = listed.iter().find(|t| t.jti == "t-new").unwrap();
    assert!(time_ok(revoked.revoked_at.as_deref().unwrap()));
    assert!(listed.iter().filter(|t| t.jti != "t-new").all(|t| t.revoked_at.is_none()));
    assert_eq!(store.latest_seq().await.unwrap(), 0);
}

async fn audit_filters(store: DynStore) {
    store.create_jurisdiction(&jurisdiction("a", Tier::County, None), &actor()).await.unwrap();
    store.create_jurisdiction(&jurisdiction("b", Tier::County, None), &actor()).await.unwrap();
    store.create_endpoint(&endpoint("ea", "a"), &actor()).await.unwrap();
    store.create_endpoint(&endpoint("eb", "b"), &actor()).await.unwrap();
    store.update_endpoint(&endpoint("ea", "a"), None, &Actor::local("cli"), "endpoint.update").await.unwrap();
    let everything = audit_all(&store).await;
    assert_eq!(everything.len(), 5);
    assert!(everything.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert_eq!(everything[4].actor_sub, "cli");

    let of = |j: &str| AuditFilter { jurisdiction_id: Some(j.to_owned()), ..all(AuditFilter::default()) };
    let a = store.audit(&of("a")).await.unwrap();
    assert_eq!(a.iter().map(|e| e.entity_id.as_str()).collect::<Vec<_>>(), ["a", "ea", "ea"]);
    assert_eq!(store.audit(&of("b")).await.unwrap().len(), 2);
    assert!(store.audit(&of("zzz")).await.unwrap().is_empty());

    // Paging.
    let page = store.audit(&AuditFilter { limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(page, everything[..2]);
    let next = store.audit(&AuditFilter { after_id: Some(page[1].id), limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(next, everything[2..4]);
    let next = store.audit(&AuditFilter { after_id: Some(next[1].id), limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(next, everything[4..]);
    let a_page = store.audit(&AuditFilter { after_id: Some(a[0].id), limit: 1, ..of("a") }).await.unwrap();
    assert_eq!(a_page, a[1..2]);
    assert!(store.audit(&AuditFilter { limit: 0, ..Default::default() }).await.unwrap().is_empty());
    // A negative limit means no limit (SQLite's reading, mirrored by PostgreSQL).
    assert_eq!(store.audit(&AuditFilter { limit: -1, ..Default::default() }).await.unwrap(), everything);

    // Time window: since is inclusive, until exclusive (RFC 3339 text compares in time order).
    let t0 = everything[0].at.clone();
    let window = |since: Option<&str>, until: Option<&str>| AuditFilter {
        since: since.map(str::to_owned),
        until: until.map(str::to_owned),
        ..all(AuditFilter::default())
    };
    assert_eq!(store.audit(&window(Some(&t0), None)).await.unwrap()[0], everything[0]);
    assert!(store.audit(&window(None, Some(&t0))).await.unwrap().is_empty(), "nothing before the first entry");
    assert_eq!(
        store.audit(&window(Some("2000-01-01T00:00:00Z"), Some("2999-01-01T00:00:00Z"))).await.unwrap(),
        everything
    );
    assert!(store.audit(&window(Some("2999-01-01T00:00:00Z"), None)).await.unwrap().is_empty());
    assert!(store.audit(&window(None, Some("2000-01-01T00:00:00Z"))).await.unwrap().is_empty());
    let combined = AuditFilter { since: Some(t0.clone()), after_id: Some(everything[0].id), limit: 10, ..of("a") };
    assert_eq!(store.audit(&combined).await.unwrap(), a[1..]);
}

async fn failed_writes_leave_no_trace(store: DynStore) {
    store.create_jurisdiction(&jurisdiction("j", Tier::County, None), &actor()).await.unwrap();
    let seq = store.latest_seq().await.unwrap();
    let audit = audit_all(&store).await;

    assert_not_found(store.create_endpoint(&endpoint("e", "unknown"), &actor()).await, "jurisdiction", "unknown");
    // A batch fails as a whole: the valid jurisdiction before the bad endpoint is not kept.
    let batch = ImportBatch {
        jurisdictions: vec![jurisdiction("fresh", Tier::Place, None)],
        endpoints: vec![endpoint("ok", "j"), endpoint("bad", "unknown")],
    };
    assert_conflict(store.import(batch, &Actor::local("cli"), "import").await);
    let mut dup_ocd = jurisdiction("other", Tier::Place, None);
    dup_ocd.record.ocd_id = Some("ocd-division/test/j".to_owned());
    assert_conflict(store.import(ImportBatch { jurisdictions: vec![dup_ocd], endpoints: vec![] }, &actor(), "x").await);
    assert_not_found(store.delete_endpoint("e", None, &actor()).await, "endpoint", "e");

    assert_eq!(store.latest_seq().await.unwrap(), seq);
    assert_eq!(audit_all(&store).await, audit);
    assert_eq!(store.count_jurisdictions().await.unwrap(), 1);
    assert!(store.get_jurisdiction("fresh").await.unwrap().is_none());
    assert!(store.load_endpoints().await.unwrap().is_empty());

    // The store still works afterwards, and seq keeps growing.
    let next = store.create_endpoint(&endpoint("e", "j"), &actor()).await.unwrap().seq;
    assert!(next > seq);
    assert_eq!(store.latest_seq().await.unwrap(), next);
}

async fn ordering_is_bytewise(store: DynStore) {
    // Case and punctuation order differently under natural-language collations.
    let ids = ["us-b", "US-c", "us_a", "us-a", "usa", "Us-z", "u"];
    let batch = ImportBatch {
        jurisdictions: ids.iter().map(|id| jurisdiction(id, Tier::Other, None)).collect(),
        endpoints: ids.iter().map(|id| endpoint(&format!("e-{id}"), id)).collect(),
    };
    store.import(batch, &Actor::local("cli"), "import").await.unwrap();
    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort();
    let loaded = store.load_jurisdictions().await.unwrap();
    assert_eq!(loaded.iter().map(|j| j.record.id.as_str()).collect::<Vec<_>>(), expected);
    let endpoints = store.load_endpoints().await.unwrap();
    assert_eq!(endpoints.iter().map(|e| e.jurisdiction_id.as_str()).collect::<Vec<_>>(), expected);

    let mut e = endpoint("multi", "u");
    e.services = ["b", "B", "_a", "a-"].iter().map(|c| service(c, c)).collect();
    store.create_endpoint(&e, &actor()).await.unwrap();
    let ids: Vec<_> = store.endpoints_of("u").await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["e-u", "multi"]);
    let codes: Vec<_> =
        store.get_endpoint("multi").await.unwrap().unwrap().services.into_iter().map(|s| s.service_code).collect();
    assert_eq!(codes, ["b", "B", "_a", "a-"]);
}

async fn changes_since(store: DynStore) {
    assert!(store.changes_since(0, 100).await.unwrap().is_empty());
    let batch = ImportBatch {
        jurisdictions: vec![jurisdiction("p", Tier::State, None), jurisdiction("q", Tier::County, Some("p"))],
        endpoints: vec![endpoint("e", "q")],
    };
    store.import(batch, &Actor::local("cli"), "import").await.unwrap();
    store.delete_jurisdiction("q", true, None, &actor()).await.unwrap();
    let all = store.changes_since(0, 100).await.unwrap();
    let rows: Vec<_> = all.iter().map(|c| (c.seq, c.entity.as_str(), c.entity_id.as_str(), c.op.as_str())).collect();
    assert_eq!(
        rows,
        [
            (1, "jurisdiction", "p", "upsert"),
            (2, "jurisdiction", "q", "upsert"),
            (3, "endpoint", "e", "upsert"),
            (4, "endpoint", "e", "delete"),
            (5, "jurisdiction", "q", "delete"),
        ]
    );
    assert!(all.iter().all(|c| time_ok(&c.at)));
    assert_eq!(store.changes_since(2, 2).await.unwrap(), all[2..4]);
    assert_eq!(store.changes_since(3, -1).await.unwrap(), all[3..], "a negative limit means no limit");
    assert!(store.changes_since(5, 10).await.unwrap().is_empty());
    assert!(store.changes_since(0, 0).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Across backends and PostgreSQL only
// ---------------------------------------------------------------------------

/// The same writes give the same records, boundaries and audit documents on both backends.
#[tokio::test]
async fn backends_store_identical_records() {
    let Some(pg) = pg_backend().await else { return };
    let lite = sqlite_backend().await;
    let mut dumps = Vec::new();
    for store in [&lite.store, &pg.store] {
        let batch = ImportBatch {
            jurisdictions: vec![jurisdiction("s", Tier::State, None), jurisdiction("c", Tier::County, Some("s"))],
            endpoints: vec![endpoint("e1", "c"), endpoint("e0", "s")],
        };
        store.import(batch, &Actor::local("cli"), "import").await.unwrap();
        store.set_computed_parents(&[("s".to_owned(), Some("c".to_owned()))]).await.unwrap();
        store.update_endpoint(&endpoint("e1", "s"), Some(1), &actor(), "endpoint.update").await.unwrap();
        store.delete_jurisdiction("c", true, None, &actor()).await.unwrap();
        store
            .record_token(&TokenRecord {
                jti: "t".into(),
                sub: "s".into(),
                scopes: vec!["a".into()],
                issued_at: "2025-01-01T00:00:00Z".into(),
                expires_at: "2026-01-01T00:00:00Z".into(),
                revoked_at: None,
            })
            .await
            .unwrap();
        // Times differ between runs: blank them out, keep everything else.
        let mut js = store.load_jurisdictions().await.unwrap();
        for j in &mut js {
            assert!(time_ok(&j.record.created_at) && time_ok(&j.record.updated_at));
            j.record.created_at.clear();
            j.record.updated_at.clear();
        }
        let mut es = store.load_endpoints().await.unwrap();
        for e in &mut es {
            e.created_at.clear();
            e.updated_at.clear();
        }
        let mut audit = audit_all(store).await;
        for a in &mut audit {
            a.at.clear();
            for doc in [&mut a.before, &mut a.after].into_iter().flatten() {
                doc["created_at"] = serde_json::Value::Null;
                doc["updated_at"] = serde_json::Value::Null;
                doc["last_updated"] = serde_json::Value::Null;
            }
        }
        let js: Vec<_> = js.into_iter().map(|j| (j.record, j.boundary)).collect();
        dumps.push((js, es, audit, store.list_tokens().await.unwrap(), store.latest_seq().await.unwrap()));
    }
    assert_eq!(dumps[0], dumps[1]);
}

/// Every change-log row is announced on `geowebdns_changes` with its seq, at commit,
/// and a rolled-back write announces nothing.
#[tokio::test]
async fn postgres_notifies_changes() {
    let Some(db) = create_pg_database().await else { return };
    let store = store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen(store::postgres::CHANGES_CHANNEL).await.unwrap();

    let batch =
        ImportBatch { jurisdictions: vec![jurisdiction("j", Tier::State, None)], endpoints: vec![endpoint("e", "j")] };
    let seq = store.import(batch, &Actor::local("cli"), "import").await.unwrap().seq;
    assert_eq!(seq, 2);
    // A failed write: nothing is announced for it.
    assert_conflict(
        store.import(ImportBatch { endpoints: vec![endpoint("x", "none")], ..Default::default() }, &actor(), "x").await,
    );
    let seq = store.delete_endpoint("e", None, &actor()).await.unwrap().seq;

    let mut payloads = Vec::new();
    while payloads.len() < 3 {
        let n = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("notification").unwrap();
        assert_eq!(n.channel(), "geowebdns_changes");
        payloads.push(n.payload().parse::<i64>().unwrap());
    }
    assert_eq!(payloads, [1, 2, seq]);
    assert!(tokio::time::timeout(Duration::from_millis(300), listener.recv()).await.is_err(), "nothing more");
    drop(listener);
    drop(store);
}

#[tokio::test]
async fn connect_picks_backend_from_url() {
    assert!(matches!(store::connect("mysql://x/y").await.err(), Some(StoreError::UnsupportedUrl(_))));
    let Some(db) = create_pg_database().await else { return };
    let alt = db.url.replacen("postgres://", "postgresql://", 1);
    for url in [&db.url, &alt] {
        let store = store::connect(url).await.unwrap();
        assert_eq!(store.backend(), "postgres");
        store.ping().await.unwrap();
    }
}
