//! Feature vectors -> reconstruction error -> percentile and action.

use serde::{Deserialize, Serialize};

use super::event::LoginEvent;
use super::features::{FeatureVector, Preprocessor};
use super::model::{InferenceError, OnnxModel};
use crate::bundle::manifest::Manifest;

/// Default percentile of held-out normal scores at or above which an anomaly is denied
/// rather than challenged.
pub const DEFAULT_DENY_PERCENTILE: f64 = 99.9;

/// What the gateway should do with the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Score below the threshold.
    Allow,
    /// Score at or above the threshold.
    Challenge,
    /// Anomalous and at or above the deny percentile.
    Deny,
}

impl Action {
    /// The lowercase name used in responses, CSV output and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Challenge => "challenge",
            Self::Deny => "deny",
        }
    }
}

/// Why a batch could not be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    /// ONNX Runtime failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// The model produced NaN or infinity; never passed on to a client.
    #[error("the model produced a non-finite reconstruction error for row {row}")]
    NonFinite {
        /// Row within the batch.
        row: usize,
    },
}

/// How scores read: the threshold and the held-out normal score distribution.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// Scores at or above are anomalous.
    pub threshold: f64,
    /// Anomalies at or above this percentile are denied.
    pub deny_percentile: f64,
    percentiles: Vec<f64>,
    scores: Vec<f64>,
}

impl Calibration {
    /// Reads the calibration from a validated manifest.
    pub fn from_manifest(manifest: &Manifest, deny_percentile: f64) -> Calibration {
        Calibration {
            threshold: manifest.threshold,
            deny_percentile,
            percentiles: manifest.score_quantiles.percentiles.clone(),
            scores: manifest.score_quantiles.scores.clone(),
        }
    }

    /// The score's percentile among held-out normal logins: linear interpolation between
    /// neighbouring quantile points (as `numpy.interp`), clamped to 0..=100.
    pub fn percentile(&self, score: f64) -> f64 {
        let (xs, ys) = (&self.scores, &self.percentiles);
        let last = xs.len() - 1;
        // Largest j with xs[j] <= score; with repeated scores this picks the last of the
        // run, which is where numpy.interp lands too.
        let above = xs.partition_point(|x| *x <= score);
        let percentile = if above == 0 {
            ys[0]
        } else if above > last {
            ys[last]
        } else {
            let j = above - 1;
            let fraction = (score - xs[j]) / (xs[j + 1] - xs[j]);
            ys[j] + fraction * (ys[j + 1] - ys[j])
        };
        percentile.clamp(0.0, 100.0)
    }

    /// Allow below the threshold; deny anomalies at or above the deny percentile;
    /// challenge the rest.
    pub fn action(&self, score: f64, percentile: f64) -> Action {
        if score < self.threshold {
            Action::Allow
        } else if percentile >= self.deny_percentile {
            Action::Deny
        } else {
            Action::Challenge
        }
    }
}

/// The score of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutcome {
    /// Mean squared reconstruction error, finite and non-negative.
    pub reconstruction_error: f64,
    /// Percentile among held-out normal logins.
    pub percentile: f64,
    /// `reconstruction_error >= threshold`.
    pub anomalous: bool,
    /// What to do.
    pub action: Action,
    /// Squared error per feature, in feature order.
    pub squared_errors: Vec<f64>,
    /// Features with unseen values (bit set, see `FeatureVector`).
    pub unseen: u64,
    /// Features with missing values (bit set).
    pub missing: u64,
}

/// A squared error attributed to one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Feature name.
    pub feature: String,
    /// Its squared reconstruction error.
    pub squared_error: f64,
}

/// Everything needed to score events with one bundle.
#[derive(Debug)]
pub struct Scorer {
    preprocessor: Preprocessor,
    model: OnnxModel,
    calibration: Calibration,
}

impl Scorer {
    /// Puts the parts together; the bundle loader has checked they agree in width.
    pub fn new(preprocessor: Preprocessor, model: OnnxModel, calibration: Calibration) -> Self {
        Scorer {
            preprocessor,
            model,
            calibration,
        }
    }

    /// The preprocessing in use.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The calibration in use.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The session pool.
    pub fn model(&self) -> &OnnxModel {
        &self.model
    }

    /// Encodes and scores events in one inference call.
    pub fn score_events(&self, events: &[LoginEvent]) -> Result<Vec<ScoreOutcome>, ScoreError> {
        let vectors: Vec<FeatureVector> = events
            .iter()
            .map(|event| self.preprocessor.encode(event))
            .collect();
        self.score_vectors(&vectors)
    }

    /// Scores already encoded feature vectors in one inference call.
    pub fn score_vectors(
        &self,
        vectors: &[FeatureVector],
    ) -> Result<Vec<ScoreOutcome>, ScoreError> {
        let width = self.model.width();
        let mut input = Vec::with_capacity(vectors.len() * width);
        for vector in vectors {
            input.extend_from_slice(&vector.values);
        }
        let reconstruction = self.model.reconstruct(&input, vectors.len())?;

        vectors
            .iter()
            .enumerate()
            .map(|(row, vector)| {
                let output = &reconstruction[row * width..(row + 1) * width];
                self.outcome(row, vector, output)
            })
            .collect()
    }

    /// Names and sorts an outcome's per-feature errors, largest first.
    pub fn contributions(&self, outcome: &ScoreOutcome) -> Vec<Contribution> {
        let mut contributions: Vec<Contribution> = outcome
            .squared_errors
            .iter()
            .enumerate()
            .map(|(i, error)| Contribution {
                feature: self.preprocessor.feature_name(i).to_owned(),
                squared_error: *error,
            })
            .collect();
        contributions.sort_by(|a, b| b.squared_error.total_cmp(&a.squared_error));
        contributions
    }

    fn outcome(
        &self,
        row: usize,
        vector: &FeatureVector,
        reconstruction: &[f32],
    ) -> Result<ScoreOutcome, ScoreError> {
        let squared_errors: Vec<f64> = vector
            .values
            .iter()
            .zip(reconstruction)
            .map(|(input, output)| (f64::from(*input) - f64::from(*output)).powi(2))
            .collect();
        let reconstruction_error = squared_errors.iter().sum::<f64>() / squared_errors.len() as f64;
        if !reconstruction_error.is_finite() {
            return Err(ScoreError::NonFinite { row });
        }

        let percentile = self.calibration.percentile(reconstruction_error);
        Ok(ScoreOutcome {
            reconstruction_error,
            percentile,
            anomalous: reconstruction_error >= self.calibration.threshold,
            action: self.calibration.action(reconstruction_error, percentile),
            squared_errors,
            unseen: vector.unseen,
            missing: vector.missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration() -> Calibration {
        Calibration {
            threshold: 0.5,
            deny_percentile: 99.9,
            percentiles: vec![0.0, 50.0, 99.0, 100.0],
            scores: vec![0.1, 0.2, 0.2, 1.0],
        }
    }

    #[test]
    fn percentile_interpolates_and_clamps() {
        let c = calibration();
        assert_eq!(c.percentile(0.0), 0.0);
        assert_eq!(c.percentile(0.1), 0.0);
        assert!((c.percentile(0.15) - 25.0).abs() < 1e-9);
        // A repeated score reads as the last percentile that has it, like numpy.interp.
        assert_eq!(c.percentile(0.2), 99.0);
        assert!((c.percentile(0.6) - 99.5).abs() < 1e-9);
        assert_eq!(c.percentile(1.0), 100.0);
        assert_eq!(c.percentile(50.0), 100.0);
    }

    #[test]
    fn actions_follow_threshold_then_deny_percentile() {
        let c = calibration();
        assert_eq!(c.action(0.49, 99.95), Action::Allow);
        assert_eq!(c.action(0.5, 99.5), Action::Challenge);
        assert_eq!(c.action(0.99, 99.9), Action::Deny);
    }
}
