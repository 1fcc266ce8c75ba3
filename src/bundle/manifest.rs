//! `manifest.json`: what a bundle is, how it was calibrated, and a SHA-256 for every
//! other file in the version directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::BundleError;

/// The manifest format this service reads.
pub const FORMAT_VERSION: u32 = 1;

/// The parsed `manifest.json`. Keys the service does not know are ignored, so training
/// may add information without breaking older services.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format; must equal [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Model name, e.g. `rba-autoencoder`.
    pub name: String,
    /// Version; must equal the version directory's name.
    pub version: u64,
    /// `autoencoder` or `vae`.
    pub kind: ModelKind,
    /// When training wrote the bundle (RFC 3339, passed through as text).
    pub created: String,
    /// Input and output names of the ONNX graph and the feature width.
    pub model: ModelSignature,
    /// Scores at or above this are anomalous.
    pub threshold: f64,
    /// The held-out percentile the threshold was taken at.
    pub threshold_percentile: f64,
    /// Percentile -> score over held-out normal logins.
    pub score_quantiles: ScoreQuantiles,
    /// Evaluation summary, passed through to `GET /v1/model`.
    #[serde(default)]
    pub metrics: BTreeMap<String, Value>,
    /// Training summary, passed through.
    #[serde(default)]
    pub training: Value,
    /// Package versions used by training, passed through.
    #[serde(default)]
    pub packages: Value,
    /// File name -> lowercase SHA-256 hex of every other file in the directory.
    pub files: BTreeMap<String, String>,
}

/// The kind of model in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A plain autoencoder.
    Autoencoder,
    /// A variational autoencoder exported with its encoder mean.
    Vae,
}

/// The ONNX graph's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSignature {
    /// Name of the single input tensor.
    pub input: String,
    /// Name of the single output tensor.
    pub output: String,
    /// Number of features (second dimension of input and output).
    pub width: usize,
}

/// Percentiles (ascending, 0 to 100) and the scores at them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreQuantiles {
    /// Ascending percentiles from 0 to 100.
    pub percentiles: Vec<f64>,
    /// Non-decreasing scores, one per percentile.
    pub scores: Vec<f64>,
}

impl Manifest {
    /// Checks every rule of docs/bundle.md that the manifest alone can answer.
    pub fn validate(&self, directory_version: u64) -> Result<(), BundleError> {
        let invalid = |reason: String| Err(BundleError::invalid("manifest.json", reason));

        if self.format_version != FORMAT_VERSION {
            return invalid(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.name.trim().is_empty() {
            return invalid("name is empty".into());
        }
        if self.version != directory_version {
            return invalid(format!(
                "version {} does not match its directory {directory_version}",
                self.version
            ));
        }
        if self.model.width == 0 || self.model.input.is_empty() || self.model.output.is_empty() {
            return invalid("model needs an input name, an output name and a width > 0".into());
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return invalid(format!(
                "threshold {} is not a finite score",
                self.threshold
            ));
        }
        if !(self.threshold_percentile > 0.0 && self.threshold_percentile <= 100.0) {
            return invalid(format!(
                "threshold_percentile {} is not in (0, 100]",
                self.threshold_percentile
            ));
        }
        self.score_quantiles.validate().or_else(invalid)?;
        for required in ["model.onnx", "preprocess.json", "golden.jsonl"] {
            if !self.files.contains_key(required) {
                return invalid(format!("files does not list {required}"));
            }
        }
        if self.files.contains_key("manifest.json") {
            return invalid("files lists manifest.json, which cannot hash itself".into());
        }
        Ok(())
    }
}

impl ScoreQuantiles {
    fn validate(&self) -> Result<(), String> {
        let (percentiles, scores) = (&self.percentiles, &self.scores);
        if percentiles.len() < 2 || percentiles.len() != scores.len() {
            return Err(format!(
                "score_quantiles needs two or more points and as many scores as percentiles \
                 ({} percentiles, {} scores)",
                percentiles.len(),
                scores.len()
            ));
        }
        if percentiles
            .iter()
            .chain(scores)
            .any(|value| !value.is_finite())
        {
            return Err("score_quantiles holds a non-finite number".into());
        }
        if percentiles.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err("score_quantiles.percentiles must be strictly ascending".into());
        }
        if percentiles[0] < 0.0 || percentiles[percentiles.len() - 1] > 100.0 {
            return Err("score_quantiles.percentiles must lie within 0..=100".into());
        }
        if scores.windows(2).any(|pair| pair[0] > pair[1]) {
            return Err("score_quantiles.scores must be non-decreasing".into());
        }
        Ok(())
    }
}
