//! `golden.jsonl`: events with the features and score Python computed. A bundle is only
//! served if this service reproduces every row.

use serde::Deserialize;
use serde_json::Value;

use super::BundleError;
use crate::scoring::features::feature_indices;
use crate::scoring::{LoginEvent, Scorer};

/// The contract asks for at least this many rows.
pub const MIN_GOLDEN_ROWS: usize = 200;

/// Largest absolute difference allowed per scaled feature.
pub const FEATURE_TOLERANCE: f64 = 1e-6;

/// Largest relative difference allowed per score.
pub const SCORE_RELATIVE_TOLERANCE: f64 = 1e-5;

/// Absolute floor under the relative score tolerance, so a score of exactly zero
/// does not demand bit equality.
const SCORE_ABSOLUTE_FLOOR: f64 = 1e-12;

/// One line of `golden.jsonl`.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenRow {
    /// The raw event in the service's JSON shape.
    pub event: Value,
    /// Scaled float32 inputs as Python computed them.
    pub features: Vec<f64>,
    /// Reconstruction error as onnxruntime in Python computed it.
    pub score: f64,
    /// `normal`, `takeover`, `unseen` or `missing`; informational.
    #[serde(default)]
    pub label: Option<String>,
    /// Feature names, in feature order, that the response should list as unseen.
    #[serde(default)]
    pub unseen: Option<Vec<String>>,
    /// Feature names, in feature order, that the response should list as missing.
    #[serde(default)]
    pub missing: Option<Vec<String>>,
}

/// How closely the service reproduced the golden rows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ParityReport {
    /// Rows checked.
    pub rows: usize,
    /// Largest absolute feature difference.
    pub max_feature_error: f64,
    /// Largest relative score difference.
    pub max_score_relative_error: f64,
}

/// Parses `golden.jsonl` (blank lines are skipped).
pub fn parse(bytes: &[u8]) -> Result<Vec<GoldenRow>, BundleError> {
    let text = std::str::from_utf8(bytes).map_err(|err| BundleError::Golden {
        line: 0,
        reason: format!("not UTF-8: {err}"),
    })?;
    let rows = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str::<GoldenRow>(line).map_err(|err| BundleError::Golden {
                line: index + 1,
                reason: err.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rows.len() < MIN_GOLDEN_ROWS {
        return Err(BundleError::Golden {
            line: 0,
            reason: format!(
                "{} rows; the contract asks for at least {MIN_GOLDEN_ROWS}",
                rows.len()
            ),
        });
    }
    Ok(rows)
}

/// Relative score difference as the parity check measures it.
pub fn score_relative_error(ours: f64, theirs: f64) -> f64 {
    (ours - theirs).abs() / theirs.abs().max(SCORE_ABSOLUTE_FLOOR)
}

/// Reproduces every row: the event is parsed and encoded as a request would be, all rows
/// are scored in one batch (which also proves the batch dimension is dynamic), and the
/// first row is scored alone as well.
pub fn check_parity(scorer: &Scorer, rows: &[GoldenRow]) -> Result<ParityReport, BundleError> {
    let mismatch = |line: usize, reason: String| BundleError::Golden { line, reason };
    let width = scorer.preprocessor().width();
    let mut vectors = Vec::with_capacity(rows.len());
    let mut max_feature_error = 0.0_f64;

    for (index, row) in rows.iter().enumerate() {
        let line = index + 1;
        let event =
            LoginEvent::from_json(&row.event).map_err(|err| mismatch(line, err.to_string()))?;
        let vector = scorer.preprocessor().encode(&event);
        if row.features.len() != width {
            return Err(mismatch(
                line,
                format!("{} features, expected {width}", row.features.len()),
            ));
        }
        for (i, (ours, theirs)) in vector.values.iter().zip(&row.features).enumerate() {
            let error = (f64::from(*ours) - theirs).abs();
            if error.is_nan() || error > FEATURE_TOLERANCE {
                return Err(mismatch(
                    line,
                    format!(
                        "feature {} is {ours}, Python computed {theirs}",
                        scorer.preprocessor().feature_name(i)
                    ),
                ));
            }
            max_feature_error = max_feature_error.max(error);
        }
        check_flags(scorer, "unseen", vector.unseen, row.unseen.as_deref())
            .and_then(|()| check_flags(scorer, "missing", vector.missing, row.missing.as_deref()))
            .map_err(|reason| mismatch(line, reason))?;
        vectors.push(vector);
    }

    let outcomes = scorer
        .score_vectors(&vectors)
        .map_err(|err| mismatch(0, format!("scoring the golden rows failed: {err}")))?;
    let mut max_score_relative_error = 0.0_f64;
    for (index, (outcome, row)) in outcomes.iter().zip(rows).enumerate() {
        let error = score_relative_error(outcome.reconstruction_error, row.score);
        if error.is_nan() || error > SCORE_RELATIVE_TOLERANCE {
            return Err(mismatch(
                index + 1,
                format!(
                    "score {} but Python computed {}",
                    outcome.reconstruction_error, row.score
                ),
            ));
        }
        max_score_relative_error = max_score_relative_error.max(error);
    }

    if let (Some(first), Some(row)) = (vectors.first(), rows.first()) {
        let alone = scorer
            .score_vectors(std::slice::from_ref(first))
            .map_err(|err| mismatch(1, format!("scoring one row failed: {err}")))?;
        let error = score_relative_error(alone[0].reconstruction_error, row.score);
        if error > SCORE_RELATIVE_TOLERANCE {
            return Err(mismatch(
                1,
                format!("scored alone it gives {}", alone[0].reconstruction_error),
            ));
        }
    }
    Ok(ParityReport {
        rows: rows.len(),
        max_feature_error,
        max_score_relative_error,
    })
}

/// Compares the features the service flags with the ones Python listed (when it did).
fn check_flags(
    scorer: &Scorer,
    list: &str,
    ours: u64,
    theirs: Option<&[String]>,
) -> Result<(), String> {
    let Some(theirs) = theirs else {
        return Ok(());
    };
    let ours: Vec<&str> = feature_indices(ours)
        .map(|i| scorer.preprocessor().feature_name(i))
        .collect();
    if ours == theirs {
        Ok(())
    } else {
        Err(format!(
            "{list} features {ours:?}, Python listed {theirs:?}"
        ))
    }
}
