//! Route handlers, one file per concern.

pub mod admin;
pub mod health;
pub mod model;
pub mod score;

use axum::http::HeaderMap;

/// The request id that `SetRequestIdLayer` put on the request.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
