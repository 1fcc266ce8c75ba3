//! Requirement: preprocessing in Rust reproduces preprocess.json exactly on every golden
//! row of every shipped bundle: features within 1e-6 absolute, scores within 1e-5
//! relative of Python.

#[path = "support/common.rs"]
mod common;

use login_scorer::bundle::golden::{self, FEATURE_TOLERANCE, SCORE_RELATIVE_TOLERANCE};
use login_scorer::bundle::load_version;
use login_scorer::scoring::LoginEvent;
use login_scorer::scoring::features::feature_indices;

#[test]
fn every_shipped_bundle_reproduces_its_golden_rows() {
    let bundles = common::shipped_version_dirs();
    assert!(!bundles.is_empty(), "no shipped bundle under artifacts/*/*");
    let options = common::load_options();

    for dir in bundles {
        // The loader refuses a bundle whose golden rows differ...
        let model = load_version(&dir, &options)
            .unwrap_or_else(|err| panic!("{} does not load: {err}", dir.display()));

        // ...and this recomputes every row independently of that check.
        let rows = golden::parse(&std::fs::read(dir.join("golden.jsonl")).unwrap()).unwrap();
        assert!(rows.len() >= golden::MIN_GOLDEN_ROWS);
        let preprocessor = model.scorer.preprocessor();
        let vectors: Vec<_> = rows
            .iter()
            .map(|row| preprocessor.encode(&LoginEvent::from_json(&row.event).unwrap()))
            .collect();
        let outcomes = model.scorer.score_vectors(&vectors).unwrap();

        let (mut worst_feature, mut worst_score) = (0.0_f64, 0.0_f64);
        for (line, ((row, vector), outcome)) in rows.iter().zip(&vectors).zip(&outcomes).enumerate()
        {
            for (ours, theirs) in vector.values.iter().zip(&row.features) {
                worst_feature = worst_feature.max((f64::from(*ours) - theirs).abs());
            }
            let error = golden::score_relative_error(outcome.reconstruction_error, row.score);
            worst_score = worst_score.max(error);
            let names = |bits| -> Vec<String> {
                feature_indices(bits)
                    .map(|i| preprocessor.feature_name(i).to_owned())
                    .collect()
            };
            if let Some(unseen) = &row.unseen {
                assert_eq!(
                    &names(vector.unseen),
                    unseen,
                    "{} line {}",
                    dir.display(),
                    line + 1
                );
            }
            if let Some(missing) = &row.missing {
                assert_eq!(
                    &names(vector.missing),
                    missing,
                    "{} line {}",
                    dir.display(),
                    line + 1
                );
            }
        }
        println!(
            "{}: {} rows, max feature error {worst_feature:.3e}, max relative score error \
             {worst_score:.3e}",
            dir.display(),
            rows.len()
        );
        assert!(
            worst_feature <= FEATURE_TOLERANCE,
            "{}: {worst_feature}",
            dir.display()
        );
        assert!(
            worst_score <= SCORE_RELATIVE_TOLERANCE,
            "{}: {worst_score}",
            dir.display()
        );
    }
}

#[test]
fn golden_rows_cover_every_label_kind() {
    for dir in common::shipped_version_dirs() {
        let rows = golden::parse(&std::fs::read(dir.join("golden.jsonl")).unwrap()).unwrap();
        for label in ["normal", "takeover", "unseen", "missing"] {
            assert!(
                rows.iter().any(|row| row.label.as_deref() == Some(label)),
                "{} has no {label} golden row",
                dir.display()
            );
        }
    }
}
