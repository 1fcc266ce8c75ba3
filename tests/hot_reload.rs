//! Hot reload: a new version directory, a changed manifest or the admin call swaps in a
//! validated bundle without failing a request; a broken candidate is rejected and the
//! old model keeps serving.

#[path = "support/common.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::TestServer;
use login_scorer::bundle::watch;
use login_scorer::http::HttpConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Requests each load task sends at most, so the loop is bounded even if reload hangs.
const MAX_REQUESTS_PER_TASK: usize = 20_000;

async fn model_version(server: &TestServer) -> u64 {
    let info: Value = common::client()
        .get(server.url("/v1/model"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info["version"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_swapped_in_while_requests_run() {
    let root = tempfile::tempdir().unwrap();
    let shipped = common::latest_shipped_version();
    common::copy_version(&shipped, root.path(), 1);
    let store = common::loaded_store(root.path());
    let _watcher = watch::spawn(Arc::clone(&store), Duration::from_millis(100)).unwrap();
    let server = Arc::new(TestServer::start(store).await);

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen_versions = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut load = Vec::new();
    for task in 0..4_i64 {
        let (server, stop, sent, failed) = (
            Arc::clone(&server),
            Arc::clone(&stop),
            Arc::clone(&sent),
            Arc::clone(&failed),
        );
        let seen_versions = Arc::clone(&seen_versions);
        load.push(tokio::spawn(async move {
            let client = common::client();
            for i in 0..MAX_REQUESTS_PER_TASK {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let batch = i % 5 == 0;
                let request = if batch {
                    let events = [common::desktop_login(task), common::desktop_login(i as i64)];
                    json!({ "events": events })
                } else {
                    common::desktop_login(task)
                };
                let path = if batch {
                    "/v1/score/batch"
                } else {
                    "/v1/score"
                };
                let response = client.post(server.url(path)).json(&request).send().await;
                sent.fetch_add(1, Ordering::Relaxed);
                match response {
                    Ok(response) if response.status() == StatusCode::OK => {
                        let body: Value = response.json().await.unwrap();
                        let version = body["model"]["version"].as_u64().unwrap();
                        seen_versions.lock().unwrap().insert(version);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Let traffic flow on version 1, then publish version 2 and wait for the watcher.
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::copy_version(&shipped, root.path(), 2);
    let deadline = tokio::time::Instant::now() + common::POLL_TIMEOUT;
    while model_version(&server).await != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "version 2 was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("{sent} requests during the reload, {failed} failed");
    assert!(sent > 100, "too little traffic to prove anything: {sent}");
    assert_eq!(failed, 0);
    assert_eq!(*seen_versions.lock().unwrap(), [1, 2].into_iter().collect());
    assert_eq!(server.store.reloads_ok(), 1);
    assert_eq!(server.store.reloads_failed(), 0);
    Arc::try_unwrap(server)
        .ok()
        .expect("load tasks finished")
        .stop()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_candidate_is_rejected_and_the_old_model_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let shipped = common::latest_shipped_version();
    common::copy_version(&shipped, root.path(), 1);
    let store = common::loaded_store(root.path());
    let server = TestServer::start_with(store, HttpConfig::default(), Some("token")).await;
    let client = common::client();
    let reload = || {
        client
            .post(server.url("/admin/reload"))
            .bearer_auth("token")
            .send()
    };

    // Version 2's model.onnx does not match its checksum.
    let broken = common::copy_version(&shipped, root.path(), 2);
    let mut bytes = std::fs::read(broken.join("model.onnx")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(broken.join("model.onnx"), bytes).unwrap();
    // Version 3 names a file outside its directory.
    common::copy_version_with(&shipped, root.path(), 3, |manifest| {
        manifest["files"]["../escape.txt"] = json!("00");
    });
    // Version 4 is still being copied: no manifest yet, so it is skipped.
    std::fs::create_dir(root.path().join("4")).unwrap();

    let response = reload().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "reload_rejected");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("version 2") && message.contains("SHA-256"),
        "{message}"
    );
    assert!(
        message.contains("version 3") && message.contains("escape"),
        "{message}"
    );

    assert_eq!(model_version(&server).await, 1);
    assert!(
        client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let scored = client
        .post(server.url("/v1/score"))
        .json(&common::desktop_login(7))
        .send()
        .await
        .unwrap();
    assert_eq!(scored.status(), StatusCode::OK);
    assert_eq!(server.store.reloads_failed(), 2);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("login_scorer_reloads_total{result=\"failed\"}"),
        "{metrics:.2000}"
    );

    // Fixing version 2 makes it the served model on the next reload.
    std::fs::remove_dir_all(root.path().join("3")).unwrap();
    std::fs::copy(shipped.join("model.onnx"), root.path().join("2/model.onnx")).unwrap();
    let body: Value = reload().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "reloaded", "{body}");
    assert_eq!(body["version"], 2);
    assert_eq!(model_version(&server).await, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_manifest_reloads_the_same_version() {
    let root = tempfile::tempdir().unwrap();
    let shipped = common::latest_shipped_version();
    common::copy_version(&shipped, root.path(), 1);
    let store = common::loaded_store(root.path());
    let first_load = store.current().unwrap().loaded_at;
    let server = TestServer::start_with(store, HttpConfig::default(), Some("token")).await;
    let client = common::client();

    let unchanged: Value = client
        .post(server.url("/admin/reload"))
        .bearer_auth("token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["status"], "unchanged");

    common::copy_version_with(&shipped, root.path(), 1, |manifest| {
        manifest["threshold"] = json!(manifest["threshold"].as_f64().unwrap() * 2.0);
    });
    let body: Value = client
        .post(server.url("/admin/reload"))
        .bearer_auth("token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "reloaded", "{body}");
    let model = server.store.current().unwrap();
    assert!(model.loaded_at > first_load);
    let original: Value =
        serde_json::from_slice(&std::fs::read(shipped.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        model.manifest.threshold,
        original["threshold"].as_f64().unwrap() * 2.0
    );
    assert_eq!(server.store.reloads_ok(), 1);
    server.stop().await;
}
