//! Reading the body of a batch request (`POST /v1/resolve`) into a
//! validated [`Batch`].
//!
//! Parsing the body with serde was ~22 % of a batch's server CPU (perf under
//! `benches/postgis.sh`: `next_element_seed`, `parse_str`, `parse_number`,
//! `visit_seq`): a derived visitor per point and per member, a 120-byte
//! [`BatchPoint`] per point, then a second pass to check and copy them. So the
//! common shape of a body (members `points`, `tier`, `records`; points of
//! `lat`, `lon` or `long`, and an optional `id` that is a number or a string
//! without escapes) is read by [`quick`], a hand-written reader that checks
//! and stores each point as it reads it. Anything else it does not judge:
//! it gives up, and the body goes through serde and [`validate`] as before,
//! which accept it or name the field at fault. So [`quick`] decides nothing
//! on its own; a test checks on many generated bodies, well-formed and
//! broken, that whatever it accepts, serde reads to the same batch.
//!
//! The reader also keeps each point's location as the answer echoes it,
//! copying a coordinate as the body wrote it where that is exactly what
//! serde_json would write (`echoes_as_written`), since formatting the
//! echoed coordinates was another ~8 % of a batch's CPU.

use super::params::Location;
use super::resolve::{BatchPoint, BatchRequest};
use crate::error::ApiError;
use crate::json_scan::Reader;

/// A batch request, read and checked.
#[derive(Debug, PartialEq)]
pub(crate) struct Batch {
    /// The points, in request order; each coordinate is finite and in range.
    pub locations: Vec<Location>,
    /// Each point's location as the answer echoes it, serde's JSON of its
    /// [`Location`] (`{"lat":40.7128,"lon":-74.006}`), end to end. Most
    /// coordinates are copied from the body as written (see
    /// [`echoes_as_written`]): formatting them was ~8 % of a batch's CPU.
    location_json: Vec<u8>,
    /// Where each point's `location_json` ends.
    location_ends: Vec<usize>,
    /// Each point's `id`, in request order; empty when no point has one.
    pub ids: Vec<Option<serde_json::Value>>,
    /// The `tier` filter as given (checked by the caller).
    pub tier: Option<String>,
    /// Whether the answer carries the records (`"records"`, default true).
    pub records: bool,
}

impl Batch {
    /// The `id` of point `i`, when it has one.
    pub fn id(&self, i: usize) -> Option<&serde_json::Value> {
        self.ids.get(i).and_then(Option::as_ref)
    }

    /// Point `i`'s location as serde writes a [`Location`].
    pub fn location_json(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.location_ends.get(i - 1).copied().unwrap_or(0) };
        let end = self.location_ends.get(i).copied().unwrap_or(start);
        self.location_json.get(start..end).unwrap_or(b"null")
    }

    /// Adds a point; `texts` are its coordinates as written in the body, if known.
    fn push(&mut self, loc: Location, texts: Option<(&str, &str)>) -> Result<(), serde_json::Error> {
        write_location(&mut self.location_json, loc, texts)?;
        self.location_ends.push(self.location_json.len());
        self.locations.push(loc);
        Ok(())
    }
}

/// Writes `loc` as serde writes a [`Location`] (`{"lat":..,"lon":..}`);
/// `texts` are its coordinates as the request wrote them, if known, copied
/// where serde would write them the same way ([`push_number`]).
pub(crate) fn write_location(
    out: &mut Vec<u8>,
    loc: Location,
    texts: Option<(&str, &str)>,
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"lat\":");
    push_number(out, texts.map(|t| t.0), loc.lat)?;
    out.extend_from_slice(b",\"lon\":");
    push_number(out, texts.map(|t| t.1), loc.lon)?;
    out.push(b'}');
    Ok(())
}

/// Appends `v` as serde_json writes it: `text`, the number as the body
/// wrote it, when that is the same ([`echoes_as_written`]), else formatted.
fn push_number(out: &mut Vec<u8>, text: Option<&str>, v: f64) -> Result<(), serde_json::Error> {
    match text {
        Some(t) if echoes_as_written(t) => {
            out.extend_from_slice(t.as_bytes());
            Ok(())
        }
        _ => serde_json::to_writer(&mut *out, &v),
    }
}

/// Whether serde_json writes the `f64` that the JSON number `text` reads
/// to as `text` itself. serde_json writes the shortest decimal that reads
/// back to the same `f64`. A decimal of at most 15 significant digits is
/// the only one of that many digits or fewer that reads to its `f64` (an
/// `f64` tells apart all decimals of 15 digits), so it is the shortest,
/// when it has no trailing zeros. So `text` qualifies when it has a
/// fraction, no exponent, no trailing zero and at most 15 significant
/// digits, and is at least 0.1 in magnitude (smaller ones may be written
/// with an exponent). A test checks the rule against serde_json.
fn echoes_as_written(text: &str) -> bool {
    // On bytes, with slice patterns: `split_once` and `==` on `str` were
    // as slow as the formatting this saves.
    let b = match text.as_bytes() {
        [b'-', rest @ ..] => rest,
        b => b,
    };
    let Some(dot) = b.iter().position(|&c| c == b'.') else { return false };
    let (int, frac) = (&b[..dot], &b[dot + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let significant = match (int, frac) {
        // Below 0.1 (or a leading zero in the fraction): not taken.
        ([b'0'], [b'0', ..]) => return false,
        ([b'0'], _) => frac.len(),
        ([b'0', ..], _) => return false,
        _ => int.len() + frac.len(),
    };
    significant <= 15 && digits(int) && digits(frac) && frac.last() != Some(&b'0')
}

/// Whether `v` is finite and within `min..=max`.
fn in_range(v: f64, min: f64, max: f64) -> bool {
    v.is_finite() && (min..=max).contains(&v)
}

/// Checks a batch read by serde: at least one point and at most `max`, each
/// with a latitude and one longitude (`lon` or `long`), finite and in range.
/// The error names the field at fault (`points[7].lat`).
pub(crate) fn validate(req: BatchRequest, max: usize) -> Result<Batch, ApiError> {
    if req.points.is_empty() {
        return Err(ApiError::field("points", "`points` must hold at least one point"));
    }
    if req.points.len() > max {
        return Err(ApiError::BadRequest {
            code: "batch_too_large",
            detail: format!("a batch holds at most {max} points, got {}", req.points.len()),
            field: Some("points".into()),
        });
    }
    // The field names (`points[7].lat`) are formatted only for an error:
    // formatting them for every point was ~9 % of a 1,000-point batch.
    let mut batch = Batch {
        locations: Vec::with_capacity(req.points.len()),
        location_json: Vec::with_capacity(req.points.len() * 32),
        location_ends: Vec::with_capacity(req.points.len()),
        ids: Vec::new(),
        tier: req.tier,
        records: req.records != Some(false),
    };
    let with_ids = req.points.iter().any(|p| p.id.is_some());
    for (i, p) in req.points.into_iter().enumerate() {
        let BatchPoint { lat, lon, long, id } = p;
        let lat = lat.ok_or_else(|| ApiError::missing(&format!("points[{i}].lat")))?;
        if !in_range(lat, -90.0, 90.0) {
            super::params::check_coordinate(&format!("points[{i}].lat"), lat, -90.0, 90.0)?;
        }
        let (name, lon) = match (lon, long) {
            (Some(_), Some(_)) => {
                return Err(ApiError::field(format!("points[{i}].lon"), "give either `lon` or `long`, not both"))
            }
            (Some(v), None) => ("lon", v),
            (None, Some(v)) => ("long", v),
            (None, None) => return Err(ApiError::missing(&format!("points[{i}].lon"))),
        };
        if !in_range(lon, -180.0, 180.0) {
            super::params::check_coordinate(&format!("points[{i}].{name}"), lon, -180.0, 180.0)?;
        }
        batch.push(Location { lat, lon }, None).map_err(|e| ApiError::Internal(e.to_string()))?;
        if with_ids {
            batch.ids.push(id);
        }
    }
    Ok(batch)
}

/// Reads a body of the common shape straight into a valid [`Batch`], or
/// gives up (`None`) on anything else: another member or shape, an escape
/// in a string, a duplicate member, a value out of range, a missing or
/// doubled longitude, no points or more than `max`, bad JSON. The caller
/// then reads the body with serde, which accepts it or says what is wrong.
pub(crate) fn quick(body: &[u8], max: usize) -> Option<Batch> {
    // Checked once here, so that each string and number is sliced from it
    // as is (checking each on its own was ~3 % of a batch's CPU).
    let text = std::str::from_utf8(body).ok()?;
    let mut r = Reader::new(text);
    let mut batch = Batch {
        locations: Vec::new(),
        location_json: Vec::new(),
        location_ends: Vec::new(),
        ids: Vec::new(),
        tier: None,
        records: true,
    };
    let (mut points, mut tier, mut records) = (false, false, false);
    r.expect(b'{')?;
    loop {
        match r.key()? {
            b"points" if !points => {
                points = true;
                r.points(&mut batch, max)?;
            }
            b"tier" if !tier => {
                tier = true;
                if !r.null() {
                    batch.tier = Some(r.string()?.to_owned());
                }
            }
            b"records" if !records => {
                records = true;
                if !r.null() {
                    batch.records = r.boolean()?;
                }
            }
            _ => return None,
        }
        if !r.more(b'}')? {
            break;
        }
    }
    (points && r.at_end()).then_some(batch)
}

impl<'a> Reader<'a> {
    /// The `points` array: each point checked and stored as it is read.
    fn points(&mut self, batch: &mut Batch, max: usize) -> Option<()> {
        self.expect(b'[')?;
        // A point takes 30 bytes or more: enough room for all without
        // growing, and never more than `max`.
        let room = (self.b.len().saturating_sub(self.i) / 30).min(max);
        batch.locations.reserve(room);
        batch.location_ends.reserve(room);
        batch.location_json.reserve(self.b.len().saturating_sub(self.i).min(max * 48));
        loop {
            if batch.locations.len() >= max {
                return None;
            }
            let (loc, texts, id) = self.point()?;
            if let Some(id) = id {
                let n = batch.locations.len();
                if batch.ids.len() < n {
                    batch.ids.resize(n, None);
                }
                batch.ids.push(Some(id));
            }
            batch.push(loc, Some(texts)).ok()?;
            if !self.more(b']')? {
                break;
            }
        }
        if !batch.ids.is_empty() {
            batch.ids.resize(batch.locations.len(), None);
        }
        Some(())
    }

    /// One point: a latitude, one longitude (each with its text), and maybe an `id`.
    #[allow(clippy::type_complexity)]
    fn point(&mut self) -> Option<(Location, (&'a str, &'a str), Option<serde_json::Value>)> {
        self.expect(b'{')?;
        let (mut lat, mut lon, mut id) = (None, None, None);
        loop {
            match self.key()? {
                b"lat" if lat.is_none() => lat = Some(self.number()?),
                // `lon` or `long`, once: both is an error serde's path names.
                b"lon" | b"long" if lon.is_none() => lon = Some(self.number()?),
                b"id" if id.is_none() => id = Some(self.id()?),
                _ => return None,
            }
            if !self.more(b'}')? {
                break;
            }
        }
        let ((lat, lat_text), (lon, lon_text)) = (lat?, lon?);
        let valid = in_range(lat, -90.0, 90.0) && in_range(lon, -180.0, 180.0);
        valid.then_some((Location { lat, lon }, (lat_text, lon_text), id))
    }

    /// A point's `id`: a string without escapes, or a number.
    fn id(&mut self) -> Option<serde_json::Value> {
        self.ws();
        if self.b.get(self.i) == Some(&b'"') {
            return Some(serde_json::Value::String(self.string()?.to_owned()));
        }
        serde_json::from_str(self.number_text()?).ok()
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// What serde's path makes of a body: the batch, or `None` for an error.
    fn by_serde(body: &[u8], max: usize) -> Option<Batch> {
        let req: BatchRequest = serde_json::from_slice(body).ok()?;
        validate(req, max).ok()
    }

    fn same(a: &Batch, b: &Batch) -> bool {
        let bits = |l: &Location| (l.lat.to_bits(), l.lon.to_bits());
        a.locations.len() == b.locations.len()
            && a.locations.iter().zip(&b.locations).all(|(x, y)| bits(x) == bits(y))
            && (0..a.locations.len()).all(|i| a.id(i) == b.id(i) && a.location_json(i) == b.location_json(i))
            && a.tier == b.tier
            && a.records == b.records
    }

    /// Checks one body: what `quick` accepts, serde reads to the same batch.
    /// Returns whether `quick` accepted it.
    fn check(body: &str, max: usize) -> bool {
        let Some(fast) = quick(body.as_bytes(), max) else { return false };
        let slow = by_serde(body.as_bytes(), max);
        assert!(slow.as_ref().is_some_and(|s| same(s, &fast)), "{body:?}: quick {fast:?}, serde {slow:?}");
        true
    }

    /// The numbers copied as written are exactly those serde_json writes
    /// the same way, on coordinates written in many ways.
    #[test]
    fn echoed_numbers_are_what_serde_writes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3112);
        let mut echoed = 0;
        for n in 0..200_000 {
            let v: f64 = rng.gen_range(-180.0..180.0) / 10f64.powi(rng.gen_range(0..3));
            let text = match n % 3 {
                0 => format!("{v}"),
                1 => format!("{:.*}", rng.gen_range(1..14), v),
                _ => format!("{}.{}", rng.gen_range(-180..180), rng.gen_range(1..1_000_000_000_u64)),
            };
            if echoes_as_written(&text) {
                echoed += 1;
                let v: f64 = text.parse().expect("a number");
                assert_eq!(serde_json::to_string(&v).expect("a number"), text);
            }
        }
        assert!(echoed > 100_000, "echoed {echoed}");
        for text in ["0.1", "-0.1", "90.5", "-179.99999999999", "12345.6789012345", "0.123456789012345"] {
            assert!(echoes_as_written(text), "{text}");
            assert_eq!(serde_json::to_string(&text.parse::<f64>().expect("a number")).expect("a number"), text);
        }
        for text in ["0.01", "1.50", "1", "-0", "1e2", "0.1234567890123456", "1234567890.123456", "0.0", "-0.0"] {
            assert!(!echoes_as_written(text), "{text}");
        }
    }

    #[test]
    fn reads_the_common_shapes() {
        for body in [
            r#"{"points":[{"lat":40.7128,"lon":-74.006}]}"#,
            " {\n \"points\" : [ { \"lon\" : -74 , \"lat\" : 40 } ,{\"lat\":-0.0,\"long\":1e2}] }\r\n",
            r#"{"records":false,"tier":"county,place","points":[{"lat":1,"lon":2,"id":"a"},{"lat":3,"lon":4}]}"#,
            r#"{"points":[{"id":17,"lat":90,"lon":-180},{"lat":-90,"lon":180,"id":-2.5e-3}],"tier":null,"records":null}"#,
            r#"{"points":[{"lat":12345678901234567890e-18,"lon":-0}]}"#,
            r#"{"points":[{"lat":0.1000000000000000055511151231257827021181583404541015625,"lon":1E-400}]}"#,
        ] {
            assert!(check(body, 10), "{body:?} takes the quick path");
        }
    }

    #[test]
    fn gives_up_on_anything_else() {
        for body in [
            "",
            "{}",
            r#"{"points":[]}"#,
            r#"{"points":[{"lat":1,"lon":2}]"#,
            r#"{"points":[{"lat":1,"lon":2}]} x"#,
            r#"{"points":[{"lat":1,"lon":2},]}"#,
            r#"{"points":[{"lat":1,"lon":2}],"points":[{"lat":1,"lon":2}]}"#,
            r#"{"points":[{"lat":1,"lat":2,"lon":2}]}"#,
            r#"{"points":[{"lat":1,"lon":2,"long":2}]}"#,
            r#"{"points":[{"lat":1}]}"#,
            r#"{"points":[{"lat":91,"lon":2}]}"#,
            r#"{"points":[{"lat":1,"lon":180.0000001}]}"#,
            r#"{"points":[{"lat":1e999,"lon":2}]}"#,
            r#"{"points":[{"lat":01,"lon":2}]}"#,
            r#"{"points":[{"lat":1.,"lon":2}]}"#,
            r#"{"points":[{"lat":.5,"lon":2}]}"#,
            r#"{"points":[{"lat":+1,"lon":2}]}"#,
            r#"{"points":[{"lat":"1","lon":2}]}"#,
            r#"{"points":[{"lat":null,"lon":2}]}"#,
            r#"{"points":[{"lat":1,"lon":2,"id":null}]}"#,
            r#"{"points":[{"lat":1,"lon":2,"id":"a\"b"}]}"#,
            r#"{"points":[{"lat":1,"lon":2,"id":[1]}]}"#,
            r#"{"points":[{"lat":1,"lon":2,"x":1}]}"#,
            r#"{"points":[{"lat":1,"lon":2}],"tier":"pl\u0061ce"}"#,
            r#"{"points":[{"lat":1,"lon":2}],"records":"no"}"#,
            r#"{"points":[{"lat":1,"lon":2},{"lat":1,"lon":2},{"lat":1,"lon":2}]}"#,
            r#"{"p\u006fints":[{"lat":1,"lon":2}]}"#,
        ] {
            assert!(quick(body.as_bytes(), 2).is_none(), "{body:?} goes to serde");
        }
    }

    /// Many generated bodies, well-formed and broken: whatever `quick`
    /// accepts, serde reads to the same batch, bit for bit.
    #[test]
    fn agrees_with_serde_on_generated_bodies() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(311);
        let mut accepted = 0;
        let tries = 20_000;
        for _ in 0..tries {
            let body = generated(&mut rng);
            let body = match rng.gen_range(0..4) {
                // Broken: a byte dropped, changed, or the body cut short.
                0 => crate::json_scan::broken(&mut rng, body),
                _ => body,
            };
            if check(&body, 6) {
                accepted += 1;
            }
        }
        // The generator mostly makes bodies of the common shape.
        assert!(accepted > tries / 3, "quick read {accepted} of {tries}");
    }

    /// A batch body of the common shape, with some variation on every point.
    fn generated(rng: &mut impl Rng) -> String {
        let ws = |rng: &mut dyn rand::RngCore| [" ", "", "", "\n ", "\t"][rng.gen_range(0..5)].to_owned();
        let number = |rng: &mut dyn rand::RngCore, limit: f64| -> String {
            let v = rng.gen_range(-limit * 1.02..limit * 1.02);
            match rng.gen_range(0..8) {
                0 => format!("{v:e}"),
                1 => format!("{}", v.round() as i64),
                2 => format!("{v:.3}"),
                3 => format!("{v:.25}"),
                4 => ["-0", "0", "-0.0", "0e0", "1E+1", "-1e-400", "90", "-180.0"][rng.gen_range(0..8)].to_owned(),
                _ => format!("{v}"),
            }
        };
        let mut points = Vec::new();
        for _ in 0..rng.gen_range(0..8) {
            let mut members = vec![format!("\"lat\":{}{}", ws(rng), number(rng, 90.0))];
            let lon_key = if rng.gen_bool(0.2) { "long" } else { "lon" };
            members.push(format!("\"{lon_key}\":{}", number(rng, 180.0)));
            match rng.gen_range(0..6) {
                0 => members.push(format!("\"id\":\"k{}\"", rng.gen_range(0..100))),
                1 => members.push(format!("\"id\":{}", number(rng, 1e6))),
                2 => members.push("\"id\":\"\u{e9}t\u{e9}\"".to_owned()),
                _ => {}
            }
            if rng.gen_bool(0.02) {
                members.push("\"lon\":1".to_owned());
            }
            if rng.gen_bool(0.02) {
                members.pop();
            }
            let n = members.len();
            members.swap(rng.gen_range(0..n), rng.gen_range(0..n));
            let sep = format!("{},{}", ws(rng), ws(rng));
            points.push(format!("{{{}{}{}}}", ws(rng), members.join(&sep), ws(rng)));
        }
        let mut top = vec![format!("\"points\" :[{}]", points.join(","))];
        match rng.gen_range(0..5) {
            0 => top.push("\"tier\":\"place\"".to_owned()),
            1 => top.push(format!("\"records\":{}", rng.gen_bool(0.5))),
            2 => top.push("\"records\":null".to_owned()),
            _ => {}
        }
        let n = top.len();
        top.swap(rng.gen_range(0..n), rng.gen_range(0..n));
        format!("{}{{{}}}{}", ws(rng), top.join(","), ws(rng))
    }
}
