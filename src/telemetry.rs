//! Logging and metrics set-up shared by every command, and the metric names.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::scoring::features::feature_indices;
use crate::scoring::{Preprocessor, ScoreOutcome};

/// HTTP requests by `route` and `status`.
pub const HTTP_REQUESTS: &str = "login_scorer_http_requests_total";
/// HTTP latency in seconds by `route`.
pub const HTTP_LATENCY: &str = "login_scorer_http_request_duration_seconds";
/// Inference time per call in seconds.
pub const INFERENCE_LATENCY: &str = "login_scorer_inference_duration_seconds";
/// Reconstruction errors of scored events.
pub const SCORES: &str = "login_scorer_score";
/// Scored events at or above the threshold, by `action`.
pub const ANOMALIES: &str = "login_scorer_anomalies_total";
/// Unseen category values by `feature`.
pub const UNSEEN_VALUES: &str = "login_scorer_unseen_values_total";
/// Missing fields by `feature`.
pub const MISSING_VALUES: &str = "login_scorer_missing_values_total";
/// Reload attempts by `result` (`ok`, `failed`).
pub const RELOADS: &str = "login_scorer_reloads_total";
/// The model version being served.
pub const SERVING_VERSION: &str = "login_scorer_serving_version";

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber (logs go to stderr). `filter` uses
/// `tracing_subscriber::EnvFilter` syntax, e.g. `info` or `login_scorer=debug`.
pub fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|err| anyhow::anyhow!("cannot install the logger: {err}"))
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// NOTE: `metrics` has one global recorder per process, so servers started by tests in
/// one process share it.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency_buckets = [
                0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ];
            let score_buckets: Vec<f64> = (-7..=1)
                .flat_map(|e| [1.0, 2.5, 5.0].map(|m| m * 10f64.powi(e)))
                .collect();
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_LATENCY.into()), &latency_buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(INFERENCE_LATENCY.into()),
                        &latency_buckets,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(SCORES.into()), &score_buckets)
                })
                .expect("bucket lists are non-empty constants");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // A recorder installed earlier (another test's) keeps working; this handle
            // then renders an empty registry, which only tests could observe.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe_metrics();
            handle
        })
        .clone()
}

fn describe_metrics() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status");
    metrics::describe_histogram!(
        HTTP_LATENCY,
        metrics::Unit::Seconds,
        "HTTP latency by route"
    );
    metrics::describe_histogram!(
        INFERENCE_LATENCY,
        metrics::Unit::Seconds,
        "ONNX inference time per call"
    );
    metrics::describe_histogram!(SCORES, "Reconstruction error of scored events");
    metrics::describe_counter!(ANOMALIES, "Events at or above the threshold, by action");
    metrics::describe_counter!(
        UNSEEN_VALUES,
        "Category values not seen in training, by feature"
    );
    metrics::describe_counter!(MISSING_VALUES, "Missing event fields, by feature");
    metrics::describe_counter!(RELOADS, "Bundle reload attempts by result");
    // Both series exist from the start, so an alert on failed reloads sees a 0, not
    // no data.
    for result in ["ok", "failed"] {
        metrics::counter!(RELOADS, "result" => result).absolute(0);
    }
    metrics::describe_gauge!(SERVING_VERSION, "Model version being served");
}

/// Counts one scored event: its score, whether it is an anomaly, unseen and missing
/// values by feature.
pub fn record_outcome(preprocessor: &Preprocessor, outcome: &ScoreOutcome) {
    metrics::histogram!(SCORES).record(outcome.reconstruction_error);
    if outcome.anomalous {
        metrics::counter!(ANOMALIES, "action" => outcome.action.as_str()).increment(1);
    }
    for index in feature_indices(outcome.unseen) {
        let feature = preprocessor.feature_name(index).to_owned();
        metrics::counter!(UNSEEN_VALUES, "feature" => feature).increment(1);
    }
    for index in feature_indices(outcome.missing) {
        let feature = preprocessor.feature_name(index).to_owned();
        metrics::counter!(MISSING_VALUES, "feature" => feature).increment(1);
    }
}
