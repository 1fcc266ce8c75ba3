//! Long-running reliability checks, run by `make test-reliability` (they are `#[ignore]`d
//! in the plain test run): 100 reloads under 64 connections of load, and memory across
//! 1,000 reloads of the real binary. Each prints its figures and asserts them.

#[path = "support/common.rs"]
mod common;
#[path = "support/serve_process.rs"]
mod serve_process;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TestServer;
use hdrhistogram::Histogram;
use login_scorer::http::HttpConfig;
use serde_json::Value;
use serve_process::ServeProcess;

const TOKEN: &str = "reliability";
/// Concurrent keep-alive connections of the in-test load.
const CONNECTIONS: usize = 64;
/// Most requests one connection sends in one phase, so every loop is bounded.
const MAX_REQUESTS_PER_CONNECTION: usize = 50_000;

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

/// One answered request.
struct Sample {
    sent: Instant,
    done: Instant,
    status: u16,
    version: Option<u64>,
    retry_after: bool,
}

/// Closed loop on one keep-alive connection until `stop` (or the request cap).
async fn connection_loop(url: String, stop: Arc<AtomicBool>, id: usize) -> Vec<Sample> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let body = common::desktop_login(id as i64).to_string();
    let mut samples = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = Instant::now();
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let (status, version, retry_after) = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, body["model"]["version"].as_u64(), retry_after)
            }
            Err(_) => (0, None, false),
        };
        samples.push(Sample {
            sent,
            done: Instant::now(),
            status,
            version,
            retry_after,
        });
    }
    samples
}

/// Runs the load on [`CONNECTIONS`] connections while `during` runs; returns every sample.
async fn under_load<F: std::future::Future<Output = ()>>(url: &str, during: F) -> Vec<Sample> {
    under_load_on(CONNECTIONS, url, during).await
}

/// As [`under_load`] on `count` connections.
async fn under_load_on<F: std::future::Future<Output = ()>>(
    count: usize,
    url: &str,
    during: F,
) -> Vec<Sample> {
    let stop = Arc::new(AtomicBool::new(false));
    let connections: Vec<_> = (0..count)
        .map(|id| tokio::spawn(connection_loop(url.to_owned(), Arc::clone(&stop), id)))
        .collect();
    during.await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for connection in connections {
        samples.extend(connection.await.unwrap());
    }
    samples
}

fn p99_ms(samples: &[Sample]) -> f64 {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for sample in samples {
        let micros = (sample.done - sample.sent).as_micros() as u64;
        histogram.record(micros.max(1)).unwrap();
    }
    histogram.value_at_quantile(0.99) as f64 / 1000.0
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
        sample.sent,
        reloads.first().map_or(far, |r| r.finished),
        initial,
    )];
    for (i, reload) in reloads.iter().enumerate() {
        let until = reloads.get(i + 1).map_or(far, |next| next.finished);
        intervals.push((reload.started, until, reload.version));
    }
    intervals
        .iter()
        .any(|&(from, until, live)| live == version && from <= sample.done && sample.sent <= until)
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

    // NOTE: one reload starts every RELOAD_EVERY at most. Back to back, the debug
    // build spends most of a core validating bundles (golden rows, session builds),
    // which measures the 2 cores' capacity rather than what a swap does to requests.
    const RELOAD_EVERY: Duration = Duration::from_millis(250);
    // The baseline (the same load, no reloads) is measured half before and half after
    // the reloads, so a change in what else runs on the machine weighs on both sides.
    let half_baseline = Duration::from_secs_f64(RELOAD_EVERY.as_secs_f64() * RELOADS as f64 / 2.0);
    let mut baseline = under_load(&url, tokio::time::sleep(half_baseline)).await;
    let reload_client = common::client();
    let timed = Instant::now();
    let reloads: Vec<Reload> = {
        let mut reloads = Vec::new();
        let samples = under_load(&url, async {
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
        })
        .await;
        let reload_secs = timed.elapsed().as_secs_f64();
        baseline.extend(under_load(&url, tokio::time::sleep(half_baseline)).await);

        let failed: Vec<_> = samples.iter().filter(|s| s.status != 200).collect();
        let stale = samples
            .iter()
            .filter(|s| !s.version.is_some_and(|v| was_live(s, v, initial, &reloads)))
            .count();
        let (p99_base, p99_reloads) = (p99_ms(&baseline), p99_ms(&samples));
        println!(
            "reload under load: {RELOADS} reloads in {reload_secs:.1} s, {} requests over \
             {CONNECTIONS} connections, {} non-200, {stale} naming a version not live; \
             p99 {p99_reloads:.2} ms during reloads vs {p99_base:.2} ms without ({} requests)",
            samples.len(),
            failed.len(),
            baseline.len()
        );
        assert!(
            samples.len() > 10 * RELOADS,
            "too little load to prove anything"
        );
        assert!(
            failed.is_empty(),
            "non-200 during reloads: {:?}",
            failed[0].status
        );
        assert_eq!(stale, 0, "responses named a version that was not live");
        let seen: std::collections::BTreeSet<u64> =
            samples.iter().filter_map(|s| s.version).collect();
        assert_eq!(seen, [1, 2].into_iter().collect());
        assert!(
            p99_reloads <= 2.0 * p99_base,
            "p99 {p99_reloads:.2} ms during reloads is over twice {p99_base:.2} ms"
        );
        reloads
    };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long-running: make test-reliability"]
async fn four_times_the_admitted_connections_get_200_or_a_fast_503_with_retry_after() {
    const WINDOW: Duration = Duration::from_secs(4);
    const MAX_GROWTH_KIB: u64 = 10 * 1024;
    /// Accepted p99 under overload, as a multiple of the p99 at capacity.
    const MAX_P99_GROWTH: f64 = 3.0;
    let versions = TwoVersions::new();
    let cap = CONNECTIONS.to_string();
    let mut server = ServeProcess::start(&versions.root, &["--max-connections", &cap]);
    let url = format!("http://{}/v1/score", server.address());
    let pid = server.pid();

    // Capacity: a closed loop on exactly as many connections as the server admits.
    let timed = Instant::now();
    let baseline = under_load(&url, tokio::time::sleep(WINDOW)).await;
    let capacity = baseline.len() as f64 / timed.elapsed().as_secs_f64();
    let p99_base = p99_ms(&baseline);
    assert!(baseline.iter().all(|s| s.status == 200));
    let rss_before = rss_kib(pid);

    // Four times the connections, each sending again as soon as it is answered: clients
    // that ignore Retry-After, the worst case for the server.
    let timed = Instant::now();
    let samples = under_load_on(4 * CONNECTIONS, &url, tokio::time::sleep(WINDOW)).await;
    let elapsed = timed.elapsed().as_secs_f64();
    let rss_after = rss_kib(pid);
    let answered =
        |status: u16| -> Vec<&Sample> { samples.iter().filter(|s| s.status == status).collect() };
    let (ok, shed) = (answered(200), answered(503));
    let other = samples.len() - ok.len() - shed.len();
    let p99 = |of: &[&Sample]| p99_of(of.iter().map(|s| s.done - s.sent));
    let (p99_ok, p99_shed) = (p99(&ok), p99(&shed));
    println!(
        "overload: capacity {capacity:.0} req/s on {CONNECTIONS} connections (p99 \
         {p99_base:.1} ms); {} connections: {:.0} req/s answered, {} x 200 ({:.0}/s, p99 \
         {p99_ok:.1} ms), {} x 503 ({:.0}/s, p99 {p99_shed:.1} ms), {other} other or failed; \
         RSS {:.1} -> {:.1} MB",
        4 * CONNECTIONS,
        samples.len() as f64 / elapsed,
        ok.len(),
        ok.len() as f64 / elapsed,
        shed.len(),
        shed.len() as f64 / elapsed,
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    assert_eq!(other, 0, "only 200 and 503 are acceptable answers");
    assert!(!shed.is_empty(), "the excess was never shed");
    assert!(!ok.is_empty(), "the admitted connections were starved");
    assert!(
        shed.iter().all(|s| s.retry_after),
        "every 503 has Retry-After"
    );
    assert!(
        p99_ok <= MAX_P99_GROWTH * p99_base,
        "accepted p99 {p99_ok:.1} ms against {p99_base:.1} ms at capacity"
    );
    assert!(
        p99_shed <= p99_ok * 1.2,
        "a 503 ({p99_shed:.1} ms) must come no slower than a scored answer ({p99_ok:.1} ms)"
    );
    // TODO: the excess is 4x the admitted connections in a closed loop, which offered
    // about 1.6x the capacity's request rate: on 2 cores the in-test client cannot send
    // 4x as many requests per second as the server answers.
    assert!(rss_after.saturating_sub(rss_before) < MAX_GROWTH_KIB);
    server.terminate();
}

fn p99_of(latencies: impl Iterator<Item = Duration>) -> f64 {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for latency in latencies {
        histogram
            .record((latency.as_micros() as u64).max(1))
            .unwrap();
    }
    histogram.value_at_quantile(0.99) as f64 / 1000.0
}
