//! Crash safety (issue 8 point 6): the real binary is killed with SIGKILL in
//! the middle of a stream of admin writes and in the middle of bulk imports
//! (the admin route and the `geowebdns import` CLI), then restarted on the
//! same store. Whatever moment the kill lands:
//!
//! * every acknowledged write is in the store exactly as acknowledged, and
//!   every write is wholly present or wholly absent (an endpoint with all its
//!   services, a boundary old or new, an import with all its records and
//!   their parents, or none of it);
//! * the change log and the audit log match the data: one entry per record
//!   each committed write touched, none for a write that is absent;
//! * the restarted index answers every point from the committed data, and
//!   answers about untouched data exactly as before the crash.
//!
//! Runs on a SQLite file always and on a fresh PostgreSQL database when
//! `GEOWEBDNS_TEST_POSTGRES_URL` reaches a server (see `tests/common/pg.rs`).
//! The kill moments come from a seed (`GEOWEBDNS_CRASH_SEED`, default below),
//! so a failure can be replayed; the assertions do not depend on where the
//! kills land. The data is synthetic (squares and 24-gons on a grid), not
//! real boundaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::server::{start, Process};
use geowebdns::store::{AuditFilter, DynStore};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 0x6765_6f77_6562;

fn seed() -> u64 {
    std::env::var("GEOWEBDNS_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED)
}

/// The store under test and what must outlive it.
struct Target {
    url: String,
    keys: PathBuf,
    pg: Option<common::pg::PgDatabase>,
    _dir: tempfile::TempDir,
}

async fn sqlite_target() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    Target { url, keys: dir.path().join("keys"), pg: None, _dir: dir }
}

async fn pg_target() -> Option<Target> {
    let db = common::pg::create_pg_database().await?;
    let dir = tempfile::tempdir().unwrap();
    Some(Target { url: db.url.clone(), keys: dir.path().join("keys"), pg: Some(db), _dir: dir })
}

impl Target {
    fn start(&self) -> Process {
        start(&self.url, &self.keys, &["--no-bundled", "--max-body-bytes", "67108864"], "info")
    }

    /// Opens the store directly (after a kill, to read what survived). On
    /// PostgreSQL, first waits until the killed process's sessions are gone,
    /// so no transaction of it can still commit while the test reads.
    async fn open(&self) -> DynStore {
        if let Some(db) = &self.pg {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let start = Instant::now();
            loop {
                let others: i64 = sqlx::query_scalar(
                    "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                if others == 0 {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(60), "sessions of the killed server linger");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            conn.close().await.unwrap();
        }
        geowebdns::store::connect(&self.url).await.unwrap()
    }

    fn token(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_geowebdns"))
            .args(["token", "issue", "--scope", "admin", "--ttl", "1h", "--sub", "crash-test"])
            .env("GEOWEBDNS_DATABASE_URL", &self.url)
            .env("GEOWEBDNS_KEY_DIR", &self.keys)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

/// Every change-log row and audit entry of the store, oldest first.
async fn logs(store: &DynStore) -> (Vec<geowebdns::store::Change>, Vec<geowebdns::store::AuditEntry>) {
    let changes = store.changes_since(0, i64::MAX).await.unwrap();
    let audit = store.audit(&AuditFilter { limit: i64::MAX, ..AuditFilter::default() }).await.unwrap();
    (changes, audit)
}

/// Minimum and maximum longitude and latitude of a GeoJSON geometry, in
/// millionths of a degree, and its number of positions.
fn bbox(geometry: &Value) -> ([i64; 4], usize) {
    fn walk(v: &Value, out: &mut Vec<(f64, f64)>) {
        match v {
            Value::Array(a) if a.len() == 2 && a.iter().all(Value::is_number) => {
                out.push((a[0].as_f64().unwrap(), a[1].as_f64().unwrap()))
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut pts = Vec::new();
    walk(&geometry["coordinates"], &mut pts);
    let micro = |v: f64| (v * 1e6).round() as i64;
    let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| pts.iter().map(pick).fold(init, f);
    (
        [
            micro(fold(f64::min, f64::INFINITY, |p| p.0)),
            micro(fold(f64::min, f64::INFINITY, |p| p.1)),
            micro(fold(f64::max, f64::NEG_INFINITY, |p| p.0)),
            micro(fold(f64::max, f64::NEG_INFINITY, |p| p.1)),
        ],
        pts.len(),
    )
}

// ---------------------------------------------------------------------------
// Admin write stream: a model of what each write does.

/// Grid cell `k`: a 1x1 degree cell; a jurisdiction occupies one of its four
/// 0.4 degree quadrant squares (its "variant"), so a redrawn boundary moves.
fn cell(k: usize) -> (f64, f64) {
    (-170.0 + (k % 340) as f64, -70.0 + (k / 340) as f64)
}

fn quadrant(k: usize, variant: u8) -> (f64, f64) {
    let (lon0, lat0) = cell(k);
    (lon0 + 0.05 + f64::from(variant % 2) * 0.5, lat0 + 0.05 + f64::from(variant / 2) * 0.5)
}

fn square(k: usize, variant: u8) -> Value {
    let (x, y) = quadrant(k, variant);
    json!({"type": "Polygon", "coordinates": [[[x, y], [x + 0.4, y], [x + 0.4, y + 0.4], [x, y + 0.4], [x, y]]]})
}

fn quadrant_centre(k: usize, variant: u8) -> (f64, f64) {
    let (x, y) = quadrant(k, variant);
    (x + 0.2, y + 0.2)
}

type Services = Vec<(String, String)>;

#[derive(Debug, Clone)]
enum Op {
    CreateJ { jid: String, cell: usize, variant: u8, name: String },
    RenameJ { jid: String, name: String },
    Redraw { jid: String, variant: u8 },
    DeleteJ { jid: String },
    CreateE { jid: String, url: String, services: Services },
    PatchE { url: String, contact: String },
    ReplaceServices { url: String, services: Services },
    DeleteE { url: String },
}

#[derive(Debug, Clone, PartialEq)]
struct JState {
    name: String,
    version: i64,
    cell: usize,
    bbox: [i64; 4],
    positions: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct EState {
    jid: String,
    contact: Option<String>,
    version: i64,
    services: Services,
}

/// One worker's records: jurisdictions by id, endpoints by URL (unique per endpoint).
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    js: BTreeMap<String, JState>,
    es: BTreeMap<String, EState>,
}

/// What a committed write leaves in the logs: change-log rows `(entity, key,
/// op)` and audit entries `(action, entity, key)`, keys being jurisdiction
/// ids and endpoint URLs. Within one write the order of rows is not part of
/// the contract (a cascade deletes endpoints in id order).
#[derive(Debug, Default)]
struct Effects {
    changes: Vec<(String, String, String)>,
    audit: Vec<(String, String, String)>,
}

impl Effects {
    fn one(entity: &str, key: &str, op: &str, action: &str) -> Self {
        let mut e = Effects::default();
        e.push(entity, key, op, action);
        e
    }
    fn push(&mut self, entity: &str, key: &str, op: &str, action: &str) {
        self.changes.push((entity.into(), key.into(), op.into()));
        self.audit.push((action.into(), entity.into(), key.into()));
    }
}

impl Model {
    fn apply(&mut self, op: &Op) -> Effects {
        let jstate = |name: &str, version, cell, variant| JState {
            name: name.to_owned(),
            version,
            cell,
            bbox: bbox(&square(cell, variant)).0,
            positions: 5,
        };
        match op {
            Op::CreateJ { jid, cell, variant, name } => {
                self.js.insert(jid.clone(), jstate(name, 1, *cell, *variant));
                Effects::one("jurisdiction", jid, "upsert", "jurisdiction.create")
            }
            Op::RenameJ { jid, name } => {
                let j = self.js.get_mut(jid).unwrap();
                j.name = name.clone();
                j.version += 1;
                Effects::one("jurisdiction", jid, "upsert", "jurisdiction.update")
            }
            Op::Redraw { jid, variant } => {
                let j = self.js.get_mut(jid).unwrap();
                *j = jstate(&j.name, j.version + 1, j.cell, *variant);
                Effects::one("jurisdiction", jid, "upsert", "jurisdiction.update_boundary")
            }
            Op::DeleteJ { jid } => {
                let mut fx = Effects::default();
                let urls: Vec<String> = self.es.iter().filter(|(_, e)| &e.jid == jid).map(|(u, _)| u.clone()).collect();
                for url in urls {
                    self.es.remove(&url);
                    fx.push("endpoint", &url, "delete", "endpoint.delete");
                }
                self.js.remove(jid);
                fx.push("jurisdiction", jid, "delete", "jurisdiction.delete");
                fx
            }
            Op::CreateE { jid, url, services } => {
                self.es.insert(
                    url.clone(),
                    EState { jid: jid.clone(), contact: None, version: 1, services: services.clone() },
                );
                Effects::one("endpoint", url, "upsert", "endpoint.create")
            }
            Op::PatchE { url, contact } => {
                let e = self.es.get_mut(url).unwrap();
                e.contact = Some(contact.clone());
                e.version += 1;
                Effects::one("endpoint", url, "upsert", "endpoint.update")
            }
            Op::ReplaceServices { url, services } => {
                let e = self.es.get_mut(url).unwrap();
                e.services = services.clone();
                e.version += 1;
                Effects::one("endpoint", url, "upsert", "endpoint.services.replace")
            }
            Op::DeleteE { url } => {
                self.es.remove(url);
                Effects::one("endpoint", url, "delete", "endpoint.delete")
            }
        }
    }
}

/// One client writing its own records, one write at a time.
struct Worker {
    tag: String,
    rng: ChaCha8Rng,
    first_cell: usize,
    /// Every write attempted, in order; `ops[..acked]` were acknowledged.
    ops: Vec<Op>,
    acked: usize,
    /// State after the acknowledged writes.
    model: Model,
    /// Endpoint ids by URL, from acknowledgements and, for a write in flight
    /// at the kill, from the store.
    ids: BTreeMap<String, String>,
    next_j: usize,
    next_e: usize,
    /// How many of `ops` the store holds, once determined.
    committed: Option<usize>,
}

impl Worker {
    fn new(tag: &str, seed: u64, first_cell: usize) -> Self {
        Worker {
            tag: tag.to_owned(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            first_cell,
            ops: Vec::new(),
            acked: 0,
            model: Model::default(),
            ids: BTreeMap::new(),
            next_j: 0,
            next_e: 0,
            committed: None,
        }
    }

    fn services(&mut self) -> Services {
        let n = self.rng.gen_range(1..=6);
        let salt: u32 = self.rng.gen();
        (0..n).map(|i| (format!("S{i}-{salt:x}"), format!("Service {i} ({salt:x})"))).collect()
    }

    /// The next write, chosen from the acknowledged state.
    fn next_op(&mut self) -> Op {
        let js: Vec<String> = self.model.js.keys().cloned().collect();
        let es: Vec<String> = self.model.es.keys().cloned().collect();
        loop {
            let roll = self.rng.gen_range(0..100);
            let op = match roll {
                _ if js.is_empty() || (roll < 12 && self.next_j < 150) => {
                    let n = self.next_j;
                    self.next_j += 1;
                    Op::CreateJ {
                        jid: format!("crash-{}-j{n}", self.tag),
                        cell: self.first_cell + n,
                        variant: self.rng.gen_range(0..4),
                        name: format!("Synthetic {} #{n}", self.tag),
                    }
                }
                12..=36 => {
                    let jid = js[self.rng.gen_range(0..js.len())].clone();
                    let n = self.next_e;
                    self.next_e += 1;
                    let services = self.services();
                    Op::CreateE { jid, url: format!("https://{}-e{n}.example.org/open311/v2/", self.tag), services }
                }
                37..=51 if !es.is_empty() => {
                    let url = es[self.rng.gen_range(0..es.len())].clone();
                    Op::PatchE { url, contact: format!("contact-{}", self.rng.gen::<u32>()) }
                }
                52..=66 if !es.is_empty() => {
                    let url = es[self.rng.gen_range(0..es.len())].clone();
                    let services = self.services();
                    Op::ReplaceServices { url, services }
                }
                67..=76 if !es.is_empty() => Op::DeleteE { url: es[self.rng.gen_range(0..es.len())].clone() },
                77..=88 => {
                    let jid = js[self.rng.gen_range(0..js.len())].clone();
                    let current = self.model.js[&jid].bbox;
                    let cell = self.model.js[&jid].cell;
                    let variant = loop {
                        let v = self.rng.gen_range(0..4u8);
                        if bbox(&square(cell, v)).0 != current {
                            break v;
                        }
                    };
                    Op::Redraw { jid, variant }
                }
                89..=94 => Op::RenameJ {
                    jid: js[self.rng.gen_range(0..js.len())].clone(),
                    name: format!("Renamed {}", self.rng.gen::<u32>()),
                },
                95..=99 if js.len() > 1 => Op::DeleteJ { jid: js[self.rng.gen_range(0..js.len())].clone() },
                _ => continue,
            };
            return op;
        }
    }

    /// The model after the first `k` writes.
    fn model_after(&self, k: usize) -> (Model, Vec<Effects>) {
        let mut m = Model::default();
        let fx = self.ops[..k].iter().map(|op| m.apply(op)).collect();
        (m, fx)
    }

    fn owns(&self, jid: &str) -> bool {
        jid.starts_with(&format!("crash-{}-", self.tag))
    }
}

/// Sends one write. `Ok(body)` is an acknowledgement (2xx); `Err` means no
/// answer arrived (the server died): the write may or may not have committed.
/// Any other answer fails the test.
async fn send(client: &reqwest::Client, base: &str, token: &str, w: &Worker, op: &Op) -> Result<Value, String> {
    let id_of = |url: &str| w.ids.get(url).cloned().unwrap();
    let req = match op {
        Op::CreateJ { jid, cell, variant, name } => client.post(format!("{base}/admin/v1/jurisdictions")).json(&json!({
            "type": "Feature",
            "properties": {"id": jid, "name": name, "tier": "place"},
            "geometry": square(*cell, *variant),
        })),
        Op::RenameJ { jid, name } => {
            client.patch(format!("{base}/admin/v1/jurisdictions/{jid}")).json(&json!({"name": name}))
        }
        Op::Redraw { jid, variant } => client
            .patch(format!("{base}/admin/v1/jurisdictions/{jid}"))
            .json(&json!({"boundary": square(w.model.js[jid].cell, *variant)})),
        Op::DeleteJ { jid } => client.delete(format!("{base}/admin/v1/jurisdictions/{jid}?cascade=true")),
        Op::CreateE { jid, url, services } => client.post(format!("{base}/admin/v1/jurisdictions/{jid}/endpoints")).json(
            &json!({"url": url, "type": "production",
                    "services": services.iter().map(|(c, n)| json!({"service_code": c, "service_name": n})).collect::<Vec<_>>()}),
        ),
        Op::PatchE { url, contact } => {
            client.patch(format!("{base}/admin/v1/endpoints/{}", id_of(url))).json(&json!({"contact": contact}))
        }
        Op::ReplaceServices { url, services } => client
            .put(format!("{base}/admin/v1/endpoints/{}/services", id_of(url)))
            .json(&services.iter().map(|(c, n)| json!({"service_code": c, "service_name": n})).collect::<Vec<_>>()),
        Op::DeleteE { url } => client.delete(format!("{base}/admin/v1/endpoints/{}", id_of(url))),
    };
    let res = req.bearer_auth(token).send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let text = res.text().await.map_err(|e| e.to_string())?;
    assert!(status.is_success(), "{} {op:?}: unexpected answer {status}: {text}", w.tag);
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// Checks that an acknowledgement shows the record exactly as the model says.
fn check_ack(w: &Worker, op: &Op, body: &Value) {
    let services = |b: &Value| -> Services {
        b["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["service_code"].as_str().unwrap().to_owned(), s["service_name"].as_str().unwrap().to_owned()))
            .collect()
    };
    match op {
        Op::CreateJ { jid, .. } | Op::RenameJ { jid, .. } | Op::Redraw { jid, .. } => {
            let j = &w.model.js[jid];
            assert_eq!(body["id"], json!(jid));
            assert_eq!(body["version"], json!(j.version), "{op:?}: {body}");
            assert_eq!(body["name"], json!(j.name));
            assert_eq!(bbox(&body["boundary"]), (j.bbox, j.positions), "{op:?}");
        }
        Op::CreateE { url, .. } | Op::PatchE { url, .. } | Op::ReplaceServices { url, .. } => {
            let e = &w.model.es[url];
            assert_eq!(body["url"], json!(url));
            assert_eq!(body["jurisdiction_id"], json!(e.jid));
            assert_eq!(body["version"], json!(e.version), "{op:?}: {body}");
            assert_eq!(body["contact"], json!(e.contact));
            assert_eq!(services(body), e.services);
        }
        Op::DeleteJ { .. } | Op::DeleteE { .. } => assert_eq!(body, &Value::Null),
    }
}

/// Runs a worker until the server stops answering (or `max_ops` writes).
async fn run_worker(mut w: Worker, base: String, token: String, max_ops: usize) -> Worker {
    let client = client();
    while w.ops.len() < max_ops {
        let op = w.next_op();
        w.ops.push(op.clone());
        match send(&client, &base, &token, &w, &op).await {
            Ok(body) => {
                w.model.apply(&op);
                if let Op::CreateE { url, .. } = &op {
                    w.ids.insert(url.clone(), body["id"].as_str().unwrap().to_owned());
                }
                check_ack(&w, &op, &body);
                w.acked += 1;
            }
            Err(_) => break,
        }
    }
    w
}

/// What the store holds, per worker tag, in the model's terms.
fn observed(
    workers: &mut [Worker],
    js: &[geowebdns::store::StoredJurisdiction],
    es: &[geowebdns::model::Endpoint],
) -> Vec<Model> {
    let mut out = vec![Model::default(); workers.len()];
    for j in js {
        let w = workers.iter().position(|w| w.owns(&j.record.id));
        let w = w.unwrap_or_else(|| panic!("jurisdiction {} belongs to no writer", j.record.id));
        let geometry: Value = serde_json::from_str(&j.boundary).unwrap();
        let (bbox, positions) = bbox(&geometry);
        let cell = workers[w].first_cell + j.record.id.rsplit('j').next().unwrap().parse::<usize>().unwrap();
        out[w].js.insert(
            j.record.id.clone(),
            JState { name: j.record.name.clone(), version: j.record.version, cell, bbox, positions },
        );
    }
    for e in es {
        let w = workers.iter().position(|w| w.owns(&e.jurisdiction_id)).expect("endpoint of a known writer");
        let services = e.services.iter().map(|s| (s.service_code.clone(), s.service_name.clone())).collect();
        let state = EState { jid: e.jurisdiction_id.clone(), contact: e.contact.clone(), version: e.version, services };
        assert!(out[w].es.insert(e.url.clone(), state).is_none(), "two endpoints with URL {}", e.url);
        // An endpoint whose create was in flight at the kill is known by its URL only.
        match workers[w].ids.get(&e.url) {
            Some(id) => assert_eq!(id, &e.id, "endpoint {} changed id", e.url),
            None => {
                workers[w].ids.insert(e.url.clone(), e.id.clone());
            }
        }
    }
    out
}

/// Compares the logged rows of one writer with the effects of its committed writes.
fn compare_logs<T: Ord + Clone + std::fmt::Debug>(tag: &str, what: &str, got: &[T], expected: &[Vec<T>]) {
    let total: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(
        got.len(),
        total,
        "{tag}: {what}: {} rows for {total} expected\n got {got:?}\n expected {expected:?}",
        got.len()
    );
    let mut at = 0;
    for (i, group) in expected.iter().enumerate() {
        let mut g = got[at..at + group.len()].to_vec();
        let mut e = group.clone();
        g.sort();
        e.sort();
        assert_eq!(g, e, "{tag}: {what} of write #{i}");
        at += group.len();
    }
}

/// After a kill: reads the store directly and checks every writer. Returns
/// (writes in flight at the kill that committed, that did not).
async fn check_store(target: &Target, workers: &mut [Worker]) -> (usize, usize) {
    let store = target.open().await;
    let js = store.load_jurisdictions().await.unwrap();
    let es = store.load_endpoints().await.unwrap();
    let (changes, audit) = logs(&store).await;
    store.close().await;
    drop(store);
    let seen = observed(workers, &js, &es);
    let (mut landed, mut lost) = (0, 0);
    for (w, got) in workers.iter_mut().zip(&seen) {
        let (at_ack, _) = w.model_after(w.acked);
        assert_eq!(at_ack, w.model, "{}: model replay differs from the acknowledged state", w.tag);
        let k = if *got == at_ack {
            w.acked
        } else if w.ops.len() > w.acked && *got == w.model_after(w.acked + 1).0 {
            w.acked + 1
        } else {
            panic!(
                "{}: the store holds neither the {} acknowledged writes nor those plus the one in flight ({:?})\n store: {got:#?}\n acknowledged: {at_ack:#?}",
                w.tag,
                w.acked,
                w.ops.get(w.acked)
            );
        };
        if let Some(before) = w.committed {
            assert_eq!(before, k, "{}: committed writes changed between restarts", w.tag);
        } else if w.ops.len() > w.acked {
            if k > w.acked {
                landed += 1
            } else {
                lost += 1
            }
        }
        w.committed = Some(k);
    }
    // Every change-log row and audit entry belongs to a committed write.
    let endpoint_key: HashMap<String, (usize, String)> = workers
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.ids.iter().map(move |(url, id)| (id.clone(), (i, url.clone()))))
        .collect();
    let owner = |entity: &str, id: &str| -> (usize, String) {
        if entity == "endpoint" {
            endpoint_key.get(id).cloned().unwrap_or_else(|| {
                panic!("log entry for endpoint {id} that is not in the store and was never acknowledged")
            })
        } else {
            let w = workers
                .iter()
                .position(|w| w.owns(id))
                .unwrap_or_else(|| panic!("log entry for unknown jurisdiction {id}"));
            (w, id.to_owned())
        }
    };
    let mut got_changes = vec![Vec::new(); workers.len()];
    for c in &changes {
        let (w, key) = owner(&c.entity, &c.entity_id);
        got_changes[w].push((c.entity.clone(), key, c.op.clone()));
    }
    let mut got_audit = vec![Vec::new(); workers.len()];
    for a in &audit {
        assert_eq!(a.actor_sub, "crash-test", "{a:?}");
        let (w, key) = owner(&a.entity, &a.entity_id);
        got_audit[w].push((a.action.clone(), a.entity.clone(), key));
    }
    for (i, w) in workers.iter().enumerate() {
        let (_, effects) = w.model_after(w.committed.unwrap());
        let expected_changes: Vec<_> = effects.iter().map(|e| e.changes.clone()).collect();
        let expected_audit: Vec<_> = effects.iter().map(|e| e.audit.clone()).collect();
        compare_logs(&w.tag, "change log", &got_changes[i], &expected_changes);
        compare_logs(&w.tag, "audit log", &got_audit[i], &expected_audit);
    }
    (landed, lost)
}

/// Answers of single-point resolves with the per-answer fields removed.
async fn resolve_answers(client: &reqwest::Client, base: &str, points: &[(f64, f64)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (lon, lat) in points {
        let mut v: Value =
            client.get(format!("{base}/v1/resolve?lat={lat}&lon={lon}")).send().await.unwrap().json().await.unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("index_version");
        obj.remove("expires");
        out.push(v);
    }
    out
}

/// After a restart: the index answers every quadrant of every cell from the
/// committed data; the change feed lists exactly the present records.
async fn check_index(p: &Process, workers: &[Worker]) {
    let client = client();
    let ready: Value = client.get(format!("{}/readyz", p.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["lag"], 0, "{ready}");
    let mut points = Vec::new();
    let mut expected = Vec::new();
    let mut models = Vec::new();
    for w in workers {
        let (m, _) = w.model_after(w.committed.unwrap());
        for n in 0..w.next_j {
            let k = w.first_cell + n;
            let jid = format!("crash-{}-j{n}", w.tag);
            for v in 0..4u8 {
                let (lon, lat) = quadrant_centre(k, v);
                points.push(json!({"lat": lat, "lon": lon}));
                let here = m.js.get(&jid).is_some_and(|j| j.bbox == bbox(&square(k, v)).0);
                expected.push(if here { vec![jid.clone()] } else { vec![] });
            }
        }
        models.push(m);
    }
    let res = client.post(format!("{}/v1/resolve", p.base)).json(&json!({"points": points})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    for (i, want) in expected.iter().enumerate() {
        let got: Vec<String> = answer["results"][i]["jurisdictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(&got, want, "point {}", points[i]);
    }
    // Each present jurisdiction answers with its committed endpoints and version.
    let mut present_j = BTreeSet::new();
    let mut present_e = BTreeSet::new();
    for (w, m) in workers.iter().zip(&models) {
        for (jid, j) in &m.js {
            present_j.insert(jid.clone());
            let rec = &answer["jurisdictions"][jid];
            assert_eq!(rec["version"], json!(j.version), "{jid}");
            assert_eq!(rec["name"], json!(j.name), "{jid}");
            let mut urls: Vec<String> =
                rec["endpoints"].as_array().unwrap().iter().map(|e| e["url"].as_str().unwrap().to_owned()).collect();
            urls.sort();
            let want: Vec<String> = m.es.iter().filter(|(_, e)| &e.jid == jid).map(|(u, _)| u.clone()).collect();
            assert_eq!(urls, want, "{jid}: endpoints in the index");
        }
        for url in m.es.keys() {
            present_e.insert(w.ids[url].clone());
        }
    }
    // The change feed, read from 0, ends with an upsert for exactly the present records.
    let mut last: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut since = 0;
    loop {
        let page: Value = client
            .get(format!("{}/v1/changes?since={since}&limit=1000&boundaries=false", p.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for c in page["changes"].as_array().unwrap() {
            let key = (c["entity"].as_str().unwrap().to_owned(), c["id"].as_str().unwrap().to_owned());
            last.insert(key, c["op"].as_str().unwrap().to_owned());
        }
        since = page["next"].as_i64().unwrap();
        if page["more"] != json!(true) {
            break;
        }
    }
    let feed_j: BTreeSet<String> = last
        .iter()
        .filter(|((e, _), op)| e == "jurisdiction" && *op == "upsert")
        .map(|((_, id), _)| id.clone())
        .collect();
    let feed_e: BTreeSet<String> =
        last.iter().filter(|((e, _), op)| e == "endpoint" && *op == "upsert").map(|((_, id), _)| id.clone()).collect();
    assert_eq!(feed_j, present_j, "jurisdictions alive in the change feed");
    assert_eq!(feed_e, present_e, "endpoints alive in the change feed");
}

async fn admin_writes_survive_sigkill(target: Target, rounds: usize, label: &str) {
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xad31);
    let mut p = target.start();
    let token = target.token();
    // Untouched data: a writer run to completion before any kill; its answers are recorded.
    let base_writer = run_worker(Worker::new("base", seed, 3000), p.base.clone(), token.clone(), 30).await;
    assert_eq!(base_writer.acked, 30);
    let base_points: Vec<(f64, f64)> =
        (0..base_writer.next_j).flat_map(|n| (0..4).map(move |v| quadrant_centre(3000 + n, v))).collect();
    let before = resolve_answers(&client(), &p.base, &base_points).await;
    let mut done: Vec<Worker> = vec![base_writer];
    let (mut landed, mut lost, mut acked) = (0, 0, 0);
    for round in 0..rounds {
        let delay = Duration::from_millis(rng.gen_range(50..1500));
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let w = Worker::new(&format!("r{round}w{i}"), seed + (round * 10 + i) as u64, round * 800 + i * 200);
                tokio::spawn(run_worker(w, p.base.clone(), token.clone(), 1_000_000))
            })
            .collect();
        tokio::time::sleep(delay).await;
        p.sigkill();
        for t in tasks {
            let w = t.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            acked += w.acked;
            done.push(w);
        }
        let (l, n) = check_store(&target, &mut done).await;
        landed += l;
        lost += n;
        p = target.start();
        check_index(&p, &done).await;
        assert_eq!(resolve_answers(&client(), &p.base, &base_points).await, before, "untouched data answers as before");
        eprintln!("{label}: round {round}: killed after {delay:?}");
    }
    eprintln!(
        "{label}: {rounds} kills, {acked} acknowledged writes, in flight at the kill: {landed} committed, {lost} not"
    );
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(60)).expect("exits after SIGTERM").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_admin_writes_are_all_or_nothing_across_sigkill() {
    admin_writes_survive_sigkill(sqlite_target().await, 3, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_admin_writes_are_all_or_nothing_across_sigkill() {
    let Some(target) = pg_target().await else { return };
    admin_writes_survive_sigkill(target, 2, "postgres").await;
}

// ---------------------------------------------------------------------------
// Bulk imports.

/// A synthetic FeatureCollection: `n` places, regular 24-gons of radius 0.02
/// degrees on a grid inside the state square, ids `{prefix}-{i}`.
fn places(prefix: &str, first: usize, n: usize) -> (Value, Vec<(String, f64, f64)>) {
    let mut features = Vec::with_capacity(n);
    let mut centres = Vec::with_capacity(n);
    for i in 0..n {
        let k = first + i;
        let (cx, cy) = (10.05 + (k % 180) as f64 * 0.1, 10.05 + (k / 180) as f64 * 0.1);
        let mut ring: Vec<Value> = (0..24)
            .map(|s| {
                let a = std::f64::consts::TAU * s as f64 / 24.0;
                json!([cx + 0.02 * a.cos(), cy + 0.02 * a.sin()])
            })
            .collect();
        ring.push(ring[0].clone());
        let id = format!("{prefix}-{i}");
        features.push(json!({"type": "Feature", "properties": {"id": id, "name": format!("Synthetic place {id}"), "tier": "place"},
                             "geometry": {"type": "Polygon", "coordinates": [ring]}}));
        centres.push((id, cx, cy));
    }
    (json!({"type": "FeatureCollection", "features": features}), centres)
}

const STATE: &str = "crash-state";
const PLACES: usize = 3000;

fn state_feature() -> Value {
    json!({"type": "Feature", "properties": {"id": STATE, "name": "Synthetic state", "tier": "state"},
           "geometry": {"type": "Polygon", "coordinates": [[[10.0, 10.0], [28.0, 10.0], [28.0, 28.0], [10.0, 28.0], [10.0, 10.0]]]}})
}

/// All or none of an import: its ids all present with the state as parent,
/// one change-log row and one audit entry each; or none of them and no row.
async fn check_import(target: &Target, ids: &[String], acked: bool, label: &str) -> bool {
    let store = target.open().await;
    let js = store.load_jurisdictions().await.unwrap();
    let (changes, audit) = logs(&store).await;
    store.close().await;
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let present: Vec<_> = js.iter().filter(|j| wanted.contains(j.record.id.as_str())).collect();
    let all = present.len() == ids.len();
    assert!(all || present.is_empty(), "{label}: {} of {} imported records present", present.len(), ids.len());
    assert!(all || !acked, "{label}: an acknowledged import is missing");
    let orphans: Vec<_> =
        present.iter().filter(|j| j.record.parent.as_deref() != Some(STATE)).map(|j| &j.record.id).collect();
    assert!(
        orphans.is_empty(),
        "{label}: imported but without their parent: {} records, e.g. {:?}",
        orphans.len(),
        &orphans[..orphans.len().min(3)]
    );
    let logged = changes.iter().filter(|c| wanted.contains(c.entity_id.as_str())).count();
    let audited = audit.iter().filter(|a| wanted.contains(a.entity_id.as_str())).count();
    let expect = if all { ids.len() } else { 0 };
    assert_eq!(logged, expect, "{label}: change-log rows of the import");
    assert_eq!(audited, expect, "{label}: audit entries of the import");
    // Everything else is as before: the state and earlier imports, one row each.
    let state = js.iter().find(|j| j.record.id == STATE).expect("state");
    assert_eq!(state.record.version, 1, "{label}: the state was not rewritten");
    assert_eq!(changes.iter().filter(|c| c.entity_id == STATE).count(), 1);
    all
}

/// Resolves each place centre in one batch; expects `[state, place]` or
/// `[state]`. Returns the answer without its `index_version`.
async fn check_places(p: &Process, centres: &[(String, f64, f64)], present: bool) -> Value {
    let points: Vec<Value> = centres.iter().map(|(_, x, y)| json!({"lat": y, "lon": x})).collect();
    let res = client().post(format!("{}/v1/resolve", p.base)).json(&json!({"points": points})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    for (i, (id, _, _)) in centres.iter().enumerate() {
        let got = &answer["results"][i]["jurisdictions"];
        let want = if present { json!([STATE, id]) } else { json!([STATE]) };
        assert_eq!(got, &want, "{id}");
        if present {
            assert_eq!(answer["jurisdictions"][id]["parent"], json!(STATE), "{id}");
        }
    }
    let mut answer = answer;
    answer.as_object_mut().unwrap().remove("index_version");
    answer.as_object_mut().unwrap().remove("expires");
    answer
}

/// Asserts two answers are equal, naming the first differing member.
fn same_answer(got: &Value, want: &Value, what: &str) {
    if got == want {
        return;
    }
    let (g, w) = (got.as_object().unwrap(), want.as_object().unwrap());
    let keys: BTreeSet<&String> = g.keys().chain(w.keys()).collect();
    for k in keys {
        if g.get(k) != w.get(k) {
            if let (Some(Value::Object(a)), Some(Value::Object(b))) = (g.get(k), w.get(k)) {
                let inner = a.keys().chain(b.keys()).find(|i| a.get(*i) != b.get(*i)).unwrap();
                panic!("{what}: `{k}.{inner}` differs: {:?} vs {:?}", a.get(inner), b.get(inner));
            }
            panic!("{what}: `{k}` differs");
        }
    }
}

fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
    path
}

fn cli_import(target: &Target, file: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(["import", "--on-invalid", "abort"])
        .arg(file)
        .env("GEOWEBDNS_DATABASE_URL", &target.url)
        .env("GEOWEBDNS_KEY_DIR", &target.keys)
        .env("GEOWEBDNS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn imports_survive_sigkill(target: Target, label: &str) {
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1e0);
    let dir = tempfile::tempdir().unwrap();
    let client = client();
    // The state, and a first import that completes: its answers are recorded.
    let mut p = target.start();
    let token = target.token();
    let res = client
        .post(format!("{}/admin/v1/jurisdictions", p.base))
        .bearer_auth(&token)
        .json(&state_feature())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let (fc, first) = places("imp-a", 0, PLACES);
    let body = serde_json::to_vec(&fc).unwrap();
    let started = Instant::now();
    let res = client
        .post(format!("{}/admin/v1/import", p.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let route_time = started.elapsed();
    let before = check_places(&p, &first, true).await;
    let ids: Vec<String> = first.iter().map(|c| c.0.clone()).collect();
    // A second completed import through the CLI gives the CLI's duration.
    let (fc, second) = places("imp-b", PLACES, PLACES);
    let file = write_json(dir.path(), "b.geojson", &fc);
    let started = Instant::now();
    let status = cli_import(&target, &file).wait().unwrap();
    assert!(status.success());
    let cli_time = started.elapsed();
    p.sigkill();
    assert!(check_import(&target, &ids, true, label).await);
    let ids_b: Vec<String> = second.iter().map(|c| c.0.clone()).collect();
    assert!(check_import(&target, &ids_b, true, label).await);
    eprintln!("{label}: import of {PLACES} places: admin route {route_time:?}, CLI {cli_time:?}");

    let mut next = 2 * PLACES;
    let mut outcomes = Vec::new();
    let mut checked = vec![(first.clone(), true), (second, true)];
    for round in 0..3 {
        // Through the admin route: kill the server while it imports.
        p = target.start();
        let (fc, centres) = places(&format!("imp-r{round}"), next, PLACES);
        next += PLACES;
        let body = serde_json::to_vec(&fc).unwrap();
        let url = format!("{}/admin/v1/import", p.base);
        let (c, t) = (client.clone(), token.clone());
        let task = tokio::spawn(async move {
            match c.post(url).bearer_auth(t).header("content-type", "application/json").body(body).send().await {
                Ok(res) => {
                    let status = res.status();
                    let text = res.text().await;
                    match text {
                        Ok(text) => {
                            assert_eq!(status, 200, "{text}");
                            true
                        }
                        Err(_) => false,
                    }
                }
                Err(_) => false,
            }
        });
        let delay = route_time.mul_f64(rng.gen_range(0.05..1.3));
        tokio::time::sleep(delay).await;
        p.sigkill();
        let acked = task.await.unwrap();
        let ids: Vec<String> = centres.iter().map(|c| c.0.clone()).collect();
        let all = check_import(&target, &ids, acked, &format!("{label} route round {round}")).await;
        outcomes.push(format!("route kill at {delay:?}: {}", if all { "all" } else { "none" }));
        checked.push((centres, all));

        // Through the CLI: kill the import process.
        let (fc, centres) = places(&format!("cli-r{round}"), next, PLACES);
        next += PLACES;
        let file = write_json(dir.path(), &format!("r{round}.geojson"), &fc);
        let mut child = cli_import(&target, &file);
        let delay = cli_time.mul_f64(rng.gen_range(0.05..1.3));
        tokio::time::sleep(delay).await;
        let _ = child.kill();
        let acked = child.wait().unwrap().success();
        let ids: Vec<String> = centres.iter().map(|c| c.0.clone()).collect();
        let all = check_import(&target, &ids, acked, &format!("{label} CLI round {round}")).await;
        outcomes.push(format!("CLI kill at {delay:?}: {}", if all { "all" } else { "none" }));
        checked.push((centres, all));
    }
    // Restarted, the index answers every import as committed, and the first
    // import exactly as before the crashes.
    p = target.start();
    same_answer(&check_places(&p, &first, true).await, &before, &format!("{label}: answers about the first import"));
    for (centres, present) in &checked {
        check_places(&p, centres, *present).await;
    }
    eprintln!("{label}: {}", outcomes.join("; "));
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(60)).expect("exits after SIGTERM").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_imports_are_all_or_nothing_across_sigkill() {
    imports_survive_sigkill(sqlite_target().await, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_imports_are_all_or_nothing_across_sigkill() {
    let Some(target) = pg_target().await else { return };
    imports_survive_sigkill(target, "postgres").await;
}
