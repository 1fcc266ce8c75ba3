//! Probes, `/metrics` and the fallbacks.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::router::AppState;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// `GET /readyz`: 200 while a valid bundle is loaded, else 503.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let model = state.store.current().ok_or(ApiError::NotReady)?;
    Ok(Json(json!({
        "status": "ready",
        "model": {"name": model.manifest.name, "version": model.version()},
    })))
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Any unknown route.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// A known route with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
