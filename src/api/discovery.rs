//! `GET /discovery.json?lat&lon` and `GET /discovery.xml?lat&lon`: an Open311
//! Service Discovery document (<http://wiki.open311.org/Service_Discovery>)
//! listing every endpoint that serves the location, across all tiers.
//!
//! The standard fields (`changeset`, `contact`, `key_service`, and per
//! endpoint `specification`, `url`, `changeset`, `type`, `formats`) are
//! filled as the spec describes; a client that knows only the spec reads it
//! as one city's document. Extensions, which such a client ignores: each
//! endpoint's `jurisdiction` (id, name, tier, how it matched), its
//! `jurisdiction_id` parameter, and its own `contact` and `key_service`.
//!
//! - `changeset`: the latest change among the listed endpoints (their own
//!   `changeset` when the jurisdiction gave one, else the record's
//!   `last_updated`);
//! - `contact` / `key_service`: the endpoints' own value when they all share
//!   one, otherwise a sentence pointing to the per-endpoint values.
//!
//! Endpoints of both types are listed unless `type=production|test`;
//! `tier`, `within` and `nearest` work as on `/v1/resolve`.

use super::cache;
use super::locate::{self, Hit, MatchKind};
use super::services::TypeFilter;
use crate::error::{ApiError, Query};
use crate::lost::xml::escape;
use crate::model::{Endpoint, EndpointType, Tier};
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use std::fmt::Write;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/discovery.json", get(discovery_json)).route("/discovery.xml", get(discovery_xml))
}

/// The Service Discovery document of one location.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Discovery<'a> {
    /// Latest change among the endpoints listed.
    pub changeset: Option<&'a str>,
    /// Who to contact.
    pub contact: String,
    /// Where to get an API key.
    pub key_service: Option<String>,
    /// The endpoints.
    pub endpoints: Vec<DiscoveryEndpoint<'a>>,
}

/// One endpoint of a discovery document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DiscoveryEndpoint<'a> {
    /// Specification URL.
    pub specification: &'a str,
    /// Base URL.
    pub url: &'a str,
    /// When its description last changed.
    pub changeset: &'a str,
    /// `production` or `test`.
    #[serde(rename = "type")]
    pub kind: EndpointType,
    /// MIME types.
    pub formats: &'a [String],
    /// Extension: the `jurisdiction_id` parameter to send.
    pub jurisdiction_id: Option<&'a str>,
    /// Extension: its own contact.
    pub contact: Option<&'a str>,
    /// Extension: its own key service.
    pub key_service: Option<&'a str>,
    /// Extension: the jurisdiction it belongs to.
    pub jurisdiction: DiscoveryJurisdiction<'a>,
}

/// The jurisdiction of a discovery endpoint (extension).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DiscoveryJurisdiction<'a> {
    /// Id.
    pub id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Tier.
    pub tier: Tier,
    /// How it matched the location.
    #[serde(rename = "match")]
    pub kind: MatchKind,
}

/// The value every item shares (`Some` only when all of them hold the same
/// non-empty value); `None` when they differ or some have none.
fn shared<'a>(mut values: impl Iterator<Item = Option<&'a str>>) -> Option<&'a str> {
    let first = values.next()??;
    values.all(|v| v == Some(first)).then_some(first)
}

/// Builds the document for the hits of a location.
pub fn document<'a>(hits: &'a [Hit<'a>], kind: TypeFilter) -> Discovery<'a> {
    let mut endpoints = Vec::new();
    for hit in hits {
        let r = &hit.entry.record;
        let mut list: Vec<&Endpoint> = hit.entry.endpoints.iter().filter(|e| kind.admits(e)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        for e in list {
            endpoints.push((
                e,
                DiscoveryEndpoint {
                    specification: &e.specification,
                    url: &e.url,
                    changeset: e.changeset.as_deref().unwrap_or(&e.updated_at),
                    kind: e.kind,
                    formats: &e.formats,
                    jurisdiction_id: e.open311_jurisdiction_id.as_deref(),
                    contact: e.contact.as_deref(),
                    key_service: e.key_service.as_deref(),
                    jurisdiction: DiscoveryJurisdiction { id: &r.id, name: &r.name, tier: r.tier, kind: hit.kind },
                },
            ));
        }
    }
    let changeset = endpoints.iter().map(|(_, d)| d.changeset).max();
    let jurisdictions = {
        let mut ids: Vec<&str> = endpoints.iter().map(|(_, d)| d.jurisdiction.id).collect();
        ids.dedup();
        ids.len()
    };
    let contact = match shared(endpoints.iter().map(|(e, _)| e.contact.as_deref())) {
        Some(c) => c.to_owned(),
        None if endpoints.is_empty() => "No registered Open311 endpoint serves this location.".to_owned(),
        None => format!(
            "The endpoints listed belong to {jurisdictions} jurisdiction(s) with their own contacts; \
             see each endpoint's contact."
        ),
    };
    let key_service =
        shared(endpoints.iter().map(|(e, _)| e.key_service.as_deref())).map(str::to_owned).or_else(|| {
            endpoints
                .iter()
                .any(|(e, _)| e.key_service.is_some())
                .then(|| "API keys are issued per endpoint; see each endpoint's key_service.".to_owned())
        });
    Discovery { changeset, contact, key_service, endpoints: endpoints.into_iter().map(|(_, d)| d).collect() }
}

/// The document in the XML form of the Service Discovery spec.
pub fn to_xml(d: &Discovery<'_>) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<discovery>\n");
    let el = |x: &mut String, indent: &str, name: &str, v: &str| {
        let _ = writeln!(x, "{indent}<{name}>{}</{name}>", escape(v));
    };
    if let Some(c) = d.changeset {
        el(&mut x, "  ", "changeset", c);
    }
    el(&mut x, "  ", "contact", &d.contact);
    if let Some(k) = &d.key_service {
        el(&mut x, "  ", "key_service", k);
    }
    x.push_str("  <endpoints>\n");
    for e in &d.endpoints {
        x.push_str("    <endpoint>\n");
        let i = "      ";
        el(&mut x, i, "specification", e.specification);
        el(&mut x, i, "url", e.url);
        el(&mut x, i, "changeset", e.changeset);
        el(&mut x, i, "type", e.kind.as_str());
        x.push_str("      <formats>\n");
        for f in e.formats {
            el(&mut x, "        ", "format", f);
        }
        x.push_str("      </formats>\n");
        if let Some(j) = e.jurisdiction_id {
            el(&mut x, i, "jurisdiction_id", j);
        }
        if let Some(c) = e.contact {
            el(&mut x, i, "contact", c);
        }
        if let Some(k) = e.key_service {
            el(&mut x, i, "key_service", k);
        }
        let j = &e.jurisdiction;
        let kind = match j.kind {
            MatchKind::Exact => "exact",
            MatchKind::Near => "near",
            MatchKind::Nearest => "nearest",
        };
        let _ = writeln!(
            x,
            "{i}<jurisdiction id=\"{}\" tier=\"{}\" match=\"{kind}\">{}</jurisdiction>",
            escape(j.id),
            j.tier,
            escape(j.name)
        );
        x.push_str("    </endpoint>\n");
    }
    x.push_str("  </endpoints>\n</discovery>\n");
    x
}

async fn discovery(
    state: AppState,
    headers: HeaderMap,
    q: Vec<(String, String)>,
    xml: bool,
) -> Result<Response, ApiError> {
    let (loc, opts) = locate::query(&q, &state)?;
    let kind = match super::params::single(&q, "type")? {
        None => TypeFilter::All,
        Some(_) => TypeFilter::parse(&q)?,
    };
    let snapshot = state.index.current();
    let hits = locate::locate(&snapshot, loc, &opts, &state.settings);
    let etag = locate::etag(if xml { "discovery.xml" } else { "discovery.json" }, &hits);
    let content_type = if xml { "application/xml; charset=utf-8" } else { "application/json" };
    cache::respond(&state, &headers, &etag, content_type, || {
        let doc = document(&hits, kind);
        if xml {
            Ok(to_xml(&doc).into_bytes())
        } else {
            serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.to_string()))
        }
    })
}

/// The query parameters of `/discovery.{json,xml}` besides the location ones (OpenAPI only).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiscoveryParams {
    /// Which endpoints: `production`, `test` or `all` (the default: both types).
    #[param(rename = "type", pattern = "^ *(production|test|all) *$")]
    pub kind: Option<String>,
}

/// An Open311 Service Discovery document listing every endpoint serving a point.
#[utoipa::path(
    get,
    path = "/discovery.json",
    tag = "public",
    operation_id = "discovery_json",
    params(super::params::LocationParams, DiscoveryParams),
    responses(
        (status = 200, description = "The Service Discovery document", body = Discovery),
        (status = 304, description = "`If-None-Match` matched the answer's ETag"),
        (status = 400, description = "A parameter is wrong; `field` names it"),
    )
)]
pub(crate) async fn discovery_json(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    discovery(state, headers, q, false).await
}

/// The same document in the XML form of the Service Discovery spec.
#[utoipa::path(
    get,
    path = "/discovery.xml",
    tag = "public",
    operation_id = "discovery_xml",
    params(super::params::LocationParams, DiscoveryParams),
    responses(
        (status = 200, description = "The Service Discovery document as XML (`<discovery>`)", body = String, content_type = "application/xml; charset=utf-8"),
        (status = 304, description = "`If-None-Match` matched the answer's ETag"),
        (status = 400, description = "A parameter is wrong; `field` names it"),
    )
)]
pub(crate) async fn discovery_xml(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    discovery(state, headers, q, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_only_when_every_endpoint_holds_the_same_value() {
        assert_eq!(shared([Some("a"), Some("a")].into_iter()), Some("a"));
        assert_eq!(shared([Some("a"), None].into_iter()), None);
        assert_eq!(shared([Some("a"), Some("b")].into_iter()), None);
        assert_eq!(shared([None, None].into_iter()), None);
        assert_eq!(shared(std::iter::empty()), None);
    }
}
