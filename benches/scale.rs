//! In-process lookup, build, write and memory figures at scale (issue 7,
//! point 1). Run with `cargo bench --bench scale`; the whole run takes about
//! ten minutes on a 2-core machine.
//!
//! # Data sets (each loaded, measured and dropped in turn)
//!
//! * `bundled`: every `boundaries/**/*.geojson.gz` of the repository (all
//!   tiers, world and US; 8,492 features).
//! * `tiger`: every US Census place (TIGER/Line 2019, full resolution:
//!   29,798 polygons, 12.6 M vertices) plus the bundled US states and
//!   counties. Read from `/work/shared/data/bench/tiger2019-places-us.geojson.gz`
//!   or `$GEOWEBDNS_TIGER_PLACES`; skipped with one line when absent.
//! * `synth_1e4`, `synth_1e5`, `synth_1e6`: seeded synthetic tessellations
//!   of about 10^4, 10^5 and 10^6 polygons (a fine "place" mesh with
//!   "county" and "state" tiers over it, all sharing edges exactly; see
//!   `benches/common/tessellation.rs`). `GEOWEBDNS_BENCH_MAX=100000` skips
//!   the sizes above 100,000.
//!
//! # What is measured per data set
//!
//! 1. **Preparation** (what `Entry::new` does for every jurisdiction),
//!    timed once in two steps: `spatial::prepare` (the edge bands) and
//!    `Entry::with_prepared` around it (record + rendered JSON).
//! 2. **Index build**: `Snapshot::build` from the prepared entries, a few
//!    manual repetitions (median printed; criterion's 10-sample minimum is
//!    too slow for multi-second builds). `SpatialIndex::build` from the same
//!    prepared geometry is timed once beside it.
//! 3. **Correctness gate**: 2,000 seeded points (uniform, exact vertices,
//!    exact on-edge points, points 1e-9 off vertices) through
//!    `Snapshot::resolve_into`, `Snapshot::resolve_many`, `SpatialIndex::query` and
//!    `SpatialIndex::query_rtree_only`, each compared with a brute-force scan
//!    of every polygon (`covers_brute_force`); any disagreement panics.
//! 4. **Lookups** (criterion group `<set>_lookup`): `single` (one point per
//!    iteration through `Snapshot::resolve_into`, cycling over 10,000 points
//!    uniform in the bounding boxes of random features), `batch_10k` (the
//!    10,000 points per iteration, one `resolve_into` each),
//!    `resolve_many_10k` (the 10,000 points in one `Snapshot::resolve_many`
//!    call, the batch endpoint's path), and the R-tree-only search cost beside
//!    them (`rtree_only_single`, `rtree_only_batch_10k`:
//!    `SpatialIndex::query_rtree_only`, no grid and no sort), and
//!    `grid_walk_single`: `SpatialIndex::probe`, the grid walk of one point
//!    alone (nodes and items, no key read and no edge test).
//! 5. **Writes** (group `<set>_write`): the time until one write is visible,
//!    `snapshot.with_changes(version + 1, [(id, entry)])` followed by
//!    `IndexHandle::publish` (including dropping the previous snapshot when
//!    it is the last reference, as in the service), for (a)
//!    `register_endpoint` (same boundary, new endpoint list:
//!    `Entry::with_prepared`), (b) `replace_boundary` (`Entry::new` with a
//!    changed polygon but the same record, so the same area and rank),
//!    (c) `replace_boundary_new_area` (the changed polygon with its smaller
//!    area: the entry moves to another rank, checked), (d) `insert` (a new
//!    jurisdiction) and (e) `delete` (that one again; insert and delete each
//!    undo the other untimed first). Entries are made before the timer
//!    starts; the preparation time of the changed boundary is printed apart.
//!    Successive writes alternate between two different entries so that
//!    nothing can be skipped as unchanged.
//!    When one write takes more than 250 ms, criterion is skipped and the
//!    median of 3 manual writes (the first write of each kind, which also
//!    checks that the write is visible, among them) is printed instead.
//! 6. **Resident memory of the index per vertex**, measured in a fresh child
//!    process (skipped with `GEOWEBDNS_BENCH_NO_MEMORY=1`; this executable
//!    again, with `GEOWEBDNS_BENCH_MEMORY_CHILD` set)
//!    so that memory freed by earlier data sets cannot be reused and hide
//!    part of the cost: the prepared geometry, which holds the only copy of
//!    the boundary coordinates (the entries keep no `MultiPolygon`; it is
//!    the larger of the RSS delta (`/proc/self/statm`) across
//!    `spatial::prepare` of every boundary and the bytes it owns by
//!    construction, `PreparedPolygon::heap_bytes` plus headers) + the RSS
//!    delta across `Snapshot::build`, divided by the vertex count. Records and rendered
//!    JSON (the RSS delta across `Entry::with_prepared`) are printed apart,
//!    not counted in it. RSS deltas include transient build memory that the
//!    allocator keeps, and miss memory reused from the loading garbage.
//!
//! At the end a summary table lists every figure with its issue-7 target,
//! and this machine's cost of one dependent load (a pointer chase through
//! randomly ordered cache lines of a 1 MB, 16 MB and 512 MB buffer,
//! [`dependent_load_ns`]): a lookup that misses the cache is a chain of such
//! loads, so dividing a lookup by it gives a figure that compares across
//! machines (they differed by up to 2.5x between sessions).
//!
//! Filtering: criterion's usual name filter works (`cargo bench --bench scale
//! -- synth_1e5_lookup`); a filter that starts with a data-set name
//! (`bundled`, `tiger`, `synth`, `synth_1e5`...) also skips the loading and
//! set-up of the other data sets. Run without `--bench` (as `cargo test
//! --benches` does), only `bundled` and `synth_1e4` are run, once each.

#[path = "common/brute.rs"]
mod brute;
#[path = "common/records.rs"]
mod records;
#[path = "common/tessellation.rs"]
mod tessellation;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use flate2::read::GzDecoder;
use geo::{Coord, MultiPolygon, Polygon};
use geowebdns::index::spatial::{prepare, SpatialIndex};
use geowebdns::index::{Entry, IndexHandle, Snapshot};
use geowebdns::model::{Endpoint, Jurisdiction, Tier};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DEFAULT_TIGER: &str = "/work/shared/data/bench/tiger2019-places-us.geojson.gz";
/// Points checked against brute force per data set.
const CHECK_POINTS: usize = 2_000;
/// Points of the lookup benchmarks.
const LOOKUP_POINTS: usize = 10_000;
/// A write slower than this is timed by hand rather than with criterion.
const SLOW_WRITE: Duration = Duration::from_millis(250);

/// One jurisdiction of a data set.
struct Feature {
    record: Jurisdiction,
    boundary: Arc<MultiPolygon<f64>>,
}

fn record(id: String, name: String, tier: Tier, area_km2: f64, source: &str) -> Jurisdiction {
    records::record(id, name, tier, area_km2, source, Some("Public domain"))
}

fn endpoint(jurisdiction_id: &str, n: usize) -> Endpoint {
    records::endpoint(
        format!("bench:{jurisdiction_id}:{n}"),
        jurisdiction_id,
        format!("https://open311.example.org/{n}/v2/"),
        &["application/json", "text/xml"],
    )
}

// ---------------------------------------------------------------- loading

/// Streams the features of a gzipped GeoJSON FeatureCollection.
fn read_features(path: &Path, mut each: impl FnMut(&serde_json::Map<String, serde_json::Value>, MultiPolygon<f64>)) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = BufReader::with_capacity(1 << 20, GzDecoder::new(BufReader::new(file)));
    let empty = serde_json::Map::new();
    for feature in geojson::FeatureReader::from_reader(reader).features() {
        let feature = feature.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let geometry =
            feature.geometry.as_ref().unwrap_or_else(|| panic!("{}: a feature without geometry", path.display()));
        let mp = geowebdns::geometry::from_geojson(geometry).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        each(feature.properties.as_ref().unwrap_or(&empty), mp);
    }
}

fn prop<'a>(props: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> Option<&'a str> {
    props.get(key).and_then(|v| v.as_str())
}

/// Reads bundled boundary files (properties `id`, `name`, `level`).
fn load_bundled_files(paths: &[PathBuf]) -> Vec<Feature> {
    let mut out = Vec::new();
    for path in paths {
        read_features(path, |props, mp| {
            let id = prop(props, "id").unwrap_or_else(|| panic!("{}: a feature without id", path.display()));
            let tier: Tier = prop(props, "level")
                .unwrap_or("other")
                .parse()
                .unwrap_or_else(|e| panic!("{}: {id}: {e}", path.display()));
            let area = geowebdns::geometry::area_km2(&mp);
            out.push(Feature {
                record: record(id.to_owned(), prop(props, "name").unwrap_or(id).to_owned(), tier, area, "bundled"),
                boundary: Arc::new(mp),
            });
        });
    }
    out
}

fn bundled_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("boundaries")
}

/// Every `boundaries/**/*.geojson.gz`, sorted.
fn bundled_paths() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.to_string_lossy().ends_with(".geojson.gz") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&bundled_dir(), &mut out);
    out.sort();
    out
}

/// TIGER places (`GEOID`, `NAME`, `ALAND` + `AWATER` in m²).
fn load_tiger(path: &Path) -> Vec<Feature> {
    let mut out = Vec::new();
    read_features(path, |props, mp| {
        let geoid = prop(props, "GEOID").unwrap_or_else(|| panic!("{}: a feature without GEOID", path.display()));
        let m2 = ["ALAND", "AWATER"].iter().filter_map(|k| props.get(*k).and_then(|v| v.as_f64())).sum::<f64>();
        let mut rec = record(
            format!("tiger-place:{geoid}"),
            prop(props, "NAME").unwrap_or(geoid).to_owned(),
            Tier::Place,
            m2 / 1.0e6,
            "U.S. Census Bureau TIGER/Line 2019 PLACE",
        );
        rec.external_ids.insert("geoid".to_owned(), geoid.to_owned());
        out.push(Feature { record: rec, boundary: Arc::new(mp) });
    });
    out
}

fn synthetic(target: usize) -> Vec<Feature> {
    let t = tessellation::generate(target, 2026 + target as u64);
    t.polygons
        .into_iter()
        .map(|p| {
            let tier = match p.level {
                tessellation::Level::State => Tier::State,
                tessellation::Level::County => Tier::County,
                tessellation::Level::Place => Tier::Place,
            };
            Feature {
                record: record(p.id, p.name, tier, p.area_km2, "synthetic tessellation"),
                boundary: Arc::new(MultiPolygon(vec![p.polygon])),
            }
        })
        .collect()
}

// ---------------------------------------------------------------- helpers

/// Resident set size in bytes (Linux; `None` elsewhere).
fn rss_bytes() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn vertex_count(mp: &MultiPolygon<f64>) -> usize {
    mp.0.iter().map(|p| p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>()).sum()
}

/// `n` points uniform in the bounding boxes of random features (as `benches/resolve.rs`).
fn lookup_points(features: &[Feature], n: usize) -> Vec<Coord<f64>> {
    use geo::BoundingRect;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut pts = Vec::with_capacity(n);
    while pts.len() < n {
        let f = &features[rng.gen_range(0..features.len())];
        let Some(bb) = f.boundary.bounding_rect() else { continue };
        if bb.width() <= 0.0 || bb.height() <= 0.0 {
            continue;
        }
        pts.push(Coord { x: rng.gen_range(bb.min().x..bb.max().x), y: rng.gen_range(bb.min().y..bb.max().y) });
    }
    pts
}

/// Each part scaled by 0.9 towards its bounding-box centre (a changed boundary).
fn shrink(mp: &MultiPolygon<f64>) -> MultiPolygon<f64> {
    use geo::{BoundingRect, MapCoords};
    MultiPolygon(
        mp.0.iter()
            .map(|p| {
                let c = p.bounding_rect().map_or(Coord { x: 0.0, y: 0.0 }, |r| r.center());
                p.map_coords(|v| Coord { x: c.x + (v.x - c.x) * 0.9, y: c.y + (v.y - c.y) * 0.9 })
            })
            .collect(),
    )
}

/// Runs one criterion benchmark through `iter_custom` and returns the median
/// of its samples in nanoseconds per iteration (`None` when criterion did not
/// run it, e.g. filtered out).
fn bench_median(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    samples: usize,
    mut routine: impl FnMut(u64) -> Duration,
) -> Option<f64> {
    let recorded = RefCell::new(Vec::new());
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let d = routine(iters);
            recorded.borrow_mut().push(d.as_nanos() as f64 / iters.max(1) as f64);
            d
        })
    });
    let r = recorded.into_inner();
    // Criterion's warm-up calls come first; the last `samples` calls are the measurement.
    (r.len() >= samples).then(|| median(r[r.len() - samples..].to_vec()))
}

// ---------------------------------------------------------------- summary

struct Row {
    set: String,
    metric: &'static str,
    value: Option<f64>,
    unit: &'static str,
    /// Upper bound (same unit), if issue 7 sets one.
    target: Option<f64>,
}

/// Summary labels of the dependent-load figures (1, 16 and 512 MB).
const DEPENDENT_LOAD_METRICS: [&str; 3] =
    ["dependent load, 1 MB buffer", "dependent load, 16 MB buffer", "dependent load, 512 MB buffer"];

/// The mean time of one load that depends on the one before, over a buffer
/// of `mb` MiB (through this process's allocator, so in huge pages where the
/// index is): one pointer per 64-byte line, the lines chained in one random
/// cycle (Sattolo's shuffle), 20 M loads after one warm-up lap.
fn dependent_load_ns(mb: usize) -> f64 {
    const LINE: usize = 8; // u64s a cache line
    let lines = (mb << 20) / 64;
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for i in (1..lines).rev() {
        order.swap(i, rng.gen_range(0..i));
    }
    let mut next = vec![0u64; lines * LINE];
    for i in 0..lines {
        next[order[i] as usize * LINE] = (order[(i + 1) % lines] as usize * LINE) as u64;
    }
    drop(order);
    let mut at = 0usize;
    for _ in 0..lines {
        at = next[at] as usize;
    }
    const LOADS: usize = 20_000_000;
    let started = Instant::now();
    for _ in 0..LOADS {
        at = next[at] as usize;
    }
    black_box(at);
    started.elapsed().as_nanos() as f64 / LOADS as f64
}

#[derive(Default)]
struct Summary {
    rows: Vec<Row>,
}

impl Summary {
    fn add(&mut self, set: &str, metric: &'static str, value: Option<f64>, unit: &'static str, target: Option<f64>) {
        self.rows.push(Row { set: set.to_owned(), metric, value, unit, target });
    }

    fn print(&self) {
        println!();
        println!("== summary (issue 7 targets; one run on a shared machine: compare ratios) ==");
        println!("{:<10} {:<40} {:>14} {:>12}  status", "set", "figure", "value", "target");
        for r in &self.rows {
            let value = match r.value {
                Some(v) if v.is_finite() => format!("{} {}", fmt_num(v), r.unit),
                _ => "not run".to_owned(),
            };
            let (target, status) = match (r.target, r.value) {
                (None, _) => (String::new(), ""),
                (Some(t), Some(v)) if v.is_finite() => {
                    (format!("<= {} {}", fmt_num(t), r.unit), if v <= t { "met" } else { "MISSED" })
                }
                (Some(t), _) => (format!("<= {} {}", fmt_num(t), r.unit), "-"),
            };
            println!("{:<10} {:<40} {:>14} {:>12}  {status}", r.set, r.metric, value, target);
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Issue-7 targets of one data set.
#[derive(Default, Clone, Copy)]
struct Targets {
    lookup_ns: Option<f64>,
    write_ms: Option<f64>,
    build_s: Option<f64>,
}

// ---------------------------------------------------------------- options

struct Options {
    filter: Option<String>,
    max_synth: usize,
    quick: bool,
}

impl Options {
    fn parse() -> Options {
        // Criterion options that take a value (so it is not the filter).
        const WITH_VALUE: [&str; 17] = [
            "-c",
            "--color",
            "-s",
            "--save-baseline",
            "-b",
            "--baseline",
            "--baseline-lenient",
            "--load-baseline",
            "--sample-size",
            "--warm-up-time",
            "--measurement-time",
            "--nresamples",
            "--noise-threshold",
            "--confidence-level",
            "--significance-level",
            "--profile-time",
            "--plotting-backend",
        ];
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut filter = None;
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if a.starts_with('-') {
                if (WITH_VALUE.contains(&a.as_str()) || a == "--output-format" || a == "--format") && !a.contains('=') {
                    i += 1;
                }
            } else if filter.is_none() {
                filter = Some(a.clone());
            }
            i += 1;
        }
        let quick = !args.iter().any(|a| a == "--bench");
        let max_synth = std::env::var("GEOWEBDNS_BENCH_MAX")
            .ok()
            .map(|v| v.replace(['_', ','], "").parse().expect("GEOWEBDNS_BENCH_MAX must be a number"))
            .unwrap_or(usize::MAX);
        Options { filter, max_synth: if quick { max_synth.min(10_000) } else { max_synth }, quick }
    }

    /// Whether data set `set` can match the filter (a filter that does not
    /// start with a data-set name runs every data set).
    fn wants(&self, set: &str) -> bool {
        let Some(f) = &self.filter else { return true };
        let lead: String = f.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let names_a_set = !lead.is_empty()
            && ["bundled", "tiger", "synth"].iter().any(|k| lead.starts_with(k) || k.starts_with(lead.as_str()));
        !names_a_set || lead.starts_with(set) || set.starts_with(lead.as_str())
    }
}

// ---------------------------------------------------------------- one data set

fn run_set(
    c: &mut Criterion,
    summary: &mut Summary,
    set: &str,
    features: Vec<Feature>,
    targets: Targets,
    memory: Option<Memory>,
    quick: bool,
) {
    let vertices: usize = features.iter().map(|f| vertex_count(&f.boundary)).sum();
    let parts: usize = features.iter().map(|f| f.boundary.0.len()).sum();
    let max_v = features.iter().map(|f| vertex_count(&f.boundary)).max().unwrap_or(0);
    println!();
    println!(
        "== {set}: {} jurisdictions, {parts} polygon parts, {vertices} vertices (largest boundary {max_v})",
        features.len()
    );
    let large = features.len() >= 50_000 || vertices >= 5_000_000;
    let build_reps = if quick {
        1
    } else if large {
        3
    } else {
        5
    };

    // 1. Preparation: the geometry (spatial::prepare), then the entries
    // around it (record + rendered JSON); together that is Entry::new.
    let started = Instant::now();
    let prepared: Vec<_> = features.iter().map(|f| prepare(&f.boundary)).collect();
    let prepare_time = started.elapsed();
    let started = Instant::now();
    let entries: Vec<Arc<Entry>> = features
        .iter()
        .zip(prepared)
        .map(|(f, p)| Arc::new(Entry::with_prepared(f.record.clone(), p, Vec::new())))
        .collect();
    let entry_time = started.elapsed();
    let json_bytes: usize = entries.iter().map(|e| e.json.get().len()).sum();
    let preparation = prepare_time + entry_time;
    println!(
        "preparation (= Entry::new x {}): {:.0} ms = spatial::prepare {:.0} ms + Entry::with_prepared (record, \
         {} bytes of JSON) {:.0} ms (1 run)",
        entries.len(),
        ms(preparation),
        ms(prepare_time),
        json_bytes,
        ms(entry_time)
    );

    // 2. Index build.
    let started = Instant::now();
    let snapshot = Snapshot::build(1, entries.clone());
    let mut builds = vec![ms(started.elapsed())];
    for _ in 1..build_reps {
        let started = Instant::now();
        let s = Snapshot::build(1, entries.clone());
        builds.push(ms(started.elapsed()));
        drop(s);
    }
    let build = median(builds.clone());
    let started = Instant::now();
    let spatial =
        SpatialIndex::build(entries.iter().enumerate().map(|(i, e)| (i as u32, e.prepared.clone())).collect());
    let spatial_build = started.elapsed();
    println!(
        "Snapshot::build: median {build:.0} ms of {build_reps} ({}); SpatialIndex::build from the same prepared \
         geometry: {:.0} ms (1 run)",
        builds.iter().map(|b| format!("{b:.0}")).collect::<Vec<_>>().join(", "),
        ms(spatial_build)
    );
    {
        // Where the rest of Snapshot::build goes, replicated with public
        // fields (the answer-order sort and the id map, as src/index/mod.rs
        // does them today): diagnostics for the lead, not a target.
        let mut order = entries.clone();
        let started = Instant::now();
        order.sort_by(|a, b| {
            (a.record.tier.rank(), b.record.area_km2, &a.record.id)
                .partial_cmp(&(b.record.tier.rank(), a.record.area_km2, &b.record.id))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let sort = started.elapsed();
        let started = Instant::now();
        let ids: HashMap<String, u32> =
            order.iter().enumerate().map(|(slot, e)| (e.record.id.clone(), slot as u32)).collect();
        let id_map = started.elapsed();
        black_box(ids.len());
        drop(ids);
        // Snapshot::build feeds the spatial index in answer order (by tier and
        // area, spatially random), the data sets come in file order.
        let started = Instant::now();
        let in_order =
            SpatialIndex::build(order.iter().enumerate().map(|(i, e)| (i as u32, e.prepared.clone())).collect());
        let spatial_ordered = started.elapsed();
        drop(in_order);
        println!(
            "  Snapshot::build parts (replicated): sort into answer order {:.0} ms, id map {:.0} ms, \
             SpatialIndex::build {:.0} ms with entries in answer order ({:.0} ms in data-set order) (1 run each)",
            ms(sort),
            ms(id_map),
            ms(spatial_ordered),
            ms(spatial_build)
        );
    }
    summary.add(set, "preparation (Entry::new, all)", Some(ms(preparation)), "ms", None);
    summary.add(set, "Snapshot::build (median)", Some(build), "ms", None);
    summary.add(
        set,
        "index build = preparation + Snapshot::build",
        Some((ms(preparation) + build) / 1e3),
        "s",
        targets.build_s,
    );

    // Memory (measured in a fresh process, see `memory_in_child`).
    let per_vertex = |bytes: f64| bytes / vertices.max(1) as f64;
    if let Some(m) = memory.filter(|m| m.vertices == vertices) {
        // The prepared geometry holds the only copy of the coordinates (the
        // entries keep no `MultiPolygon`), so it counts them; its figure is
        // the larger of the RSS delta and the bytes it owns by construction
        // (an RSS delta can miss memory reused from the loading garbage).
        let geometry = m.geometry.max(m.geometry_owned);
        let total = geometry + m.snapshot;
        println!(
            "resident memory per vertex (fresh process): prepared geometry {:.1} B (coordinates stored once + u16 or u32 \
             edge bands; RSS delta across spatial::prepare {:.1} B, owned by construction {:.1} B: the larger is \
             counted) + Snapshot::build {:.1} B (RSS delta: R-tree, grid, part table, id map, entry order) = index \
             {:.1} B/vertex ({:.0} MiB); not counted in it: records and rendered JSON {:.1} B/vertex (RSS delta \
             across Entry::with_prepared)",
            per_vertex(geometry),
            per_vertex(m.geometry),
            per_vertex(m.geometry_owned),
            per_vertex(m.snapshot),
            per_vertex(total),
            total / (1u64 << 20) as f64,
            per_vertex(m.records)
        );
        summary.add(set, "index memory incl. coordinates", Some(per_vertex(total)), "B/vertex", Some(32.0));
        summary.add(set, "  prepared geometry incl. coordinates", Some(per_vertex(geometry)), "B/vertex", None);
        summary.add(set, "  Snapshot::build (RSS delta)", Some(per_vertex(m.snapshot)), "B/vertex", None);
        summary.add(set, "records + JSON (not in the figure above)", Some(per_vertex(m.records)), "B/vertex", None);
    } else {
        println!("resident memory: not measured (/proc/self/statm unreadable or the child process failed)");
        summary.add(set, "index memory incl. coordinates", None, "B/vertex", Some(32.0));
    }

    // 3. Correctness gate.
    let index_of: HashMap<&str, u32> =
        features.iter().enumerate().map(|(i, f)| (f.record.id.as_str(), i as u32)).collect();
    let polygons: Vec<&Polygon<f64>> = features.iter().flat_map(|f| f.boundary.0.iter()).collect();
    let sample = tessellation::sample_points(&polygons, CHECK_POINTS, 7);
    let points: Vec<Coord<f64>> = sample.iter().map(|s| s.0).collect();
    let started = Instant::now();
    let expected = brute::covering(&features.iter().map(|f| &*f.boundary).collect::<Vec<_>>(), &points);
    let brute_time = started.elapsed();
    let mut out = Vec::with_capacity(64);
    let mut max_hits = 0;
    let mut multi = 0;
    let (mut many, mut many_ends) = (Vec::new(), Vec::new());
    snapshot.resolve_many(&points, &mut many, &mut many_ends);
    for (k, ((c, kind), want)) in sample.iter().zip(&expected).enumerate() {
        snapshot.resolve_into(c.x, c.y, &mut out);
        let from = if k == 0 { 0 } else { many_ends[k - 1] };
        assert_eq!(many[from..many_ends[k]], out[..], "{set}: resolve_many and resolve_into disagree at point #{k}");
        let mut got: Vec<u32> = out
            .iter()
            .map(|&slot| {
                let e = snapshot.entry(slot).expect("a slot of resolve_into names an entry");
                index_of[e.record.id.as_str()]
            })
            .collect();
        got.sort_unstable();
        let ids = |v: &[u32]| v.iter().map(|&i| features[i as usize].record.id.as_str()).collect::<Vec<_>>();
        assert!(
            got == *want,
            "{set}: Snapshot::resolve_into disagrees with brute force at point #{k} ({:?}, {:?}): index {:?}, brute force {:?}",
            c,
            kind,
            ids(&got),
            ids(want)
        );
        for (name, rtree_only) in [("SpatialIndex::query", false), ("SpatialIndex::query_rtree_only", true)] {
            out.clear();
            if rtree_only {
                spatial.query_rtree_only(c.x, c.y, &mut out);
            } else {
                spatial.query(c.x, c.y, &mut out);
            }
            out.sort_unstable();
            assert!(
                out == *want,
                "{set}: {name} disagrees with brute force at point #{k} ({c:?}, {kind:?}): index {:?}, brute force {:?}",
                ids(&out),
                ids(want)
            );
        }
        max_hits = max_hits.max(want.len());
        multi += usize::from(want.len() >= 2);
    }
    let kinds = |k: tessellation::PointKind| sample.iter().filter(|s| s.1 == k).count();
    println!(
        "correctness: {} points ({} uniform, {} exact vertices, {} on edges, {} near vertices) agree with brute force \
         ({:.1} s) for resolve_into, resolve_many, query and query_rtree_only; {multi} covered by 2+ jurisdictions, at most {max_hits}",
        sample.len(),
        kinds(tessellation::PointKind::Uniform),
        kinds(tessellation::PointKind::Vertex),
        kinds(tessellation::PointKind::OnEdge),
        kinds(tessellation::PointKind::NearVertex),
        brute_time.as_secs_f64()
    );
    drop(expected);

    // 4. Lookups.
    let pts = lookup_points(&features, LOOKUP_POINTS);
    let mut g = c.benchmark_group(format!("{set}_lookup"));
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(1500));
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let single = bench_median(&mut g, "single", 20, |iters| {
        let started = Instant::now();
        for _ in 0..iters {
            let p = pts[i % pts.len()];
            i = i.wrapping_add(1);
            snapshot.resolve_into(black_box(p.x), black_box(p.y), &mut out);
            black_box(out.len());
        }
        started.elapsed()
    });
    let rtree_single = bench_median(&mut g, "rtree_only_single", 20, |iters| {
        let started = Instant::now();
        for _ in 0..iters {
            let p = pts[i % pts.len()];
            i = i.wrapping_add(1);
            out.clear();
            spatial.query_rtree_only(black_box(p.x), black_box(p.y), &mut out);
            black_box(out.len());
        }
        started.elapsed()
    });
    // The grid walk alone (nodes and their items, no key, no edge test):
    // what a single lookup pays before any polygon is read. Each point's
    // index depends on the previous walk's result (a zero the compiler
    // cannot see), so that walks follow one another as lookups do rather
    // than overlap in the core.
    let walk_single = bench_median(&mut g, "grid_walk_single", 20, |iters| {
        let started = Instant::now();
        let mut after = 0usize;
        for _ in 0..iters {
            let p = pts[(i + after) % pts.len()];
            i = i.wrapping_add(1);
            after = spatial.probe(p.x, p.y).map_or(0, |probe| probe.depth >> 40);
        }
        started.elapsed()
    });
    g.sample_size(10).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(pts.len() as u64));
    let batch = bench_median(&mut g, "batch_10k", 10, |iters| {
        let started = Instant::now();
        for _ in 0..iters {
            let mut hits = 0usize;
            for p in &pts {
                snapshot.resolve_into(p.x, p.y, &mut out);
                hits += out.len();
            }
            black_box(hits);
        }
        started.elapsed()
    })
    .map(|v| v / pts.len() as f64);
    let (mut many, mut many_ends) = (Vec::with_capacity(pts.len() * 8), Vec::with_capacity(pts.len()));
    let batch_many = bench_median(&mut g, "resolve_many_10k", 10, |iters| {
        let started = Instant::now();
        for _ in 0..iters {
            snapshot.resolve_many(&pts, &mut many, &mut many_ends);
            black_box(many.len());
        }
        started.elapsed()
    })
    .map(|v| v / pts.len() as f64);
    let rtree_batch = bench_median(&mut g, "rtree_only_batch_10k", 10, |iters| {
        let started = Instant::now();
        for _ in 0..iters {
            let mut hits = 0usize;
            for p in &pts {
                out.clear();
                spatial.query_rtree_only(p.x, p.y, &mut out);
                hits += out.len();
            }
            black_box(hits);
        }
        started.elapsed()
    })
    .map(|v| v / pts.len() as f64);
    g.finish();
    let hits: usize = pts
        .iter()
        .map(|p| {
            snapshot.resolve_into(p.x, p.y, &mut out);
            out.len()
        })
        .sum();
    let f = |v: Option<f64>| v.map_or("not run".to_owned(), |v| format!("{v:.0} ns"));
    let probes: Vec<_> = pts.iter().filter_map(|p| spatial.probe(p.x, p.y)).collect();
    if !probes.is_empty() {
        let n = probes.len() as f64;
        let (cols, rows, nodes, items) = spatial.grid_stats();
        println!(
            "grid: {cols} x {rows} top cells, {nodes} nodes, {items} items; per lookup point: {:.2} levels below the \
             top, {:.2} parts taken inside, {:.2} parts edge-tested, {:.1} % of points need no edge test",
            probes.iter().map(|p| p.depth).sum::<usize>() as f64 / n,
            probes.iter().map(|p| p.inside).sum::<usize>() as f64 / n,
            probes.iter().map(|p| p.tested).sum::<usize>() as f64 / n,
            100.0 * probes.iter().filter(|p| p.tested == 0).count() as f64 / n
        );
    }
    println!(
        "lookup medians per point: resolve_into single {} (grid walk alone {}), batch_10k {}; resolve_many 10k {}; \
         R-tree only single {}, batch_10k {} ({:.2} answers per lookup point)",
        f(single),
        f(walk_single),
        f(batch),
        f(batch_many),
        f(rtree_single),
        f(rtree_batch),
        hits as f64 / pts.len() as f64
    );
    summary.add(set, "lookup single (resolve_into)", single, "ns/pt", targets.lookup_ns);
    summary.add(set, "lookup batch 10k (resolve_into)", batch, "ns/pt", targets.lookup_ns);
    summary.add(set, "lookup batch 10k (resolve_many)", batch_many, "ns/pt", targets.lookup_ns);
    summary.add(set, "grid walk only single", walk_single, "ns/pt", None);
    summary.add(set, "R-tree only single", rtree_single, "ns/pt", None);
    summary.add(set, "R-tree only batch 10k", rtree_batch, "ns/pt", None);
    drop(spatial);

    // 5. Writes.
    let handle = IndexHandle::new(Arc::new(snapshot));
    // The target: the middle jurisdiction of the most local tier.
    let finest = features.iter().map(|f| f.record.tier).max().expect("a data set is not empty");
    let local: Vec<&Feature> = features.iter().filter(|f| f.record.tier == finest).collect();
    let target = local[local.len() / 2];
    let id = target.record.id.clone();
    let old = Arc::clone(handle.current().get(&id).expect("the target is in the snapshot"));
    let mut rec = old.record.clone();
    rec.version += 1;
    let register = [
        Arc::new(Entry::with_prepared(rec.clone(), old.prepared.clone(), vec![endpoint(&id, 1)])),
        Arc::new(Entry::with_prepared(rec.clone(), old.prepared.clone(), vec![endpoint(&id, 1), endpoint(&id, 2)])),
    ];
    let shrunk = shrink(&target.boundary);
    let started = Instant::now();
    let changed = Arc::new(Entry::new(rec.clone(), &shrunk, Vec::new()));
    let prepare_one = started.elapsed();
    // Same record (so the same area and rank), changed polygon.
    let replace = [changed, Arc::new(Entry::new(rec.clone(), &target.boundary, Vec::new()))];
    // The shrunk polygon with its true area (0.81 of the old one): the
    // entry moves to another rank and back.
    let mut smaller = rec.clone();
    smaller.area_km2 *= 0.81;
    let new_area = [
        Arc::new(Entry::new(smaller.clone(), &shrunk, Vec::new())),
        Arc::new(Entry::new(rec.clone(), &target.boundary, Vec::new())),
    ];
    // A new jurisdiction (inserted, then deleted again).
    let new_id = format!("{id}:bench-new");
    let mut new_rec = smaller;
    new_rec.id = new_id.clone();
    new_rec.name = format!("{} (new)", new_rec.name);
    let inserted = Arc::new(Entry::new(new_rec, &shrunk, Vec::new()));
    println!(
        "writes target `{id}` ({} vertices; preparing its changed boundary with Entry::new took {:.2} ms, not counted below)",
        old.vertices,
        ms(prepare_one)
    );
    let rank_of = |id: &str| handle.current().entries().position(|e| e.record.id == id);
    let old_rank = rank_of(&id);
    let version = std::cell::Cell::new(1i64);
    let publish_times = RefCell::new(Vec::new());
    // One write: (with_changes + publish, publish alone).
    let write = |id: &str, entry: Option<&Arc<Entry>>| -> Duration {
        let started = Instant::now();
        let current = handle.current();
        let v = current.version() + 1;
        let next = current.with_changes(v, vec![(id.to_owned(), entry.map(Arc::clone))]);
        drop(current);
        let publish_started = Instant::now();
        let swapped = handle.publish(next);
        let end = Instant::now();
        assert!(swapped, "publish of version {v} refused");
        version.set(v);
        publish_times.borrow_mut().push(end - publish_started);
        end - started
    };
    // The kinds of write timed: (criterion id, summary figure).
    const KINDS: [(&str, &str); 5] = [
        ("register_endpoint", "write visible: register endpoint"),
        ("replace_boundary", "write visible: replace boundary, same area"),
        ("replace_boundary_new_area", "write visible: replace boundary, new area"),
        ("insert", "write visible: insert"),
        ("delete", "write visible: delete"),
    ];
    // Whether `new_id` is in the current snapshot.
    let exists = std::cell::Cell::new(false);
    // Write `n` of a kind (alternating between two entries, so that nothing
    // can be skipped as unchanged; insert and delete first undo the last
    // one, untimed): the time until it is visible.
    let timed_write = |kind: &str, n: usize| -> Duration {
        let pair = match kind {
            "register_endpoint" => &register,
            "replace_boundary" => &replace,
            "replace_boundary_new_area" => &new_area,
            _ => {
                let insert = kind == "insert";
                if exists.get() == insert {
                    write(&new_id, (!insert).then_some(&inserted));
                }
                exists.set(insert);
                return write(&new_id, insert.then_some(&inserted));
            }
        };
        write(&id, Some(&pair[n % 2]))
    };
    // Probe one write of each kind, and check it is visible.
    let mut probes = Vec::new();
    for (kind, _) in KINDS {
        probes.push(timed_write(kind, 0));
        let cur = handle.current();
        let (written, count) = match kind {
            "register_endpoint" => (&id, Some(&register[0])),
            "replace_boundary" => (&id, Some(&replace[0])),
            "replace_boundary_new_area" => (&id, Some(&new_area[0])),
            "insert" => (&new_id, Some(&inserted)),
            _ => (&new_id, None),
        };
        match count {
            Some(e) => {
                let seen = cur.get(written).expect("the written jurisdiction is in the new snapshot");
                assert!(Arc::ptr_eq(seen, e), "{set}: {kind}: the write is not visible after publish");
            }
            None => assert!(cur.get(written).is_none(), "{set}: {kind}: the deleted jurisdiction is still there"),
        }
        let expected = features.len() + usize::from(kind == "insert");
        assert_eq!(cur.entries().len(), expected, "{set}: {kind}: wrong jurisdiction count after the write");
        assert_eq!(cur.version(), version.get());
        if kind == "replace_boundary_new_area" {
            let moved = rank_of(&id);
            assert_ne!(moved, old_rank, "{set}: {kind}: the new area did not change the rank");
            println!(
                "replace_boundary_new_area moves `{id}` from rank {old_rank:?} to {moved:?} (and back, alternately)"
            );
        }
    }
    let mut g = c.benchmark_group(format!("{set}_write"));
    let probe = probes.iter().copied().max().unwrap_or_default();
    let manual = probe > SLOW_WRITE || quick;
    for (k, (kind, metric)) in KINDS.into_iter().enumerate() {
        publish_times.borrow_mut().clear();
        let mut n = 0usize;
        let mut one = || {
            n += 1;
            timed_write(kind, n)
        };
        let (value, how) = if manual {
            // The probe write counts as the first of them.
            let reps = if quick { 1 } else { 3 };
            let mut times = vec![ms(probes[k])];
            times.extend((1..reps).map(|_| ms(one())));
            (Some(median(times)), format!("median of {reps} manual writes"))
        } else {
            g.sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time((probe * 12).max(Duration::from_millis(500)));
            let v = bench_median(&mut g, kind, 10, |iters| (0..iters).map(|_| one()).sum()).map(|ns| ns / 1e6);
            (v, "criterion median".to_owned())
        };
        let publish = median(publish_times.borrow().iter().map(|&d| ms(d)).collect());
        if let Some(v) = value {
            println!("write {kind}: {v:.2} ms until visible ({how}); IndexHandle::publish alone {publish:.3} ms");
        }
        summary.add(set, metric, value, "ms", targets.write_ms);
    }
    g.finish();
    if manual && !quick {
        println!("(writes took {:.0} ms > {} ms: timed by hand, criterion skipped)", ms(probe), SLOW_WRITE.as_millis());
    }
    // The last write is visible and consistent: answers are in answer order
    // (tier rank, larger area first, id).
    let cur = handle.current();
    assert_eq!(cur.version(), version.get());
    let mut a = Vec::new();
    for p in pts.iter().take(200) {
        cur.resolve_into(p.x, p.y, &mut a);
        let found: Vec<&Arc<Entry>> = a.iter().map(|&s| cur.entry(s).expect("a slot names an entry")).collect();
        let in_order = found.windows(2).all(|w| {
            let (x, y) = (&w[0].record, &w[1].record);
            (x.tier.rank(), y.area_km2, &x.id) < (y.tier.rank(), x.area_km2, &y.id)
        });
        assert!(in_order, "{set}: an answer is not in answer order");
    }
}

const SETS: [&str; 5] = ["bundled", "tiger", "synth_1e4", "synth_1e5", "synth_1e6"];
/// Set by the parent process: measure the memory of this one data set and exit.
const MEMORY_CHILD: &str = "GEOWEBDNS_BENCH_MEMORY_CHILD";

fn tiger_path() -> PathBuf {
    std::env::var_os("GEOWEBDNS_TIGER_PLACES").map_or_else(|| PathBuf::from(DEFAULT_TIGER), PathBuf::from)
}

fn synth_size(set: &str) -> usize {
    match set {
        "synth_1e4" => 10_000,
        "synth_1e5" => 100_000,
        _ => 1_000_000,
    }
}

fn targets(set: &str) -> Targets {
    match set {
        "bundled" => Targets { lookup_ns: Some(150.0), ..Targets::default() },
        "tiger" => Targets { lookup_ns: Some(400.0), ..Targets::default() },
        "synth_1e5" => Targets { write_ms: Some(10.0), ..Targets::default() },
        "synth_1e6" => Targets { lookup_ns: Some(1000.0), write_ms: Some(100.0), build_s: Some(10.0) },
        _ => Targets::default(),
    }
}

/// Loads (or generates) a data set; `None`, with one printed line, when its file is absent.
fn load_set(set: &str) -> Option<Vec<Feature>> {
    let started = Instant::now();
    let features = match set {
        "bundled" => load_bundled_files(&bundled_paths()),
        "tiger" => {
            let path = tiger_path();
            if !path.is_file() {
                println!("skipping TIGER places: {} not found; set GEOWEBDNS_TIGER_PLACES", path.display());
                return None;
            }
            let mut features = load_tiger(&path);
            let dir = bundled_dir();
            features
                .extend(load_bundled_files(&[dir.join("us/states.geojson.gz"), dir.join("us/counties.geojson.gz")]));
            features
        }
        _ => synthetic(synth_size(set)),
    };
    println!("loaded {set} in {:.1} s", started.elapsed().as_secs_f64());
    Some(features)
}

/// Resident memory of one data set's index, in bytes.
#[derive(Clone, Copy, Debug)]
struct Memory {
    vertices: usize,
    /// RSS delta across `spatial::prepare` of every boundary.
    geometry: f64,
    /// Bytes the prepared geometry owns by construction: the `Arc`'d part
    /// slices (headers) and each part's buffers (coordinates and bands).
    geometry_owned: f64,
    /// RSS delta across `Entry::with_prepared` (records, rendered JSON).
    records: f64,
    /// RSS delta across the first `Snapshot::build`.
    snapshot: f64,
}

/// Measures [`Memory`] in this process (call it in a fresh one).
fn measure_memory(features: &[Feature]) -> Option<Memory> {
    let rss0 = rss_bytes()?;
    let prepared: Vec<_> = features.iter().map(|f| prepare(&f.boundary)).collect();
    let rss1 = rss_bytes()?;
    // Arc<[PreparedPolygon]>: two counters, then the part headers.
    let owned: usize = prepared
        .iter()
        .map(|g| 16 + std::mem::size_of_val(&**g) + g.iter().map(|p| p.heap_bytes()).sum::<usize>())
        .sum();
    let entries: Vec<Arc<Entry>> = features
        .iter()
        .zip(prepared)
        .map(|(f, p)| Arc::new(Entry::with_prepared(f.record.clone(), p, Vec::new())))
        .collect();
    let rss2 = rss_bytes()?;
    let snapshot = Snapshot::build(1, entries);
    let rss3 = rss_bytes()?;
    black_box(&snapshot);
    Some(Memory {
        vertices: features.iter().map(|f| vertex_count(&f.boundary)).sum(),
        geometry: (rss1 - rss0) as f64,
        geometry_owned: owned as f64,
        records: (rss2 - rss1) as f64,
        snapshot: (rss3 - rss2) as f64,
    })
}

/// Runs [`measure_memory`] for `set` in a child process (this executable
/// again), so that memory freed by earlier data sets cannot be reused and
/// hide part of the cost.
fn memory_in_child(set: &str) -> Option<Memory> {
    let exe = std::env::current_exe().ok()?;
    let out =
        std::process::Command::new(exe).env(MEMORY_CHILD, set).stderr(std::process::Stdio::inherit()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix("SCALE-MEMORY "))?;
    let f: Vec<f64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    match f[..] {
        [v, g, o, r, s] => {
            Some(Memory { vertices: v as usize, geometry: g, geometry_owned: o, records: r, snapshot: s })
        }
        _ => None,
    }
}

fn main() {
    if let Ok(set) = std::env::var(MEMORY_CHILD) {
        if let Some(m) = load_set(&set).and_then(|f| measure_memory(&f)) {
            println!("SCALE-MEMORY {} {} {} {} {}", m.vertices, m.geometry, m.geometry_owned, m.records, m.snapshot);
        }
        return;
    }
    let opts = Options::parse();
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Summary::default();
    let run_started = Instant::now();
    if opts.quick {
        println!("(not run with --bench: quick mode, bundled and synth_1e4 only, one sample each)");
    }
    for set in SETS {
        if !opts.wants(set) || (opts.quick && set == "tiger") {
            continue;
        }
        if set.starts_with("synth") && synth_size(set) > opts.max_synth {
            println!("skipping {set}: larger than GEOWEBDNS_BENCH_MAX={}", opts.max_synth);
            continue;
        }
        if set == "tiger" && !tiger_path().is_file() {
            println!("skipping TIGER places: {} not found; set GEOWEBDNS_TIGER_PLACES", tiger_path().display());
            continue;
        }
        // GEOWEBDNS_BENCH_NO_MEMORY=1 skips the memory child (it loads and
        // prepares the whole data set once more).
        let memory = if std::env::var_os("GEOWEBDNS_BENCH_NO_MEMORY").is_some() { None } else { memory_in_child(set) };
        let Some(features) = load_set(set) else { continue };
        run_set(&mut c, &mut summary, set, features, targets(set), memory, opts.quick);
    }
    c.final_summary();
    if !opts.quick {
        for (mb, metric) in [1, 16, 512].into_iter().zip(DEPENDENT_LOAD_METRICS) {
            summary.add("machine", metric, Some(dependent_load_ns(mb)), "ns", None);
        }
    }
    summary.print();
    println!("(whole run: {:.0} s)", run_started.elapsed().as_secs_f64());
}
