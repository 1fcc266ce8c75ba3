//! Broken bundles, one per way a bundle can be wrong: each is rejected with a reason
//! that names the problem, while the old version keeps serving and `/readyz` stays 200.
//! Also a bundle still being copied, the model root emptied after start, and files that
//! try to leave the version directory.

#[path = "support/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use login_scorer::bundle::files::sha256_hex;
use login_scorer::bundle::watch;
use login_scorer::http::HttpConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "reliability";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::repo_root().join("tests/fixtures").join(name)).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Replaces `name` in the version directory and records its new SHA-256 in the
/// manifest, so only the content is wrong, not the checksum.
fn replace_signed(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    let mut manifest = read_json(&dir.join("manifest.json"));
    manifest["files"][name] = json!(sha256_hex(bytes));
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
}

fn edit_preprocess(dir: &Path, edit: impl FnOnce(&mut Value) -> String) {
    let mut spec = read_json(&dir.join("preprocess.json"));
    let text = edit(&mut spec);
    replace_signed(dir, "preprocess.json", text.as_bytes());
}

/// One way to break version 2, and words its rejection must contain.
struct Case {
    name: &'static str,
    breaks: fn(&Path),
    reason: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "truncated model.onnx",
        breaks: |dir| {
            let model = std::fs::read(dir.join("model.onnx")).unwrap();
            replace_signed(dir, "model.onnx", &model[..model.len() / 2]);
        },
        reason: &["model.onnx", "cannot create an ONNX Runtime session"],
    },
    Case {
        name: "bytes that are not ONNX",
        breaks: |dir| replace_signed(dir, "model.onnx", b"this is not a protobuf at all"),
        reason: &["model.onnx", "cannot create an ONNX Runtime session"],
    },
    Case {
        name: "checksum mismatch",
        breaks: |dir| {
            let mut golden = std::fs::read(dir.join("golden.jsonl")).unwrap();
            golden.extend_from_slice(b"\n");
            std::fs::write(dir.join("golden.jsonl"), golden).unwrap();
        },
        reason: &["golden.jsonl", "SHA-256", "does not match"],
    },
    Case {
        name: "manifest missing a field",
        breaks: |dir| {
            let mut manifest = read_json(&dir.join("manifest.json"));
            manifest.as_object_mut().unwrap().remove("threshold");
            std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        },
        reason: &["manifest.json", "missing field `threshold`"],
    },
    Case {
        name: "preprocess.json with a NaN",
        breaks: |dir| {
            edit_preprocess(dir, |spec| {
                spec["scaler"]["min"][0] = json!(123_456.5);
                spec.to_string().replace("123456.5", "NaN")
            })
        },
        reason: &["preprocess.json", "expected value"],
    },
    Case {
        name: "preprocess.json with min equal to max",
        breaks: |dir| {
            edit_preprocess(dir, |spec| {
                spec["scaler"]["max"][4] = spec["scaler"]["min"][4].clone();
                spec.to_string()
            })
        },
        reason: &["preprocess.json", "login_hours", "finite min < max"],
    },
    Case {
        name: "model of the wrong input width",
        breaks: |dir| replace_signed(dir, "model.onnx", &fixture("width7.onnx")),
        reason: &["model.onnx", "shape", "expected [batch, 8]"],
    },
    Case {
        name: "model with a fixed batch dimension",
        breaks: |dir| replace_signed(dir, "model.onnx", &fixture("fixed_batch.onnx")),
        reason: &["model.onnx", "fixed batch dimension 1"],
    },
    Case {
        name: "golden rows that do not reproduce",
        breaks: |dir| {
            let golden = std::fs::read_to_string(dir.join("golden.jsonl")).unwrap();
            let mut lines: Vec<String> = golden.lines().map(str::to_owned).collect();
            let mut row: Value = serde_json::from_str(&lines[2]).unwrap();
            row["score"] = json!(row["score"].as_f64().unwrap() * 1.01 + 1e-6);
            lines[2] = row.to_string();
            replace_signed(dir, "golden.jsonl", lines.join("\n").as_bytes());
        },
        reason: &["golden.jsonl line 3", "score"],
    },
    Case {
        name: "a file that leaves the directory through a symlink",
        breaks: |dir| {
            let outside = dir.parent().unwrap().parent().unwrap().join("outside.onnx");
            std::fs::copy(dir.join("model.onnx"), &outside).unwrap();
            std::fs::remove_file(dir.join("model.onnx")).unwrap();
            std::os::unix::fs::symlink(&outside, dir.join("model.onnx")).unwrap();
        },
        reason: &["model.onnx", "outside the version directory"],
    },
    Case {
        name: "a manifest naming a file through '..'",
        breaks: |dir| {
            let mut manifest = read_json(&dir.join("manifest.json"));
            let hash = manifest["files"]["model.onnx"].clone();
            manifest["files"]["../1/model.onnx"] = hash;
            std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        },
        reason: &["../1/model.onnx", "path separators"],
    },
];

async fn served_version(server: &TestServer) -> u64 {
    let ready = common::client()
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "/readyz must stay 200");
    let body: Value = ready.json().await.unwrap();
    body["model"]["version"].as_u64().unwrap()
}

async fn score_status(server: &TestServer) -> StatusCode {
    let event = json!({"timestamp": "2020-02-03 12:44:19.260", "country": "NO"});
    common::client()
        .post(server.url("/v1/score"))
        .json(&event)
        .send()
        .await
        .unwrap()
        .status()
}

/// A model root (inside a scratch directory, so symlink targets stay outside it)
/// holding a copy of the shipped bundle as version 1.
fn scratch_root() -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    common::copy_version(&common::latest_shipped_version(), &root, 1);
    (scratch, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_bundle_is_rejected_with_its_reason() {
    let (_scratch, root) = scratch_root();
    let shipped = common::latest_shipped_version();
    let store = common::loaded_store(&root);
    let server = TestServer::start_with(store, HttpConfig::default(), Some(TOKEN)).await;
    let client = common::client();

    for case in CASES {
        let candidate = common::copy_version(&shipped, &root, 2);
        (case.breaks)(&candidate);
        let response = client
            .post(server.url("/admin/reload"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT, "{}", case.name);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "reload_rejected", "{}", case.name);
        let message = body["error"]["message"].as_str().unwrap();
        for needle in std::iter::once(&"version 2").chain(case.reason) {
            assert!(
                message.contains(needle),
                "{}: `{needle}` missing from: {message}",
                case.name
            );
        }
        assert_eq!(served_version(&server).await, 1, "{}", case.name);
        assert_eq!(score_status(&server).await, StatusCode::OK, "{}", case.name);
        println!("{}: rejected: {message:.200}", case.name);
        std::fs::remove_dir_all(&candidate).unwrap();
    }
    assert_eq!(server.store.reloads_failed(), CASES.len() as u64);
    assert_eq!(server.store.reloads_ok(), 0);
    server.stop().await;
}

/// Polls `/readyz` until version `want` is served or the deadline passes.
async fn wait_for_version(server: &TestServer, want: u64) {
    let deadline = tokio::time::Instant::now() + common::POLL_TIMEOUT;
    while served_version(server).await != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "version {want} never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_copied_slowly_is_loaded_only_once_complete() {
    let (_scratch, root) = scratch_root();
    let shipped = common::latest_shipped_version();
    let store = common::loaded_store(&root);
    let _watcher = watch::spawn(Arc::clone(&store), Duration::from_millis(50)).unwrap();
    let server = TestServer::start(store).await;

    // Every file but the manifest appears in pieces, with quiet gaps longer than the
    // debounce, so the watcher fires reloads while version 2 is half-written.
    let target = root.join("2");
    std::fs::create_dir(&target).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&shipped)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .filter(|name| name != "manifest.json")
        .collect();
    names.sort();
    for name in &names {
        let bytes = std::fs::read(shipped.join(name)).unwrap();
        let half = bytes.len() / 2;
        std::fs::write(target.join(name), &bytes[..half]).unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(served_version(&server).await, 1, "half-written {name:?}");
        std::fs::write(target.join(name), &bytes).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(served_version(&server).await, 1, "no manifest yet");
    assert_eq!(server.store.reloads_failed(), 0, "incomplete is not broken");

    let mut manifest = read_json(&shipped.join("manifest.json"));
    manifest["version"] = json!(2);
    let temporary = root.join(".manifest.tmp");
    std::fs::write(&temporary, manifest.to_string()).unwrap();
    std::fs::rename(&temporary, target.join("manifest.json")).unwrap();
    wait_for_version(&server, 2).await;
    assert_eq!(server.store.reloads_ok(), 1);
    assert_eq!(server.store.reloads_failed(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_model_root_keeps_the_served_model() {
    let (_scratch, root) = scratch_root();
    let store = common::loaded_store(&root);
    let server = TestServer::start_with(store, HttpConfig::default(), Some(TOKEN)).await;

    std::fs::remove_dir_all(root.join("1")).unwrap();
    let response = common::client()
        .post(server.url("/admin/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    // The served model is unchanged and nothing was rejected, so the call succeeds.
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unchanged", "{body}");
    assert_eq!(served_version(&server).await, 1);
    assert_eq!(score_status(&server).await, StatusCode::OK);
    assert_eq!(
        server.store.reloads_failed(),
        1,
        "the empty root is counted"
    );

    std::fs::remove_dir_all(&root).unwrap();
    let response = common::client()
        .post(server.url("/admin/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(served_version(&server).await, 1);
    assert_eq!(score_status(&server).await, StatusCode::OK);
    server.stop().await;
}
