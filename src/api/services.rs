//! `GET /v1/services?lat&lon`: the merged multi-tier service list of a
//! location, for aggregators. Every service of every endpoint (production
//! only by default) of every jurisdiction serving the point, each with its
//! provenance: which jurisdiction (id, name, tier, how it matched) and which
//! endpoint (id, base URL, the `jurisdiction_id` parameter to send).
//!
//! Order: jurisdictions in the order `/v1/resolve` gives them (tier, larger
//! area first, id; then near misses), then endpoints by id, then services in
//! the order their server lists them.
//!
//! Filters: `tier`, `within`, `nearest` as on `/v1/resolve`; `q` (a
//! case-insensitive substring of the code, name, description or a keyword);
//! `group` (case-insensitive, exact); `type=production|test|all`.

use super::cache;
use super::locate::{self, Hit, MatchKind};
use super::params::{self, Location};
use crate::error::{ApiError, Query};
use crate::model::{Endpoint, EndpointType, Service, Tier};
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/services", get(services))
}

/// Which endpoints a query wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFilter {
    /// Production endpoints only (the default).
    Production,
    /// Test endpoints only.
    Test,
    /// Both.
    All,
}

impl TypeFilter {
    /// Reads `type` from a query (default `production`).
    pub fn parse(q: &[(String, String)]) -> Result<Self, ApiError> {
        match params::single(q, "type")?.map(str::trim) {
            None | Some("production") => Ok(Self::Production),
            Some("test") => Ok(Self::Test),
            Some("all") => Ok(Self::All),
            Some(other) => Err(ApiError::field(
                "type",
                format!("`type` must be production, test or all, got `{}`", other.escape_debug()),
            )),
        }
    }

    /// Whether an endpoint passes.
    pub fn admits(self, e: &Endpoint) -> bool {
        match self {
            Self::Production => e.kind == EndpointType::Production,
            Self::Test => e.kind == EndpointType::Test,
            Self::All => true,
        }
    }
}

/// The jurisdiction a service comes from.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ServiceJurisdiction)]
pub(crate) struct JurisdictionRef<'a> {
    /// Jurisdiction id.
    id: &'a str,
    /// Its name.
    name: &'a str,
    /// Its tier.
    tier: Tier,
    /// How it matched the location.
    #[serde(rename = "match")]
    kind: MatchKind,
    /// Geodesic metres to its boundary, for `near` and `nearest` matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_m: Option<f64>,
}

/// The endpoint a service is offered on.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ServiceEndpoint)]
pub(crate) struct EndpointRef<'a> {
    /// Endpoint id.
    id: &'a str,
    /// Base URL of the GeoReport v2 API.
    url: &'a str,
    /// `production` or `test`.
    #[serde(rename = "type")]
    kind: EndpointType,
    /// Specification URL.
    specification: &'a str,
    /// The `jurisdiction_id` parameter to send with GeoReport v2 calls.
    jurisdiction_id: Option<&'a str>,
    /// MIME types the server answers in.
    formats: &'a [String],
    /// RFC 3339 time of the endpoint record's last change.
    last_updated: &'a str,
}

/// A service with its provenance.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ServiceItem<'a> {
    /// The GeoReport v2 service.
    #[serde(flatten)]
    service: &'a Service,
    /// Where it comes from.
    jurisdiction: JurisdictionRef<'a>,
    /// Which endpoint offers it.
    endpoint: EndpointRef<'a>,
}

/// The merged service list of a location.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ServicesAnswer)]
pub(crate) struct Answer<'a> {
    /// The point asked about.
    location: Location,
    /// The registry's change-log sequence number the answer was computed from.
    index_version: i64,
    /// Until when this answer may be cached (RFC 3339).
    expires: String,
    /// Number of services.
    count: usize,
    /// The services, in answer order.
    services: Vec<ServiceItem<'a>>,
}

/// The query parameters of `/v1/services` besides the location ones (OpenAPI only).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServicesParams {
    /// Case-insensitive substring of the code, name, description or a keyword.
    pub q: Option<String>,
    /// Only services of this group (case-insensitive).
    pub group: Option<String>,
    /// Which endpoints: `production` (the default), `test` or `all`.
    #[param(rename = "type", pattern = "^ *(production|test|all) *$")]
    pub kind: Option<String>,
}

/// Whether a service matches the `q` needle (already lower-case).
fn matches_text(s: &Service, needle: &str) -> bool {
    let has = |t: &str| t.to_lowercase().contains(needle);
    has(&s.service_code)
        || has(&s.service_name)
        || s.description.as_deref().is_some_and(has)
        || s.keywords.iter().any(|k| has(k))
}

fn items<'a>(hits: &'a [Hit<'a>], kind: TypeFilter, q: Option<&str>, group: Option<&str>) -> Vec<ServiceItem<'a>> {
    let mut out = Vec::new();
    for hit in hits {
        let r = &hit.entry.record;
        let mut endpoints: Vec<&Endpoint> = hit.entry.endpoints.iter().filter(|e| kind.admits(e)).collect();
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        for e in endpoints {
            for s in &e.services {
                if q.is_some_and(|n| !matches_text(s, n)) {
                    continue;
                }
                if group.is_some_and(|g| s.group.as_deref().is_none_or(|sg| sg.to_lowercase() != g)) {
                    continue;
                }
                out.push(ServiceItem {
                    service: s,
                    jurisdiction: JurisdictionRef {
                        id: &r.id,
                        name: &r.name,
                        tier: r.tier,
                        kind: hit.kind,
                        distance_m: (hit.kind != MatchKind::Exact).then(|| locate::round_m(hit.distance_m)),
                    },
                    endpoint: EndpointRef {
                        id: &e.id,
                        url: &e.url,
                        kind: e.kind,
                        specification: &e.specification,
                        jurisdiction_id: e.open311_jurisdiction_id.as_deref(),
                        formats: &e.formats,
                        last_updated: &e.updated_at,
                    },
                });
            }
        }
    }
    out
}

/// Every service of every endpoint of every jurisdiction serving a point.
#[utoipa::path(
    get,
    path = "/v1/services",
    tag = "public",
    operation_id = "services",
    params(super::params::LocationParams, ServicesParams),
    responses(
        (status = 200, description = "The merged service list", body = Answer),
        (status = 304, description = "`If-None-Match` matched the answer's ETag"),
        (status = 400, description = "A parameter is wrong; `field` names it"),
    )
)]
pub(crate) async fn services(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (loc, opts) = locate::query(&q, &state)?;
    let kind = TypeFilter::parse(&q)?;
    let needle = params::single(&q, "q")?.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let group = params::single(&q, "group")?.map(|s| s.trim().to_lowercase());
    let snapshot = state.index.current();
    let hits = locate::locate(&snapshot, loc, &opts, &state.settings);
    let etag = locate::etag("services", &hits);
    cache::respond(&state, &headers, &etag, "application/json", || {
        let services = items(&hits, kind, needle.as_deref(), group.as_deref());
        let answer = Answer {
            location: loc,
            index_version: snapshot.version(),
            expires: cache::expires(&state),
            count: services.len(),
            services,
        };
        serde_json::to_vec(&answer).map_err(|e| ApiError::Internal(e.to_string()))
    })
}
