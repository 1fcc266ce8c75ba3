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
