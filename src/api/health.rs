//! `GET /healthz` (the process answers) and `GET /readyz` (the index is
//! loaded and the store answers; reports versions and lag).

use crate::error::Json;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The answer of `/healthz` (OpenAPI schema; the handler builds it with `json!`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthAnswer {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    pub status: String,
}

/// The answer of `/readyz` (OpenAPI schema; the handler builds it with `json!`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` (200); `loading` (503: the first snapshot is not loaded yet) or
    /// `stale` (503: the store does not answer; the last snapshot still serves reads).
    #[schema(pattern = "^(ready|loading|stale)$")]
    pub status: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The version of the snapshot answering queries.
    pub index_version: i64,
    /// The store's latest change-log sequence number (absent when `stale`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_seq: Option<i64>,
    /// How far the snapshot is behind the store (only when `ready`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub lag: Option<i64>,
    /// Snapshot counts (when `ready` or `stale`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<crate::index::SnapshotStats>,
    /// Why the instance is `stale`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "The process is up", body = HealthAnswer))
)]
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The index is loaded and the store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: loading, or the store does not answer (`stale`)", body = Readiness),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let snapshot = state.index.current();
    let stats = snapshot.stats();
    let store_seq = match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.latest_seq()).await {
        Ok(Ok(seq)) => Ok(seq),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("store did not answer within 2 s".to_owned()),
    };
    let loaded = state.ready.load(std::sync::atomic::Ordering::Acquire);
    let (status, body) = match store_seq {
        Ok(seq) if loaded => (
            StatusCode::OK,
            json!({
                "status": "ready",
                "backend": state.store.backend(),
                "index_version": snapshot.version(),
                "store_seq": seq,
                "lag": (seq - snapshot.version()).max(0),
                "index": stats,
            }),
        ),
        Ok(seq) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "loading", "backend": state.store.backend(), "store_seq": seq, "index_version": snapshot.version()}),
        ),
        Err(reason) => {
            tracing::warn!(%reason, "readiness: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "stale", "reason": "store unreachable: answering from the last snapshot", "backend": state.store.backend(), "index_version": snapshot.version(), "index": stats}),
            )
        }
    };
    (status, Json(body)).into_response()
}
