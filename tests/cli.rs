//! The binary's exit codes and messages: a bad bundle, a missing model root or a missing
//! ONNX Runtime is a clear error naming the path, with exit code 1 and no panic.

#[path = "support/common.rs"]
mod common;
#[path = "support/serve_process.rs"]
mod serve_process;

use std::path::Path;
use std::process::{Command, Output};

use serve_process::{ServeProcess, request};

fn login_scorer(args: &[&str], ort: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_login-scorer"))
        .env("ORT_DYLIB_PATH", ort)
        .env_remove("LOGIN_SCORER_ORT_DYLIB_PATH")
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_clean_failure(output: &Output, mentions: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    for needle in mentions {
        assert!(text.contains(needle), "`{needle}` missing from: {text}");
    }
}

#[test]
fn check_bundle_accepts_every_shipped_bundle() {
    for dir in common::shipped_version_dirs() {
        let output = login_scorer(
            &["check-bundle", dir.to_str().unwrap()],
            &common::ort_dylib(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("valid:"));
    }
    let root = common::shipped_model_root();
    let output = login_scorer(
        &["check-bundle", root.to_str().unwrap()],
        &common::ort_dylib(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn check_bundle_says_why_a_bundle_fails() {
    let root = tempfile::tempdir().unwrap();
    let copy = common::copy_version(&common::latest_shipped_version(), root.path(), 1);
    std::fs::write(copy.join("preprocess.json"), b"{}").unwrap();
    let output = login_scorer(
        &["check-bundle", copy.to_str().unwrap()],
        &common::ort_dylib(),
    );
    assert_clean_failure(
        &output,
        &["preprocess.json", "SHA-256", copy.to_str().unwrap()],
    );
}

#[test]
fn serve_without_a_bundle_names_the_root_and_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    let root = empty.path().to_str().unwrap();
    let output = login_scorer(
        &["serve", "--listen", "127.0.0.1:0", "--model-root", root],
        &common::ort_dylib(),
    );
    assert_clean_failure(&output, &[root, "make train", "artifacts/rba-autoencoder"]);
}

#[test]
fn a_missing_or_wrong_runtime_names_the_path_and_the_fix() {
    let root = common::shipped_model_root();
    let root = root.to_str().unwrap();
    let missing = Path::new("/nonexistent/libonnxruntime.so");
    let output = login_scorer(
        &["serve", "--listen", "127.0.0.1:0", "--model-root", root],
        missing,
    );
    assert_clean_failure(
        &output,
        &[
            "/nonexistent/libonnxruntime.so",
            "make setup",
            "pip install onnxruntime==1.31.1",
            "ORT_DYLIB_PATH",
        ],
    );

    // A file that is not a shared library at all.
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), b"not a library").unwrap();
    let output = login_scorer(&["check-bundle", root], wrong.path());
    assert_clean_failure(&output, &[wrong.path().to_str().unwrap(), "make setup"]);
}

#[test]
fn a_port_in_use_names_the_port_and_how_to_pick_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let root = common::shipped_model_root();
    let output = login_scorer(
        &[
            "serve",
            "--listen",
            &address.to_string(),
            "--model-root",
            root.to_str().unwrap(),
            "--watch",
            "false",
        ],
        &common::ort_dylib(),
    );
    let port = format!("port {}", address.port());
    assert_clean_failure(
        &output,
        &[
            &port,
            "--listen",
            "LOGIN_SCORER_LISTEN",
            "make serve LISTEN=",
        ],
    );
}

#[test]
fn serve_reloads_on_sighup_and_drains_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let shipped = common::latest_shipped_version();
    common::copy_version(&shipped, root.path(), 1);
    let mut server = ServeProcess::start(root.path(), &[]);
    let address = server.address();
    assert!(address.starts_with("127.0.0.1:"));
    let event = r#"{"user_id": "-8296667206273764769", "ip_address": "82.147.58.93"}"#;
    let answer = request(&address, "POST", "/v1/score", None, event);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // With watching off, only the signal makes version 2 the served model.
    common::copy_version(&shipped, root.path(), 2);
    server.signal("-HUP");
    let loaded = server.wait_for("model loaded");
    assert_eq!(loaded["model_version"], 2);
    assert_eq!(loaded["trigger"], "signal");

    server.signal("-TERM");
    let stopped = server.wait_for("stopped");
    assert_eq!(stopped["drained"], true);
    let (status, _) = server.wait_exit(common::POLL_TIMEOUT);
    assert!(status.success(), "{status}");
    let logs = server.drain_logs();
    assert!(
        !logs.contains("8296667206273764769"),
        "a user id reached the logs: {logs}"
    );
    assert!(
        !logs.contains("82.147.58.93"),
        "an IP address reached the logs: {logs}"
    );
}
