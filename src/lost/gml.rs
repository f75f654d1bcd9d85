//! Service boundaries as GML (RFC 5222 section 8.5, RFC 5491 polygons) and
//! the boundary keys of `<serviceBoundaryReference>` / `<getServiceBoundary>`.

use super::xml::{Writer, EPSG_4326};
use geo::{LineString, MultiPolygon, Winding};
use std::fmt::Write as _;

/// Writes one `gml:Polygon` per part of `mp` (exterior counter-clockwise,
/// holes clockwise, positions `lat lon` in a `gml:posList`); the caller has
/// bound the `gml` prefix. Returns how many polygons were written (rings with
/// fewer than 4 positions are skipped).
pub fn write_polygons(w: &mut Writer, mp: &MultiPolygon<f64>) -> usize {
    let mut written = 0;
    for poly in &mp.0 {
        if poly.exterior().0.len() < 4 {
            continue;
        }
        w.open("gml:Polygon", &[("srsName", EPSG_4326)]);
        w.open("gml:exterior", &[]);
        ring(w, poly.exterior(), true);
        w.close();
        for hole in poly.interiors().iter().filter(|h| h.0.len() >= 4) {
            w.open("gml:interior", &[]);
            ring(w, hole, false);
            w.close();
        }
        w.close();
        written += 1;
    }
    written
}

fn ring(w: &mut Writer, ls: &LineString<f64>, ccw: bool) {
    let mut list = String::with_capacity(ls.0.len() * 24);
    let points = if ccw { ls.points_ccw() } else { ls.points_cw() };
    for (i, p) in points.enumerate() {
        if i > 0 {
            list.push(' ');
        }
        // `{}` of an f64 is the shortest round-tripping decimal, never exponent notation.
        let _ = write!(list, "{} {}", p.y(), p.x());
    }
    w.open("gml:LinearRing", &[]);
    w.open("gml:posList", &[]).raw(&list).close();
    w.close();
}

/// 64-bit FNV-1a: deterministic across processes, machines and Rust
/// versions, so every instance hands out and accepts the same keys.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn f64(&mut self, v: f64) {
        self.bytes(&v.to_bits().to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.bytes(&(n as u64).to_le_bytes());
    }
}

/// Hash of a jurisdiction id and its boundary: any change to the geometry
/// gives another hash.
pub fn boundary_hash(id: &str, mp: &MultiPolygon<f64>) -> u64 {
    let mut h = Fnv::new();
    h.len(id.len());
    h.bytes(id.as_bytes());
    h.len(mp.0.len());
    for poly in &mp.0 {
        for ls in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            h.len(ls.0.len());
            for c in &ls.0 {
                h.f64(c.x);
                h.f64(c.y);
            }
        }
    }
    h.0
}

const KEY_PREFIX: &str = "gwd1-";

/// The boundary key of a jurisdiction: `gwd1-<16 hex digits of
/// boundary_hash>-<id>`, with `%` and whitespace in the id percent-encoded
/// so the key is an `xsd:token`.
pub fn boundary_key(id: &str, mp: &MultiPolygon<f64>) -> String {
    let mut key = format!("{KEY_PREFIX}{:016x}-", boundary_hash(id, mp));
    for c in id.chars() {
        if c == '%' || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(key, "%{b:02X}");
            }
        } else {
            key.push(c);
        }
    }
    key
}

/// Splits a key into the jurisdiction id and the boundary hash it was made
/// from; `None` when it is not one of our keys.
pub fn parse_key(key: &str) -> Option<(String, u64)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (hex, enc) = (rest.get(..16)?, rest.get(16..)?);
    let hash = u64::from_str_radix(hex, 16).ok()?;
    let enc = enc.strip_prefix('-')?;
    let mut bytes = Vec::with_capacity(enc.len());
    let raw = enc.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let h = enc.get(i + 1..i + 3)?;
            bytes.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(bytes).ok()?;
    (!id.is_empty()).then_some((id, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn square(x: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: x, y: 0.0), (x: x, y: 1.0), (x: 0.0, y: 1.0)]])
    }

    #[test]
    fn keys_round_trip_and_change_with_the_geometry() {
        for id in ["us-place:1805860", "a b%c", "london-borough:Greenwich", "Zürich\tx"] {
            let k = boundary_key(id, &square(1.0));
            assert!(!k.chars().any(char::is_whitespace), "{k}");
            assert_eq!(parse_key(&k), Some((id.to_owned(), boundary_hash(id, &square(1.0)))), "{k}");
        }
        assert_ne!(boundary_key("x", &square(1.0)), boundary_key("x", &square(1.5)));
        assert_ne!(boundary_key("x", &square(1.0)), boundary_key("y", &square(1.0)));
        for bad in ["", "gwd1-", "gwd1-zzzzzzzzzzzzzzzz-x", "gwd1-0000000000000000x", "gwd1-0000000000000000-%G1", "k"]
        {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn polygons_are_lat_lon_and_counter_clockwise() {
        let cw = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 0.0, y: 1.0), (x: 2.0, y: 1.0), (x: 2.0, y: 0.0)]]);
        let mut w = Writer::new();
        w.open("b", &[("xmlns:gml", super::super::xml::GML_NS)]);
        assert_eq!(write_polygons(&mut w, &cw), 1);
        let doc = w.finish();
        // Counter-clockwise in lon/lat from (0,0): east first, written lat lon.
        assert!(doc.contains("<gml:posList>0 0 0 2 1 2 1 0 0 0</gml:posList>"), "{doc}");
        assert!(roxmltree::Document::parse(&doc).is_ok());
    }
}
