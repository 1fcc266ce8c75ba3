//! The load generator of `make bench-load` (benches/load, a `harness = false` target in
//! which cargo runs no tests): its argument checks, the events and batches it sends,
//! its report, and short runs against a real server on 127.0.0.1.

#[path = "support/common.rs"]
mod common;
// The load generator's modules, included by path as tests/reliability.rs does. Every
// item they have is used here, so they need no `allow(dead_code)`.
#[path = "../benches/load/args.rs"]
mod args;
#[path = "../benches/load/events.rs"]
mod events;
#[path = "../benches/load/report.rs"]
mod report;
#[path = "../benches/load/run.rs"]
mod run;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use args::{Args, MAX_WINDOW_SECS, validate};
use bytes::Bytes;
use clap::Parser;
use common::TestServer;
use report::{ConnectionTally, Mode, Outcome, Summary, latency_histogram};
use run::{Answer, Plan, RunResult};
use serde_json::{Value, json};

const OK: Outcome = Outcome::Status(200);
const SHED: Outcome = Outcome::Status(503);

/// Longest any run here may take, so a run that ignores its cap or stop flag fails
/// instead of hanging.
const RUN_LIMIT: Duration = Duration::from_secs(30);

// Arguments.

/// The arguments `extra` on top of a required `--events`, parsed by clap and then
/// checked by `validate`.
fn checked(extra: &[&str]) -> anyhow::Result<Args> {
    let command_line = ["load", "--events", "events.csv"].iter().chain(extra);
    let args = Args::try_parse_from(command_line).expect("clap parses the arguments");
    validate(&args)?;
    Ok(args)
}

/// The message of `validate`'s refusal of `extra`.
fn refusal(extra: &[&str]) -> String {
    match checked(extra) {
        Ok(args) => panic!("{extra:?} was accepted as {args:?}"),
        Err(error) => format!("{error:#}"),
    }
}

#[test]
fn validate_refuses_a_non_loopback_address() {
    for url in [
        "http://10.0.0.1:8080/v1/score",
        "http://192.168.1.20/v1/score",
        "http://[2001:db8::1]:8080/v1/score",
    ] {
        let message = refusal(&["--url", url]);
        assert!(message.contains("non-loopback"), "{url}: {message}");
    }
}

#[test]
fn validate_refuses_a_host_name_even_localhost() {
    for url in [
        "http://example.com/v1/score",
        "http://localhost:8080/v1/score",
    ] {
        let message = refusal(&["--url", url]);
        assert!(
            message.contains("must be a loopback IP"),
            "{url}: {message}"
        );
    }
}

#[test]
fn validate_refuses_https() {
    let message = refusal(&["--url", "https://127.0.0.1:8443/v1/score"]);
    assert!(message.contains("only http://"), "{message}");
}

#[test]
fn validate_refuses_zero_connections_threads_events_batch_requests_or_timeout() {
    for flag in [
        "--connections",
        "--threads",
        "--event-limit",
        "--batch",
        "--requests",
        "--timeout-ms",
    ] {
        let message = refusal(&[flag, "0"]);
        assert!(message.contains(flag), "{flag} 0: {message}");
        checked(&[flag, "1"]).unwrap_or_else(|error| panic!("{flag} 1: {error:#}"));
    }
}

#[test]
fn validate_refuses_a_window_over_the_maximum_or_an_empty_one() {
    let over = (MAX_WINDOW_SECS + 1.0).to_string();
    let maximum = MAX_WINDOW_SECS.to_string();
    for flag in ["--duration-secs", "--warmup-secs"] {
        let message = refusal(&[flag, &over]);
        assert!(message.contains(flag), "{flag} {over}: {message}");
        checked(&[flag, &maximum]).unwrap_or_else(|error| panic!("{flag}: {error:#}"));
    }
    assert!(refusal(&["--duration-secs", "0"]).contains("--duration-secs"));
    checked(&["--warmup-secs", "0"]).expect("no warm-up is allowed");
}

#[test]
fn validate_refuses_a_rate_that_is_not_a_positive_number() {
    for rate in ["0", "-5", "NaN", "inf"] {
        let flag = format!("--rate={rate}");
        let message = refusal(&[&flag]);
        assert!(message.contains("--rate"), "{flag}: {message}");
    }
    let args = checked(&["--rate", "0.5"]).expect("a low positive rate is allowed");
    assert_eq!(args.rate, Some(0.5));
}

#[test]
fn validate_accepts_ipv4_and_ipv6_loopback_urls() {
    for url in [
        "http://127.0.0.1:8080/v1/score",
        "http://[::1]:8080/v1/score",
        "http://127.8.9.10:8080/v1/score/batch",
    ] {
        let args = checked(&["--url", url]).unwrap_or_else(|error| panic!("{url}: {error:#}"));
        assert_eq!(args.url.as_str(), url);
    }
    let defaults = checked(&[]).expect("the defaults pass their own checks");
    assert_eq!(defaults.url.as_str(), "http://127.0.0.1:8080/v1/score");
}

// Events and batches.

/// The JSON object of a request body.
fn object(body: &[u8]) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        other => panic!("not a JSON object: {other:?}"),
    }
}

/// The fields of an event in the service's JSON contract.
const EVENT_FIELDS: [&str; 14] = [
    "timestamp",
    "user_id",
    "round_trip_time_ms",
    "ip_address",
    "country",
    "region",
    "city",
    "asn",
    "user_agent",
    "browser_name_and_version",
    "os_name_and_version",
    "device_type",
    "login_successful",
    "is_attack_ip",
];

#[test]
fn sample_rows_become_events_with_snake_case_fields_and_json_types() {
    let Some(sample) = common::sample_csv() else {
        return;
    };
    let bodies = events::read_event_bodies(&sample, 1000).unwrap();
    let rows = common::csv_rows_as_json(&sample);
    assert_eq!(rows.len(), 19);
    assert_eq!(bodies.len(), rows.len());

    for (body, row) in bodies.iter().zip(&rows) {
        let event = object(body);
        let fields: Vec<&str> = event.keys().map(String::as_str).collect();
        let mut expected = EVENT_FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(fields, expected, "{event:?}");

        let cell = |column: &str| row[column].as_str().unwrap().to_owned();
        assert_eq!(event["user_id"], Value::String(cell("User ID")));
        assert_eq!(event["timestamp"], Value::String(cell("Login Timestamp")));
        assert_eq!(event["region"], Value::String(cell("Region")));
        let asn: i64 = cell("ASN").parse().unwrap();
        assert_eq!(event["asn"].as_i64(), Some(asn), "{event:?}");
        for (field, column) in [
            ("login_successful", "Login Successful"),
            ("is_attack_ip", "Is Attack IP"),
        ] {
            assert_eq!(event[field], Value::Bool(cell(column) == "True"), "{field}");
        }
        match cell("Round-Trip Time [ms]").as_str() {
            "" => assert_eq!(event["round_trip_time_ms"], Value::Null),
            text => assert_eq!(event["round_trip_time_ms"].as_f64(), text.parse().ok()),
        }
    }

    // A few cells read off the file: row 15 is the only one with a round-trip time.
    let first = object(&bodies[0]);
    assert_eq!(first["user_id"], "-4324475583306591935");
    assert_eq!(first["asn"], 29695);
    assert_eq!(first["login_successful"], false);
    assert_eq!(first["round_trip_time_ms"], Value::Null);
    assert_eq!(object(&bodies[15])["round_trip_time_ms"], 1123.0);
    assert_eq!(object(&bodies[2])["login_successful"], true);
}

#[test]
fn event_limit_keeps_the_first_rows_in_file_order() {
    let Some(sample) = common::sample_csv() else {
        return;
    };
    let all = events::read_event_bodies(&sample, usize::MAX).unwrap();
    let first = events::read_event_bodies(&sample, 5).unwrap();
    assert_eq!(first.len(), 5);
    assert_eq!(first[..], all[..5]);
}

#[test]
fn a_gzip_copy_reads_the_same_as_the_plain_file() {
    let Some(sample) = common::sample_csv() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let gzip = scratch.path().join("rba-sample.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gzip).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(&std::fs::read(&sample).unwrap()).unwrap();
    encoder.finish().unwrap();

    let plain = events::read_event_bodies(&sample, 1000).unwrap();
    let unzipped = events::read_event_bodies(&gzip, 1000).unwrap();
    assert_eq!(unzipped.len(), 19);
    assert_eq!(unzipped, plain);
}

/// Writes `text` to `name` in a new scratch directory.
fn scratch_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join(name);
    std::fs::write(&path, text).unwrap();
    (scratch, path)
}

#[test]
fn a_file_without_the_rba_columns_is_an_error_naming_the_column() {
    let (_scratch, path) = scratch_file("other.csv", "id,when\n1,2020-02-03\n");
    let error = events::read_event_bodies(&path, 10).expect_err("no RBA columns");
    let message = format!("{error:#}");
    assert!(
        message.contains("no column \"Login Timestamp\""),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn a_file_with_a_header_but_no_rows_is_an_error() {
    let Some(sample) = common::sample_csv() else {
        return;
    };
    let text = std::fs::read_to_string(&sample).unwrap();
    let header = text.lines().next().unwrap();
    let (_scratch, path) = scratch_file("header-only.csv", &format!("{header}\n"));
    let error = events::read_event_bodies(&path, 10).expect_err("no rows");
    assert!(format!("{error:#}").contains("no event rows"), "{error:#}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("absent.csv");
    let error = events::read_event_bodies(&path, 10).expect_err("no file");
    assert!(format!("{error:#}").contains("absent.csv"), "{error:#}");
}

/// Event bodies `{"n": 0}`, `{"n": 1}`, ... so a batch shows which events it holds.
fn numbered_events(count: u64) -> Vec<Bytes> {
    (0..count)
        .map(|n| Bytes::from(json!({ "n": n }).to_string()))
        .collect()
}

/// The `n` of each event in a batch body, checking its shape on the way.
fn batch_numbers(body: &[u8]) -> Vec<u64> {
    let batch = object(body);
    assert_eq!(batch.keys().collect::<Vec<_>>(), ["events"], "{batch:?}");
    batch["events"]
        .as_array()
        .expect("events is an array")
        .iter()
        .map(|event| event["n"].as_u64().expect("an event from numbered_events"))
        .collect()
}

#[test]
fn batch_bodies_hold_exactly_n_events_in_order() {
    let batches = events::batch_bodies(&numbered_events(10), 4);
    let numbers: Vec<Vec<u64>> = batches.iter().map(|body| batch_numbers(body)).collect();
    // 10 events in batches of 4: the last batch is filled from the start again.
    assert_eq!(
        numbers,
        [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 0, 1]]
    );
}

#[test]
fn batch_bodies_wrap_around_when_there_are_fewer_events_than_n() {
    let batches = events::batch_bodies(&numbered_events(3), 7);
    assert_eq!(batches.len(), 1);
    assert_eq!(batch_numbers(&batches[0]), [0, 1, 2, 0, 1, 2, 0]);

    let singles = events::batch_bodies(&numbered_events(3), 1);
    let numbers: Vec<Vec<u64>> = singles.iter().map(|body| batch_numbers(body)).collect();
    assert_eq!(numbers, [vec![0], vec![1], vec![2]]);
}

// Reports.

/// Three 200s, two 503s and a timeout, each with its own latency.
fn mixed_tally() -> ConnectionTally {
    let mut tally = ConnectionTally::new();
    for millis in [1, 2, 3] {
        tally.record(OK, Duration::from_millis(millis));
    }
    for micros in [100, 200] {
        tally.record(SHED, Duration::from_micros(micros));
    }
    tally.record(Outcome::Timeout, Duration::from_secs(5));
    tally
}

/// Whether `value` is within the histogram's 0.1 % of `expected`.
fn near(value: u64, expected: u64) -> bool {
    value.abs_diff(expected) as f64 <= expected as f64 * 0.001
}

#[test]
fn a_connection_tally_keeps_counts_and_latencies_per_outcome() {
    let tally = mixed_tally();
    assert_eq!(tally.latency_us.len(), 6);
    let counts: BTreeMap<Outcome, u64> = tally
        .outcomes
        .iter()
        .map(|(outcome, latency_us)| (*outcome, latency_us.len()))
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([(OK, 3), (SHED, 2), (Outcome::Timeout, 1)])
    );

    let ok = &tally.outcomes[&OK];
    assert!(near(ok.min(), 1_000) && near(ok.max(), 3_000), "200s");
    let shed = &tally.outcomes[&SHED];
    assert!(near(shed.min(), 100) && near(shed.max(), 200), "503s");
    assert!(near(tally.outcomes[&Outcome::Timeout].max(), 5_000_000));
    assert!(near(tally.latency_us.max(), 5_000_000) && near(tally.latency_us.min(), 100));
}

#[test]
fn a_tally_clamps_latencies_outside_the_histogram_instead_of_dropping_them() {
    let mut tally = ConnectionTally::new();
    tally.record(OK, Duration::ZERO);
    tally.record(Outcome::Timeout, Duration::from_secs(600));
    assert_eq!(tally.latency_us.len(), 2);
    assert_eq!(tally.outcomes[&OK].max(), 1);
    assert!(near(
        tally.outcomes[&Outcome::Timeout].max(),
        report::LATENCY_MAX_US
    ));
}

/// A summary of `tallies` measured over `measured`.
fn summary(mode: Mode, measured: Duration, tallies: Vec<ConnectionTally>) -> Summary {
    let mut summary = Summary {
        label: "test".to_owned(),
        url: "http://127.0.0.1:1/v1/score".to_owned(),
        connections: tallies.len(),
        mode,
        measured,
        warmup: Duration::ZERO,
        events: 1,
        response_bytes: 0,
        latency_us: latency_histogram(),
        outcomes: BTreeMap::new(),
    };
    for tally in tallies {
        summary.merge(tally);
    }
    summary
}

#[test]
fn merged_summary_reports_counts_and_latency_per_outcome() {
    let mut second = ConnectionTally::new();
    second.record(OK, Duration::from_millis(4));
    second.record(Outcome::Connect, Duration::from_millis(1));
    let merged = summary(
        Mode::Closed,
        Duration::from_secs(2),
        vec![mixed_tally(), second],
    );
    assert_eq!(merged.requests(), 8);
    assert_eq!(merged.succeeded(), 4);

    let report = merged.to_json();
    assert_eq!(
        report["outcomes"],
        json!({ "200": 4, "503": 2, "timeout": 1, "connect_error": 1 })
    );
    assert_eq!(report["requests"], 8);
    assert_eq!(report["succeeded"], 4);
    assert_eq!(report["mode"], "closed");
    assert_eq!(report["missed"], Value::Null);
    assert_eq!(report["throughput_per_s"], 4.0);

    let by_outcome = report["latency_us_by_outcome"].as_object().unwrap();
    let labels: Vec<&str> = by_outcome.keys().map(String::as_str).collect();
    assert_eq!(labels, ["200", "503", "connect_error", "timeout"]);
    let max = |label: &str| by_outcome[label]["max"].as_u64().unwrap();
    assert!(near(max("200"), 4_000), "{}", by_outcome["200"]);
    assert!(near(max("503"), 200), "{}", by_outcome["503"]);
    assert!(near(max("timeout"), 5_000_000), "{}", by_outcome["timeout"]);
    assert!(near(
        report["latency_us"]["max"].as_u64().unwrap(),
        5_000_000
    ));

    let table = merged.table();
    assert!(
        table.contains("8 (200: 4, 503: 2, timeout: 1, connect_error: 1)"),
        "{table}"
    );
}

#[test]
fn open_loop_summary_reports_its_rate_and_missed_requests() {
    let mode = Mode::Open {
        rate_per_s: 250.0,
        missed: 7,
    };
    let report = summary(mode, Duration::from_secs(1), vec![mixed_tally()]).to_json();
    assert_eq!(report["mode"], "open");
    assert_eq!(report["offered_rate_per_s"], 250.0);
    assert_eq!(report["missed"], 7);
    assert_eq!(report["requests"], 6);
}

#[test]
fn the_json_report_file_holds_the_same_report_as_to_json() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("report.json");
    let merged = summary(Mode::Closed, Duration::from_secs(1), vec![mixed_tally()]);
    merged.write_json(&path).unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written, merged.to_json());
    assert_eq!(written["requests"], 6);
}

// Runs against a real server.

/// The service over the shipped model bundle, on 127.0.0.1 port 0.
async fn shipped_server() -> TestServer {
    TestServer::start(common::loaded_store(&common::shipped_model_root())).await
}

/// Distinct single-event bodies the shipped model scores.
fn login_bodies(count: i64) -> Vec<Bytes> {
    (0..count)
        .map(|user| Bytes::from(common::desktop_login(user).to_string()))
        .collect()
}

/// A closed loop on 4 connections with no warm-up, a long window and no cap: each test
/// sets what it checks.
fn plan(url: &str, bodies: Vec<Bytes>) -> Plan {
    Plan {
        url: url.parse().unwrap(),
        bodies,
        connections: 4,
        warmup: Duration::ZERO,
        measure: Duration::from_secs(10),
        max_requests: None,
        rate_per_s: None,
        timeout: Duration::from_secs(10),
        stop: Arc::new(AtomicBool::new(false)),
        observer: None,
    }
}

/// One measured answer as the observer saw it.
struct Seen {
    due: Instant,
    done: Instant,
    outcome: Outcome,
    body: Value,
}

/// Sets an observer on `plan` that keeps every answer.
fn observe(plan: &mut Plan) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    plan.observer = Some(Arc::new(move |answer: &Answer| {
        kept.lock().unwrap().push(Seen {
            due: answer.due,
            done: answer.done,
            outcome: answer.outcome,
            body: serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
        });
    }));
    seen
}

/// Runs `plan`, failing the test if it outlasts [`RUN_LIMIT`]; returns the result
/// and how long the run took.
async fn run_bounded(plan: Plan) -> (RunResult, Duration) {
    let started = Instant::now();
    let result = tokio::time::timeout(RUN_LIMIT, run::run(plan))
        .await
        .expect("the run ended within RUN_LIMIT")
        .expect("the load generator ran");
    (result, started.elapsed())
}

/// Answers counted per outcome across the connections.
fn counts(result: RunResult) -> BTreeMap<Outcome, u64> {
    let merged = summary(Mode::Closed, Duration::from_secs(1), result.tallies);
    merged
        .outcomes
        .iter()
        .map(|(outcome, latency_us)| (*outcome, latency_us.len()))
        .collect()
}

/// Whether an answer (or a batch entry) carries a finite score.
fn has_score(body: &Value) -> bool {
    body["score"].as_f64().is_some_and(f64::is_finite)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_with_a_request_cap_measures_exactly_that_many() {
    let server = shipped_server().await;
    let mut plan = plan(&server.url("/v1/score"), login_bodies(50));
    plan.measure = RUN_LIMIT - Duration::from_secs(5);
    plan.max_requests = Some(200);
    let seen = observe(&mut plan);

    let (result, _) = run_bounded(plan).await;
    assert!(result.capped, "the cap, not the window, ended the run");
    assert_eq!(result.missed, 0);
    assert_eq!(counts(result), BTreeMap::from([(OK, 200)]));

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.len(), 200);
    let unscored = seen
        .iter()
        .filter(|answer| answer.outcome != OK || !has_score(&answer.body))
        .count();
    assert_eq!(unscored, 0, "every answer is a 200 with a finite score");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_the_stop_flag_ends_a_run_long_before_its_window() {
    const STOP_AFTER: Duration = Duration::from_millis(300);
    let server = shipped_server().await;
    let mut plan = plan(&server.url("/v1/score"), login_bodies(50));
    plan.connections = 2;
    plan.measure = Duration::from_secs(60);
    let stop = Arc::clone(&plan.stop);
    tokio::spawn(async move {
        tokio::time::sleep(STOP_AFTER).await;
        stop.store(true, Ordering::Relaxed);
    });

    let (result, elapsed) = run_bounded(plan).await;
    assert!(!result.capped);
    assert!(
        elapsed >= STOP_AFTER,
        "ended after {elapsed:?}, before the stop"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "took {elapsed:?} to stop"
    );
    let counts = counts(result);
    assert!(counts.get(&OK).is_some_and(|&ok| ok > 0), "{counts:?}");
    assert_eq!(counts.keys().collect::<Vec<_>>(), [&OK], "{counts:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_offers_its_rate_over_the_window_and_reports_what_it_missed() {
    const RATE_PER_S: f64 = 500.0;
    const WINDOW: Duration = Duration::from_secs(1);
    let server = shipped_server().await;
    let mut plan = plan(&server.url("/v1/score"), login_bodies(50));
    plan.connections = 8;
    plan.measure = WINDOW;
    plan.rate_per_s = Some(RATE_PER_S);
    let seen = observe(&mut plan);

    let (result, elapsed) = run_bounded(plan).await;
    let missed = result.missed;
    let counts = counts(result);
    let measured: u64 = counts.values().sum();
    let scheduled = (RATE_PER_S * WINDOW.as_secs_f64()) as u64;
    println!("open loop: {measured} measured, {missed} missed, {elapsed:?}, {counts:?}");
    // Every scheduled request is either measured or reported as missed; on a loaded
    // machine some may be missed, but most must go out.
    assert_eq!(measured + missed, scheduled);
    assert!(
        measured >= scheduled / 2,
        "only {measured} of {scheduled} sent"
    );
    assert_eq!(counts.keys().collect::<Vec<_>>(), [&OK], "{counts:?}");
    assert!(
        elapsed < WINDOW + Duration::from_secs(5),
        "took {elapsed:?}"
    );

    // The schedule spreads the requests over the window, and none is sent before it is
    // due: a pacer that let them all go at once would be answered within milliseconds.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let early = seen
        .iter()
        .filter(|answer| answer.done < answer.due)
        .count();
    assert_eq!(early, 0, "answers came before their requests were due");
    let spread = |at: fn(&Seen) -> Instant| {
        let first = seen.iter().map(at).min().unwrap();
        seen.iter().map(at).max().unwrap() - first
    };
    let due = spread(|answer| answer.due);
    assert!(
        due >= WINDOW / 2 && due < WINDOW,
        "requests were due over {due:?}"
    );
    let done = spread(|answer| answer.done);
    assert!(done >= WINDOW / 2, "answers came within {done:?}");
    server.stop().await;
}

/// A listener on 127.0.0.1 that accepts connections and never answers on them.
async fn stalled_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/score", listener.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (url, holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_reports_requests_a_stalled_server_left_unsent_as_missed() {
    const RATE_PER_S: f64 = 100.0;
    const WINDOW: Duration = Duration::from_millis(500);
    let (url, holder) = stalled_server().await;
    let mut plan = plan(&url, login_bodies(5));
    plan.connections = 1;
    plan.measure = WINDOW;
    plan.rate_per_s = Some(RATE_PER_S);
    plan.timeout = Duration::from_secs(1);

    // The one connection waits a second for each answer; by the time it is free again
    // the window and the drain after it are over, so the rest of the schedule is missed.
    let (result, elapsed) = run_bounded(plan).await;
    holder.abort();
    let missed = result.missed;
    let counts = counts(result);
    let measured: u64 = counts.values().sum();
    let scheduled = (RATE_PER_S * WINDOW.as_secs_f64()) as u64;
    println!("stalled: {measured} measured, {missed} missed, {elapsed:?}, {counts:?}");
    assert_eq!(measured + missed, scheduled);
    assert!(
        missed >= scheduled - 5,
        "only {missed} of {scheduled} missed"
    );
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        [&Outcome::Timeout],
        "{counts:?}"
    );
}

/// Sends `bodies` on one connection until `requests` answers are measured; returns them.
async fn send_all(url: &str, bodies: Vec<Bytes>, requests: u64) -> Vec<Seen> {
    let mut plan = plan(url, bodies);
    plan.connections = 1;
    plan.max_requests = Some(requests);
    let seen = observe(&mut plan);
    let (result, _) = run_bounded(plan).await;
    assert!(result.capped);
    std::mem::take(&mut *seen.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_scores_every_sample_event_and_batch_the_generator_sends() {
    let Some(sample) = common::sample_csv() else {
        return;
    };
    let server = shipped_server().await;
    let bodies = events::read_event_bodies(&sample, 1000).unwrap();

    let singles = send_all(&server.url("/v1/score"), bodies.clone(), 19).await;
    assert_eq!(singles.len(), 19);
    for (row, answer) in singles.iter().enumerate() {
        assert_eq!(answer.outcome, OK, "row {row}: {}", answer.body);
        assert!(has_score(&answer.body), "row {row}: {}", answer.body);
    }

    const BATCH: usize = 25;
    let batches = events::batch_bodies(&bodies, BATCH);
    let answers = send_all(&server.url("/v1/score/batch"), batches, 1).await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].outcome, OK, "{}", answers[0].body);
    let results = answers[0].body["results"].as_array().expect("results");
    assert_eq!(results.len(), BATCH);
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result["index"], index, "{result}");
        assert!(has_score(result), "event {index} was not scored: {result}");
    }
    server.stop().await;
}
