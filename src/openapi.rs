//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! It is generated from the code with utoipa: every handler carries a
//! `#[utoipa::path]` annotation and every request and answer type derives
//! `ToSchema` (answers built with `json!` have a describing type next to their
//! handler, checked against real answers in `tests/openapi.rs`). [`ApiDoc`]
//! lists the handlers; `tests/openapi.rs` checks that every route registered
//! in the router appears in the document and the other way round.
//!
//! Cross-cutting answers are added to every operation here, once, by
//! [`CommonResponses`]: every error answer is `application/problem+json`
//! ([`crate::error::Problem`]); every operation may be refused with 429
//! (`--rate-limit`, public routes), 431 (headers too large) and 503
//! (overloaded or timed out); JSON bodies may be refused with 400, 413 and
//! 415; admin operations with 401 and 403.
//!
//! The web console under `/admin/` (HTML, scripts and styles) is not part of
//! the API and is not described.

use crate::error::PROBLEM_JSON;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Response as OaResponse, ResponseBuilder};
use utoipa::OpenApi;

/// The document: every documented handler, the shared schemas, the bearer
/// security scheme and the common error answers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "geowebdns",
        description = "GeoWebDNS for Open311: which jurisdictions (country, state, county, city, special districts) serve a location, with their Open311 endpoints and services. Every error is an RFC 9457 `application/problem+json` body with a stable `code` and, when one input is at fault, the `field` naming it.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        crate::api::resolve::resolve_one,
        crate::api::resolve::resolve_many,
        crate::api::services::services,
        crate::api::discovery::discovery_json,
        crate::api::discovery::discovery_xml,
        crate::api::changes::changes,
        crate::api::jurisdictions::list,
        crate::api::jurisdictions::one,
        crate::api::jurisdictions::boundary,
        crate::api::health::healthz,
        crate::api::health::readyz,
        crate::lost::lost,
        openapi_json,
        crate::metrics::serve,
        crate::admin::whoami,
        crate::admin::create_jurisdiction,
        crate::admin::get_jurisdiction,
        crate::admin::patch_jurisdiction,
        crate::admin::delete_jurisdiction,
        crate::admin::list_endpoints,
        crate::admin::create_endpoint,
        crate::admin::get_endpoint,
        crate::admin::patch_endpoint,
        crate::admin::delete_endpoint,
        crate::admin::harvest_now,
        crate::admin::replace_services,
        crate::admin::upsert_service,
        crate::admin::delete_service,
        crate::admin::bulk_import,
        crate::admin::audit,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&CommonResponses),
    tags(
        (name = "public", description = "Unauthenticated lookups"),
        (name = "health", description = "Liveness and readiness"),
        (name = "lost", description = "LoST (RFC 5222) over XML"),
        (name = "meta", description = "This document"),
        (name = "admin", description = "Registry writes; a bearer token (`geowebdns token issue`) with the `admin` or a `jurisdiction:ID` scope"),
    )
)]
pub struct ApiDoc;

/// Adds the security scheme and the answers every operation shares (see the module docs).
pub struct CommonResponses;

fn problem(description: &str) -> OaResponse {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .build()
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(problem(description)));
}

impl utoipa::Modify for CommonResponses {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An EdDSA-signed token from `geowebdns token issue`"))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let admin = path.starts_with("/admin/");
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                let json_body = op
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.keys().any(|k| k.starts_with("application/json")));
                if json_body {
                    add(
                        op,
                        "400",
                        "The body is not valid JSON of the expected shape; `field` names the member at fault",
                    );
                    add(op, "413", "The body is larger than `--max-body-bytes`");
                    add(op, "415", "The body is not sent as `application/json`");
                }
                if admin {
                    add(op, "401", "No valid, unexpired, unrevoked bearer token (`WWW-Authenticate: Bearer`)");
                    add(op, "403", "The token lacks the scope this operation needs");
                    add(op, "413", "The body is larger than `--max-body-bytes`");
                } else if path != "/lost" {
                    add(op, "429", "This client sent more requests than `--rate-limit` allows (`Retry-After`)");
                }
                add(op, "431", "The request headers are larger than `--max-header-bytes`");
                add(
                    op,
                    "503",
                    "Overloaded or out of time (`overloaded`, with `Retry-After`), the store is unavailable, \
                     or (admin routes) the admin API is not configured",
                );
                // Every error answer is a problem document, whatever the operation listed.
                for (status, response) in op.responses.responses.iter_mut() {
                    let error = status.starts_with('4') || status.starts_with('5');
                    if let (true, RefOr::T(r)) = (error, response) {
                        r.content.entry(PROBLEM_JSON.to_owned()).or_insert_with(|| {
                            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build()
                        });
                    }
                }
            }
        }
    }
}

/// The document, generated once.
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document a server serves: [`document`], without `GET /metrics` when
/// the server runs with `--metrics false` (it does not route it then).
fn served_document(metrics: bool) -> Document {
    let mut doc = document().clone();
    if !metrics {
        doc.paths.paths.shift_remove("/metrics");
    }
    doc
}

/// The served document as JSON bytes, rendered once for each `--metrics`.
fn document_json(metrics: bool) -> &'static [u8] {
    static WITH_METRICS: OnceLock<Vec<u8>> = OnceLock::new();
    static WITHOUT_METRICS: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = if metrics { &WITH_METRICS } else { &WITHOUT_METRICS };
    cell.get_or_init(|| serde_json::to_vec(&served_document(metrics)).unwrap_or_else(|_| b"{}".to_vec()))
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
async fn openapi_json(State(state): State<AppState>) -> Response {
    let json = document_json(state.settings.metrics);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json).into_response()
}

/// The route serving the document.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}
