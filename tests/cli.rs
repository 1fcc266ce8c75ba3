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

/// A `serve` process reading its stderr on a thread, so the test can wait for lines.
struct ServeProcess {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ServeProcess {
    fn start(model_root: &Path) -> ServeProcess {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_login-scorer"))
            .env("ORT_DYLIB_PATH", common::ort_dylib())
            .args([
                "--log-format",
                "json",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--watch",
                "false",
            ])
            .arg("--model-root")
            .arg(model_root)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ServeProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a log line whose message is `message`; returns it as JSON.
    fn wait_for(&mut self, message: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + common::POLL_TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                if json["message"] == message {
                    return json;
                }
            }
        }
        panic!("no `{message}` log line; saw:\n{}", self.seen.join("\n"));
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_reloads_on_sighup_and_drains_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let shipped = common::latest_shipped_version();
    common::copy_version(&shipped, root.path(), 1);
    let mut server = ServeProcess::start(root.path());
    let listening = server.wait_for("listening");
    let address = listening["address"].as_str().unwrap().to_owned();
    assert!(address.starts_with("127.0.0.1:"));
    let event = r#"{"user_id": "-8296667206273764769", "ip_address": "82.147.58.93"}"#;
    let answer = post_raw(&address, event);
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
    let deadline = std::time::Instant::now() + common::POLL_TIMEOUT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let logs = server.seen.join("\n");
    assert!(
        !logs.contains("8296667206273764769"),
        "a user id reached the logs: {logs}"
    );
    assert!(
        !logs.contains("82.147.58.93"),
        "an IP address reached the logs: {logs}"
    );
}

/// One HTTP/1.1 request over a plain socket (the test has no blocking HTTP client).
fn post_raw(address: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(common::POLL_TIMEOUT)).unwrap();
    let request = format!(
        "POST /v1/score HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
