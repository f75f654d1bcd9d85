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

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
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
