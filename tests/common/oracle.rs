//! The independent even-odd point-in-polygon oracle shared by the index
//! tests (`index_oracle.rs`, `index_props.rs`), included by path so those
//! tests do not build the rest of `tests/common`.

use geo::kernels::{Kernel, RobustKernel};
use geo::{Coord, Orientation, Polygon};

/// Even-odd parity over all rings with boundary inclusion (every edge,
/// rings closed implicitly).
pub fn even_odd_covers(poly: &Polygon<f64>, p: Coord<f64>) -> bool {
    let mut inside = false;
    for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
        let pts = &ring.0;
        let n = pts.len();
        for i in 0..n {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            let o = RobustKernel::orient2d(a, b, p);
            if o == Orientation::Collinear
                && p.x >= a.x.min(b.x)
                && p.x <= a.x.max(b.x)
                && p.y >= a.y.min(b.y)
                && p.y <= a.y.max(b.y)
            {
                return true;
            }
            if (a.y > p.y) != (b.y > p.y) {
                let upward = b.y > a.y;
                if upward == (o == Orientation::CounterClockwise) {
                    inside = !inside;
                }
            }
        }
    }
    inside
}
