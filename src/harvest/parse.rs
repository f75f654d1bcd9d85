//! Pure parsers for Open311 documents: GeoReport v2 service lists and Service Discovery documents.
//!
//! Both accept JSON and XML. Decisions:
//!
//! * **Content type.** `*/json` and `*+json` are parsed as JSON, `*/xml` and `*+xml` as XML, exactly as
//!   labelled. A missing type, `text/plain` and `application/octet-stream` are *sniffed*: a body starting
//!   (after an optional BOM and whitespace) with `[` or `{` is JSON, with `<` is XML. Any other type — notably
//!   `text/html`, usually an error or login page — is refused with [`ParseError::ContentType`].
//! * **Service lists.** JSON: a top-level array of service objects (an object with a `services` array is
//!   accepted too). XML: `<services><service>…</service></services>`. A GeoReport error document
//!   (`[{"code":…,"description":…}]` or `<errors><error>…`) becomes [`ParseError::ServerError`].
//! * **Per-service leniency.** An entry without a usable `service_code` or `service_name` is *skipped* with a
//!   warning; the list fails with [`ParseError::NoValidServices`] only when entries exist and none is valid.
//!   `service_code` may be a string or a number. `metadata` may be a bool, `"true"`/`"false"`, `"1"`/`"0"` or
//!   0/1. `keywords` may be the GeoReport comma-separated string or an array of strings (XML: text or
//!   child elements). `type` outside realtime|batch|blackbox becomes `realtime` with a warning.
//! * **Duplicates and caps.** A repeated `service_code` keeps the first entry and warns. At most
//!   [`MAX_SERVICES`] services are kept (then `truncated` is set). Over-long texts are truncated (codes are
//!   not: an over-long `service_code` skips the entry); see the `MAX_*` constants.
//!
//! [`parse_service_list`] returns the services with their warnings; [`parse_services`] only the services.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::model::{Service, ServiceSource};

/// Most services kept from one document.
pub const MAX_SERVICES: usize = 2_000;
/// Longest accepted `service_code`, in characters (longer ones skip the entry).
pub const MAX_CODE_CHARS: usize = 256;
/// Longest kept `service_name`, in characters.
pub const MAX_NAME_CHARS: usize = 512;
/// Longest kept `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4_096;
/// Longest kept `group` (and other short texts), in characters.
pub const MAX_SHORT_CHARS: usize = 256;
/// Most keywords kept per service.
pub const MAX_KEYWORDS: usize = 50;
/// Longest kept keyword, in characters.
pub const MAX_KEYWORD_CHARS: usize = 100;
/// Most endpoints kept from a discovery document.
pub const MAX_ENDPOINTS: usize = 100;
/// Most warnings kept for one document.
pub const MAX_WARNINGS: usize = 50;
/// Longest kept URL or contact text in a discovery document, in characters.
const MAX_URL_CHARS: usize = 2_048;
/// Node limit handed to the XML parser (a 1 MiB body has far fewer meaningful nodes).
const XML_NODES_LIMIT: u32 = 1_000_000;

/// Why a document could not be parsed. `Display` is a short message fit to store as an endpoint's error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The response's content type is neither JSON, XML nor a sniffable generic type.
    #[error("unexpected content type {content_type}")]
    ContentType {
        /// The content type as received.
        content_type: String,
    },
    /// A sniffed body looks neither like JSON nor like XML.
    #[error("body is neither JSON nor XML")]
    Unrecognized,
    /// Malformed JSON.
    #[error("invalid JSON: {message}")]
    Json {
        /// Parser message.
        message: String,
    },
    /// Malformed XML (or a DTD, which is refused).
    #[error("invalid XML: {message}")]
    Xml {
        /// Parser message.
        message: String,
    },
    /// Well-formed, but not the expected document (wrong root, wrong types).
    #[error("unexpected document structure: {message}")]
    Structure {
        /// What was expected.
        message: String,
    },
    /// The endpoint answered with a GeoReport error document.
    #[error("endpoint returned an error: {message}")]
    ServerError {
        /// `code: description` of the first error.
        message: String,
    },
    /// The document has service entries, but none is usable.
    #[error("none of the {entries} service entries is valid")]
    NoValidServices {
        /// How many entries the document had.
        entries: usize,
    },
}

/// A parsed service list with what was dropped or repaired on the way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceList {
    /// Valid services, in document order, unique by `service_code`.
    pub services: Vec<Service>,
    /// Human-readable notes on skipped entries, duplicates, truncations (at most [`MAX_WARNINGS`]).
    pub warnings: Vec<String>,
    /// True when the document had more than [`MAX_SERVICES`] valid services and the rest were dropped.
    pub truncated: bool,
}

/// An Open311 Service Discovery document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// When the document last changed (as written, usually ISO 8601).
    pub changeset: Option<String>,
    /// Contact information.
    pub contact: Option<String>,
    /// Where to get an API key.
    pub key_service: Option<String>,
    /// Usable endpoints (entries without specification or a valid http(s) URL are dropped).
    pub endpoints: Vec<DiscoveryEndpoint>,
}

/// One endpoint of a [`Discovery`] document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryEndpoint {
    /// Specification URL, e.g. `http://wiki.open311.org/GeoReport_v2`.
    pub specification: String,
    /// Base URL of the endpoint (validated: http/https, a host, no userinfo).
    pub url: String,
    /// When the endpoint last changed.
    pub changeset: Option<String>,
    /// `production` or `test` (lowercased).
    pub kind: Option<String>,
    /// MIME types offered, e.g. `application/json`, `text/xml`.
    pub formats: Vec<String>,
}

impl Discovery {
    /// The best GeoReport v2 endpoint: specification mentions `GeoReport_v2`, preferring `production` over
    /// other types, then one offering JSON, then document order.
    pub fn georeport_v2(&self) -> Option<&DiscoveryEndpoint> {
        let mut best: Option<(&DiscoveryEndpoint, (bool, bool))> = None;
        for endpoint in &self.endpoints {
            if !endpoint.specification.to_ascii_lowercase().contains("georeport_v2") {
                continue;
            }
            let rank = (
                endpoint.kind.as_deref() == Some("production"),
                endpoint.formats.iter().any(|f| f.to_ascii_lowercase().contains("json")),
            );
            if best.is_none_or(|(_, best_rank)| rank > best_rank) {
                best = Some((endpoint, rank));
            }
        }
        best.map(|(endpoint, _)| endpoint)
    }
}

/// Parses a GeoReport v2 service list (JSON or XML, see the module docs) into its services.
pub fn parse_services(body: &[u8], content_type: Option<&str>) -> Result<Vec<Service>, ParseError> {
    parse_service_list(body, content_type).map(|list| list.services)
}

/// Parses a GeoReport v2 service list, keeping the warnings about skipped or repaired entries.
pub fn parse_service_list(body: &[u8], content_type: Option<&str>) -> Result<ServiceList, ParseError> {
    let entries = match detect(body, content_type)? {
        Syntax::Json => json_service_entries(parse_json(body)?)?,
        Syntax::Xml => {
            let text = xml_text(body)?;
            let doc = parse_xml(text)?;
            xml_service_entries(&doc)?
        }
    };
    build_service_list(&entries)
}

/// Parses an Open311 Service Discovery document (JSON or XML).
pub fn parse_discovery(body: &[u8], content_type: Option<&str>) -> Result<Discovery, ParseError> {
    let root = match detect(body, content_type)? {
        Syntax::Json => match parse_json(body)? {
            Value::Object(map) => map,
            _ => return Err(structure("expected a discovery object")),
        },
        Syntax::Xml => {
            let text = xml_text(body)?;
            let doc = parse_xml(text)?;
            let root = doc.root_element();
            if root.tag_name().name() != "discovery" {
                return Err(structure(&format!("expected <discovery> root, found <{}>", root.tag_name().name())));
            }
            element_to_map(root)
        }
    };
    let short = |key: &str, max: usize| optional_text(root.get(key), max);
    let endpoints = match root.get("endpoints") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(discovery_endpoint).take(MAX_ENDPOINTS).collect(),
        // A single <endpoint> in XML, or a lone object in JSON.
        Some(single @ Value::Object(_)) => discovery_endpoint(single).into_iter().collect(),
        Some(_) => return Err(structure("endpoints is not a list")),
    };
    Ok(Discovery {
        changeset: short("changeset", MAX_SHORT_CHARS),
        contact: short("contact", MAX_URL_CHARS),
        key_service: short("key_service", MAX_URL_CHARS),
        endpoints,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Json,
    Xml,
}

fn detect(body: &[u8], content_type: Option<&str>) -> Result<Syntax, ParseError> {
    let essence =
        content_type.map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()).unwrap_or_default();
    if essence.ends_with("/json") || essence.ends_with("+json") {
        return Ok(Syntax::Json);
    }
    if essence.ends_with("/xml") || essence.ends_with("+xml") {
        return Ok(Syntax::Xml);
    }
    if !matches!(essence.as_str(), "" | "text/plain" | "application/octet-stream" | "binary/octet-stream") {
        let shown = content_type.unwrap_or_default();
        return Err(ParseError::ContentType { content_type: truncate(shown, MAX_SHORT_CHARS) });
    }
    match strip_bom(body).iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[' | b'{') => Ok(Syntax::Json),
        Some(b'<') => Ok(Syntax::Xml),
        _ => Err(ParseError::Unrecognized),
    }
}

fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(body)
}

fn parse_json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(strip_bom(body)).map_err(|e| ParseError::Json { message: e.to_string() })
}

fn xml_text(body: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(strip_bom(body)).map_err(|_| ParseError::Xml { message: "not valid UTF-8".to_owned() })
}

fn parse_xml(text: &str) -> Result<roxmltree::Document<'_>, ParseError> {
    // DTDs stay refused (the default): no entity expansion games.
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: XML_NODES_LIMIT,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(text, options).map_err(|e| ParseError::Xml { message: e.to_string() })
}

fn structure(message: &str) -> ParseError {
    ParseError::Structure { message: message.to_owned() }
}

/// The service entries of a JSON document, or the error it reports.
fn json_service_entries(root: Value) -> Result<Vec<Value>, ParseError> {
    let entries = match root {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("services") {
            Some(Value::Array(items)) => items,
            _ => return Err(structure("expected an array of services")),
        },
        _ => return Err(structure("expected an array of services")),
    };
    if let Some(message) = json_error_message(&entries) {
        return Err(ParseError::ServerError { message });
    }
    Ok(entries)
}

/// `code: description` when every entry looks like a GeoReport error rather than a service.
fn json_error_message(entries: &[Value]) -> Option<String> {
    let is_error = |v: &Value| {
        v.as_object().is_some_and(|o| o.contains_key("description") && o.contains_key("code"))
            && v.get("service_code").is_none()
    };
    if entries.is_empty() || !entries.iter().all(is_error) {
        return None;
    }
    let first = &entries[0];
    Some(error_message(first.get("code"), first.get("description")))
}

fn error_message(code: Option<&Value>, description: Option<&Value>) -> String {
    let code = optional_text(code, 32).unwrap_or_else(|| "?".to_owned());
    let description = optional_text(description, MAX_SHORT_CHARS).unwrap_or_default();
    format!("{code}: {description}")
}

/// The `<service>` entries of an XML document (as JSON-like maps), or the error it reports.
fn xml_service_entries(doc: &roxmltree::Document<'_>) -> Result<Vec<Value>, ParseError> {
    let root = doc.root_element();
    match root.tag_name().name() {
        "services" => Ok(root
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "service")
            .map(|n| Value::Object(element_to_map(n)))
            .collect()),
        "errors" => {
            let map = root.children().find(|n| n.is_element()).map(element_to_map).unwrap_or_default();
            Err(ParseError::ServerError { message: error_message(map.get("code"), map.get("description")) })
        }
        other => Err(structure(&format!("expected <services> root, found <{other}>"))),
    }
}

/// Child elements as a map: a leaf child becomes its text, a child with element children becomes an array
/// (of texts for leaf grandchildren, of maps otherwise). The first of repeated names wins.
fn element_to_map(node: roxmltree::Node<'_, '_>) -> Map<String, Value> {
    let mut map = Map::new();
    for child in node.children().filter(roxmltree::Node::is_element) {
        let value = if has_element_children(child) {
            Value::Array(
                child
                    .children()
                    .filter(roxmltree::Node::is_element)
                    .map(|grandchild| {
                        if has_element_children(grandchild) {
                            Value::Object(element_to_map(grandchild))
                        } else {
                            Value::String(element_text(grandchild))
                        }
                    })
                    .collect(),
            )
        } else {
            Value::String(element_text(child))
        };
        map.entry(child.tag_name().name().to_owned()).or_insert(value);
    }
    map
}

fn has_element_children(node: roxmltree::Node<'_, '_>) -> bool {
    node.children().any(|n| n.is_element())
}

fn element_text(node: roxmltree::Node<'_, '_>) -> String {
    node.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect()
}

fn build_service_list(entries: &[Value]) -> Result<ServiceList, ParseError> {
    let mut list = ServiceList::default();
    let mut seen = HashSet::new();
    for (index, entry) in entries.iter().enumerate() {
        let mut notes = Vec::new();
        match service_from(entry, &mut notes) {
            Ok(service) => {
                if !seen.insert(service.service_code.clone()) {
                    push_warning(
                        &mut list.warnings,
                        format!("entry {index}: duplicate service_code {:?} dropped", service.service_code),
                    );
                    continue;
                }
                if list.services.len() == MAX_SERVICES {
                    list.truncated = true;
                    push_warning(
                        &mut list.warnings,
                        format!("more than {MAX_SERVICES} services; the rest were dropped"),
                    );
                    break;
                }
                for note in notes {
                    push_warning(&mut list.warnings, format!("service {:?}: {note}", service.service_code));
                }
                list.services.push(service);
            }
            Err(reason) => push_warning(&mut list.warnings, format!("entry {index} skipped: {reason}")),
        }
    }
    if list.services.is_empty() && !entries.is_empty() {
        return Err(ParseError::NoValidServices { entries: entries.len() });
    }
    Ok(list)
}

fn push_warning(warnings: &mut Vec<String>, message: String) {
    if warnings.len() < MAX_WARNINGS {
        warnings.push(message);
    }
}

/// A field value reduced to text.
enum Field {
    Missing,
    Text(String),
    WrongType,
}

fn text_of(value: Option<&Value>) -> Field {
    match value {
        None | Some(Value::Null) => Field::Missing,
        Some(Value::String(s)) if s.trim().is_empty() => Field::Missing,
        Some(Value::String(s)) => Field::Text(s.trim().to_owned()),
        Some(Value::Number(n)) => Field::Text(n.to_string()),
        Some(_) => Field::WrongType,
    }
}

fn optional_text(value: Option<&Value>, max: usize) -> Option<String> {
    match text_of(value) {
        Field::Text(s) => Some(truncate(&s, max)),
        Field::Missing | Field::WrongType => None,
    }
}

/// One service from an entry, or why the entry is skipped. Repairs are noted in `notes`.
fn service_from(entry: &Value, notes: &mut Vec<String>) -> Result<Service, String> {
    let Some(fields) = entry.as_object() else {
        return Err("not an object".to_owned());
    };
    let service_code = match text_of(fields.get("service_code")) {
        Field::Text(code) if code.chars().count() > MAX_CODE_CHARS => {
            return Err(format!("service_code longer than {MAX_CODE_CHARS} characters"))
        }
        Field::Text(code) => code,
        Field::Missing => return Err("missing service_code".to_owned()),
        Field::WrongType => return Err("service_code is not a string".to_owned()),
    };
    let service_name = match text_of(fields.get("service_name")) {
        Field::Text(name) => capped(name, MAX_NAME_CHARS, "service_name", notes),
        Field::Missing => return Err(format!("service {service_code:?} has no service_name")),
        Field::WrongType => return Err(format!("service {service_code:?}: service_name is not a string")),
    };
    let optional = |key: &str, max: usize, notes: &mut Vec<String>| match text_of(fields.get(key)) {
        Field::Text(text) => Some(capped(text, max, key, notes)),
        Field::Missing => None,
        Field::WrongType => {
            notes.push(format!("{key} is not a string; ignored"));
            None
        }
    };
    let description = optional("description", MAX_DESCRIPTION_CHARS, notes);
    let group = optional("group", MAX_SHORT_CHARS, notes);
    let metadata = match fields.get("metadata") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1") => true,
        Some(Value::String(s)) if matches!(s.trim().to_ascii_lowercase().as_str(), "false" | "0" | "") => false,
        Some(Value::Number(n)) if n.as_u64() == Some(1) => true,
        Some(Value::Number(n)) if n.as_u64() == Some(0) => false,
        Some(_) => {
            notes.push("metadata is not a boolean; taken as false".to_owned());
            false
        }
    };
    let kind = match text_of(fields.get("type")) {
        Field::Missing => "realtime".to_owned(),
        Field::Text(kind) if matches!(kind.to_ascii_lowercase().as_str(), "realtime" | "batch" | "blackbox") => {
            kind.to_ascii_lowercase()
        }
        Field::Text(_) | Field::WrongType => {
            notes.push("unknown type; taken as realtime".to_owned());
            "realtime".to_owned()
        }
    };
    let keywords = keywords_of(fields.get("keywords"), notes);
    Ok(Service {
        service_code,
        service_name,
        description,
        metadata,
        kind,
        keywords,
        group,
        source: ServiceSource::Harvested,
    })
}

fn keywords_of(value: Option<&Value>, notes: &mut Vec<String>) -> Vec<String> {
    let raw: Vec<String> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::to_owned).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(_) => {
            notes.push("keywords is neither a string nor a list; ignored".to_owned());
            Vec::new()
        }
    };
    let mut keywords: Vec<String> = Vec::new();
    for keyword in raw.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        let keyword = truncate(keyword, MAX_KEYWORD_CHARS);
        if keywords.len() == MAX_KEYWORDS {
            notes.push(format!("more than {MAX_KEYWORDS} keywords; the rest were dropped"));
            break;
        }
        if !keywords.contains(&keyword) {
            keywords.push(keyword);
        }
    }
    keywords
}

fn capped(text: String, max: usize, field: &str, notes: &mut Vec<String>) -> String {
    if text.chars().count() > max {
        notes.push(format!("{field} truncated to {max} characters"));
        truncate(&text, max)
    } else {
        text
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

fn discovery_endpoint(value: &Value) -> Option<DiscoveryEndpoint> {
    let fields = value.as_object()?;
    let specification = optional_text(fields.get("specification"), MAX_URL_CHARS)?;
    let url = optional_text(fields.get("url"), MAX_URL_CHARS)?;
    let parsed = url::Url::parse(&url).ok()?;
    let usable = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.username().is_empty()
        && parsed.password().is_none();
    if !usable {
        return None;
    }
    let formats = match fields.get("formats") {
        Some(Value::Array(items)) => {
            items.iter().filter_map(|v| optional_text(Some(v), MAX_SHORT_CHARS)).take(MAX_KEYWORDS).collect()
        }
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| truncate(f, MAX_SHORT_CHARS))
            .take(MAX_KEYWORDS)
            .collect(),
        _ => Vec::new(),
    };
    Some(DiscoveryEndpoint {
        specification,
        url,
        changeset: optional_text(fields.get("changeset"), MAX_SHORT_CHARS),
        kind: optional_text(fields.get("type"), MAX_SHORT_CHARS).map(|k| k.to_ascii_lowercase()),
        formats,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");
    const XML: Option<&str> = Some("application/xml");

    fn one(body: &str) -> Service {
        let services = parse_services(body.as_bytes(), JSON).unwrap();
        assert_eq!(services.len(), 1, "{services:?}");
        services.into_iter().next().unwrap()
    }

    #[test]
    fn full_json_service() {
        let service = one(r#"[{"service_code":" 001 ","service_name":"Pothole","description":"Holes","metadata":true,
                 "type":"Batch","keywords":"road, hole,, road ","group":"Streets"}]"#);
        assert_eq!(
            service,
            Service {
                service_code: "001".into(),
                service_name: "Pothole".into(),
                description: Some("Holes".into()),
                metadata: true,
                kind: "batch".into(),
                keywords: vec!["road".into(), "hole".into()],
                group: Some("Streets".into()),
                source: ServiceSource::Harvested,
            }
        );
    }

    #[test]
    fn minimal_json_service_gets_defaults() {
        let service = one(r#"[{"service_code":7,"service_name":"Litter","description":null,"group":""}]"#);
        assert_eq!(service.service_code, "7");
        assert_eq!(service.description, None);
        assert_eq!(service.group, None);
        assert!(!service.metadata);
        assert_eq!(service.kind, "realtime");
        assert!(service.keywords.is_empty());
    }

    #[test]
    fn metadata_variants() {
        let cases = [
            ("true", true),
            ("false", false),
            ("\"true\"", true),
            ("\"TRUE\"", true),
            ("\"false\"", false),
            ("\"1\"", true),
            ("\"0\"", false),
            ("1", true),
            ("0", false),
            ("null", false),
        ];
        for (raw, expected) in cases {
            let body = format!(r#"[{{"service_code":"a","service_name":"A","metadata":{raw}}}]"#);
            assert_eq!(one(&body).metadata, expected, "{raw}");
        }
        let list =
            parse_service_list(br#"[{"service_code":"a","service_name":"A","metadata":"maybe"}]"#, JSON).unwrap();
        assert!(!list.services[0].metadata);
        assert!(list.warnings[0].contains("metadata"), "{:?}", list.warnings);
    }

    #[test]
    fn keywords_as_array_and_wrong_type() {
        let service = one(r#"[{"service_code":"a","service_name":"A","keywords":[" x ","y",3,"x",""]}]"#);
        assert_eq!(service.keywords, ["x", "y"]);
        let list =
            parse_service_list(br#"[{"service_code":"a","service_name":"A","keywords":{"k":1}}]"#, JSON).unwrap();
        assert!(list.services[0].keywords.is_empty());
        assert_eq!(list.warnings.len(), 1);
    }

    #[test]
    fn unknown_type_becomes_realtime_with_warning() {
        let list = parse_service_list(br#"[{"service_code":"a","service_name":"A","type":"whenever"}]"#, JSON).unwrap();
        assert_eq!(list.services[0].kind, "realtime");
        assert!(list.warnings[0].contains("type"));
    }

    #[test]
    fn malformed_json_is_json_error() {
        for body in [&b"[{\"service_code\":\"a\""[..], b"[1,]", b"{not json", b"[\"\xff\xfe\"]"] {
            let err = parse_services(body, JSON).unwrap_err();
            assert!(matches!(err, ParseError::Json { .. }), "{err:?}");
        }
        let err = parse_services(b"", JSON).unwrap_err();
        assert!(matches!(err, ParseError::Json { .. }), "{err:?}");
    }

    #[test]
    fn wrong_document_shapes_are_structure_errors() {
        for body in [r#"{"foo":[]}"#, r#""services""#, "42", "null", r#"{"services":{}}"#] {
            let err = parse_services(body.as_bytes(), JSON).unwrap_err();
            assert!(matches!(err, ParseError::Structure { .. }), "{body}: {err:?}");
        }
        // A wrapper object with a services array is accepted.
        let services = parse_services(br#"{"services":[{"service_code":"a","service_name":"A"}]}"#, JSON).unwrap();
        assert_eq!(services.len(), 1);
    }

    #[test]
    fn invalid_entries_are_skipped_and_all_invalid_is_an_error() {
        let body = br#"[
            {"service_code":"ok","service_name":"Fine"},
            {"service_code":"no-name"},
            {"service_name":"no code"},
            {"service_code":true,"service_name":"bool code"},
            {"service_code":"obj-name","service_name":{"en":"x"}},
            "not an object",
            {"service_code":"","service_name":"empty code"},
            {"service_code":"desc","service_name":"Bad description","description":["x"]}
        ]"#;
        let list = parse_service_list(body, JSON).unwrap();
        let codes: Vec<_> = list.services.iter().map(|s| s.service_code.as_str()).collect();
        assert_eq!(codes, ["ok", "desc"]);
        assert_eq!(list.services[1].description, None);
        assert_eq!(list.warnings.len(), 7, "{:?}", list.warnings);

        let err = parse_services(br#"[{"service_code":"x"},{"foo":1},[]]"#, JSON).unwrap_err();
        assert_eq!(err, ParseError::NoValidServices { entries: 3 });
        assert_eq!(err.to_string(), "none of the 3 service entries is valid");
        assert_eq!(parse_services(b"[]", JSON).unwrap(), Vec::new());
    }

    #[test]
    fn huge_strings_are_capped() {
        let body = format!(
            r#"[{{"service_code":"big","service_name":"{}","description":"{}","group":"{}","keywords":"{}"}},
                {{"service_code":"{}","service_name":"Too long code"}}]"#,
            "n".repeat(10_000),
            "é".repeat(100_000),
            "g".repeat(1_000),
            (0..500).map(|i| format!("k{i}{}", "w".repeat(300))).collect::<Vec<_>>().join(","),
            "c".repeat(MAX_CODE_CHARS + 1),
        );
        let list = parse_service_list(body.as_bytes(), JSON).unwrap();
        assert_eq!(list.services.len(), 1);
        let service = &list.services[0];
        assert_eq!(service.service_name.chars().count(), MAX_NAME_CHARS);
        assert_eq!(service.description.as_ref().unwrap().chars().count(), MAX_DESCRIPTION_CHARS);
        assert_eq!(service.group.as_ref().unwrap().chars().count(), MAX_SHORT_CHARS);
        assert_eq!(service.keywords.len(), MAX_KEYWORDS);
        assert!(service.keywords.iter().all(|k| k.chars().count() <= MAX_KEYWORD_CHARS));
        assert!(list.warnings.iter().any(|w| w.contains("service_code longer")), "{:?}", list.warnings);
    }

    #[test]
    fn duplicates_keep_the_first() {
        let body = br#"[{"service_code":"a","service_name":"First"},{"service_code":"b","service_name":"B"},
                        {"service_code":"a","service_name":"Second"},{"service_code":" a ","service_name":"Third"}]"#;
        let list = parse_service_list(body, JSON).unwrap();
        let names: Vec<_> = list.services.iter().map(|s| s.service_name.as_str()).collect();
        assert_eq!(names, ["First", "B"]);
        assert_eq!(list.warnings.iter().filter(|w| w.contains("duplicate")).count(), 2);
    }

    #[test]
    fn service_count_is_capped() {
        let entries: Vec<String> = (0..MAX_SERVICES + 5)
            .map(|i| format!(r#"{{"service_code":"s{i}","service_name":"Service {i}"}}"#))
            .collect();
        let body = format!("[{}]", entries.join(","));
        let list = parse_service_list(body.as_bytes(), JSON).unwrap();
        assert_eq!(list.services.len(), MAX_SERVICES);
        assert!(list.truncated);
        assert_eq!(list.services.last().unwrap().service_code, format!("s{}", MAX_SERVICES - 1));
    }

    #[test]
    fn georeport_error_documents() {
        let err = parse_services(br#"[{"code":403,"description":"Invalid api_key"}]"#, JSON).unwrap_err();
        assert_eq!(err, ParseError::ServerError { message: "403: Invalid api_key".into() });
        let xml = b"<errors><error><code>404</code><description>jurisdiction not found</description></error></errors>";
        let err = parse_services(xml, XML).unwrap_err();
        assert_eq!(err, ParseError::ServerError { message: "404: jurisdiction not found".into() });
    }

    #[test]
    fn xml_services() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
            <services>
              <service>
                <service_code>001</service_code><service_name>Pot &amp; hole</service_name>
                <description/><metadata>true</metadata><type>blackbox</type>
                <keywords><keyword>road</keyword><keyword>hole</keyword></keywords><group>Streets</group>
              </service>
              <comment>ignored</comment>
              <service><service_code>002</service_code><service_name><![CDATA[Graffiti <tag>]]></service_name>
                <keywords>paint, wall</keywords></service>
              <service><service_code>003</service_code></service>
            </services>"#;
        let list = parse_service_list(body.as_bytes(), Some("text/xml; charset=utf-8")).unwrap();
        assert_eq!(list.services.len(), 2);
        let first = &list.services[0];
        assert_eq!(first.service_name, "Pot & hole");
        assert_eq!(first.description, None);
        assert!(first.metadata);
        assert_eq!(first.kind, "blackbox");
        assert_eq!(first.keywords, ["road", "hole"]);
        let second = &list.services[1];
        assert_eq!(second.service_name, "Graffiti <tag>");
        assert_eq!(second.keywords, ["paint", "wall"]);
        assert!(!second.metadata);
        assert_eq!(list.warnings.len(), 1);
    }

    #[test]
    fn bad_xml() {
        let err = parse_services(b"<services><service>", XML).unwrap_err();
        assert!(matches!(err, ParseError::Xml { .. }), "{err:?}");
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
            <services><service><service_code>&lol2;</service_code></service></services>"#;
        let err = parse_services(laughs.as_bytes(), XML).unwrap_err();
        assert!(matches!(err, ParseError::Xml { .. }), "{err:?}");
        let err = parse_services(b"<html><body/></html>", XML).unwrap_err();
        assert!(matches!(err, ParseError::Structure { .. }), "{err:?}");
        let err = parse_services(b"<services>\xff</services>", XML).unwrap_err();
        assert!(matches!(err, ParseError::Xml { .. }), "{err:?}");
    }

    #[test]
    fn content_type_handling() {
        let json = br#"[{"service_code":"a","service_name":"A"}]"#;
        let xml =
            b"<services><service><service_code>a</service_code><service_name>A</service_name></service></services>";
        for ct in ["text/html", "text/html; charset=utf-8", "image/png", "application/x-www-form-urlencoded"] {
            let err = parse_services(json, Some(ct)).unwrap_err();
            assert_eq!(err, ParseError::ContentType { content_type: ct.into() });
        }
        // Labelled types are trusted, case-insensitively and with parameters.
        assert_eq!(parse_services(json, Some("Application/JSON; charset=UTF-8")).unwrap().len(), 1);
        assert_eq!(parse_services(json, Some("application/vnd.open311+json")).unwrap().len(), 1);
        assert!(matches!(parse_services(xml, JSON), Err(ParseError::Json { .. })));
        // Generic types are sniffed.
        for ct in [None, Some("text/plain"), Some("application/octet-stream"), Some("")] {
            assert_eq!(parse_services(json, ct).unwrap().len(), 1, "{ct:?}");
            assert_eq!(parse_services(xml, ct).unwrap().len(), 1, "{ct:?}");
        }
        let with_bom = [b"\xEF\xBB\xBF \n".as_slice(), json].concat();
        assert_eq!(parse_services(&with_bom, None).unwrap().len(), 1);
        assert_eq!(parse_services(&with_bom, JSON).unwrap().len(), 1);
        assert_eq!(parse_services(b"hello", Some("text/plain")).unwrap_err(), ParseError::Unrecognized);
        assert_eq!(parse_services(b"", None).unwrap_err(), ParseError::Unrecognized);
    }

    #[test]
    fn discovery_json() {
        let body = br#"{"changeset":"2011-04-05T17:48:34Z","contact":"Call 311","key_service":"https://k.example/",
            "endpoints":[
              {"specification":"http://wiki.open311.org/GeoReport_v2","url":"https://test.example/v2",
               "changeset":"2011-04-05T17:48:34Z","type":"test","formats":["text/xml","application/json"]},
              {"specification":"http://wiki.open311.org/GeoReport_v2","url":"https://prod.example/v2",
               "type":"Production","formats":["text/xml"]},
              {"specification":"http://wiki.open311.org/GeoReport_v2","url":"ftp://bad.example/"},
              {"specification":"http://wiki.open311.org/GeoReport_v2","url":"https://u:p@bad.example/"},
              {"url":"https://nospec.example/"},
              {"specification":"http://wiki.open311.org/Inquiry_v1","url":"https://inquiry.example/"}
            ]}"#;
        let discovery = parse_discovery(body, JSON).unwrap();
        assert_eq!(discovery.changeset.as_deref(), Some("2011-04-05T17:48:34Z"));
        assert_eq!(discovery.contact.as_deref(), Some("Call 311"));
        assert_eq!(discovery.key_service.as_deref(), Some("https://k.example/"));
        assert_eq!(discovery.endpoints.len(), 3);
        assert_eq!(discovery.endpoints[0].formats, ["text/xml", "application/json"]);
        assert_eq!(discovery.endpoints[0].kind.as_deref(), Some("test"));
        assert_eq!(discovery.georeport_v2().unwrap().url, "https://prod.example/v2");
        assert!(matches!(parse_discovery(b"[]", JSON), Err(ParseError::Structure { .. })));
        assert_eq!(parse_discovery(b"{}", JSON).unwrap(), Discovery::default());
        let single = br#"{"endpoints":{"specification":"GeoReport_v2","url":"http://one.example/","formats":"a, b"}}"#;
        let discovery = parse_discovery(single, None).unwrap();
        assert_eq!(discovery.endpoints[0].formats, ["a", "b"]);
        assert!(matches!(parse_discovery(br#"{"endpoints":3}"#, JSON), Err(ParseError::Structure { .. })));
    }

    #[test]
    fn discovery_xml() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
            <discovery>
              <changeset>2011-04-05T17:48:34Z</changeset><contact>Call 311</contact>
              <key_service>https://k.example/</key_service>
              <endpoints>
                <endpoint>
                  <specification>http://wiki.open311.org/GeoReport_v2</specification>
                  <url>https://open311.example/v2</url><changeset>2011-04-05T17:48:34Z</changeset>
                  <type>production</type>
                  <formats><format>text/xml</format><format>application/json</format></formats>
                </endpoint>
              </endpoints>
            </discovery>"#;
        let discovery = parse_discovery(body, XML).unwrap();
        assert_eq!(discovery.endpoints.len(), 1);
        let endpoint = discovery.georeport_v2().unwrap();
        assert_eq!(endpoint.url, "https://open311.example/v2");
        assert_eq!(endpoint.kind.as_deref(), Some("production"));
        assert_eq!(endpoint.formats, ["text/xml", "application/json"]);
        assert!(matches!(parse_discovery(b"<services/>", XML), Err(ParseError::Structure { .. })));
        assert!(matches!(parse_discovery(b"<html/>", Some("text/html")), Err(ParseError::ContentType { .. })));
    }
}
