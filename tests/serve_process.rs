//! The real binary: SIGTERM under load with idle keep-alive clients, the admin call on
//! its own listener, and no raw IP address or user id in the info logs.

#[path = "support/common.rs"]
mod common;
#[path = "support/serve_process.rs"]
mod serve_process;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serve_process::{ServeProcess, request};

const TOKEN: &str = "s3cret-admin";
const EVENT: &str = r#"{"user_id": "-8296667206273764769", "ip_address": "82.147.58.93",
    "country": "NO", "timestamp": "2020-02-03 12:44:30.475"}"#;

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A keep-alive HTTP/1.1 connection driven by hand.
struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn connect(address: &str) -> KeepAlive {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(serve_process::WAIT)).unwrap();
        KeepAlive {
            reader: BufReader::new(stream),
        }
    }

    fn head(address: &str, length: usize) -> String {
        format!(
            "POST /v1/score HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
             content-length: {length}\r\n\r\n"
        )
    }

    /// A connection that has had one event scored (200), and so holds a slot.
    fn served(address: &str) -> KeepAlive {
        let mut client = KeepAlive::connect(address);
        client
            .write(KeepAlive::head(address, EVENT.len()).as_bytes())
            .unwrap();
        client.write(EVENT.as_bytes()).unwrap();
        assert_eq!(client.read_response(), Some(200));
        client
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Reads one response; its status, or `None` when the server closed the connection.
    fn read_response(&mut self) -> Option<u16> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line).ok()? == 0 {
            return None;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).ok()?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).ok()?;
        Some(status_of(&status_line))
    }

    /// Whether the server closed the connection (EOF) within the read timeout.
    fn closed_by_server(&mut self) -> bool {
        let mut byte = [0; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

#[test]
fn sigterm_under_load_finishes_requests_in_flight_and_exits_within_the_drain() {
    const DRAIN_SECONDS: u64 = 5;
    const IDLE_CLIENTS: usize = 16;
    const LOAD_THREADS: usize = 4;
    let root = tempfile::tempdir().unwrap();
    common::copy_version(&common::latest_shipped_version(), root.path(), 1);
    let drain = DRAIN_SECONDS.to_string();
    let mut server = ServeProcess::start(root.path(), &["--drain-seconds", &drain]);
    let address = server.address();

    // Idle keep-alive clients: one request each, then silence.
    let mut idle: Vec<KeepAlive> = (0..IDLE_CLIENTS)
        .map(|_| KeepAlive::served(&address))
        .collect();

    // Load on keep-alive connections until the server goes away.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..LOAD_THREADS)
        .map(|_| {
            let (address, stop) = (address.clone(), Arc::clone(&stop));
            let (ok, bad) = (Arc::clone(&ok), Arc::clone(&bad));
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < serve_process::WAIT {
                    let Ok(stream) = TcpStream::connect(&address) else {
                        return;
                    };
                    stream.set_read_timeout(Some(serve_process::WAIT)).unwrap();
                    let mut client = KeepAlive {
                        reader: BufReader::new(stream),
                    };
                    for _ in 0..1000 {
                        let head = KeepAlive::head(&address, EVENT.len());
                        let sent = client.write(head.as_bytes()).is_ok()
                            && client.write(EVENT.as_bytes()).is_ok();
                        match client.read_response() {
                            Some(200) => ok.fetch_add(1, Ordering::Relaxed),
                            Some(_) => bad.fetch_add(1, Ordering::Relaxed),
                            None => break,
                        };
                        if !sent {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    let warm = Instant::now();
    while ok.load(Ordering::Relaxed) < 200 {
        assert!(warm.elapsed() < serve_process::WAIT, "no load answered");
        std::thread::yield_now();
    }

    // A request in flight: headers and half the body sent before SIGTERM.
    let mut held = KeepAlive::connect(&address);
    held.write(KeepAlive::head(&address, EVENT.len()).as_bytes())
        .unwrap();
    held.write(&EVENT.as_bytes()[..EVENT.len() / 2]).unwrap();
    // A round trip on another connection gives the server time to read the held
    // request's headers; had it not, the drain would close the held connection as
    // idle and the 200 below would fail, so this cannot pass by accident.
    assert!(request(&address, "GET", "/healthz", None, "").starts_with("HTTP/1.1 200"));

    server.signal("-TERM");
    let signalled = Instant::now();
    server.wait_for("shutting down; draining requests");
    held.write(&EVENT.as_bytes()[EVENT.len() / 2..]).unwrap();
    assert_eq!(
        held.read_response(),
        Some(200),
        "the request in flight finished"
    );

    let stopped = server.wait_for("stopped");
    let (status, _) = server.wait_exit(serve_process::WAIT);
    let exit_after = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().unwrap();
    }
    let closed = idle
        .iter_mut()
        .map(|c| c.closed_by_server())
        .filter(|&closed| closed)
        .count();
    println!(
        "SIGTERM: exited {status} after {:.0} ms (drain deadline {DRAIN_SECONDS} s); \
         {} requests answered 200 under load, {} other statuses; {closed}/{IDLE_CLIENTS} \
         idle keep-alive connections closed by the server",
        exit_after.as_secs_f64() * 1000.0,
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed)
    );
    assert!(status.success(), "{status}");
    assert_eq!(
        stopped["drained"], true,
        "idle clients must not hold the drain"
    );
    assert!(exit_after < Duration::from_secs(DRAIN_SECONDS));
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "a request got a non-200 answer"
    );
    assert_eq!(closed, IDLE_CLIENTS);
}

#[test]
fn the_admin_call_can_live_on_its_own_listener() {
    let root = tempfile::tempdir().unwrap();
    common::copy_version(&common::latest_shipped_version(), root.path(), 1);
    let extra = ["--admin-token", TOKEN, "--admin-listen", "127.0.0.1:0"];
    let mut server = ServeProcess::start(root.path(), &extra);
    let public = server.address();
    let admin_line = server.wait_for("admin listening");
    let admin = admin_line["address"].as_str().unwrap().to_owned();
    assert_ne!(admin, public);

    let reload = |address: &str, token: Option<&str>| {
        status_of(&request(address, "POST", "/admin/reload", token, ""))
    };
    // Only the admin listener answers /admin/*; the public one does not know it.
    assert_eq!(reload(&public, Some(TOKEN)), 404);
    assert_eq!(reload(&admin, None), 401);
    assert_eq!(reload(&admin, Some("s3cret-admin!")), 401);
    assert_eq!(reload(&admin, Some("")), 401);
    assert_eq!(reload(&admin, Some(TOKEN)), 200);
    // Scoring stays on the public listener.
    assert_eq!(
        status_of(&request(&public, "POST", "/v1/score", None, EVENT)),
        200
    );
    assert_eq!(
        status_of(&request(&admin, "POST", "/v1/score", None, EVENT)),
        404
    );
    server.terminate();
}

#[test]
fn info_logs_name_no_ip_address_or_user_id() {
    let root = tempfile::tempdir().unwrap();
    common::copy_version(&common::latest_shipped_version(), root.path(), 1);
    let mut server = ServeProcess::start(root.path(), &["--admin-token", TOKEN]);
    let address = server.address();

    let secrets = [
        "-8296667206273764769",
        "82.147.58.93",
        "7000000000000000001",
        "fe80::1%eth0",
        "2001:db8::77",
        "99999999999999999999",
        "10.1.2.3",
    ];
    let bodies = [
        EVENT.to_owned(),
        r#"{"user_id": 7000000000000000001, "ip_address": "fe80::1%eth0"}"#.to_owned(),
        r#"{"user_id": "99999999999999999999", "ip_address": "2001:db8::77"}"#.to_owned(),
        r#"{"user_id": "7000000000000000001", "timestamp": "10.1.2.3"}"#.to_owned(),
        r#"{"user_id": "7000000000000000001", "ip_address": "10.1.2.3""#.to_owned(),
    ];
    for body in &bodies {
        let answer = request(&address, "POST", "/v1/score", None, body);
        assert!(status_of(&answer) < 500, "{answer}");
        let batch = format!("{{\"events\": [{body}, {body}]}}");
        let answer = request(&address, "POST", "/v1/score/batch", None, &batch);
        assert!(status_of(&answer) < 500, "{answer}");
    }
    // A wrong admin token must not be logged either.
    request(
        &address,
        "POST",
        "/admin/reload",
        Some("wrong-token-10.9.8.7"),
        "",
    );
    server.terminate();
    let logs = server.drain_logs();
    assert!(logs.contains("\"stopped\""), "{logs}");
    for secret in secrets.iter().chain(&["wrong-token-10.9.8.7", TOKEN]) {
        assert!(
            !logs.contains(secret),
            "`{secret}` reached the logs:\n{logs}"
        );
    }
}

#[test]
fn connections_over_the_cap_get_a_fast_503_and_idle_ones_time_out() {
    const CAP: usize = 4;
    let root = tempfile::tempdir().unwrap();
    common::copy_version(&common::latest_shipped_version(), root.path(), 1);
    let cap = CAP.to_string();
    let flags = [
        "--max-connections",
        &cap,
        "--request-timeout-seconds",
        "0.5",
    ];
    let mut server = ServeProcess::start(root.path(), &flags);
    let address = server.address();

    // Keep-alive clients take every slot (a connection claims one when accepted), then
    // fall silent; another, over the cap, sends half a header and stops.
    let mut slow: Vec<KeepAlive> = (0..CAP).map(|_| KeepAlive::served(&address)).collect();
    let mut half = KeepAlive::connect(&address);
    half.write(b"POST /v1/score HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    slow.push(half);

    let asked = Instant::now();
    let answer = request(&address, "POST", "/v1/score", None, EVENT);
    let shed_after = asked.elapsed();
    let lower = answer.to_ascii_lowercase();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(lower.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");

    let timed = Instant::now();
    let closed = slow
        .iter_mut()
        .map(|c| c.closed_by_server())
        .filter(|&closed| closed)
        .count();
    let closed_after = timed.elapsed();
    let ok = request(&address, "POST", "/v1/score", None, EVENT);
    println!(
        "connection cap {CAP}: the next connection got 503 in {:.1} ms; {closed}/{} idle \
         or half-sent connections closed {:.0} ms later (header timeout 500 ms); then {}",
        shed_after.as_secs_f64() * 1000.0,
        CAP + 1,
        closed_after.as_secs_f64() * 1000.0,
        ok.lines().next().unwrap_or_default()
    );
    assert!(shed_after < Duration::from_millis(250), "{shed_after:?}");
    assert_eq!(
        closed,
        CAP + 1,
        "every idle or half-sent connection timed out"
    );
    assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    server.terminate();
}

#[test]
fn a_connection_over_the_cap_keeps_getting_503_then_is_served_once_a_slot_frees() {
    let root = tempfile::tempdir().unwrap();
    common::copy_version(&common::latest_shipped_version(), root.path(), 1);
    let mut server = ServeProcess::start(root.path(), &["--max-connections", "1"]);
    let address = server.address();
    let one = format!("{}{EVENT}", KeepAlive::head(&address, EVENT.len()));
    let send = |client: &mut KeepAlive, wire: &str, answers: usize| {
        client.write(wire.as_bytes()).unwrap();
        (0..answers)
            .map(|_| client.read_response())
            .collect::<Vec<_>>()
    };

    let mut admitted = KeepAlive::served(&address);
    // Over the cap: each request, bodies and pipelined ones included, gets its 503 on
    // the same open connection.
    let mut waiting = KeepAlive::connect(&address);
    assert_eq!(send(&mut waiting, &one, 1), [Some(503)]);
    assert_eq!(send(&mut waiting, &one.repeat(3), 3), [Some(503); 3]);
    // Two requests that once left the connection shed after a slot freed: one of
    // exactly 8 KiB (the read filled the buffer, and readiness outlived it), and one
    // followed by an empty line.
    let padding = 8192 - one.len() - "x-pad: \r\n".len();
    let eight_kib = one.replacen(
        "\r\n\r\n",
        &format!("\r\nx-pad: {}\r\n\r\n", "p".repeat(padding)),
        1,
    );
    assert_eq!(eight_kib.len(), 8192);
    assert_eq!(send(&mut waiting, &eight_kib, 1), [Some(503)]);
    assert_eq!(send(&mut waiting, &format!("{one}\r\n"), 1), [Some(503)]);
    assert_eq!(send(&mut admitted, &one, 1), [Some(200)]);

    drop(admitted);
    // Time for the server to see the close and free the slot.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        send(&mut waiting, &one, 1),
        [Some(200)],
        "the waiting connection is served on its first request after the slot frees"
    );
    server.terminate();
}
