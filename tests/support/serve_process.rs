//! The real `login-scorer serve` binary as a child process on a port-0 listener, its
//! JSON log lines read on a thread so a test can wait for them.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a test waits for a log line or an answer.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running `serve` process; killed on drop if the test did not stop it.
pub struct ServeProcess {
    /// The child.
    pub child: Child,
    lines: Receiver<String>,
    /// Every log line read so far.
    pub seen: Vec<String>,
    address: Option<String>,
}

impl ServeProcess {
    /// Starts `serve` on 127.0.0.1:0 over `model_root` with watching off, plus `extra`
    /// flags, and waits until it logs `listening`.
    pub fn start(model_root: &Path, extra: &[&str]) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_login-scorer"))
            .env("ORT_DYLIB_PATH", super::common::ort_dylib())
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(["--watch", "false"])
            .arg("--model-root")
            .arg(model_root)
            .args(extra)
            .stderr(Stdio::piped())
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
        let mut process = ServeProcess {
            child,
            lines,
            seen: Vec::new(),
            address: None,
        };
        let listening = process.wait_for("listening");
        process.address = listening["address"].as_str().map(str::to_owned);
        process
    }

    /// `127.0.0.1:<port>` of the main listener.
    pub fn address(&self) -> String {
        self.address.clone().expect("listening logged an address")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a log line whose message is `message`; returns it as JSON.
    pub fn wait_for(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            if let Ok(json) = serde_json::from_str::<Value>(&line) {
                if json["message"] == message {
                    return json;
                }
            }
        }
        panic!("no `{message}` log line; saw:\n{}", self.seen.join("\n"));
    }

    /// Sends a signal by name, e.g. `-HUP`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; returns how long that took.
    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "serve did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) {
        self.signal("-TERM");
        let (status, _) = self.wait_exit(WAIT);
        assert!(status.success(), "{status}");
    }

    /// Every log line read so far plus whatever is already buffered.
    pub fn drain_logs(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a plain socket with `connection: close`; the whole answer.
pub fn request(address: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         {auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
