//! The 19 real rows of ../shared/data/rba-sample.csv, scored over HTTP and offline with
//! `login-scorer score`: the same code path must give the same scores.

#[path = "support/common.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::TestServer;
use serde_json::{Value, json};

/// Offline `score` output rows: (index, user_id, score, percentile, anomalous, action).
fn score_offline(
    input: &Path,
    model_root: &Path,
) -> Vec<(String, String, f64, f64, String, String)> {
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_login-scorer"))
        .env("ORT_DYLIB_PATH", common::ort_dylib())
        .args(["--log", "warn", "score", "--model-root"])
        .arg(model_root)
        .arg(input)
        .arg("-o")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "score exited with {status}");
    let mut reader = csv::Reader::from_path(out.path()).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "index",
            "user_id",
            "score",
            "percentile",
            "anomalous",
            "action"
        ]
    );
    reader
        .records()
        .map(|record| {
            let r = record.unwrap();
            (
                r[0].to_owned(),
                r[1].to_owned(),
                r[2].parse().unwrap(),
                r[3].parse().unwrap(),
                r[4].to_owned(),
                r[5].to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_rows_score_the_same_over_http_and_offline() {
    let Some(sample) = common::sample_csv() else {
        return;
    };
    let root = common::shipped_model_root();
    let offline = score_offline(&sample, &root);
    let events = common::csv_rows_as_json(&sample);
    assert_eq!(events.len(), 19);
    assert_eq!(offline.len(), 19);

    let server = TestServer::start(common::loaded_store(&root)).await;
    let client = common::client();
    let batch: Value = client
        .post(server.url("/v1/score/batch"))
        .json(&json!({"events": events}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    for (i, (event, row)) in events.iter().zip(&offline).enumerate() {
        let single: Value = client
            .post(server.url("/v1/score"))
            .json(event)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let batched = &batch["results"][i];
        assert_eq!(row.0, i.to_string());
        assert_eq!(single["user_id"], row.1.as_str());

        // The offline run scores the 19 rows in one inference call, as the batch
        // request does: the same input gives the same bits.
        assert_eq!(batched["score"].as_f64().unwrap(), row.2, "row {i}");
        assert_eq!(batched["percentile"].as_f64().unwrap(), row.3, "row {i}");
        assert_eq!(batched["anomalous"].to_string(), row.4, "row {i}");
        assert_eq!(batched["action"], row.5.as_str(), "row {i}");

        // Alone, ONNX Runtime may pick another kernel; allow float32 rounding only.
        let alone = single["score"].as_f64().unwrap();
        assert!(
            (alone - row.2).abs() <= 1e-6 * row.2.abs().max(1e-12),
            "row {i}: {alone} vs {}",
            row.2
        );
    }
    server.stop().await;
}

#[test]
fn gzip_input_scores_like_plain_input() {
    let Some(sample) = common::sample_csv() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gzipped = dir.path().join("sample.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gzipped).unwrap(),
        flate2::Compression::default(),
    );
    std::io::copy(&mut std::fs::File::open(&sample).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap();

    let root = common::shipped_model_root();
    assert_eq!(
        score_offline(&gzipped, &root),
        score_offline(&sample, &root)
    );
}

#[test]
fn labelled_input_prints_the_evaluation() {
    // The golden rows include takeovers: write them as a snake_case CSV with labels.
    let shipped = common::latest_shipped_version();
    let rows =
        login_scorer::bundle::golden::parse(&std::fs::read(shipped.join("golden.jsonl")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("labelled.csv");
    let fields = login_scorer::scoring::EventField::ALL;
    let mut writer = csv::Writer::from_path(&input).unwrap();
    writer
        .write_record(fields.iter().map(|field| field.name()))
        .unwrap();
    for row in &rows {
        writer
            .write_record(fields.iter().map(|field| match &row.event[field.name()] {
                Value::Null => String::new(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }))
            .unwrap();
    }
    writer.flush().unwrap();

    let out = dir.path().join("scores.csv");
    let output = Command::new(env!("CARGO_BIN_EXE_login-scorer"))
        .env("ORT_DYLIB_PATH", common::ort_dylib())
        .args(["--log", "warn", "score", "--model-root"])
        .arg(&shipped)
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = String::from_utf8(output.stdout).unwrap();

    let mut reader = csv::Reader::from_path(&out).unwrap();
    let (mut true_positives, mut false_negatives) = (0, 0);
    for (record, row) in reader.records().zip(&rows) {
        let record = record.unwrap();
        let takeover = row.event["is_account_takeover"] == Value::Bool(true);
        match (takeover, &record[4]) {
            (true, "true") => true_positives += 1,
            (true, _) => false_negatives += 1,
            _ => {}
        }
    }
    assert!(
        true_positives + false_negatives > 0,
        "golden rows hold takeovers"
    );
    let takeover_line = report
        .lines()
        .find(|line| line.trim_start().starts_with("takeover"))
        .unwrap();
    let counts: Vec<u64> = takeover_line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(counts, vec![false_negatives, true_positives], "{report}");
    for metric in ["precision", "recall", "roc_auc", "pr_auc"] {
        let line = report
            .lines()
            .find(|line| line.trim_start().starts_with(metric))
            .unwrap();
        let value: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&value), "{line}");
    }
}
