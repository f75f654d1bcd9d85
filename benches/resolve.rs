//! Resolve hot-path benchmarks over ALL bundled boundary data.
//!
//! * `single/index`: one `SpatialIndex::query` per iteration, cycling over
//!   10,000 pre-generated points (uniform in the bounding boxes of random
//!   features, so most hit several polygons).
//! * `*/index_rtree_only`: the same index without the coarse grid fast
//!   path (R-tree traversal, then the banded point test).
//! * `batch_10k/index`: the same 10,000 points in one iteration.
//! * `batch_10k/rtree_geo_intersects`: baseline, an rstar R-tree over the
//!   same polygon parts and `geo::Intersects` on every candidate (no
//!   preparation), so the speed-up ratio is visible.
//! * `build/rtree_from_prepared`: rebuilding the index from already
//!   prepared geometry (what a write costs).
//!
//! Throughput is reported in points (elements) per second. Sample sizes are
//! small so the whole run stays well under two minutes.

use std::hint::black_box;
use std::io::Read;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::read::GzDecoder;
use geo::{BoundingRect, Intersects, MultiPolygon, Point, Polygon};
use geowebdns::index::spatial::{prepare, PreparedGeometry, SpatialIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

const LAYERS: [&str; 8] = [
    "us/states",
    "us/counties",
    "us/places",
    "us/special-districts-nyc",
    "world/countries",
    "world/admin1",
    "world/cities",
    "world/london-boroughs",
];

fn load_all() -> Vec<MultiPolygon<f64>> {
    let mut out = Vec::new();
    for layer in LAYERS {
        let path = format!("{}/boundaries/{layer}.geojson.gz", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut text = String::new();
        GzDecoder::new(file).read_to_string(&mut text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let gj: geojson::GeoJson = text.parse().unwrap_or_else(|e| panic!("{path}: {e}"));
        let fc = geojson::FeatureCollection::try_from(gj).expect("a FeatureCollection");
        for feature in fc.features {
            let value = &feature.geometry.as_ref().expect("geometry").value;
            match geo::Geometry::<f64>::try_from(value).expect("geometry") {
                geo::Geometry::Polygon(p) => out.push(MultiPolygon(vec![p])),
                geo::Geometry::MultiPolygon(mp) => out.push(mp),
                other => panic!("unexpected geometry {other:?}"),
            }
        }
    }
    out
}

fn points(features: &[MultiPolygon<f64>], n: usize) -> Vec<[f64; 2]> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut pts = Vec::with_capacity(n);
    while pts.len() < n {
        let f = &features[rng.gen_range(0..features.len())];
        let Some(bb) = f.bounding_rect() else {
            continue;
        };
        if bb.width() <= 0.0 || bb.height() <= 0.0 {
            continue;
        }
        pts.push([rng.gen_range(bb.min().x..bb.max().x), rng.gen_range(bb.min().y..bb.max().y)]);
    }
    pts
}

/// Baseline R-tree entry: part box, (key, part number).
type BaselineEntry = GeomWithData<Rectangle<[f64; 2]>, (u32, usize)>;

/// Baseline: R-tree over parts + plain `geo::Intersects` per candidate.
struct Baseline {
    tree: RTree<BaselineEntry>,
    parts: Vec<Polygon<f64>>,
}

impl Baseline {
    fn new(features: &[MultiPolygon<f64>]) -> Self {
        let mut parts = Vec::new();
        let mut rects = Vec::new();
        for (key, mp) in features.iter().enumerate() {
            for p in &mp.0 {
                let Some(bb) = p.bounding_rect() else {
                    continue;
                };
                rects.push(GeomWithData::new(
                    Rectangle::from_corners(bb.min().into(), bb.max().into()),
                    (key as u32, parts.len()),
                ));
                parts.push(p.clone());
            }
        }
        Baseline { tree: RTree::bulk_load(rects), parts }
    }

    fn query(&self, lon: f64, lat: f64, out: &mut Vec<u32>) {
        let start = out.len();
        let pt = Point::new(lon, lat);
        for e in self.tree.locate_all_at_point(&[lon, lat]) {
            let (key, part) = e.data;
            if !out[start..].contains(&key) && self.parts[part].intersects(&pt) {
                out.push(key);
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let features = load_all();
    let prepared: Vec<(u32, PreparedGeometry)> =
        features.iter().enumerate().map(|(i, mp)| (i as u32, prepare(mp))).collect();
    let index = SpatialIndex::build(prepared.clone());
    let baseline = Baseline::new(&features);
    let pts = points(&features, 10_000);

    // Sanity: both variants agree on every benchmark point.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for p in &pts {
        a.clear();
        b.clear();
        index.query(p[0], p[1], &mut a);
        baseline.query(p[0], p[1], &mut b);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "variants disagree at {p:?}");
    }

    let mut g = c.benchmark_group("single");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(64);
    let mut i = 0usize;
    g.bench_function("index", |bch| {
        bch.iter(|| {
            let p = pts[i % pts.len()];
            i = i.wrapping_add(1);
            out.clear();
            index.query(black_box(p[0]), black_box(p[1]), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("index_rtree_only", |bch| {
        bch.iter(|| {
            let p = pts[i % pts.len()];
            i = i.wrapping_add(1);
            out.clear();
            index.query_rtree_only(black_box(p[0]), black_box(p[1]), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("rtree_geo_intersects", |bch| {
        bch.iter(|| {
            let p = pts[i % pts.len()];
            i = i.wrapping_add(1);
            out.clear();
            baseline.query(black_box(p[0]), black_box(p[1]), &mut out);
            black_box(out.len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("batch_10k");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(pts.len() as u64));
    g.bench_function("index", |bch| {
        bch.iter(|| {
            let mut hits = 0usize;
            for p in &pts {
                out.clear();
                index.query(p[0], p[1], &mut out);
                hits += out.len();
            }
            black_box(hits)
        })
    });
    g.bench_function("index_rtree_only", |bch| {
        bch.iter(|| {
            let mut hits = 0usize;
            for p in &pts {
                out.clear();
                index.query_rtree_only(p[0], p[1], &mut out);
                hits += out.len();
            }
            black_box(hits)
        })
    });
    g.bench_function("rtree_geo_intersects", |bch| {
        bch.iter(|| {
            let mut hits = 0usize;
            for p in &pts {
                out.clear();
                baseline.query(p[0], p[1], &mut out);
                hits += out.len();
            }
            black_box(hits)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("build");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.bench_function("rtree_from_prepared", |bch| bch.iter(|| SpatialIndex::build(black_box(prepared.clone())).len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
