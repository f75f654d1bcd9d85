//! Service URNs (RFC 5031 style) for Open311 endpoints and their services.
//!
//! | URN | served by |
//! | --- | --- |
//! | `urn:service:open311` | every production Open311 endpoint |
//! | `urn:service:open311.<group>` | production endpoints offering a service in that group |
//! | `urn:service:open311.<group>.<code>` | production endpoints offering that service code in that group |
//! | `urn:service:open311-test[...]` | the same tree for `test` endpoints |
//!
//! `<group>` and `<code>` are [`label`]s: lowercase ASCII letters, digits and
//! inner hyphens. A service without a group sits under the group label
//! `ungrouped`. URNs are compared case-insensitively (RFC 5031 section 3).
//! A shorter URN is a broader service: asking for `urn:service:open311`
//! finds every endpoint, whatever services it lists.

use crate::model::{Endpoint, EndpointType, Service};
use std::fmt;

/// The prefix of every service URN (RFC 5031).
pub const PREFIX: &str = "urn:service:";
/// Top-level service of production Open311 endpoints.
pub const OPEN311: &str = "open311";
/// Top-level service of test Open311 endpoints.
pub const OPEN311_TEST: &str = "open311-test";
/// Group label of services that declare no group.
pub const UNGROUPED: &str = "ungrouped";

/// One service URN of our tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceUrn {
    /// Which endpoints: production (`open311`) or test (`open311-test`).
    pub kind: EndpointType,
    /// The normalised group label, if the URN names one.
    pub group: Option<String>,
    /// The normalised service code label (only with a group).
    pub code: Option<String>,
}

impl fmt::Display for ServiceUrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        f.write_str(match self.kind {
            EndpointType::Production => OPEN311,
            EndpointType::Test => OPEN311_TEST,
        })?;
        if let Some(g) = &self.group {
            write!(f, ".{g}")?;
            if let Some(c) = &self.code {
                write!(f, ".{c}")?;
            }
        }
        Ok(())
    }
}

/// Why a service URN is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrnError {
    /// Not a `urn:service:` URN, or a malformed one.
    #[error("`{0}` is not a service URN of the form urn:service:open311[.group[.code]]")]
    Malformed(String),
    /// A well-formed service URN outside the Open311 tree.
    #[error(
        "service `{0}` is not implemented here; this server knows urn:service:open311 and urn:service:open311-test"
    )]
    Unknown(String),
}

impl ServiceUrn {
    /// The top-level URN of one endpoint kind.
    pub fn top(kind: EndpointType) -> Self {
        Self { kind, group: None, code: None }
    }

    /// Parses a service URN (case-insensitively).
    pub fn parse(s: &str) -> Result<Self, UrnError> {
        let lower = s.trim().to_ascii_lowercase();
        let rest = lower.strip_prefix(PREFIX).ok_or_else(|| UrnError::Malformed(s.trim().to_owned()))?;
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.iter().any(|l| !is_label(l)) {
            return Err(UrnError::Malformed(s.trim().to_owned()));
        }
        let kind = match labels.first().copied() {
            Some(OPEN311) => EndpointType::Production,
            Some(OPEN311_TEST) => EndpointType::Test,
            _ => return Err(UrnError::Unknown(lower)),
        };
        match labels.as_slice() {
            [_] => Ok(Self::top(kind)),
            [_, g] => Ok(Self { kind, group: Some((*g).to_owned()), code: None }),
            [_, g, c] => Ok(Self { kind, group: Some((*g).to_owned()), code: Some((*c).to_owned()) }),
            _ => Err(UrnError::Unknown(lower)),
        }
    }

    /// The URN one level up (`None` for a top-level URN).
    pub fn parent(&self) -> Option<Self> {
        match (&self.group, &self.code) {
            (None, _) => None,
            (Some(_), None) => Some(Self::top(self.kind)),
            (Some(g), Some(_)) => Some(Self { kind: self.kind, group: Some(g.clone()), code: None }),
        }
    }

    /// True when `endpoint` offers this service.
    pub fn served_by(&self, endpoint: &Endpoint) -> bool {
        if endpoint.kind != self.kind {
            return false;
        }
        match (&self.group, &self.code) {
            (None, _) => true,
            (Some(g), code) => endpoint
                .services
                .iter()
                .any(|s| group_label(s) == *g && code.as_ref().is_none_or(|c| label(&s.service_code) == *c)),
        }
    }

    /// Every URN `endpoint` serves: its top level, each group and each code.
    pub fn all_of(endpoint: &Endpoint) -> Vec<Self> {
        let mut out = vec![Self::top(endpoint.kind)];
        for s in &endpoint.services {
            let g = group_label(s);
            out.push(Self { kind: endpoint.kind, group: Some(g.clone()), code: None });
            out.push(Self { kind: endpoint.kind, group: Some(g), code: Some(label(&s.service_code)) });
        }
        out
    }
}

/// The group label of a service (`ungrouped` without a group).
pub fn group_label(s: &Service) -> String {
    match s.group.as_deref().map(str::trim) {
        Some(g) if !g.is_empty() => label(g),
        _ => UNGROUPED.to_owned(),
    }
}

/// True for an RFC 5031 label: ASCII lowercase letters and digits, with
/// hyphens inside only.
pub fn is_label(l: &str) -> bool {
    !l.is_empty()
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// ASCII spelling of common Latin letters with diacritics.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' | 'ă' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' | 'ė' => "e",
        'ğ' | 'ģ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ķ' => "k",
        'ł' | 'ľ' | 'ĺ' | 'ļ' => "l",
        'ñ' | 'ń' | 'ň' | 'ņ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ř' => "r",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'ß' => "ss",
        'ť' | 'ţ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ž' | 'ż' => "z",
        _ => return None,
    })
}

/// 32-bit FNV-1a, for the fallback label of names with no ASCII letter.
fn fnv32(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Normalises an Open311 group name or service code to one URN label:
/// lowercase; common Latin diacritics folded to ASCII (`ß` → `ss`, `é` →
/// `e`); every run of other characters becomes one `-`; leading and trailing
/// hyphens dropped. A name left empty (say, all CJK) becomes `x-` and the
/// 8-hex-digit FNV-1a hash of the original, so it still has a stable label.
pub fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hyphen = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        let piece: Option<std::borrow::Cow<'static, str>> = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            Some(c.to_string().into())
        } else {
            fold(c).map(Into::into)
        };
        match piece {
            Some(p) => {
                if hyphen && !out.is_empty() {
                    out.push('-');
                }
                hyphen = false;
                out.push_str(&p);
            }
            None => hyphen = true,
        }
    }
    if out.is_empty() {
        format!("x-{:08x}", fnv32(s))
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_rfc5031_labels() {
        for (raw, want) in [
            ("Streets", "streets"),
            ("Street Lights & Signals", "street-lights-signals"),
            ("  Trash / Recycling  ", "trash-recycling"),
            ("001", "001"),
            ("POTHOLE_REPAIR", "pothole-repair"),
            ("Straßenschäden", "strassenschaden"),
            ("Élagage", "elagage"),
            ("--a--b--", "a-b"),
        ] {
            assert_eq!(label(raw), want, "{raw}");
            assert!(is_label(want));
        }
        let cjk = label("道路");
        assert!(cjk.starts_with("x-") && cjk.len() == 10 && is_label(&cjk), "{cjk}");
        assert_eq!(label("道路"), cjk, "stable");
        assert_ne!(label("公園"), cjk);
    }

    #[test]
    fn urns_parse_case_insensitively_and_print_back() {
        let u = ServiceUrn::parse(" URN:Service:Open311.Streets.001 ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.to_string(), "urn:service:open311.streets.001");
        assert_eq!(u.parent().map(|p| p.to_string()).as_deref(), Some("urn:service:open311.streets"));
        assert_eq!(ServiceUrn::parse("urn:service:open311-test").map(|u| u.kind), Ok(EndpointType::Test));
        assert!(matches!(ServiceUrn::parse("urn:service:sos.police"), Err(UrnError::Unknown(_))));
        assert!(matches!(ServiceUrn::parse("urn:service:open311.a.b.c"), Err(UrnError::Unknown(_))));
        assert!(matches!(ServiceUrn::parse("http://example.org/"), Err(UrnError::Malformed(_))));
        assert!(matches!(ServiceUrn::parse("urn:service:open311..x"), Err(UrnError::Malformed(_))));
        assert!(matches!(ServiceUrn::parse("urn:service:open311.bad_label"), Err(UrnError::Malformed(_))));
    }
}
