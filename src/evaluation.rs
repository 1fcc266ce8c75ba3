//! Detection quality on labelled data, defined as scikit-learn defines it so the figures
//! match the Python evaluation on the same file.

use serde::Serialize;

/// Confusion matrix at a threshold (positive = takeover, predicted = score >= threshold).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Takeovers flagged.
    pub true_positives: u64,
    /// Normal logins flagged.
    pub false_positives: u64,
    /// Normal logins passed.
    pub true_negatives: u64,
    /// Takeovers passed.
    pub false_negatives: u64,
}

/// The report printed by `login-scorer score` on labelled input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    /// Confusion matrix at the bundle's threshold.
    pub confusion: Confusion,
    /// TP / (TP + FP); `None` when nothing was flagged.
    pub precision: Option<f64>,
    /// TP / (TP + FN); `None` without takeovers.
    pub recall: Option<f64>,
    /// Area under the ROC curve (`sklearn.metrics.roc_auc_score`); `None` unless both
    /// classes occur.
    pub roc_auc: Option<f64>,
    /// Average precision (`sklearn.metrics.average_precision_score`); `None` without
    /// takeovers.
    pub pr_auc: Option<f64>,
}

/// Evaluates `(score, is_takeover)` pairs at `threshold`.
pub fn evaluate(labelled: &[(f64, bool)], threshold: f64) -> Evaluation {
    let mut confusion = Confusion::default();
    for (score, takeover) in labelled {
        match (*score >= threshold, *takeover) {
            (true, true) => confusion.true_positives += 1,
            (true, false) => confusion.false_positives += 1,
            (false, false) => confusion.true_negatives += 1,
            (false, true) => confusion.false_negatives += 1,
        }
    }
    let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
    let flagged = confusion.true_positives + confusion.false_positives;
    let positives = confusion.true_positives + confusion.false_negatives;

    let curve = RankCurve::new(labelled);
    Evaluation {
        confusion,
        precision: ratio(confusion.true_positives, flagged),
        recall: ratio(confusion.true_positives, positives),
        roc_auc: curve.roc_auc(),
        pr_auc: curve.average_precision(),
    }
}

/// Cumulative (false positives, true positives) at each distinct score, highest first:
/// the thresholds scikit-learn's curves use.
struct RankCurve {
    points: Vec<(u64, u64)>,
    positives: u64,
    negatives: u64,
}

impl RankCurve {
    fn new(labelled: &[(f64, bool)]) -> RankCurve {
        let mut sorted: Vec<(f64, bool)> = labelled
            .iter()
            .copied()
            .filter(|(score, _)| !score.is_nan())
            .collect();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));

        let (mut fp, mut tp) = (0_u64, 0_u64);
        let mut points = Vec::new();
        for (i, (score, takeover)) in sorted.iter().enumerate() {
            if *takeover {
                tp += 1;
            } else {
                fp += 1;
            }
            // Tied scores share one threshold: emit a point only at the end of a run.
            let run_ends = sorted.get(i + 1).is_none_or(|next| next.0 != *score);
            if run_ends {
                points.push((fp, tp));
            }
        }
        RankCurve {
            points,
            positives: tp,
            negatives: fp,
        }
    }

    /// Trapezoidal area under (FPR, TPR) from (0, 0); ties count half.
    fn roc_auc(&self) -> Option<f64> {
        if self.positives == 0 || self.negatives == 0 {
            return None;
        }
        let mut area = 0.0;
        let mut previous = (0_u64, 0_u64);
        for &(fp, tp) in &self.points {
            area += (fp - previous.0) as f64 * (tp + previous.1) as f64 / 2.0;
            previous = (fp, tp);
        }
        Some(area / (self.positives as f64 * self.negatives as f64))
    }

    /// Sum over thresholds of (recall step) x precision, no interpolation.
    fn average_precision(&self) -> Option<f64> {
        if self.positives == 0 {
            return None;
        }
        let mut ap = 0.0;
        let mut previous_tp = 0_u64;
        for &(fp, tp) in &self.points {
            let precision = tp as f64 / (tp + fp) as f64;
            ap += (tp - previous_tp) as f64 / self.positives as f64 * precision;
            previous_tp = tp;
        }
        Some(ap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn matches_sklearn_on_a_small_example() {
        // sklearn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.75,
        //          average_precision_score(same) == 0.8333...
        let data = [(0.1, false), (0.4, false), (0.35, true), (0.8, true)];
        let report = evaluate(&data, 0.5);
        assert!(close(report.roc_auc, 0.75));
        assert!(close(report.pr_auc, 5.0 / 6.0));
        assert_eq!(report.confusion.true_positives, 1);
        assert_eq!(report.confusion.false_negatives, 1);
        assert!(close(report.precision, 1.0));
        assert!(close(report.recall, 0.5));
    }

    #[test]
    fn ties_count_half_as_sklearn_does() {
        // sklearn: roc_auc_score([0,1,0,1], [0.5,0.5,0.2,0.9]) == 0.875,
        //          average_precision_score(same) == 0.8333...
        let data = [(0.5, false), (0.5, true), (0.2, false), (0.9, true)];
        let report = evaluate(&data, 0.5);
        assert!(close(report.roc_auc, 0.875));
        assert!(close(report.pr_auc, 5.0 / 6.0));
    }

    #[test]
    fn undefined_without_both_classes() {
        let report = evaluate(&[(0.1, false), (0.2, false)], 0.15);
        assert_eq!(
            (report.roc_auc, report.pr_auc, report.recall),
            (None, None, None)
        );
        assert!(close(report.precision, 0.0));
    }
}
