//! `POST /v1/score` and `POST /v1/score/batch`.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request_id;
use crate::bundle::LoadedModel;
use crate::http::error::{ApiError, ErrorDetail};
use crate::http::extract::{JsonBody, JsonBytes, parse_json};
use crate::http::router::AppState;
use crate::scoring::features::feature_indices;
use crate::scoring::{Action, Contribution, FeatureVector, LoginEvent, ScoreOutcome};
use crate::telemetry;

/// Batch bodies up to this size (about a hundred events, well under a millisecond of
/// work) are parsed and scored inline; larger ones on the blocking pool, so a 10,000-event
/// batch never holds an async worker (see `crate::scoring::model`).
pub const INLINE_BATCH_BYTES: usize = 64 * 1024;

/// The name and version that scored a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelRef {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: u64,
}

/// The score of one event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventScore {
    /// The event's user id as a string (exact over the signed 64-bit range).
    pub user_id: Option<String>,
    /// Reconstruction error (mean squared error).
    pub score: f64,
    /// The model's threshold.
    pub threshold: f64,
    /// `score >= threshold`.
    pub anomalous: bool,
    /// Percentile among held-out normal logins.
    pub percentile: f64,
    /// allow, challenge or deny.
    pub action: Action,
    /// Squared error per feature, largest first.
    pub contributions: Vec<Contribution>,
    /// Features whose value was not seen in training.
    pub unseen: Vec<String>,
    /// Features whose source field was missing.
    pub missing: Vec<String>,
}

/// Response of `POST /v1/score`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScoreResponse {
    /// Also in the `x-request-id` header.
    pub request_id: String,
    /// The score.
    #[serde(flatten)]
    pub result: EventScore,
    /// Which model scored it.
    pub model: ModelRef,
}

/// Body of `POST /v1/score/batch`.
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    /// The events, each scored on its own.
    pub events: Vec<Value>,
}

/// One entry of a batch response: a score or that event's own error.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchEntry {
    /// The event failed; the others are unaffected.
    Failed {
        /// Position in the request.
        index: usize,
        /// Why.
        error: ErrorDetail,
    },
    /// The event was scored.
    Scored {
        /// Position in the request.
        index: usize,
        /// The score.
        #[serde(flatten)]
        result: EventScore,
    },
}

/// Response of `POST /v1/score/batch`: results in request order.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Also in the `x-request-id` header.
    pub request_id: String,
    /// Which model scored the batch.
    pub model: ModelRef,
    /// One entry per event, same order.
    pub results: Vec<BatchEntry>,
}

/// Scores one event.
pub async fn score_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<ScoreResponse>, ApiError> {
    let model = state.store.current().ok_or(ApiError::NotReady)?;
    let event = LoginEvent::from_json(&body)?;
    let vector = model.scorer.preprocessor().encode(&event);

    let mut outcomes = score_vectors(&model, std::slice::from_ref(&vector))?;
    let outcome = outcomes
        .pop()
        .ok_or_else(|| ApiError::Internal("no score returned".into()))?;
    Ok(Json(ScoreResponse {
        request_id: request_id(&headers),
        result: event_score(&model, &event, &outcome),
        model: model_ref(&model),
    }))
}

/// Scores up to the configured number of events; a bad event gets its own error entry.
pub async fn score_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Json<BatchResponse>, ApiError> {
    let model = state.store.current().ok_or(ApiError::NotReady)?;
    let limit = state.config.max_batch_events;
    let results = if body.len() <= INLINE_BATCH_BYTES {
        score_batch_body(&model, &body, limit)?
    } else {
        let model = Arc::clone(&model);
        tokio::task::spawn_blocking(move || score_batch_body(&model, &body, limit))
            .await
            .map_err(|err| ApiError::Internal(format!("batch task failed: {err}")))??
    };
    Ok(Json(BatchResponse {
        request_id: request_id(&headers),
        model: model_ref(&model),
        results,
    }))
}

/// Parses, encodes and scores a batch body (all events in one inference call).
fn score_batch_body(
    model: &LoadedModel,
    body: &[u8],
    limit: usize,
) -> Result<Vec<BatchEntry>, ApiError> {
    // serde reads a struct from an array too, and then says "expected a sequence" about
    // a body that is one; a bare array of events is a common mistake worth naming.
    let batch: BatchRequest = parse_json(body).map_err(|err| match err {
        ApiError::InvalidRequest(_) if body.trim_ascii_start().starts_with(b"[") => {
            ApiError::InvalidRequest(
                "a batch must be a JSON object {\"events\": [...]}, got an array".to_owned(),
            )
        }
        other => other,
    })?;
    if batch.events.len() > limit {
        return Err(ApiError::BatchTooLarge {
            count: batch.events.len(),
            limit,
        });
    }
    let parsed: Vec<Result<LoginEvent, ApiError>> = batch
        .events
        .iter()
        .map(|event| LoginEvent::from_json(event).map_err(ApiError::from))
        .collect();
    let vectors: Vec<FeatureVector> = parsed
        .iter()
        .filter_map(|event| event.as_ref().ok())
        .map(|event| model.scorer.preprocessor().encode(event))
        .collect();
    let mut outcomes = score_vectors(model, &vectors)?.into_iter();

    let results = parsed
        .iter()
        .enumerate()
        .map(|(index, event)| match event {
            Ok(event) => match outcomes.next() {
                Some(outcome) => BatchEntry::Scored {
                    index,
                    result: event_score(model, event, &outcome),
                },
                None => BatchEntry::Failed {
                    index,
                    error: ApiError::Internal("missing score".into()).detail(),
                },
            },
            Err(err) => BatchEntry::Failed {
                index,
                error: err.detail(),
            },
        })
        .collect();
    Ok(results)
}

fn score_vectors(
    model: &LoadedModel,
    vectors: &[FeatureVector],
) -> Result<Vec<ScoreOutcome>, ApiError> {
    let started = Instant::now();
    let outcomes = model
        .scorer
        .score_vectors(vectors)
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    metrics::histogram!(telemetry::INFERENCE_LATENCY).record(started.elapsed().as_secs_f64());
    for outcome in &outcomes {
        telemetry::record_outcome(model.scorer.preprocessor(), outcome);
    }
    Ok(outcomes)
}

fn model_ref(model: &LoadedModel) -> ModelRef {
    ModelRef {
        name: model.manifest.name.clone(),
        version: model.version(),
    }
}

/// The response view of one outcome.
pub fn event_score(model: &LoadedModel, event: &LoginEvent, outcome: &ScoreOutcome) -> EventScore {
    let preprocessor = model.scorer.preprocessor();
    let names = |bits: u64| -> Vec<String> {
        feature_indices(bits)
            .map(|i| preprocessor.feature_name(i).to_owned())
            .collect()
    };
    EventScore {
        user_id: event.user_id.map(|id| id.to_string()),
        score: outcome.reconstruction_error,
        threshold: model.scorer.calibration().threshold,
        anomalous: outcome.anomalous,
        percentile: outcome.percentile,
        action: outcome.action,
        contributions: model.scorer.contributions(outcome),
        unseen: names(outcome.unseen),
        missing: names(outcome.missing),
    }
}
