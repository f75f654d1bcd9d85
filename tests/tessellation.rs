//! The synthetic tessellation of the scale benchmark
//! (`benches/common/tessellation.rs`), checked through the public `Snapshot`
//! API against a brute-force scan, and one write through
//! `Snapshot::with_changes` checked against a full `Snapshot::build` of the
//! changed set.

#[path = "../benches/common/brute.rs"]
mod brute;
#[path = "../benches/common/records.rs"]
mod records;
#[path = "../benches/common/tessellation.rs"]
mod tessellation;

use std::collections::HashMap;
use std::sync::Arc;

use geo::{Coord, MultiPolygon, Polygon};
use geowebdns::index::{Entry, IndexHandle, Snapshot};
use geowebdns::model::{Endpoint, Jurisdiction, Tier};
use tessellation::{Level, PointKind};

fn tier(level: Level) -> Tier {
    match level {
        Level::State => Tier::State,
        Level::County => Tier::County,
        Level::Place => Tier::Place,
    }
}

fn record(p: &tessellation::SynthPolygon) -> Jurisdiction {
    records::record(p.id.clone(), p.name.clone(), tier(p.level), p.area_km2, "synthetic", None)
}

fn endpoint(jurisdiction_id: &str) -> Endpoint {
    records::endpoint(
        format!("test:{jurisdiction_id}"),
        jurisdiction_id,
        "https://open311.example.org/v2/".to_owned(),
        &["application/json"],
    )
}

fn entries(t: &tessellation::Tessellation) -> Vec<Arc<Entry>> {
    t.polygons
        .iter()
        .map(|p| Arc::new(Entry::new(record(p), &MultiPolygon(vec![p.polygon.clone()]), Vec::new())))
        .collect()
}

/// Ids covering `c` through the snapshot, in answer order.
fn resolve(s: &Snapshot, c: Coord<f64>) -> Vec<String> {
    let mut out = Vec::new();
    s.resolve_into(c.x, c.y, &mut out);
    out.iter().map(|&slot| s.entry(slot).expect("slot").record.id.clone()).collect()
}

/// Brute-force ids covering each point, sorted.
fn brute_ids(entries: &[Arc<Entry>], points: &[Coord<f64>]) -> Vec<Vec<String>> {
    let owned: Vec<MultiPolygon<f64>> = entries.iter().map(|e| e.boundary()).collect();
    let boundaries: Vec<&MultiPolygon<f64>> = owned.iter().collect();
    brute::covering(&boundaries, points)
        .into_iter()
        .map(|keys| {
            let mut ids: Vec<String> = keys.iter().map(|&k| entries[k as usize].record.id.clone()).collect();
            ids.sort();
            ids
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn sample(entries: &[Arc<Entry>], n: usize, seed: u64) -> Vec<(Coord<f64>, PointKind)> {
    let owned: Vec<MultiPolygon<f64>> = entries.iter().map(|e| e.boundary()).collect();
    let polygons: Vec<&Polygon<f64>> = owned.iter().flat_map(|b| b.0.iter()).collect();
    tessellation::sample_points(&polygons, n, seed)
}

#[test]
fn generator_is_a_tessellation_and_snapshot_matches_brute_force() {
    let t = tessellation::generate(2_000, 11);
    let n = t.polygons.len();
    assert!((1_900..=2_100).contains(&n), "{n} polygons for a target of 2,000");
    for p in &t.polygons {
        let ring = &p.polygon.exterior().0;
        assert_eq!(ring.first(), ring.last(), "{}: ring is closed", p.id);
        if p.level == Level::Place {
            assert!((9..=21).contains(&ring.len()), "{}: {} coordinates", p.id, ring.len());
        }
        assert!(p.area_km2 > 0.0, "{}: area", p.id);
    }
    let again = tessellation::generate(2_000, 11);
    assert!(t.polygons.iter().zip(&again.polygons).all(|(a, b)| a.polygon == b.polygon), "seeded");

    let entries = entries(&t);
    let snapshot = Snapshot::build(1, entries.clone());
    let sample = sample(&entries, 4_000, 3);
    let points: Vec<Coord<f64>> = sample.iter().map(|s| s.0).collect();
    let want = brute_ids(&entries, &points);
    let (min, max) = tessellation::EXTENT;
    let level_of: HashMap<&str, Level> = t.polygons.iter().map(|p| (p.id.as_str(), p.level)).collect();
    let mut shared_place_edges = 0;
    for (((c, kind), want), k) in sample.iter().zip(&want).zip(0..) {
        let got = resolve(&snapshot, *c);
        assert_eq!(sorted(got.clone()), *want, "point #{k} {c:?} ({kind:?})");
        // Answer order: tier rank, then larger area first.
        let keys: Vec<(u8, f64)> = got
            .iter()
            .map(|id| {
                let e = snapshot.get(id).expect("entry");
                (e.record.tier.rank(), -e.record.area_km2)
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "answer order at {c:?}: {got:?}");
        let count = |l: Level| want.iter().filter(|id| level_of[id.as_str()] == l).count();
        let inside = c.x > min[0] && c.x < max[0] && c.y > min[1] && c.y < max[1];
        if *kind == PointKind::Uniform {
            // A random point is on no edge: exactly one polygon of each tier inside the box.
            let expect = usize::from(inside);
            for l in [Level::State, Level::County, Level::Place] {
                assert_eq!(count(l), expect, "{l:?} polygons covering uniform point {c:?}: {want:?}");
            }
        } else if inside && matches!(kind, PointKind::Vertex | PointKind::OnEdge) {
            // On the mesh: every tier still covers it, a place edge or vertex is shared.
            for l in [Level::State, Level::County, Level::Place] {
                assert!(count(l) >= 1, "{l:?} polygons covering boundary point {c:?}: {want:?}");
            }
            shared_place_edges += usize::from(count(Level::Place) >= 2);
        }
    }
    assert!(shared_place_edges > 1_000, "only {shared_place_edges} points on shared place edges");
}

#[test]
fn one_write_gives_the_same_answers_as_a_full_build() {
    let t = tessellation::generate(2_000, 12);
    let base = entries(&t);
    let snapshot = Snapshot::build(1, base.clone());
    let handle = IndexHandle::new(Arc::new(snapshot));
    let first = handle.current();

    // (1) Replace a place boundary with a changed polygon (shrunk by 20 %).
    let place = base.iter().filter(|e| e.record.tier == Tier::Place).nth(500).expect("a place").clone();
    let county = base.iter().find(|e| e.record.tier == Tier::County).expect("a county").clone();
    let id = place.record.id.clone();
    let shrunk: Polygon<f64> = {
        use geo::{BoundingRect, MapCoords};
        let boundary = place.boundary();
        let p = &boundary.0[0];
        let c = p.bounding_rect().expect("bbox").center();
        p.map_coords(|v| Coord { x: c.x + (v.x - c.x) * 0.8, y: c.y + (v.y - c.y) * 0.8 })
    };
    let mut rec = place.record.clone();
    rec.version = 2;
    let replaced = Arc::new(Entry::new(rec, &MultiPolygon(vec![shrunk]), Vec::new()));
    let next = handle.current().with_changes(2, vec![(id.clone(), Some(replaced.clone()))]);
    assert!(handle.publish(next));
    let mut changed: Vec<Arc<Entry>> =
        base.iter().map(|e| if e.record.id == id { replaced.clone() } else { e.clone() }).collect();
    compare(&handle.current(), &Snapshot::build(2, changed.clone()), &changed, &[&place, &replaced]);
    assert!(Arc::ptr_eq(handle.current().get(&id).expect("replaced"), &replaced));

    // (2) Register an endpoint on a county: same boundary, new endpoint list.
    let cid = county.record.id.clone();
    let mut rec = county.record.clone();
    rec.version = 2;
    let registered = Arc::new(Entry::with_prepared(rec, county.prepared.clone(), vec![endpoint(&cid)]));
    let next = handle.current().with_changes(3, vec![(cid.clone(), Some(registered.clone()))]);
    assert!(handle.publish(next));
    for e in changed.iter_mut() {
        if e.record.id == cid {
            *e = registered.clone();
        }
    }
    let current = handle.current();
    assert_eq!(current.version(), 3);
    compare(&current, &Snapshot::build(3, changed.clone()), &changed, &[&county]);
    let seen = current.get(&cid).expect("county");
    assert_eq!(seen.endpoints.len(), 1);
    assert!(seen.json.get().contains("https://open311.example.org/v2/"), "{}", seen.json.get());
    // A reader still holding the snapshot from before the writes sees none of them.
    assert_eq!(first.version(), 1);
    assert!(Arc::ptr_eq(first.get(&id).expect("place"), &place));
    assert!(first.get(&cid).expect("county").endpoints.is_empty());
}

/// `incremental` and `full` hold the same entries in the same order and give
/// the same answers (also equal to brute force over `entries`), at points all
/// over the set and around the changed entries.
fn compare(incremental: &Snapshot, full: &Snapshot, entries: &[Arc<Entry>], around: &[&Arc<Entry>]) {
    let ids = |s: &Snapshot| s.entries().map(|e| e.record.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(incremental), ids(full), "entry order");
    for (a, b) in incremental.entries().zip(full.entries()) {
        assert!(Arc::ptr_eq(a, b), "{}: same entry", a.record.id);
    }
    let mut points: Vec<(Coord<f64>, PointKind)> = sample(entries, 2_000, 5);
    let local: Vec<Arc<Entry>> = around.iter().map(|e| Arc::clone(e)).collect();
    points.extend(sample(&local, 1_000, 6));
    let coords: Vec<Coord<f64>> = points.iter().map(|p| p.0).collect();
    let want = brute_ids(entries, &coords);
    for ((c, kind), want) in points.iter().zip(&want) {
        let a = resolve(incremental, *c);
        assert_eq!(a, resolve(full, *c), "with_changes vs full build at {c:?} ({kind:?})");
        assert_eq!(sorted(a), *want, "with_changes vs brute force at {c:?} ({kind:?})");
    }
}
