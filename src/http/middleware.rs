//! Per-request span, metrics and the panic safety net.

use std::any::Any;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::Response;
use axum::middleware::Next;
use axum::response::IntoResponse;
use tracing::Span;

use super::error::ApiError;
use crate::telemetry;

/// Route label for requests no route matched, so unknown paths cannot grow the label set.
const UNMATCHED_ROUTE: &str = "unmatched";

fn route_of(request: &Request) -> String {
    request.extensions().get::<MatchedPath>().map_or_else(
        || UNMATCHED_ROUTE.to_owned(),
        |path| path.as_str().to_owned(),
    )
}

/// One span per request: method, route and request id now; status and latency when the
/// response is ready.
pub fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route_of(request),
        request_id,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// Fills in the span's status and latency; the per-request line is at debug level.
pub fn record_response(response: &Response<Body>, latency: Duration, span: &Span) {
    span.record("status", response.status().as_u16());
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    tracing::debug!("request finished");
}

/// Counts requests by route and status and times them by route.
pub async fn record_metrics(request: Request, next: Next) -> axum::response::Response {
    let route = route_of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(telemetry::HTTP_LATENCY, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => route, "status" => status).increment(1);
    response
}

/// A panic in a handler is a bug of ours: answer 500 in the usual shape.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let cause = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(format!("handler panicked: {cause}")).into_response()
}
