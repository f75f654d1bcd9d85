//! LoST errors (RFC 5222 section 13.1), rendered as an `<errors>` document.

use super::xml::{token, Writer, LOST_NS};

/// A LoST error answer. Each variant is one element of the schema's
/// exception container, except [`LostError::SrsInvalid`]: RFC 5222 section
/// 13.1 names `SRSInvalid`, but the schema (section 15) has no such element,
/// so it is sent as `<locationInvalid>` with a message starting `SRSInvalid:`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LostError {
    /// The request is not well-formed XML, not a LoST request, or breaks the schema.
    #[error("{0}")]
    BadRequest(String),
    /// No `<location>` of the request has a profile this server speaks.
    #[error("location profile {} not understood; this server speaks geodetic-2d", .profiles.join(", "))]
    LocationProfileUnrecognized {
        /// The profiles sent.
        profiles: Vec<String>,
    },
    /// The location is malformed or out of range.
    #[error("{0}")]
    LocationInvalid(String),
    /// The `srsName` is missing or not WGS 84 2D.
    #[error("SRSInvalid: {0}")]
    SrsInvalid(String),
    /// No mapping for this service here, or no such boundary key.
    #[error("{0}")]
    NotFound(String),
    /// The service URN is not one of ours.
    #[error("{0}")]
    ServiceNotImplemented(String),
    /// This server is already on the request's path.
    #[error("{0}")]
    Loop(String),
    /// Anything that went wrong on our side.
    #[error("{0}")]
    InternalError(String),
}

impl LostError {
    /// The schema element this error is sent as.
    pub fn element(&self) -> &'static str {
        match self {
            LostError::BadRequest(_) => "badRequest",
            LostError::LocationProfileUnrecognized { .. } => "locationProfileUnrecognized",
            LostError::LocationInvalid(_) | LostError::SrsInvalid(_) => "locationInvalid",
            LostError::NotFound(_) => "notFound",
            LostError::ServiceNotImplemented(_) => "serviceNotImplemented",
            LostError::Loop(_) => "loop",
            LostError::InternalError(_) => "internalError",
        }
    }

    /// The `<errors>` document, with `source` naming this server.
    pub fn to_xml(&self, source: &str) -> String {
        let mut w = Writer::new();
        w.open("errors", &[("xmlns", LOST_NS), ("source", source)]);
        write_exception(&mut w, self);
        w.finish()
    }
}

/// Writes one exception element (used by `<errors>` and `<warnings>`).
pub fn write_exception(w: &mut Writer, e: &LostError) {
    let message = token(&e.to_string());
    let mut attrs: Vec<(&str, &str)> = Vec::with_capacity(3);
    let profiles;
    if let LostError::LocationProfileUnrecognized { profiles: p } = e {
        profiles = if p.is_empty() { "unknown".to_owned() } else { p.join(" ") };
        attrs.push(("unsupportedProfiles", &profiles));
    }
    if !message.is_empty() {
        attrs.push(("message", &message));
        attrs.push(("xml:lang", "en"));
    }
    w.empty(e.element(), &attrs);
}
