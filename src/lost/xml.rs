//! A minimal XML writer for LoST answers: escaping, `xsd:token` clean-up and
//! an element builder. Everything written goes through [`escape`], so no
//! registry text (names, URLs) or request text (ids, via sources) can break
//! the document.

use std::fmt::Write as _;

/// The LoST namespace (RFC 5222 section 15).
pub const LOST_NS: &str = "urn:ietf:params:xml:ns:lost1";
/// The GML 3.1.1 namespace used by the geodetic-2d profile (RFC 5491).
pub const GML_NS: &str = "http://www.opengis.net/gml";
/// The GeoShape namespace of `gs:Circle` (RFC 5491, OGC 06-142).
pub const GS_NS: &str = "http://www.opengis.net/pidflo/1.0";
/// The one coordinate reference system we speak: WGS 84, axis order lat lon.
pub const EPSG_4326: &str = "urn:ogc:def:crs:EPSG::4326";

/// True for characters XML 1.0 allows in a document.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Escapes `s` for use in element text and in double-quoted attribute
/// values; characters XML 1.0 cannot carry (control characters, U+FFFE,
/// U+FFFF) are dropped, and tab and line breaks are written as character
/// references so attribute values keep them.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if xml_char(c) => out.push(c),
            _ => {}
        }
    }
    out
}

/// Makes `s` a valid `xsd:token`: whitespace runs become one space, leading
/// and trailing whitespace goes, and characters XML cannot carry are dropped.
pub fn token(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").chars().filter(|c| xml_char(*c)).collect()
}

/// An XML document under construction. Elements are opened with
/// [`Writer::open`] (attributes escaped), closed with [`Writer::close`].
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    stack: Vec<&'static str>,
}

impl Writer {
    /// A document starting with the XML declaration.
    pub fn new() -> Self {
        Self { out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), stack: Vec::new() }
    }

    fn start(&mut self, name: &'static str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            let _ = write!(self.out, " {k}=\"{}\"", escape(v));
        }
    }

    /// Opens `<name attrs...>`.
    pub fn open(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push('>');
        self.stack.push(name);
        self
    }

    /// Writes an empty element `<name attrs.../>`.
    pub fn empty(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push_str("/>");
        self
    }

    /// Writes `<name attrs...>text</name>`.
    pub fn text(&mut self, name: &'static str, attrs: &[(&str, &str)], text: &str) -> &mut Self {
        self.start(name, attrs);
        self.out.push('>');
        self.out.push_str(&escape(text));
        let _ = write!(self.out, "</{name}>");
        self
    }

    /// Appends characters that are already valid XML text (numbers, spaces).
    pub fn raw(&mut self, s: &str) -> &mut Self {
        self.out.push_str(s);
        self
    }

    /// Closes the innermost open element.
    pub fn close(&mut self) -> &mut Self {
        if let Some(name) = self.stack.pop() {
            let _ = write!(self.out, "</{name}>");
        }
        self
    }

    /// Closes every open element and returns the document.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out.push('\n');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_quotes_and_illegal_characters() {
        assert_eq!(escape(r#"a<b>&"c"'d'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
        assert_eq!(escape("x\u{0}y\u{1b}z\u{FFFE}"), "xyz");
        assert_eq!(escape("tab\tnl\ncr\r"), "tab&#9;nl&#10;cr&#13;");
        assert_eq!(escape("Köln ☃ 𝄞"), "Köln ☃ 𝄞");
        assert_eq!(escape("]]>"), "]]&gt;");
    }

    #[test]
    fn token_collapses_whitespace() {
        assert_eq!(token("  a \n\t b  c "), "a b c");
        assert_eq!(token("\u{7}x"), "x");
        assert_eq!(token(""), "");
    }

    #[test]
    fn writer_nests_and_escapes() {
        let mut w = Writer::new();
        w.open("a", &[("k", "v\"<")]).text("b", &[], "1 & 2").empty("c", &[("x", "y")]);
        let doc = w.finish();
        assert!(doc.ends_with("<a k=\"v&quot;&lt;\"><b>1 &amp; 2</b><c x=\"y\"/></a>\n"), "{doc}");
        assert!(roxmltree::Document::parse(&doc).is_ok());
    }
}
