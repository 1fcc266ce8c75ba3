//! The binary's exit codes and messages: a bad bundle, a missing model root or a missing
//! ONNX Runtime is a clear error naming the path, with exit code 1 and no panic.

#[path = "support/common.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

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
    assert_clean_failure(&output, &["/nonexistent/libonnxruntime.so", "make setup"]);

    // A file that is not a shared library at all.
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), b"not a library").unwrap();
    let output = login_scorer(&["check-bundle", root], wrong.path());
    assert_clean_failure(&output, &[wrong.path().to_str().unwrap(), "make setup"]);
}
