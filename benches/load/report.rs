//! What one load run measured, and how it is shown: a table for people and
//! a JSON document for scripts (`compare.sh` reads it).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies are recorded in microseconds, from 1 µs to one minute, with three
/// significant digits (0.1 % resolution).
pub const LATENCY_MAX_US: u64 = 60_000_000;

/// A fresh latency histogram for one connection's recordings.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static histogram bounds are valid")
}

/// How one request ended: an HTTP status, or a transport failure before one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Status(u16),
    Timeout,
    Connect,
    Transport,
}

impl Outcome {
    pub fn is_success(self) -> bool {
        matches!(self, Self::Status(200..=299))
    }

    pub fn is_transport_failure(self) -> bool {
        !matches!(self, Self::Status(_))
    }

    fn label(self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Connect => "connect_error".to_owned(),
            Self::Transport => "transport_error".to_owned(),
        }
    }
}

/// What one connection saw during the measured window: latency over all requests
/// and by outcome (a 503 and a 200 under overload are different stories).
pub struct ConnectionTally {
    pub latency_us: Histogram<u64>,
    pub outcomes: BTreeMap<Outcome, Histogram<u64>>,
}

impl ConnectionTally {
    pub fn new() -> Self {
        Self {
            latency_us: latency_histogram(),
            outcomes: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let micros = micros.clamp(1, LATENCY_MAX_US);
        self.latency_us.saturating_record(micros);
        self.outcomes
            .entry(outcome)
            .or_insert_with(latency_histogram)
            .saturating_record(micros);
    }
}

/// Adds one connection's recordings to a latency histogram and per-outcome histograms.
pub fn merge_into(
    latency_us: &mut Histogram<u64>,
    outcomes: &mut BTreeMap<Outcome, Histogram<u64>>,
    tally: ConnectionTally,
) {
    latency_us
        .add(&tally.latency_us)
        .expect("histograms share the same bounds");
    for (outcome, latency) in tally.outcomes {
        outcomes
            .entry(outcome)
            .or_insert_with(latency_histogram)
            .add(&latency)
            .expect("histograms share the same bounds");
    }
}

fn percentiles_us(latency_us: &Histogram<u64>) -> Value {
    let at = |percentile: f64| latency_us.value_at_quantile(percentile / 100.0);
    json!({
        "p50": at(50.0),
        "p90": at(90.0),
        "p99": at(99.0),
        "p99_9": at(99.9),
        "max": latency_us.max(),
        "mean": latency_us.mean(),
    })
}

/// How the run offered its load.
pub enum Mode {
    /// Each connection sends its next request as soon as the previous answer is in.
    Closed,
    /// Requests are scheduled at a fixed rate; latency counts from the schedule.
    Open { rate_per_s: f64, missed: u64 },
}

/// The merged result of a run.
pub struct Summary {
    pub label: String,
    pub url: String,
    pub connections: usize,
    pub mode: Mode,
    pub measured: Duration,
    pub warmup: Duration,
    pub events: usize,
    pub response_bytes: usize,
    pub latency_us: Histogram<u64>,
    pub outcomes: BTreeMap<Outcome, Histogram<u64>>,
}

impl Summary {
    pub fn merge(&mut self, tally: ConnectionTally) {
        merge_into(&mut self.latency_us, &mut self.outcomes, tally);
    }

    pub fn requests(&self) -> u64 {
        self.outcomes.values().map(Histogram::len).sum()
    }

    /// Answers with a 2xx status; everything else counts as failed.
    pub fn succeeded(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(outcome, _)| outcome.is_success())
            .map(|(_, latency_us)| latency_us.len())
            .sum()
    }

    pub fn throughput_per_s(&self) -> f64 {
        self.requests() as f64 / self.measured.as_secs_f64()
    }

    fn percentile_us(&self, percentile: f64) -> u64 {
        self.latency_us.value_at_quantile(percentile / 100.0)
    }

    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mode = match self.mode {
            Mode::Closed => "closed loop".to_owned(),
            Mode::Open { rate_per_s, missed } => {
                format!("open loop at {rate_per_s:.0} req/s ({missed} scheduled, never sent)")
            }
        };
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(outcome, latency_us)| format!("{}: {}", outcome.label(), latency_us.len()))
            .collect();
        let by_outcome: Vec<String> = self
            .outcomes
            .iter()
            .map(|(outcome, latency_us)| {
                format!(
                    "{} p50 {} µs, p99 {} µs",
                    outcome.label(),
                    latency_us.value_at_quantile(0.5),
                    latency_us.value_at_quantile(0.99)
                )
            })
            .collect();
        let rows = [
            ("label", self.label.clone()),
            ("target", self.url.clone()),
            ("mode", format!("{mode}, {} connections", self.connections)),
            (
                "window",
                format!(
                    "{:.3} s measured after {:.1} s warm-up",
                    self.measured.as_secs_f64(),
                    self.warmup.as_secs_f64()
                ),
            ),
            ("events", format!("{} distinct bodies", self.events)),
            ("response", format!("{} bytes (probe)", self.response_bytes)),
            (
                "requests",
                format!("{} ({})", self.requests(), outcomes.join(", ")),
            ),
            (
                "throughput",
                format!("{:.1} req/s", self.throughput_per_s()),
            ),
            (
                "latency",
                format!(
                    "p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
                    self.percentile_us(50.0),
                    self.percentile_us(90.0),
                    self.percentile_us(99.0),
                    self.percentile_us(99.9),
                    self.latency_us.max()
                ),
            ),
            ("by outcome", by_outcome.join("; ")),
        ];
        rows.iter()
            .map(|(name, value)| format!("{name:<12} {value}\n"))
            .collect()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let (mode, rate, missed) = match self.mode {
            Mode::Closed => ("closed", None, None),
            Mode::Open { rate_per_s, missed } => ("open", Some(rate_per_s), Some(missed)),
        };
        let outcomes: BTreeMap<String, u64> = self
            .outcomes
            .iter()
            .map(|(outcome, latency_us)| (outcome.label(), latency_us.len()))
            .collect();
        let latency_by_outcome: BTreeMap<String, Value> = self
            .outcomes
            .iter()
            .map(|(outcome, latency_us)| (outcome.label(), percentiles_us(latency_us)))
            .collect();
        json!({
            "label": self.label,
            "url": self.url,
            "mode": mode,
            "offered_rate_per_s": rate,
            "missed": missed,
            "connections": self.connections,
            "measured_s": self.measured.as_secs_f64(),
            "warmup_s": self.warmup.as_secs_f64(),
            "events": self.events,
            "response_bytes": self.response_bytes,
            "requests": self.requests(),
            "succeeded": self.succeeded(),
            "outcomes": outcomes,
            "throughput_per_s": self.throughput_per_s(),
            "latency_us": percentiles_us(&self.latency_us),
            "latency_us_by_outcome": latency_by_outcome,
        })
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}
