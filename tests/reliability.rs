//! Long-running reliability checks, run by `make test-reliability` (they are `#[ignore]`d
//! in the plain test run): 100 reloads under the load generator's 64 connections, memory
//! across 1,000 reloads of the real binary, and overload at 4 times capacity. Each
//! prints its figures and asserts them.

#[path = "support/common.rs"]
mod common;
// The load generator of `make bench-load` (benches/load), driven in process.
// NOTE: dead_code: parts of both serve only the command line (the printed and JSON
// reports, the request cap).
#[path = "../benches/load/report.rs"]
#[allow(dead_code)]
mod report;
#[path = "../benches/load/run.rs"]
#[allow(dead_code)]
mod run;
#[path = "support/serve_process.rs"]
mod serve_process;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestServer;
use hdrhistogram::Histogram;
use login_scorer::http::HttpConfig;
use report::{ConnectionTally, Outcome};
use run::{Answer, Plan};
use serde_json::{Value, json};
use serve_process::ServeProcess;

const TOKEN: &str = "reliability";
/// Concurrent connections of the load, and the server's connection cap in the overload
/// test.
const CONNECTIONS: usize = 64;
/// Longest any one load run may last, so a stuck phase fails instead of hanging.
const MAX_RUN: Duration = Duration::from_secs(120);

/// A model root holding versions 1 and 2 (copies of the shipped bundle), and a parking
/// place outside it: moving `2` there and back makes each admin reload swap versions.
struct TwoVersions {
    _scratch: tempfile::TempDir,
    root: PathBuf,
    parked: PathBuf,
}

impl TwoVersions {
    fn new() -> TwoVersions {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let shipped = common::latest_shipped_version();
        common::copy_version(&shipped, &root, 1);
        common::copy_version(&shipped, &root, 2);
        let parked = scratch.path().join("parked-2");
        TwoVersions {
            _scratch: scratch,
            root,
            parked,
        }
    }

    /// Moves version 2 in or out of the root; returns the version the next reload serves.
    fn toggle(&self) -> u64 {
        let live = self.root.join("2");
        if live.exists() {
            std::fs::rename(&live, &self.parked).unwrap();
            1
        } else {
            std::fs::rename(&self.parked, &live).unwrap();
            2
        }
    }
}

/// Single-event bodies, one per user.
fn event_bodies(count: i64) -> Vec<Bytes> {
    (0..count)
        .map(|user| Bytes::from(common::desktop_login(user).to_string()))
        .collect()
}

/// Batch bodies of `size` events each.
fn batch_bodies(count: i64, size: i64) -> Vec<Bytes> {
    (0..count)
        .map(|batch| {
            let events: Vec<Value> = (0..size)
                .map(|k| common::desktop_login(batch * size + k))
                .collect();
            Bytes::from(json!({ "events": events }).to_string())
        })
        .collect()
}

/// One answer the load generator saw, as the checks here need it.
struct Sample {
    due: Instant,
    done: Instant,
    outcome: Outcome,
    version: Option<u64>,
    retry_after: bool,
}

/// A finished load run: its counts and latencies by outcome, and every answer.
struct Load {
    elapsed: Duration,
    tally: ConnectionTally,
    samples: Vec<Sample>,
}

impl Load {
    fn count(&self, outcome: Outcome) -> u64 {
        self.tally.outcomes.get(&outcome).map_or(0, Histogram::len)
    }

    fn total(&self) -> u64 {
        self.tally.latency_us.len()
    }

    fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64()
    }

    /// p99 in milliseconds of the answers with `outcome`, or of all of them.
    fn p99_ms(&self, outcome: Option<Outcome>) -> f64 {
        let latency_us = match outcome {
            Some(outcome) => &self.tally.outcomes[&outcome],
            None => &self.tally.latency_us,
        };
        latency_us.value_at_quantile(0.99) as f64 / 1000.0
    }
}

const OK: Outcome = Outcome::Status(200);
const SHED: Outcome = Outcome::Status(503);

/// Runs the load generator on `url` for `window` (or until `stop` turns true) with
/// `connections` connections, each sending its next request as soon as it is answered.
/// Only with `read_versions` is each answer's body parsed for the model version: that
/// is client CPU the overload runs would otherwise spend during the measurement.
async fn generate(
    url: String,
    bodies: Vec<Bytes>,
    connections: usize,
    window: Duration,
    stop: Arc<AtomicBool>,
    read_versions: bool,
) -> Load {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&samples);
    let observer = Arc::new(move |answer: &Answer| {
        let version = read_versions
            .then(|| serde_json::from_slice::<Value>(&answer.body).ok())
            .flatten()
            .and_then(|body| body["model"]["version"].as_u64());
        seen.lock().unwrap().push(Sample {
            due: answer.due,
            done: answer.done,
            outcome: answer.outcome,
            version,
            retry_after: answer.headers.contains_key("retry-after"),
        });
    });
    let plan = Plan {
        url: url.parse().unwrap(),
        bodies,
        connections,
        warmup: Duration::ZERO,
        measure: window.min(MAX_RUN),
        max_requests: None,
        rate_per_s: None,
        timeout: Duration::from_secs(10),
        stop,
        observer: Some(observer),
    };
    let started = Instant::now();
    let result = run::run(plan).await.expect("the load generator ran");
    let elapsed = started.elapsed().min(window);
    let mut tally = ConnectionTally::new();
    for connection in result.tallies {
        report::merge_into(&mut tally.latency_us, &mut tally.outcomes, connection);
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    Load {
        elapsed,
        tally,
        samples,
    }
}

/// A closed loop on [`CONNECTIONS`] connections for `window`.
async fn closed_loop(url: &str, bodies: &[Bytes], window: Duration) -> Load {
    let never = Arc::new(AtomicBool::new(false));
    generate(
        url.to_owned(),
        bodies.to_vec(),
        CONNECTIONS,
        window,
        never,
        true,
    )
    .await
}

/// A reload as the test saw it: the swap happened between `started` and `finished`.
struct Reload {
    started: Instant,
    finished: Instant,
    version: u64,
}

/// Whether `version` was live at some moment while the request was in flight. Version
/// `initial` is live until the first reload finishes; each reload's version from when
/// it started until the next one finished.
fn was_live(sample: &Sample, version: u64, initial: u64, reloads: &[Reload]) -> bool {
    let far = sample.done + Duration::from_secs(3600);
    let mut intervals = vec![(
        sample.due,
        reloads.first().map_or(far, |r| r.finished),
        initial,
    )];
    for (i, reload) in reloads.iter().enumerate() {
        let until = reloads.get(i + 1).map_or(far, |next| next.finished);
        intervals.push((reload.started, until, reload.version));
    }
    intervals
        .iter()
        .any(|&(from, until, live)| live == version && from <= sample.done && sample.due <= until)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long-running: make test-reliability"]
async fn one_hundred_reloads_under_load_fail_no_request() {
    const RELOADS: usize = 100;
    let versions = TwoVersions::new();
    let store = common::loaded_store(&versions.root);
    let initial = store.current().unwrap().version();
    assert_eq!(initial, 2);
    let server = TestServer::start_with(store, HttpConfig::default(), Some(TOKEN)).await;
    let url = server.url("/v1/score");
    let bodies = event_bodies(1000);

    // NOTE: one reload starts every RELOAD_EVERY at most. Back to back, validating
    // bundles (golden rows, session builds) would take a core of the two, which
    // measures the machine's capacity rather than what a swap does to requests.
    const RELOAD_EVERY: Duration = Duration::from_millis(250);
    // The baseline (the same load, no reloads) is measured half before and half after
    // the reloads, so a change in what else runs on the machine weighs on both sides.
    let half_baseline = Duration::from_secs_f64(RELOAD_EVERY.as_secs_f64() * RELOADS as f64 / 2.0);
    let before = closed_loop(&url, &bodies, half_baseline).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(generate(
        url.clone(),
        bodies.clone(),
        CONNECTIONS,
        MAX_RUN,
        Arc::clone(&stop),
        true,
    ));
    let reload_client = common::client();
    let timed = Instant::now();
    let mut reloads = Vec::new();
    for _ in 0..RELOADS {
        let pace = tokio::time::sleep(RELOAD_EVERY);
        let version = versions.toggle();
        let started = Instant::now();
        let response = reload_client
            .post(server.url("/admin/reload"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let finished = Instant::now();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "reloaded", "{body}");
        assert_eq!(body["version"], version, "{body}");
        reloads.push(Reload {
            started,
            finished,
            version,
        });
        pace.await;
    }
    stop.store(true, Ordering::Relaxed);
    let during = load.await.unwrap();
    let reload_secs = timed.elapsed().as_secs_f64();
    let after = closed_loop(&url, &bodies, half_baseline).await;

    let failed: Vec<_> = during.samples.iter().filter(|s| s.outcome != OK).collect();
    let stale = during
        .samples
        .iter()
        .filter(|s| !s.version.is_some_and(|v| was_live(s, v, initial, &reloads)))
        .count();
    let mut baseline = before.tally.latency_us.clone();
    baseline.add(&after.tally.latency_us).unwrap();
    let p99_base = baseline.value_at_quantile(0.99) as f64 / 1000.0;
    let p99_reloads = during.p99_ms(None);
    println!(
        "reload under load: {RELOADS} reloads in {reload_secs:.1} s, {} requests over \
         {CONNECTIONS} connections, {} non-200, {stale} naming a version not live; \
         p99 {p99_reloads:.2} ms during reloads vs {p99_base:.2} ms without ({} requests)",
        during.total(),
        failed.len(),
        baseline.len()
    );
    assert!(
        during.total() > 10 * RELOADS as u64,
        "too little load to prove anything"
    );
    assert_eq!(during.samples.len() as u64, during.total());
    assert!(
        failed.is_empty(),
        "non-200 during reloads: {:?}",
        failed[0].outcome
    );
    assert_eq!(stale, 0, "responses named a version that was not live");
    let seen: std::collections::BTreeSet<u64> =
        during.samples.iter().filter_map(|s| s.version).collect();
    assert_eq!(seen, [1, 2].into_iter().collect());
    assert!(
        p99_reloads <= 2.0 * p99_base,
        "p99 {p99_reloads:.2} ms during reloads is over twice {p99_base:.2} ms"
    );
    assert_eq!(reloads.len(), RELOADS);
    assert_eq!(server.store.reloads_ok(), RELOADS as u64);
    assert_eq!(server.store.reloads_failed(), 0);
    server.stop().await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[test]
#[ignore = "long-running: make test-reliability"]
fn memory_stays_flat_across_one_thousand_reloads() {
    const RELOADS: usize = 1000;
    const MAX_GROWTH_KIB: u64 = 10 * 1024;
    let versions = TwoVersions::new();
    let mut server = ServeProcess::start(&versions.root, &["--admin-token", TOKEN]);
    let address = server.address();
    let pid = server.pid();

    let mut figures = vec![(0, rss_kib(pid))];
    for reload in 1..=RELOADS {
        let version = versions.toggle();
        let answer = serve_process::request(&address, "POST", "/admin/reload", Some(TOKEN), "");
        assert!(
            answer.starts_with("HTTP/1.1 200")
                && answer.contains(&format!("\"version\":{version}")),
            "reload {reload}: {answer}"
        );
        if [100, 500, RELOADS].contains(&reload) {
            figures.push((reload, rss_kib(pid)));
        }
    }
    let start = figures[0].1;
    let text: Vec<String> = figures
        .iter()
        .map(|(n, kib)| format!("{n}: {:.1} MB", *kib as f64 / 1024.0))
        .collect();
    println!("RSS across reloads (after N reloads): {}", text.join(", "));
    let last = figures[figures.len() - 1].1;
    assert!(
        last.saturating_sub(start) < MAX_GROWTH_KIB,
        "RSS grew from {start} kB to {last} kB over {RELOADS} reloads"
    );
    server.terminate();
}

/// The three runs of an overload test: capacity, and four times the connections with
/// and without the cap.
struct Overload {
    /// [`CONNECTIONS`] connections on a server without the cap.
    capacity: Load,
    /// Four times as many on the same uncapped server: every request admitted, so the
    /// queue grows with the connections. What shedding is there to prevent.
    queued: Load,
    /// Four times as many on a server admitting [`CONNECTIONS`].
    shed: Load,
    /// RSS of the capped server before and after `shed` (after a warm-up run).
    rss_kib: (u64, u64),
}

/// What an overload run must show: only 200s and 503s, every 503 with Retry-After and
/// no slower than a scored answer, an accepted p99 below the p99 of the same load
/// without the cap, and flat memory.
fn check_overload(name: &str, runs: &Overload) {
    /// Most accepted p99 under the cap, as a share of the p99 without it.
    const MAX_P99_SHARE: f64 = 0.9;
    const MAX_GROWTH_KIB: u64 = 10 * 1024;
    let Overload {
        capacity,
        queued,
        shed: overload,
        rss_kib,
    } = runs;
    let (ok, shed) = (overload.count(OK), overload.count(SHED));
    let other = overload.total() - ok - shed;
    let p99_base = capacity.p99_ms(Some(OK));
    let p99_queued = queued.p99_ms(Some(OK));
    let (p99_ok, p99_shed) = (overload.p99_ms(Some(OK)), overload.p99_ms(Some(SHED)));
    println!(
        "{name}: capacity {:.0} req/s (p99 {p99_base:.1} ms); 4x the connections without \
         the cap: {:.0} req/s (p99 {p99_queued:.1} ms); with it: {:.0} req/s answered, {ok} \
         x 200 ({:.0}/s, p99 {p99_ok:.1} ms), {shed} x 503 ({:.0}/s, p99 {p99_shed:.1} ms), \
         {other} other; RSS {:.1} -> {:.1} MB",
        capacity.per_second(capacity.count(OK)),
        queued.per_second(queued.count(OK)),
        overload.per_second(overload.total()),
        overload.per_second(ok),
        overload.per_second(shed),
        rss_kib.0 as f64 / 1024.0,
        rss_kib.1 as f64 / 1024.0
    );
    for uncapped in [capacity, queued] {
        assert_eq!(
            uncapped.count(OK),
            uncapped.total(),
            "no 503s without the cap"
        );
    }
    assert_eq!(other, 0, "only 200 and 503 are acceptable answers");
    assert!(ok > 0, "the admitted connections were starved");
    assert!(shed > 0, "the excess was never shed");
    let without_retry_after = overload
        .samples
        .iter()
        .filter(|s| s.outcome == SHED && !s.retry_after)
        .count();
    assert_eq!(without_retry_after, 0, "every 503 has Retry-After");
    assert!(
        p99_ok <= MAX_P99_SHARE * p99_queued,
        "accepted p99 {p99_ok:.1} ms against {p99_queued:.1} ms for the same load queued"
    );
    assert!(
        p99_shed <= p99_ok * 1.2,
        "a 503 ({p99_shed:.1} ms) must come no slower than a scored answer ({p99_ok:.1} ms)"
    );
    assert!(rss_kib.1.saturating_sub(rss_kib.0) < MAX_GROWTH_KIB);
}

const OVERLOAD_WINDOW: Duration = Duration::from_secs(4);

/// Runs [`Overload`]'s three loads. The uncapped server gives capacity, and the p99 of
/// four times the connections all queued; the capped one the same load shed: each
/// connection sends again as soon as it is answered, as clients that ignore
/// Retry-After would, the worst case for the server. A first run on the capped server
/// warms it up; memory is compared across the second.
///
/// NOTE: capacity is measured without the cap also because reqwest sometimes opens a
/// second connection for a client whose first one is not back in its pool yet; those
/// would be shed, counting the cap's work in the capacity.
async fn overload_with_four_times_the_connections(name: &str, path: &str, bodies: Vec<Bytes>) {
    let connections = 4 * CONNECTIONS;
    let run = |url: &str, connections, window| {
        let never = Arc::new(AtomicBool::new(false));
        generate(
            url.to_owned(),
            bodies.clone(),
            connections,
            window,
            never,
            false,
        )
    };
    let versions = TwoVersions::new();
    let mut uncapped = ServeProcess::start(&versions.root, &[]);
    let url = format!("http://{}{path}", uncapped.address());
    let capacity = run(&url, CONNECTIONS, OVERLOAD_WINDOW).await;
    let queued = run(&url, connections, OVERLOAD_WINDOW).await;
    uncapped.terminate();

    let cap = CONNECTIONS.to_string();
    let mut server = ServeProcess::start(&versions.root, &["--max-connections", &cap]);
    let url = format!("http://{}{path}", server.address());
    run(&url, connections, OVERLOAD_WINDOW).await;
    let rss_before = rss_kib(server.pid());
    let shed = run(&url, connections, OVERLOAD_WINDOW).await;
    let rss_after = rss_kib(server.pid());
    let runs = Overload {
        capacity,
        queued,
        shed,
        rss_kib: (rss_before, rss_after),
    };
    check_overload(name, &runs);
    server.terminate();
}

// TODO: both offer 4x the admitted connections, not an open loop at 4x the request
// rate: on 2 cores the client cannot send 4 times as many requests per second as the
// server answers (at 4x the batch rate it fell behind its own schedule by seconds).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long-running: make test-reliability"]
async fn four_times_the_admitted_connections_get_200_or_a_fast_503_with_retry_after() {
    let bodies = event_bodies(1000);
    overload_with_four_times_the_connections("overload, single events", "/v1/score", bodies).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long-running: make test-reliability"]
async fn shed_batches_have_their_bodies_skipped_and_still_get_a_fast_503() {
    let bodies = batch_bodies(100, 50);
    let name = "overload, 50-event batches";
    overload_with_four_times_the_connections(name, "/v1/score/batch", bodies).await;
}
