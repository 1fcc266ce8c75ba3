//! One JSON error shape for every failure, and the single place where an error kind
//! becomes an HTTP status and a stable code:
//! `{"error": {"status": 422, "code": "invalid_field", "message": "field `timestamp`: ..."}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::scoring::EventError;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body could not be read.
    #[error("cannot read the request body: {0}")]
    BadBody(String),
    /// The body is over the route's limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A batch holds more events than allowed.
    #[error("batch holds {count} events; at most {limit} are allowed")]
    BatchTooLarge {
        /// Events sent.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The request is not `application/json`.
    #[error("expected content-type application/json")]
    UnsupportedMediaType,
    /// An event field has the wrong type or value.
    #[error(transparent)]
    InvalidField(#[from] EventError),
    /// The JSON is well formed but not the expected shape.
    #[error("{0}")]
    InvalidRequest(String),
    /// No valid model is loaded.
    #[error("no model is loaded yet")]
    NotReady,
    /// The request took longer than the configured timeout.
    #[error("the request took longer than the server's request timeout")]
    RequestTimeout,
    /// Too many requests in flight.
    #[error("the server is at capacity; retry shortly")]
    Overloaded,
    /// No such route (or a disabled one).
    #[error("no such route")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// Missing or wrong admin token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// A reload found candidates but none validated.
    #[error("reload rejected: {0}")]
    ReloadRejected(String),
    /// A fault of ours; the cause is logged, the client gets a generic message.
    #[error("internal error")]
    Internal(String),
}

/// The body of every error response, and of each failed entry in a batch.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ErrorDetail {
    /// HTTP status code.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ErrorDetail,
}

impl ApiError {
    /// The status and stable code of each error kind.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            Self::BadBody(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::BatchTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::InvalidField(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            Self::InvalidRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::ReloadRejected(_) => (StatusCode::CONFLICT, "reload_rejected"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The error as it appears in a response body.
    pub fn detail(&self) -> ErrorDetail {
        let (status, code) = self.status_and_code();
        ErrorDetail {
            status: status.as_u16(),
            code: code.to_owned(),
            message: self.to_string(),
        }
    }

    /// The JSON body of this error's response, as [`IntoResponse`] writes it.
    pub fn body_json(&self) -> Vec<u8> {
        let detail = self.detail();
        serde_json::to_vec(&ErrorBody { error: &detail })
            .expect("an error body of strings and a number always serializes")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(cause = %cause, "request failed");
        }
        let detail = self.detail();
        let status =
            StatusCode::from_u16(detail.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(ErrorBody { error: &detail })).into_response();
        match self {
            Self::NotReady | Self::Overloaded => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            Self::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The body was not read to its end, so hyper closes the connection after
            // answering; say so, or a client reuses the closing connection and its next
            // request fails (seen in tests/hostile_input.rs after a 3 MB body).
            Self::PayloadTooLarge { .. } | Self::UnsupportedMediaType | Self::RequestTimeout => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}
