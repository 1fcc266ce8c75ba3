//! `GET /v1/model`: what is being served.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::router::AppState;

/// Name, version, kind, calibration, evaluation metrics, load time and reload counts.
pub async fn model_info(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let model = state.store.current().ok_or(ApiError::NotReady)?;
    let manifest = &model.manifest;
    let preprocessor = model.scorer.preprocessor();
    let features: Vec<&str> = (0..preprocessor.width())
        .map(|i| preprocessor.feature_name(i))
        .collect();
    Ok(Json(json!({
        "name": manifest.name,
        "version": manifest.version,
        "kind": manifest.kind,
        "created": manifest.created,
        "threshold": manifest.threshold,
        "threshold_percentile": manifest.threshold_percentile,
        "deny_percentile": model.scorer.calibration().deny_percentile,
        "features": features,
        "metrics": manifest.metrics,
        "training": manifest.training,
        "loaded_at": model.loaded_at.to_rfc3339(),
        "sessions": model.scorer.model().session_count(),
        "golden_parity": model.parity,
        "reloads": {"ok": state.store.reloads_ok(), "failed": state.store.reloads_failed()},
    })))
}
