//! Side by side with PostGIS (issue 7 point 3): the client that
//! `benches/postgis.sh` runs. It is a `harness = false` bench target, so only
//! `cargo bench` compiles it; without its environment it prints a skip
//! message and exits 0 (`cargo bench` runs every bench).
//!
//! The script loads the bundled boundaries into PostgreSQL through the
//! geowebdns binary itself (so both sides hold the very same GeoJSON), builds
//! `gis_boundaries` (one row per jurisdiction, GiST) and `gis_pieces`
//! (`ST_Subdivide(geom, 256)`, GiST), starts the release server on that
//! database and runs this client pinned to its own core.
//!
//! The client draws one seeded point set (uniform over the contiguous United
//! States' box, like `benches/load/resolve.lua`, rounded to 6 decimals so the
//! query string, the JSON body and the SQL parameters carry the same doubles)
//! and runs it through both sides at the same client concurrency:
//!
//! * one point per request: `GET /v1/resolve` over keep-alive (one HTTP/1.1
//!   connection a client, on hyper's low-level client: see [`Conn`]) against
//!   a prepared `ST_Covers` statement (plain table, and the pieces with
//!   `DISTINCT id`);
//! * batches: `POST /v1/resolve` (BATCH points a request; ids only or with
//!   records; the JSON answer read whole, or the streamed NDJSON answer read
//!   line by line as it arrives) against set-based
//!   SQL: the `bench_points` table (GiST-indexed) joined with each boundary
//!   driving a `LATERAL` scan of the points (one query per client's share),
//!   and `float8[]` parameters with `unnest` (BATCH points a query: plain,
//!   candidates sorted by boundary, subdivided).
//!
//! Every answer is checked: the set of jurisdiction ids per point must be the
//! same on both sides. The floors of the two clients (`GET /healthz`,
//! prepared `SELECT 1`) are measured in the same run, and so is the CPU time
//! (from /proc) of the serving side (the geowebdns process, or the benchmark's
//! PostgreSQL backends) and of this client: CPU microseconds a point are the
//! steadier reading on a shared machine.
//!
//! Environment: GEOWEBDNS_POSTGIS_URL and GEOWEBDNS_BENCH_BASE (required);
//! GEOWEBDNS_BENCH_POINTS (100000), GEOWEBDNS_BENCH_SEED (42),
//! GEOWEBDNS_BENCH_CLIENTS ("1,2"), GEOWEBDNS_BENCH_BATCH (1000),
//! GEOWEBDNS_BENCH_SERVER_PID (the server, for its CPU time),
//! GEOWEBDNS_BENCH_FLOOR (20000 requests), GEOWEBDNS_BENCH_ROUNDS (5: how
//! many times the fast batch phases run the point set, so they last long
//! enough to measure), GEOWEBDNS_BENCH_HTTP_ROUNDS (25: the same for
//! geowebdns's batch phases), GEOWEBDNS_BENCH_PIN_BACKENDS (a
//! CPU list for `taskset -p -c` of the PostgreSQL backends; unset: no
//! pinning), GEOWEBDNS_BENCH_OUT (a path for the JSON result),
//! GEOWEBDNS_BENCH_CLIENT_SPIN (1: see below; 0 lets the client sleep).
//!
//! The client busy-polls by default: a task that only yields keeps its
//! runtime from ever sleeping, so every answer (from either side) is read
//! as soon as it arrives instead of after a wake-up of the client's core.
//! On these virtual machines a wake-up costs tens of microseconds, as much
//! as PostgreSQL's or geowebdns's own work for one point, and both sides
//! paid it alike; with it gone, the one-point phases measure the servers
//! rather than the load generator's sleep. The client then uses its whole
//! core, so its CPU column (`cli us/p`) counts the spinning too.

use std::collections::BTreeSet;
use std::future::Future;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tokio::task::JoinSet;

const MIN_LAT: f64 = 24.5;
const MAX_LAT: f64 = 49.4;
const MIN_LON: f64 = -125.0;
const MAX_LON: f64 = -66.9;

const POINT_PLAIN: &str = "SELECT id FROM gis_boundaries WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))";
const POINT_PIECES: &str =
    "SELECT DISTINCT id FROM gis_pieces WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))";
// Set-based over the points table (GiST on bench_points.geom too): each
// boundary drives an index scan of the points, so PostGIS tests many points
// against the same geometry in a row and reuses its prepared (cached) form.
// (`idx + 0`: the range must not use the primary key, or the planner ANDs a
// key range scan into every boundary's index scan.)
const TABLE_PLAIN: &str = "SELECT p.idx::int8, j.id FROM gis_boundaries j CROSS JOIN LATERAL \
     (SELECT idx FROM bench_points p WHERE ST_Covers(j.geom, p.geom) AND p.idx + 0 >= $1 AND p.idx + 0 < $2 OFFSET 0) p";
const TABLE_PIECES: &str = "SELECT DISTINCT p.idx::int8, j.id FROM gis_pieces j CROSS JOIN LATERAL \
     (SELECT idx FROM bench_points p WHERE ST_Covers(j.geom, p.geom) AND p.idx + 0 >= $1 AND p.idx + 0 < $2 OFFSET 0) p";
// Set-based over float8[] parameters: the plain join (the planner drives it
// by the points), the same with the candidates sorted by boundary first (so
// the geometry cache hits), and the subdivided table.
const UNNEST_PLAIN: &str =
    "SELECT p.i, j.id FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p(lon, lat, i) \
     JOIN gis_boundaries j ON ST_Covers(j.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))";
const UNNEST_SORTED: &str = "SELECT c.i, c.id FROM (SELECT p.i, j.id, j.geom, p.pt FROM \
     (SELECT i, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS pt FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS u(lon, lat, i)) p \
     JOIN gis_boundaries j ON j.geom ~ p.pt ORDER BY j.id OFFSET 0) c WHERE ST_Covers(c.geom, c.pt)";
const UNNEST_PIECES: &str =
    "SELECT DISTINCT p.i, j.id FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p(lon, lat, i) \
     JOIN gis_pieces j ON ST_Covers(j.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))";

const TARGET_POINT: f64 = 2.5;
const TARGET_BATCH: f64 = 10.0;

#[derive(Clone, Copy, Debug)]
struct Pt {
    lat: f64,
    lon: f64,
}

struct Config {
    pg_url: String,
    base: String,
    points: usize,
    seed: u64,
    clients: Vec<usize>,
    batch: usize,
    floor: usize,
    pin: Option<String>,
    out: Option<String>,
    server_pid: Option<u32>,
    rounds: usize,
    http_rounds: usize,
    spin: bool,
}

/// Sorted jurisdiction ids per point (None: not asked in that phase).
type Answers = Vec<Option<Vec<String>>>;

/// What one worker did.
#[derive(Default)]
struct WorkerOut {
    answers: Vec<(usize, Vec<String>)>,
    latencies: Vec<Duration>,
    requests: usize,
    /// Answers checked as they came ([`Check`]), and how many differed.
    checked: usize,
    mismatches: usize,
}

/// The reference answers of the timed batch phases: per point, the
/// [`digest`] of its sorted ids (None: not asked). Those phases check every
/// answer of every round against it as it arrives, from the ids borrowed
/// from the answer, instead of keeping an owned copy of each answer (the
/// copies were most of this client's work on a streamed batch, and only the
/// last round's were compared). The untimed reference phases keep the ids
/// themselves, for the disagreement examples.
type Check = Option<Arc<Vec<Option<u64>>>>;

/// A point's answer as one number: a hash of its ids, sorted.
fn digest<S: AsRef<str>>(ids: &mut [S]) -> u64 {
    use std::hash::{Hash, Hasher};
    ids.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    let mut h = std::hash::DefaultHasher::new();
    for id in ids.iter() {
        id.as_ref().hash(&mut h);
    }
    ids.len().hash(&mut h);
    h.finish()
}

impl WorkerOut {
    /// Keeps point `i`'s ids, or with a reference checks them against it.
    fn answer<S: AsRef<str>>(&mut self, check: &Check, i: usize, mut ids: Vec<S>) {
        match check {
            Some(reference) => {
                self.checked += 1;
                if reference.get(i).copied().flatten() != Some(digest(&mut ids)) {
                    self.mismatches += 1;
                }
            }
            None => {
                let mut ids: Vec<String> = ids.iter().map(|s| s.as_ref().to_owned()).collect();
                ids.sort_unstable();
                self.answers.push((i, ids));
            }
        }
    }
}

/// One measured phase.
struct Phase {
    name: String,
    side: &'static str,
    kind: &'static str,
    clients: usize,
    points: usize,
    requests: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    mismatches: Option<usize>,
    /// CPU seconds of the serving side (the geowebdns process, or the
    /// benchmark's PostgreSQL backends) and of this client during the phase.
    server_cpu: f64,
    client_cpu: f64,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.points as f64 / self.secs
    }

    /// Serving-side CPU microseconds a point.
    fn server_us(&self) -> f64 {
        self.server_cpu * 1e6 / self.points as f64
    }

    fn account(&mut self, before: &Cpu, after: &Cpu) {
        self.client_cpu = after.client - before.client;
        self.server_cpu =
            if self.side == "geowebdns" { after.server - before.server } else { after.backends - before.backends };
    }

    fn json(&self) -> Value {
        json!({
            "name": self.name, "side": self.side, "kind": self.kind, "clients": self.clients,
            "points": self.points, "requests": self.requests, "seconds": self.secs,
            "points_per_second": self.rate(), "requests_per_second": self.requests as f64 / self.secs,
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "mismatches_vs_geowebdns": self.mismatches,
            "server_cpu_seconds": self.server_cpu, "client_cpu_seconds": self.client_cpu,
            "server_cpu_us_per_point": self.server_us(),
        })
    }
}

#[derive(Deserialize)]
struct OneAnswer {
    jurisdictions: Vec<IdOnly>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

/// A batch answer, its ids borrowed from the body.
#[derive(Deserialize)]
struct BatchAnswerRef<'a> {
    #[serde(borrow)]
    results: Vec<BatchResultRef<'a>>,
}

#[derive(Deserialize)]
struct BatchResultRef<'a> {
    #[serde(borrow)]
    jurisdictions: Vec<std::borrow::Cow<'a, str>>,
}

/// One line of a streamed batch answer (`Accept: application/x-ndjson`).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum BatchLine<'a> {
    Batch(serde::de::IgnoredAny),
    Jurisdiction(serde::de::IgnoredAny),
    #[serde(borrow)]
    Result(BatchResultRef<'a>),
}

/// What the client makes of one line of a streamed batch answer.
enum Line<'a> {
    /// A point's result: the ids it names.
    Result(Vec<std::borrow::Cow<'a, str>>),
    /// The head or a record: nothing the client keeps.
    Other,
}

/// Reads a line of a streamed batch answer. The client keeps only each
/// result's ids, so a line written the way the server writes it is read
/// without serde: a record line is known by its first member, and a result
/// line's ids are the strings of its closing `"jurisdictions":[...]}}`.
/// Anything else (an escape in an id, another layout) goes through serde.
/// Parsing every line with serde cost the client 0.6 us a point on
/// 10,000-point batches, more than the server spent on it, so with one
/// client the client set the pace.
fn read_line(line: &[u8]) -> anyhow::Result<Line<'_>> {
    if line.starts_with(b"{\"jurisdiction\":{") && line.ends_with(b"}}") {
        return Ok(Line::Other);
    }
    if let Some(ids) = quick_result_ids(line) {
        return Ok(Line::Result(ids));
    }
    Ok(match serde_json::from_slice(line).context("a batch answer line")? {
        BatchLine::Result(r) => Line::Result(r.jurisdictions),
        BatchLine::Batch(_) | BatchLine::Jurisdiction(_) => Line::Other,
    })
}

/// The ids of a result line `{"result":{...,"jurisdictions":["a","b"]}}`,
/// when none has an escape.
fn quick_result_ids(line: &[u8]) -> Option<Vec<std::borrow::Cow<'_, str>>> {
    const MEMBER: &[u8] = b"\"jurisdictions\":[";
    let rest = line.strip_prefix(b"{\"result\":{")?.strip_suffix(b"]}}")?;
    let at = memchr::memmem::rfind(rest, MEMBER)?;
    let mut list = &rest[at + MEMBER.len()..];
    let mut ids = Vec::new();
    while !list.is_empty() {
        let body = list.strip_prefix(b"\"")?;
        let end = memchr::memchr2(b'"', b'\\', body)?;
        if body[end] != b'"' {
            return None;
        }
        ids.push(std::borrow::Cow::Borrowed(std::str::from_utf8(&body[..end]).ok()?));
        list = &body[end + 1..];
        if !list.is_empty() {
            list = list.strip_prefix(b",")?;
        }
    }
    Some(ids)
}

fn main() -> ExitCode {
    let (Ok(pg_url), Ok(base)) = (std::env::var("GEOWEBDNS_POSTGIS_URL"), std::env::var("GEOWEBDNS_BENCH_BASE")) else {
        println!(
            "postgis bench: skipped (GEOWEBDNS_POSTGIS_URL and GEOWEBDNS_BENCH_BASE are not set; run benches/postgis.sh)"
        );
        return ExitCode::SUCCESS;
    };
    let result = config(pg_url, base)
        .and_then(|cfg| tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(cfg)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postgis bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map_err(|_| anyhow::anyhow!("{name}: cannot parse {v:?}")),
        Err(_) => Ok(default),
    }
}

fn config(pg_url: String, base: String) -> anyhow::Result<Config> {
    let clients = std::env::var("GEOWEBDNS_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|c| c.trim().parse::<usize>().context("GEOWEBDNS_BENCH_CLIENTS"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if clients.is_empty() || clients.contains(&0) {
        bail!("GEOWEBDNS_BENCH_CLIENTS must list positive numbers");
    }
    let cfg = Config {
        pg_url,
        base: base.trim_end_matches('/').to_owned(),
        points: env_or("GEOWEBDNS_BENCH_POINTS", 100_000)?,
        seed: env_or("GEOWEBDNS_BENCH_SEED", 42)?,
        clients,
        batch: env_or("GEOWEBDNS_BENCH_BATCH", 1_000)?,
        floor: env_or("GEOWEBDNS_BENCH_FLOOR", 20_000)?,
        pin: std::env::var("GEOWEBDNS_BENCH_PIN_BACKENDS").ok().filter(|s| !s.is_empty()),
        out: std::env::var("GEOWEBDNS_BENCH_OUT").ok().filter(|s| !s.is_empty()),
        rounds: env_or("GEOWEBDNS_BENCH_ROUNDS", 5)?,
        http_rounds: env_or("GEOWEBDNS_BENCH_HTTP_ROUNDS", 25)?,
        server_pid: std::env::var("GEOWEBDNS_BENCH_SERVER_PID").ok().and_then(|s| s.trim().parse().ok()),
        spin: env_or("GEOWEBDNS_BENCH_CLIENT_SPIN", 1u8)? != 0,
    };
    if cfg.points == 0 || cfg.batch == 0 || cfg.rounds == 0 || cfg.http_rounds == 0 {
        bail!("GEOWEBDNS_BENCH_POINTS, GEOWEBDNS_BENCH_BATCH, GEOWEBDNS_BENCH_ROUNDS and GEOWEBDNS_BENCH_HTTP_ROUNDS must be positive");
    }
    Ok(cfg)
}

/// The seeded point set, rounded to 6 decimals (what `%.6f` sends in the Lua scripts).
fn points(n: usize, seed: u64) -> Vec<Pt> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let round = |v: f64| (v * 1e6).round() / 1e6;
    (0..n)
        .map(|_| {
            let lat = round(MIN_LAT + rng.gen::<f64>() * (MAX_LAT - MIN_LAT));
            let lon = round(MIN_LON + rng.gen::<f64>() * (MAX_LON - MIN_LON));
            Pt { lat, lon }
        })
        .collect()
}

/// Runs one future per worker state at once; returns the states, what each
/// did and the wall time of the whole phase.
async fn run_workers<S, F, Fut>(states: Vec<S>, f: F) -> anyhow::Result<(Vec<S>, Vec<WorkerOut>, f64)>
where
    S: Send + 'static,
    F: Fn(S) -> Fut,
    Fut: Future<Output = anyhow::Result<(S, WorkerOut)>> + Send + 'static,
{
    let start = Instant::now();
    let mut set = JoinSet::new();
    for s in states {
        set.spawn(f(s));
    }
    let mut back = Vec::new();
    let mut outs = Vec::new();
    while let Some(r) = set.join_next().await {
        let (s, o) = r??;
        back.push(s);
        outs.push(o);
    }
    Ok((back, outs, start.elapsed().as_secs_f64()))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Folds the workers' outputs into a phase and its answers.
fn finish(
    name: String,
    side: &'static str,
    kind: &'static str,
    clients: usize,
    n: usize,
    outs: Vec<WorkerOut>,
    secs: f64,
) -> (Phase, Answers) {
    let mut answers: Answers = vec![None; n];
    let mut lat = Vec::new();
    let mut requests = 0;
    let mut points = 0;
    let (mut checked, mut mismatches) = (0, 0);
    for o in outs {
        requests += o.requests;
        points += o.checked;
        checked += o.checked;
        mismatches += o.mismatches;
        lat.extend(o.latencies);
        for (i, ids) in o.answers {
            points += 1;
            answers[i] = Some(ids);
        }
    }
    lat.sort_unstable();
    let phase = Phase {
        name,
        side,
        kind,
        clients,
        points,
        requests,
        secs,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        mismatches: (checked > 0).then_some(mismatches),
        server_cpu: f64::NAN,
        client_cpu: f64::NAN,
    };
    (phase, answers)
}

/// CPU seconds used so far by this client, the server and the backends.
struct Cpu {
    client: f64,
    server: f64,
    backends: f64,
}

/// CPU seconds (user + system, all threads, dead ones included) of a process, from /proc.
fn proc_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return f64::NAN };
    // Fields after "pid (comm) ": state is field 3, utime 14, stime 15 (in USER_HZ = 100 ticks).
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else { return f64::NAN };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

fn cpu_now(server: Option<u32>, backends: &[u32]) -> Cpu {
    Cpu {
        client: proc_cpu(std::process::id()),
        server: server.map(proc_cpu).unwrap_or(f64::NAN),
        backends: backends.iter().map(|&p| proc_cpu(p)).sum(),
    }
}

/// One keep-alive HTTP/1.1 connection on hyper's low-level client: no pool,
/// no redirects, no URL handling per request. The load generator has to cost
/// much less than the server it measures; through reqwest's layers this
/// client spent ~30 us of CPU a request, as much as the server, and with two
/// clients sharing its core it, not the server, set the pace.
struct Conn {
    send: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    host: http::HeaderValue,
}

impl Conn {
    /// Connects to `base` (`http://host:port`).
    async fn open(base: &str) -> anyhow::Result<Self> {
        let authority = base.strip_prefix("http://").context("GEOWEBDNS_BENCH_BASE must be http://host:port")?;
        let stream = tokio::net::TcpStream::connect(authority).await.with_context(|| format!("connect {authority}"))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("postgis bench: connection: {e}");
            }
        });
        Ok(Self { send, host: http::HeaderValue::from_str(authority)? })
    }

    /// Sends one request (`uri`: path and query) and reads the whole answer;
    /// anything but a 2xx is an error.
    async fn call(
        &mut self,
        method: http::Method,
        uri: &http::Uri,
        body: Option<bytes::Bytes>,
    ) -> anyhow::Result<bytes::Bytes> {
        use http_body_util::BodyExt;
        let mut req = http::Request::builder().method(method).uri(uri.clone()).header(http::header::HOST, &self.host);
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(http_body_util::Full::new(body.unwrap_or_default()))?;
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{uri} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }
}

impl Conn {
    /// Sends a batch asking for the streamed answer and hands each line to
    /// `line` as soon as it has arrived, while the rest is still on its way.
    async fn call_lines(
        &mut self,
        uri: &http::Uri,
        body: bytes::Bytes,
        mut line: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        use http_body_util::BodyExt;
        let req = http::Request::post(uri.clone())
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/x-ndjson")
            .body(http_body_util::Full::new(body))?;
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let text = body.collect().await?.to_bytes();
            bail!("{uri} answered {status}: {}", String::from_utf8_lossy(&text));
        }
        // A line split between two frames waits here for its end.
        let mut carry: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            let mut rest: &[u8] = &data;
            while let Some(i) = memchr::memchr(b'\n', rest) {
                if carry.is_empty() {
                    line(&rest[..i])?;
                } else {
                    carry.extend_from_slice(&rest[..i]);
                    line(&carry)?;
                    carry.clear();
                }
                rest = &rest[i + 1..];
            }
            carry.extend_from_slice(rest);
        }
        if !carry.is_empty() {
            bail!("{uri}: the stream ended inside a line");
        }
        Ok(())
    }
}

async fn http_conns(cfg: &Config, clients: usize) -> anyhow::Result<Vec<Conn>> {
    let mut out = Vec::with_capacity(clients);
    for _ in 0..clients {
        out.push(Conn::open(&cfg.base).await?);
    }
    Ok(out)
}

/// `GET` of one URL per request (keep-alive, one connection per client);
/// `parse` turns a body into the sorted ids (None: a floor, nothing to keep).
async fn http_get_phase(
    cfg: &Config,
    name: String,
    kind: &'static str,
    clients: usize,
    uris: Arc<Vec<http::Uri>>,
    parse: fn(&[u8]) -> anyhow::Result<Option<Vec<String>>>,
) -> anyhow::Result<(Phase, Answers)> {
    let n = uris.len();
    let next = Arc::new(AtomicUsize::new(0));
    let states = http_conns(cfg, clients).await?;
    let (_, outs, secs) = run_workers(states, |mut conn| {
        let (uris, next) = (uris.clone(), next.clone());
        async move {
            let mut out = WorkerOut::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(uri) = uris.get(i) else { break };
                let t = Instant::now();
                let body = conn.call(http::Method::GET, uri, None).await?;
                out.latencies.push(t.elapsed());
                out.requests += 1;
                if let Some(ids) = parse(&body)? {
                    out.answers.push((i, ids));
                }
            }
            Ok((conn, out))
        }
    })
    .await?;
    let (mut phase, answers) = finish(name, "geowebdns", kind, clients, n, outs, secs);
    if phase.points == 0 {
        phase.points = phase.requests;
    }
    Ok((phase, answers))
}

fn parse_one(body: &[u8]) -> anyhow::Result<Option<Vec<String>>> {
    let a: OneAnswer = serde_json::from_slice(body).context("a /v1/resolve answer")?;
    let mut ids: Vec<String> = a.jurisdictions.into_iter().map(|j| j.id).collect();
    ids.sort_unstable();
    Ok(Some(ids))
}

fn parse_none(_: &[u8]) -> anyhow::Result<Option<Vec<String>>> {
    Ok(None)
}

/// `POST /v1/resolve` of pre-built bodies, one per unit (a range of points):
/// the JSON answer read whole, or with `lines` the streamed answer read
/// line by line as it arrives.
#[allow(clippy::too_many_arguments)]
async fn http_post_phase(
    cfg: &Config,
    name: String,
    clients: usize,
    units: Arc<Vec<Range<usize>>>,
    bodies: Arc<Vec<bytes::Bytes>>,
    n: usize,
    lines: bool,
    check: Check,
) -> anyhow::Result<(Phase, Answers)> {
    let uri = http::Uri::from_static("/v1/resolve");
    let next = Arc::new(AtomicUsize::new(0));
    let states = http_conns(cfg, clients).await?;
    let (_, outs, secs) = run_workers(states, |mut conn| {
        let (units, bodies, next, uri, check) =
            (units.clone(), bodies.clone(), next.clone(), uri.clone(), check.clone());
        async move {
            let mut out = WorkerOut::default();
            loop {
                let u = next.fetch_add(1, Ordering::Relaxed);
                let Some(range) = units.get(u) else { break };
                let t = Instant::now();
                let mut got = 0;
                let mut keep = |ids: Vec<std::borrow::Cow<'_, str>>| {
                    out.answer(&check, range.start + got, ids);
                    got += 1;
                };
                if lines {
                    conn.call_lines(&uri, bodies[u].clone(), |l| {
                        if let Line::Result(ids) = read_line(l)? {
                            keep(ids);
                        }
                        Ok(())
                    })
                    .await?;
                } else {
                    let body = conn.call(http::Method::POST, &uri, Some(bodies[u].clone())).await?;
                    let a: BatchAnswerRef = serde_json::from_slice(&body).context("a batch answer")?;
                    a.results.into_iter().for_each(|r| keep(r.jurisdictions));
                }
                out.latencies.push(t.elapsed());
                out.requests += 1;
                if got != range.len() {
                    bail!("a batch of {} points got {got} results", range.len());
                }
            }
            Ok((conn, out))
        }
    })
    .await?;
    Ok(finish(name, "geowebdns", "batch", clients, n, outs, secs))
}

/// A prepared statement per point (`$1` lon, `$2` lat), one connection per client.
async fn pg_point_phase(
    name: String,
    kind: &'static str,
    conns: &mut Vec<PgConnection>,
    clients: usize,
    sql: &'static str,
    pts: Arc<Vec<Pt>>,
    n: usize,
) -> anyhow::Result<(Phase, Answers)> {
    let next = Arc::new(AtomicUsize::new(0));
    let states: Vec<PgConnection> = conns.drain(..clients).collect();
    let floor = kind == "floor";
    let (back, outs, secs) = run_workers(states, |mut conn| {
        let (pts, next) = (pts.clone(), next.clone());
        async move {
            let mut out = WorkerOut::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                if floor {
                    let one: i32 = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
                    out.latencies.push(t.elapsed());
                    out.requests += 1;
                    if one != 1 {
                        bail!("SELECT 1 answered {one}");
                    }
                    continue;
                }
                let mut ids: Vec<String> =
                    sqlx::query_scalar(sql).bind(pts[i].lon).bind(pts[i].lat).fetch_all(&mut conn).await?;
                out.latencies.push(t.elapsed());
                out.requests += 1;
                ids.sort_unstable();
                out.answers.push((i, ids));
            }
            Ok((conn, out))
        }
    })
    .await?;
    conns.extend(back);
    let (mut phase, answers) = finish(name, "postgis", kind, clients, n, outs, secs);
    if floor {
        phase.points = phase.requests;
    }
    Ok((phase, answers))
}

/// Set-based SQL over units (ranges of points): `table` binds the range
/// bounds (rows carry the global index), otherwise the lon/lat arrays are
/// bound and the ordinality is 1-based within the unit.
#[allow(clippy::too_many_arguments)]
async fn pg_set_phase(
    name: String,
    conns: &mut Vec<PgConnection>,
    clients: usize,
    sql: &'static str,
    table: bool,
    units: Arc<Vec<Range<usize>>>,
    pts: Arc<Vec<Pt>>,
    n: usize,
    check: Check,
) -> anyhow::Result<(Phase, Answers)> {
    let next = Arc::new(AtomicUsize::new(0));
    let states: Vec<PgConnection> = conns.drain(..clients).collect();
    let (back, outs, secs) = run_workers(states, |mut conn| {
        let (pts, next, units, check) = (pts.clone(), next.clone(), units.clone(), check.clone());
        async move {
            let mut out = WorkerOut::default();
            loop {
                let u = next.fetch_add(1, Ordering::Relaxed);
                let Some(range) = units.get(u).cloned() else { break };
                let t = Instant::now();
                let rows: Vec<(i64, String)> = if table {
                    sqlx::query_as(sql).bind(range.start as i32).bind(range.end as i32).fetch_all(&mut conn).await?
                } else {
                    let lons: Vec<f64> = pts[range.clone()].iter().map(|p| p.lon).collect();
                    let lats: Vec<f64> = pts[range.clone()].iter().map(|p| p.lat).collect();
                    sqlx::query_as(sql).bind(lons).bind(lats).fetch_all(&mut conn).await?
                };
                out.latencies.push(t.elapsed());
                out.requests += 1;
                let mut ids: Vec<Vec<String>> = vec![Vec::new(); range.len()];
                for (i, id) in rows {
                    let k = if table { i as usize } else { range.start + i as usize - 1 };
                    if !range.contains(&k) {
                        bail!("row for point {k} outside the unit {range:?}");
                    }
                    ids[k - range.start].push(id);
                }
                for (k, v) in range.zip(ids) {
                    out.answer(&check, k, v);
                }
            }
            Ok((conn, out))
        }
    })
    .await?;
    conns.extend(back);
    Ok(finish(name, "postgis", "batch", clients, n, outs, secs))
}

/// Points whose id sets differ (both answered).
fn diff(a: &Answers, b: &Answers) -> Vec<usize> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter_map(|(i, (x, y))| match (x, y) {
            (Some(x), Some(y)) if x != y => Some(i),
            _ => None,
        })
        .collect()
}

fn split(n: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts).map(|k| n * k / parts..n * (k + 1) / parts).filter(|r| !r.is_empty()).collect()
}

fn repeat<T: Clone>(v: &[T], times: usize) -> Vec<T> {
    (0..times).flat_map(|_| v.iter().cloned()).collect()
}

fn chunks(n: usize, size: usize) -> Vec<Range<usize>> {
    (0..n).step_by(size).map(|s| s..(s + size).min(n)).collect()
}

async fn connect(cfg: &Config) -> anyhow::Result<(PgConnection, u32)> {
    let mut conn = PgConnection::connect(&cfg.pg_url).await.context("connecting to PostgreSQL")?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await?;
    if let Some(cpus) = &cfg.pin {
        let st = std::process::Command::new("taskset")
            .args(["-p", "-c", cpus, &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .context("running taskset")?;
        if !st.success() {
            bail!("taskset -p -c {cpus} {pid} failed");
        }
        println!("PostgreSQL backend {pid} pinned to cpu {cpus}");
    }
    Ok((conn, u32::try_from(pid)?))
}

async fn setup_points(conn: &mut PgConnection, pts: &[Pt]) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS bench_points;
         CREATE TABLE bench_points (idx int4 PRIMARY KEY, lon float8 NOT NULL, lat float8 NOT NULL,
                                    geom geometry(Point, 4326) NOT NULL);",
    )
    .execute(&mut *conn)
    .await?;
    for r in chunks(pts.len(), 50_000) {
        let lons: Vec<f64> = pts[r.clone()].iter().map(|p| p.lon).collect();
        let lats: Vec<f64> = pts[r.clone()].iter().map(|p| p.lat).collect();
        sqlx::query(
            "INSERT INTO bench_points
             SELECT $3 + i::int4 - 1, lon, lat, ST_SetSRID(ST_MakePoint(lon, lat), 4326)
             FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS t(lon, lat, i)",
        )
        .bind(lons)
        .bind(lats)
        .bind(r.start as i32)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::raw_sql("CREATE INDEX bench_points_geom ON bench_points USING gist (geom); ANALYZE bench_points")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn explain(conn: &mut PgConnection, sql: &str, table: bool, pts: &[Pt], batch: usize) -> anyhow::Result<String> {
    let q = format!("EXPLAIN (COSTS OFF) {sql}");
    let lines: Vec<String> = if table {
        sqlx::query_scalar(&q).bind(0i32).bind(pts.len() as i32).fetch_all(&mut *conn).await?
    } else {
        let r = 0..batch.min(pts.len());
        let lons: Vec<f64> = pts[r.clone()].iter().map(|p| p.lon).collect();
        let lats: Vec<f64> = pts[r].iter().map(|p| p.lat).collect();
        sqlx::query_scalar(&q).bind(lons).bind(lats).fetch_all(&mut *conn).await?
    };
    Ok(lines.join("\n"))
}

fn ids_text(v: &Option<Vec<String>>) -> String {
    v.as_ref().map(|v| v.join(",")).unwrap_or_else(|| "-".into())
}

fn print_phase(p: &Phase) {
    let mism = p.mismatches.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
    println!(
        "{:<46} {:>2} {:>7} {:>7} {:>7.2} {:>9.0} {:>7.3} {:>7.3} {:>8.1} {:>8.1} {:>5}",
        p.name,
        p.clients,
        p.points,
        p.requests,
        p.secs,
        p.rate(),
        p.p50_ms,
        p.p99_ms,
        p.server_us(),
        p.client_cpu * 1e6 / p.points as f64,
        mism
    );
}

fn verdict(ratio: f64, target: f64) -> String {
    if ratio >= target {
        format!("met ({:.0} % over)", (ratio / target - 1.0) * 100.0)
    } else {
        format!("MISSED by {:.0} %", (1.0 - ratio / target) * 100.0)
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let n = cfg.points;
    let pts = Arc::new(points(n, cfg.seed));
    let max_clients = cfg.clients.iter().copied().max().unwrap_or(1);
    println!(
        "postgis bench: {n} points (seed {}), clients {:?}, batches of {}, server {}",
        cfg.seed, cfg.clients, cfg.batch, cfg.base
    );
    if cfg.spin {
        // Busy polling (module doc): with this task always ready, the
        // current-thread runtime polls its sockets with a zero timeout
        // between tasks instead of sleeping in epoll_wait.
        tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
        println!("client: busy-polls (never sleeps; GEOWEBDNS_BENCH_CLIENT_SPIN=0 turns it off)");
    }

    let mut conns = Vec::new();
    let mut backend_pids = Vec::new();
    for _ in 0..max_clients {
        let (conn, pid) = connect(&cfg).await?;
        conns.push(conn);
        backend_pids.push(pid);
    }
    let server_pid = cfg.server_pid;
    macro_rules! timed {
        ($e:expr) => {{
            let before = cpu_now(server_pid, &backend_pids);
            let (mut p, a) = $e;
            let after = cpu_now(server_pid, &backend_pids);
            p.account(&before, &after);
            (p, a)
        }};
    }
    let (jit, par, postgis): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather'), postgis_full_version()",
    )
    .fetch_one(&mut conns[0])
    .await?;
    println!("PostgreSQL settings: jit={jit} max_parallel_workers_per_gather={par}");
    println!("{postgis}");
    setup_points(&mut conns[0], &pts).await?;

    let mut plans = serde_json::Map::new();
    for (label, sql, table) in [
        ("table_plain", TABLE_PLAIN, true),
        ("table_pieces", TABLE_PIECES, true),
        ("unnest_plain", UNNEST_PLAIN, false),
        ("unnest_sorted", UNNEST_SORTED, false),
        ("unnest_pieces", UNNEST_PIECES, false),
        ("point_plain", POINT_PLAIN, false),
    ] {
        let plan = if label == "point_plain" {
            let q = format!("EXPLAIN (COSTS OFF) {sql}");
            let l: Vec<String> =
                sqlx::query_scalar(&q).bind(pts[0].lon).bind(pts[0].lat).fetch_all(&mut conns[0]).await?;
            l.join("\n")
        } else {
            explain(&mut conns[0], sql, table, &pts, cfg.batch).await?
        };
        plans.insert(label.into(), Value::String(plan));
    }

    // Pre-built requests (not timed), like wrk's Lua scripts.
    let uris: Arc<Vec<http::Uri>> = Arc::new(
        pts.iter().map(|p| format!("/v1/resolve?lat={}&lon={}", p.lat, p.lon).parse()).collect::<Result<_, _>>()?,
    );
    let floor_uris: Arc<Vec<http::Uri>> = Arc::new(vec![http::Uri::from_static("/healthz"); cfg.floor]);
    let batch_units = Arc::new(chunks(n, cfg.batch));
    // Batch bodies: with `"records": false` the answer lists ids only, as
    // PostGIS's rows do; the default answer also carries each distinct
    // jurisdiction's record (endpoints, services), measured beside it.
    let bodies = |records: bool| -> anyhow::Result<Arc<Vec<bytes::Bytes>>> {
        let bodies = batch_units
            .iter()
            .map(|r| {
                let points: Vec<Value> = pts[r.clone()].iter().map(|p| json!({"lat": p.lat, "lon": p.lon})).collect();
                serde_json::to_vec(&json!({ "points": points, "records": records })).map(bytes::Bytes::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(bodies))
    };
    let (ids_bodies, record_bodies) = (bodies(false)?, bodies(true)?);

    let rep_units = Arc::new(repeat(&batch_units, cfg.rounds));
    // geowebdns's batch phases run the point set more often: five rounds
    // of 100,000 points took it 0.2-0.5 s, too short to time on a shared
    // machine.
    let http_units = Arc::new(repeat(&batch_units, cfg.http_rounds));
    let rep_ids_bodies = Arc::new(repeat(&ids_bodies, cfg.http_rounds));
    let rep_record_bodies = Arc::new(repeat(&record_bodies, cfg.http_rounds));
    let batch_name = |what: &str| format!("geowebdns POST /v1/resolve x{}, {what}", cfg.batch);

    // Reference answers (and warm-up of both sides): geowebdns batches,
    // PostGIS set-based joins, one client each, not reported as speed.
    let (_, gw_ref) =
        http_post_phase(&cfg, "ref".into(), 1, batch_units.clone(), record_bodies.clone(), n, false, None).await?;
    let one = Arc::new(split(n, 1));
    let (_, pg_ref) =
        pg_set_phase("ref".into(), &mut conns, 1, TABLE_PLAIN, true, one.clone(), pts.clone(), n, None).await?;
    let (_, pg_pieces_ref) =
        pg_set_phase("ref".into(), &mut conns, 1, TABLE_PIECES, true, one.clone(), pts.clone(), n, None).await?;
    let disagree = diff(&gw_ref, &pg_ref);
    let pieces_vs_plain = diff(&pg_ref, &pg_pieces_ref);
    let hits: usize = gw_ref.iter().flatten().map(|v| v.len()).sum();
    let empty = gw_ref.iter().flatten().filter(|v| v.is_empty()).count();
    println!(
        "reference answers: {n} points, {hits} jurisdiction hits ({:.2} a point), {empty} points with none",
        hits as f64 / n as f64
    );
    println!(
        "DISAGREEMENTS geowebdns vs PostGIS ST_Covers: {} of {n} points (PostGIS pieces vs plain: {})",
        disagree.len(),
        pieces_vs_plain.len()
    );
    let mut examples = Vec::new();
    for &i in disagree.iter().take(5) {
        let p = pts[i];
        println!(
            "  point {i} lat={} lon={}: geowebdns [{}] postgis [{}]",
            p.lat,
            p.lon,
            ids_text(&gw_ref[i]),
            ids_text(&pg_ref[i])
        );
        examples.push(json!({"index": i, "lat": p.lat, "lon": p.lon, "geowebdns": gw_ref[i], "postgis": pg_ref[i]}));
    }

    let mut phases: Vec<Phase> = Vec::new();
    let check = |mut p: Phase, a: &Answers| {
        // Phases that checked their answers as they came have a count already.
        p.mismatches = Some(p.mismatches.unwrap_or(0) + diff(a, &gw_ref).len());
        p
    };
    let reference: Check =
        Some(Arc::new(gw_ref.iter().map(|ids| ids.as_ref().map(|ids| digest(&mut ids.clone()))).collect()));
    for &c in &cfg.clients {
        // Floors of the two clients.
        let (p, _) = timed!(
            http_get_phase(&cfg, "floor: GET /healthz".into(), "floor", c, floor_uris.clone(), parse_none).await?
        );
        phases.push(p);
        let (p, _) = timed!(
            pg_point_phase(
                "floor: prepared SELECT 1".into(),
                "floor",
                &mut conns,
                c,
                "SELECT 1",
                pts.clone(),
                cfg.floor,
            )
            .await?
        );
        phases.push(p);
        // One point per request.
        let (p, a) = timed!(
            http_get_phase(&cfg, "geowebdns GET /v1/resolve".into(), "point", c, uris.clone(), parse_one).await?
        );
        phases.push(check(p, &a));
        let (p, a) = timed!(
            pg_point_phase("postgis prepared ST_Covers".into(), "point", &mut conns, c, POINT_PLAIN, pts.clone(), n)
                .await?
        );
        phases.push(check(p, &a));
        let (p, a) = timed!(
            pg_point_phase(
                "postgis prepared ST_Covers, subdivided".into(),
                "point",
                &mut conns,
                c,
                POINT_PIECES,
                pts.clone(),
                n,
            )
            .await?
        );
        phases.push(check(p, &a));
        // Batches.
        // The fast batch phases run the point set `rounds` times
        // (geowebdns's `http_rounds` times); every answer of every round is
        // checked against the reference as it arrives.
        // Each batch form twice: the JSON answer, read whole, and the
        // streamed one (NDJSON), read as it arrives.
        for (what, bodies) in [("ids", &rep_ids_bodies), ("records", &rep_record_bodies)] {
            for lines in [false, true] {
                let name = batch_name(&format!("{what}{}", if lines { ", streamed" } else { "" }));
                let (p, a) = timed!(
                    http_post_phase(&cfg, name, c, http_units.clone(), bodies.clone(), n, lines, reference.clone())
                        .await?
                );
                phases.push(check(p, &a));
            }
        }
        let shares = Arc::new(repeat(&split(n, c), cfg.rounds));
        let (p, a) = timed!(
            pg_set_phase(
                "postgis points table (GiST), lateral".into(),
                &mut conns,
                c,
                TABLE_PLAIN,
                true,
                shares.clone(),
                pts.clone(),
                n,
                reference.clone(),
            )
            .await?
        );
        phases.push(check(p, &a));
        let (p, a) = timed!(
            pg_set_phase(
                "postgis points table (GiST), lateral, subdiv.".into(),
                &mut conns,
                c,
                TABLE_PIECES,
                true,
                shares.clone(),
                pts.clone(),
                n,
                reference.clone(),
            )
            .await?
        );
        phases.push(check(p, &a));
        let (p, a) = timed!(
            pg_set_phase(
                format!("postgis unnest float8[] x{}", cfg.batch),
                &mut conns,
                c,
                UNNEST_PLAIN,
                false,
                batch_units.clone(),
                pts.clone(),
                n,
                reference.clone(),
            )
            .await?
        );
        phases.push(check(p, &a));
        let (p, a) = timed!(
            pg_set_phase(
                format!("postgis unnest float8[] x{}, sorted", cfg.batch),
                &mut conns,
                c,
                UNNEST_SORTED,
                false,
                batch_units.clone(),
                pts.clone(),
                n,
                reference.clone(),
            )
            .await?
        );
        phases.push(check(p, &a));
        let (p, a) = timed!(
            pg_set_phase(
                format!("postgis unnest float8[] x{}, subdivided", cfg.batch),
                &mut conns,
                c,
                UNNEST_PIECES,
                false,
                rep_units.clone(),
                pts.clone(),
                n,
                reference.clone(),
            )
            .await?
        );
        phases.push(check(p, &a));
    }

    println!();
    println!(
        "{:<46} {:>2} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>8} {:>8} {:>5}",
        "phase", "cl", "points", "reqs", "seconds", "points/s", "p50 ms", "p99 ms", "srv us/p", "cli us/p", "!=gw"
    );
    for p in &phases {
        print_phase(p);
    }
    println!(
        "(cl: clients; floors: a trivial request (server included), points = requests; the fast batch phases run the point set several times (points column); srv us/p: CPU microseconds a point \
         of the serving side (the geowebdns process, or the PostgreSQL backends); cli us/p: the same for this client; \
         !=gw: points whose id set differs from geowebdns's batch answer)"
    );

    println!();
    let mut summary = Vec::new();
    for &c in &cfg.clients {
        let of = |side: &'static str, kind: &'static str| {
            phases.iter().filter(move |p| p.clients == c && p.side == side && p.kind == kind)
        };
        let best = |side: &'static str, kind: &'static str| of(side, kind).max_by(|a, b| a.rate().total_cmp(&b.rate()));
        let (Some(gw_point), Some(pg_point), Some(gw_batch), Some(pg_batch)) = (
            best("geowebdns", "point"),
            best("postgis", "point"),
            best("geowebdns", "batch"),
            best("postgis", "batch"),
        ) else {
            continue;
        };
        let r_point = gw_point.rate() / pg_point.rate();
        let r_batch = gw_batch.rate() / pg_batch.rate();
        println!(
            "{c} client(s), one point a request: geowebdns {:.0} points/s vs PostGIS best {:.0} ({}): x{:.2} (target >= {TARGET_POINT}: {})",
            gw_point.rate(),
            pg_point.rate(),
            pg_point.name,
            r_point,
            verdict(r_point, TARGET_POINT)
        );
        println!(
            "{c} client(s), batches: geowebdns {:.0} points/s ({}) vs PostGIS best set-based {:.0} ({}): x{:.2} (target >= {TARGET_BATCH}: {})",
            gw_batch.rate(),
            gw_batch.name,
            pg_batch.rate(),
            pg_batch.name,
            r_batch,
            verdict(r_batch, TARGET_BATCH)
        );
        // Serving-side CPU a point: the machine-independent reading (the
        // throughput ratios move with whatever else runs on the cores).
        let cheapest = |side: &'static str, kind: &'static str| {
            of(side, kind).filter(|p| p.server_us().is_finite()).min_by(|a, b| a.server_us().total_cmp(&b.server_us()))
        };
        let cpu = |kind: &'static str| {
            cheapest("geowebdns", kind)
                .zip(cheapest("postgis", kind))
                .map(|(g, p)| (g.server_us(), p.server_us(), p.name.clone()))
        };
        let cpu_point = cpu("point");
        let cpu_batch = cpu("batch");
        for (label, v, target) in
            [("one point a request", &cpu_point, TARGET_POINT), ("batches", &cpu_batch, TARGET_BATCH)]
        {
            if let Some((g, p, name)) = v {
                let r = p / g;
                println!(
                    "{c} client(s), {label}, serving CPU a point: geowebdns {g:.1} us vs PostGIS cheapest {p:.1} us ({name}): x{r:.2} (target >= {target}: {})",
                    verdict(r, target)
                );
            }
        }
        let floor_http = of("geowebdns", "floor").next().map(|p| p.rate()).unwrap_or(f64::NAN);
        let floor_pg = of("postgis", "floor").next().map(|p| p.rate()).unwrap_or(f64::NAN);
        println!(
            "{c} client(s), client floors: GET /healthz {floor_http:.0} requests/s, prepared SELECT 1 {floor_pg:.0} queries/s"
        );
        summary.push(json!({
            "clients": c,
            "point": {"geowebdns": gw_point.rate(), "postgis_best": pg_point.rate(), "postgis_best_phase": pg_point.name,
                      "ratio": r_point, "target": TARGET_POINT, "met": r_point >= TARGET_POINT},
            "batch": {"geowebdns": gw_batch.rate(), "postgis_best": pg_batch.rate(), "postgis_best_phase": pg_batch.name,
                      "ratio": r_batch, "target": TARGET_BATCH, "met": r_batch >= TARGET_BATCH},
            "floors": {"http_healthz_rps": floor_http, "pg_select1_qps": floor_pg},
            "server_cpu_us_per_point": {
                "point": cpu_point.as_ref().map(|(g, p, name)| json!({"geowebdns": g, "postgis_cheapest": p, "postgis_phase": name, "ratio": p / g})),
                "batch": cpu_batch.as_ref().map(|(g, p, name)| json!({"geowebdns": g, "postgis_cheapest": p, "postgis_phase": name, "ratio": p / g})),
            },
        }));
    }
    let total_mismatch: usize = phases.iter().filter_map(|p| p.mismatches).sum();
    println!(
        "disagreements geowebdns vs PostGIS: {} of {n} points; mismatches over all timed phases vs geowebdns's answers: {total_mismatch}",
        disagree.len()
    );

    if let Some(out) = &cfg.out {
        let distinct: BTreeSet<&String> = gw_ref.iter().flatten().flatten().collect();
        let doc = json!({
            "points": n, "seed": cfg.seed, "batch": cfg.batch, "clients": cfg.clients,
            "postgres": {"jit": jit, "max_parallel_workers_per_gather": par, "postgis": postgis},
            "pinned_backends_cpus": cfg.pin,
            "reference": {"hits": hits, "points_without_match": empty, "distinct_jurisdictions": distinct.len()},
            "disagreements": disagree.len(), "disagreement_examples": examples,
            "postgis_pieces_vs_plain_disagreements": pieces_vs_plain.len(),
            "timed_phase_mismatches": total_mismatch,
            "phases": phases.iter().map(Phase::json).collect::<Vec<_>>(),
            "summary": summary,
            "plans": plans,
        });
        std::fs::write(out, serde_json::to_vec_pretty(&doc)?).with_context(|| format!("writing {out}"))?;
        println!("result: {out}");
    }
    Ok(())
}
