//! The one HTTP error type, [`ApiError`], rendered as RFC 9457
//! `application/problem+json` with a stable `code` and, where one input is at
//! fault, the `field` that names it. Every extractor rejection and every
//! lower-layer error is mapped here, once.

use crate::store::StoreError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer. Each variant documents its status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: a parameter or body field is missing or wrong.
    #[error("{detail}")]
    BadRequest {
        /// Stable machine-readable code, e.g. `invalid_parameter`.
        code: &'static str,
        /// What is wrong, for humans.
        detail: String,
        /// The parameter or JSON path at fault.
        field: Option<String>,
    },
    /// 404: no such record or route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 401 or 403 (500 for key problems): the token is missing, invalid or lacks a scope.
    /// Sent with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthError),
    /// 409: the write conflicts with existing data.
    #[error("{0}")]
    Conflict(String),
    /// 412: an `If-Match` precondition failed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the body is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: the store or index is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: too many requests in flight, or the request ran out of time.
    #[error("{detail}")]
    Overloaded {
        /// What happened.
        detail: String,
        /// Seconds after which a retry is reasonable.
        retry_after: u64,
    },
    /// 429 with `Retry-After`: this client sent more requests than the rate limit allows.
    #[error("too many requests from this client; retry after {retry_after} s")]
    RateLimited {
        /// Seconds until the next request is allowed.
        retry_after: u64,
    },
    /// 431: the request headers are larger than allowed.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 500: a bug or an unexpected failure; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest { code: "invalid_parameter", detail: detail.into(), field: Some(field.into()) }
    }

    /// A 400 for a required parameter that is absent.
    pub fn missing(field: &str) -> Self {
        ApiError::BadRequest {
            code: "missing_parameter",
            detail: format!("required parameter `{field}` is missing"),
            field: Some(field.to_owned()),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Auth(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED),
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Auth(e) => e.code(),
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// The body of every error answer (RFC 9457 problem details), sent as
/// `application/problem+json`. The OpenAPI document's `Problem` schema is
/// generated from this type.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct Problem<'a> {
    /// `urn:geowebdns:problem:` followed by `code`.
    #[serde(rename = "type")]
    #[schema(example = "urn:geowebdns:problem:invalid_parameter")]
    pub kind: String,
    /// The HTTP reason phrase of `status`.
    #[schema(example = "Bad Request")]
    pub title: &'a str,
    /// The HTTP status code.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong, for humans.
    pub detail: String,
    /// Stable machine-readable code, e.g. `invalid_parameter`, `not_found`, `token_expired`.
    #[schema(example = "invalid_parameter")]
    pub code: &'a str,
    /// The parameter, header or JSON path at fault (400 answers only), e.g. `lat` or `points[3].lat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } => field.as_deref(),
            _ => None,
        };
        let code = self.code();
        let body = Problem {
            kind: format!("urn:geowebdns:problem:{code}"),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail: self.to_string(),
            code,
            field,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let www_authenticate = match &self {
            ApiError::Auth(e) => e.www_authenticate(),
            _ => None,
        };
        let mut res = (status, bytes).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(v) = www_authenticate {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        if let ApiError::Overloaded { retry_after, .. } | ApiError::RateLimited { retry_after } = &self {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => ApiError::NotFound(format!("{entity} `{id}` not found")),
            StoreError::Conflict(detail) => ApiError::Conflict(detail),
            e @ StoreError::Stale { .. } => ApiError::PreconditionFailed(format!(
                "{e}; read the record again (its ETag is its version) and retry with the new If-Match"
            )),
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed) => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::Unavailable("the registry store is unavailable; try again shortly".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(r.body_text()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::UnsupportedMediaType("expected a body with `Content-Type: application/json`".into())
            }
            _ => ApiError::BadRequest { code: "invalid_body", detail: r.body_text(), field: json_path(&r.body_text()) },
        }
    }
}

/// Pulls the JSON path serde reports (`points[3].lat: ...`) out of a rejection text.
fn json_path(text: &str) -> Option<String> {
    let rest = text.split_once("target type: ").map(|(_, r)| r)?;
    let (path, _) = rest.split_once(": ")?;
    (!path.contains(' ') && !path.is_empty() && path != ".").then(|| path.to_owned())
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest { code: "invalid_query", detail: r.body_text(), field: None }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest { code: "invalid_path", detail: r.body_text(), field: None }
    }
}

/// `axum::Json` whose rejections are problem responses.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections are problem responses.
#[derive(Debug, Clone, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` whose rejections are problem responses.
#[derive(Debug, Clone, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_json_paths_in_serde_messages() {
        assert_eq!(
            json_path("Failed to deserialize the JSON body into the target type: points[3].lat: invalid type: string \"x\", expected f64 at line 1 column 40").as_deref(),
            Some("points[3].lat")
        );
        assert_eq!(json_path("Failed to parse the request body as JSON: EOF while parsing"), None);
    }
}
