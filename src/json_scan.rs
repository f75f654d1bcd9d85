//! A small JSON cursor for the hand-read hot paths: batch request bodies
//! (`api::batch_body`) and stored boundaries (`geometry::parse_stored`).
//!
//! It reads only what those readers need (objects, arrays, strings without
//! escapes, numbers, `null`, booleans) and gives up (`None`) on anything
//! else; each caller then reads the text with serde, which accepts it or
//! says what is wrong. Numbers are correctly rounded, as serde_json's
//! `float_roundtrip` reads them, but most take a fast path ([`number_at`]).

/// A cursor over a JSON text.
pub(crate) struct Reader<'a> {
    /// The text ...
    pub(crate) s: &'a str,
    /// ... and as bytes.
    pub(crate) b: &'a [u8],
    /// The position of the next byte to read.
    pub(crate) i: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Reader { s: text, b: text.as_bytes(), i: 0 }
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// Skips JSON whitespace.
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    pub(crate) fn next(&mut self) -> Option<u8> {
        self.ws();
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    pub(crate) fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// After a member or element: `true` on a comma, `false` on `close`.
    pub(crate) fn more(&mut self, close: u8) -> Option<bool> {
        match self.next()? {
            b',' => Some(true),
            c if c == close => Some(false),
            _ => None,
        }
    }

    /// An object member's name and its colon.
    pub(crate) fn key(&mut self) -> Option<&'a [u8]> {
        self.ws();
        let s = self.string()?;
        self.expect(b':')?;
        Some(s.as_bytes())
    }

    /// A string without escapes or control characters.
    pub(crate) fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let rest = self.b.get(self.i..)?;
        let len = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        let s = self.s.get(self.i..self.i + len)?;
        self.i += len + 1;
        Some(s)
    }

    /// Consumes a `null` if one is next.
    pub(crate) fn null(&mut self) -> bool {
        self.ws();
        let found = self.b.get(self.i..).is_some_and(|r| r.starts_with(b"null"));
        if found {
            self.i += 4;
        }
        found
    }

    pub(crate) fn boolean(&mut self) -> Option<bool> {
        self.ws();
        let rest = self.b.get(self.i..)?;
        let (v, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.i += len;
        Some(v)
    }

    /// A JSON number's text (RFC 8259 grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
    pub(crate) fn number_text(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        let (_, end) = number_at(self.s, start)?;
        self.i = end;
        self.s.get(start..end)
    }

    /// A finite number, correctly rounded (as serde_json's `float_roundtrip`
    /// reads it), and its text.
    pub(crate) fn number(&mut self) -> Option<(f64, &'a str)> {
        self.ws();
        let start = self.i;
        let (v, end) = number_at(self.s, start)?;
        self.i = end;
        v.is_finite().then_some((v, self.s.get(start..end)?))
    }
}

/// Powers of ten that `f64` holds exactly.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Reads the JSON number that starts at byte `start` of `s` (RFC 8259
/// grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`): its value, correctly rounded, and
/// where it ends. Checking the grammar and gathering the digits is one pass.
/// A number of at most 15 digits without an exponent, as a coordinate is
/// written (`-74.006015`), is `m / 10^k` with `m` and `10^k` both exact in
/// an `f64`, so one IEEE division gives the correctly rounded value
/// (Clinger's fast path, which `str::parse::<f64>` also takes, after
/// another pass over the digits); any other goes through `str::parse`.
pub(crate) fn number_at(s: &str, start: usize) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    let mut i = start;
    let negative = b.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    // The digits' value while there are at most 15 (then < 2^53), their
    // number, and how many follow the decimal point.
    let (mut m, mut digits, mut fraction) = (0_u64, 0_usize, 0_usize);
    // Gathers a run of digits from `i` on; returns how many.
    let gather = |i: &mut usize, m: &mut u64, digits: &mut usize| {
        let from = *i;
        while let Some(&c) = b.get(*i).filter(|c| c.is_ascii_digit()) {
            if *digits < 15 {
                *m = *m * 10 + u64::from(c - b'0');
            }
            *digits += 1;
            *i += 1;
        }
        *i - from
    };
    match b.get(i)? {
        b'0' => {
            i += 1;
            digits += 1;
        }
        b'1'..=b'9' => {
            gather(&mut i, &mut m, &mut digits);
        }
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        fraction = gather(&mut i, &mut m, &mut digits);
        if fraction == 0 {
            return None;
        }
    }
    let mut exact = digits <= 15;
    if let Some(b'e' | b'E') = b.get(i) {
        exact = false;
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let from = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == from {
            return None;
        }
    }
    let v = match EXACT_POWERS.get(fraction) {
        Some(p) if exact => {
            let v = m as f64 / p;
            if negative {
                -v
            } else {
                v
            }
        }
        _ => s.get(start..i)?.parse().ok()?,
    };
    Some((v, i))
}

/// For tests: `text` broken at one random place (a byte dropped or
/// changed, or the text cut short), as a reader might meet it.
#[cfg(test)]
pub(crate) fn broken(rng: &mut impl rand::Rng, text: String) -> String {
    let mut b = text.into_bytes();
    let at = rng.gen_range(0..b.len());
    match rng.gen_range(0..3) {
        0 => {
            b.remove(at);
        }
        1 => b[at] = b"{}[],:\"\\0123456789.eE+- xnlu"[rng.gen_range(0..28)],
        _ => b.truncate(at),
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The value of `text` when it is one whole number taken by the fast
    /// path (at most 15 digits, no exponent), else `None`.
    fn fast_number(text: &str) -> Option<f64> {
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        if digits > 15 || text.contains(['e', 'E']) {
            return None;
        }
        let (v, end) = number_at(text, 0)?;
        assert_eq!(end, text.len(), "{text}");
        Some(v)
    }

    /// Every number is read as `str::parse` reads it, bit for bit, on the
    /// fast path and off it, and a number ends where its grammar does.
    #[test]
    fn numbers_are_correctly_rounded() {
        for text in
            ["1e5", "1E+5", "-2.5e-3", "1234567890123456", "0.0000000000000001", "1e-400", "123456789012345678901234"]
        {
            let want: f64 = text.parse().expect("a number");
            assert_eq!(number_at(text, 0).map(|(v, end)| (v.to_bits(), end)), Some((want.to_bits(), text.len())));
        }
        for (text, end) in [("12,", 2), ("-0.5}", 4), ("1.5e3]", 5), ("0 ", 1), ("01", 1)] {
            assert_eq!(number_at(text, 0).map(|(_, e)| e), Some(end), "{text}");
        }
        for text in ["-", "+1", ".5", "1.", "1.e3", "1e", "1e+", "-x", ""] {
            assert_eq!(number_at(text, 0), None, "{text}");
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5222);
        let mut taken = 0;
        for n in 0..200_000 {
            let v: f64 = rng.gen_range(-180.0..180.0) / 10f64.powi(rng.gen_range(0..12));
            let text = match n % 4 {
                0 => format!("{v}"),
                1 => format!("{v:.6}"),
                2 => format!("{:.*}", rng.gen_range(0..16), v),
                _ => format!("{}", rng.gen_range(0_u64..1 << 53)),
            };
            let want: f64 = text.parse().expect("a number");
            let (got, end) = number_at(&text, 0).expect("a number");
            assert_eq!((got.to_bits(), end), (want.to_bits(), text.len()), "{text}");
            taken += usize::from(fast_number(&text).is_some());
        }
        assert!(taken > 100_000, "the fast path took {taken}");
        for text in ["-0", "0", "0.0", "-0.000", "90", "-180.000000", "999999999999999", "0.1", "0.3"] {
            let want: f64 = text.parse().expect("a number");
            assert_eq!(fast_number(text).map(f64::to_bits), Some(want.to_bits()), "{text}");
        }
    }
}
