//! `POST /admin/reload`: re-scan the model root now.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::bundle::{ReloadOutcome, ReloadTrigger};
use crate::http::error::ApiError;
use crate::http::router::AppState;

/// Needs `Authorization: Bearer <token>` (the scheme in any case, as RFC 9110 has it).
/// Without a configured token the route answers 404, as if it did not exist.
pub async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let token = state.admin_token.as_ref().ok_or(ApiError::NotFound)?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token);
    if !presented.is_some_and(|presented| token.matches(presented.trim())) {
        return Err(ApiError::Unauthorized);
    }

    let store = state.store.clone();
    let outcome = tokio::task::spawn_blocking(move || store.reload(ReloadTrigger::Admin))
        .await
        .map_err(|err| ApiError::Internal(format!("reload task failed: {err}")))?;
    let rejected_json = |rejected: &[(u64, String)]| -> Vec<Value> {
        rejected
            .iter()
            .map(|(version, reason)| json!({"version": version, "reason": reason}))
            .collect()
    };
    match outcome {
        Ok(ReloadOutcome::Swapped {
            previous,
            version,
            rejected,
        }) => Ok(Json(json!({
            "status": "reloaded",
            "version": version,
            "previous_version": previous,
            "rejected": rejected_json(&rejected),
        }))),
        Ok(ReloadOutcome::Unchanged { version, rejected }) if rejected.is_empty() => {
            Ok(Json(json!({"status": "unchanged", "version": version})))
        }
        Ok(ReloadOutcome::Unchanged { rejected, .. }) => Err(ApiError::ReloadRejected(
            rejected
                .iter()
                .map(|(version, reason)| format!("version {version}: {reason}"))
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(err) => Err(ApiError::ReloadRejected(err.to_string())),
    }
}
