//! Brute-force reference answers for the scale benchmark and the
//! tessellation test: every polygon part of every feature whose bounding box
//! contains the point is tested with
//! [`geowebdns::index::prepared::covers_brute_force`] (every edge of every
//! ring, exact orientation, boundary-inclusive even-odd: the index's own
//! semantics, so the answers must agree exactly, also on invalid input).
//!
//! No index structure is shared with the code under test: the points are
//! sorted by longitude and each part's box selects its candidate points by
//! binary search, so 10^6 polygons x 2,000 points stays cheap.

#![allow(dead_code)]

use geo::{Coord, MultiPolygon};
use geowebdns::index::prepared::covers_brute_force;

/// For each point, the sorted numbers of the features (positions in
/// `features`) covering it.
pub fn covering(features: &[&MultiPolygon<f64>], points: &[Coord<f64>]) -> Vec<Vec<u32>> {
    let mut order: Vec<u32> = (0..points.len() as u32).collect();
    order.sort_by(|&a, &b| points[a as usize].x.total_cmp(&points[b as usize].x));
    let xs: Vec<f64> = order.iter().map(|&i| points[i as usize].x).collect();
    let mut out = vec![Vec::new(); points.len()];
    for (key, mp) in features.iter().enumerate() {
        let key = key as u32;
        for part in &mp.0 {
            let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
            for ring in std::iter::once(part.exterior()).chain(part.interiors()) {
                for c in &ring.0 {
                    lo = [lo[0].min(c.x), lo[1].min(c.y)];
                    hi = [hi[0].max(c.x), hi[1].max(c.y)];
                }
            }
            if !(lo[0] <= hi[0] && lo[1] <= hi[1]) {
                continue;
            }
            let start = xs.partition_point(|&x| x < lo[0]);
            let end = xs.partition_point(|&x| x <= hi[0]);
            for &pi in &order[start..end] {
                let c = points[pi as usize];
                if c.y < lo[1] || c.y > hi[1] {
                    continue;
                }
                let hits = &mut out[pi as usize];
                if hits.last() != Some(&key) && covers_brute_force(part, c) {
                    hits.push(key);
                }
            }
        }
    }
    out
}
