//! Load generator for login-scorer's HTTP API: many keep-alive connections
//! sending real login events, for a bounded time and request count, with
//! latency in an HDR histogram.
//!
//! Run with:
//!   cargo bench --bench load -- --url http://127.0.0.1:8080/v1/score \
//!       --events data/generated/rba-2000000.csv.gz --connections 64 --duration-secs 10
//! or `make bench-load`. Add `--rate 2000` for an open-loop run at a fixed offered rate,
//! `--batch 100` (with the batch endpoint's URL) to send 100 events per request. Ctrl-C
//! ends the run early and still prints the report.

// TODO: no unit tests: cargo runs none for a `harness = false` bench target.
// The loopback check, CSV conversion and report were only exercised by hand,
// against the floor and the service; tests in tests/ would need them in the library.

mod events;
mod report;
mod run;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use reqwest::Url;

use crate::report::{Mode, Summary, latency_histogram};
use crate::run::Plan;

/// The longest measured window or warm-up accepted, so every run ends by itself.
const MAX_WINDOW_SECS: f64 = 3600.0;

/// Sends login events to a scoring endpoint on this machine and reports
/// throughput, latency percentiles and counts by status.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Endpoint to load; must be a loopback address (127.0.0.0/8 or ::1).
    #[arg(
        long,
        env = "LOAD_URL",
        default_value = "http://127.0.0.1:8080/v1/score"
    )]
    url: Url,

    /// RBA CSV file (plain or .gz) the events are taken from, in file order.
    #[arg(long, env = "LOAD_EVENTS")]
    events: PathBuf,

    /// How many rows of the events file to read; requests cycle through them.
    #[arg(long, env = "LOAD_EVENT_LIMIT", default_value_t = 10_000)]
    event_limit: usize,

    /// Events per request: above 1, each body is a batch `{"events": [...]}` for the
    /// batch endpoint.
    #[arg(long, env = "LOAD_BATCH", default_value_t = 1)]
    batch: usize,

    /// Concurrent keep-alive connections.
    #[arg(long, env = "LOAD_CONNECTIONS", default_value_t = 64)]
    connections: usize,

    /// Length of the measured window, in seconds.
    #[arg(long, env = "LOAD_DURATION_SECS", default_value_t = 10.0)]
    duration_secs: f64,

    /// Unmeasured load before the window, in seconds.
    #[arg(long, env = "LOAD_WARMUP_SECS", default_value_t = 2.0)]
    warmup_secs: f64,

    /// Stop after this many measured requests, even before the window ends.
    #[arg(long, env = "LOAD_REQUESTS")]
    requests: Option<u64>,

    /// Offered rate in requests per second (open loop); without it, each
    /// connection sends as fast as answers come back (closed loop).
    #[arg(long, env = "LOAD_RATE")]
    rate: Option<f64>,

    /// Per-request timeout, in milliseconds.
    #[arg(long, env = "LOAD_TIMEOUT_MS", default_value_t = 5_000)]
    timeout_ms: u64,

    /// Threads of the load generator's own runtime. It shares the machine with
    /// the server it loads, so it defaults to one.
    #[arg(long, env = "LOAD_THREADS", default_value_t = 1)]
    threads: usize,

    /// Name of this run in the report.
    #[arg(long, env = "LOAD_LABEL", default_value = "load")]
    label: String,

    /// Also write the report as JSON to this file.
    #[arg(long, env = "LOAD_JSON")]
    json: Option<PathBuf>,

    /// Write the probe request's answer to this file (`compare.sh` gives the
    /// floor server the real service's answer, so both send as many bytes).
    #[arg(long, env = "LOAD_SAVE_PROBE_RESPONSE")]
    save_probe_response: Option<PathBuf>,

    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    validate(&args)?;

    let mut bodies = events::read_event_bodies(&args.events, args.event_limit)?;
    if args.batch > 1 {
        bodies = events::batch_bodies(&bodies, args.batch);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    runtime.block_on(load(args, bodies))
}

/// Refuses anything that could load another machine or run without end.
fn validate(args: &Args) -> anyhow::Result<()> {
    ensure!(
        args.url.scheme() == "http",
        "only http:// targets are supported"
    );
    let host = args.url.host_str().unwrap_or("");
    let address: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("target host {host:?} must be a loopback IP such as 127.0.0.1"))?;
    ensure!(
        address.is_loopback(),
        "refusing non-loopback target {address}: load stays on this machine"
    );

    ensure!(args.connections > 0, "--connections must be at least 1");
    ensure!(args.threads > 0, "--threads must be at least 1");
    ensure!(args.event_limit > 0, "--event-limit must be at least 1");
    ensure!(args.batch > 0, "--batch must be at least 1");
    ensure!(
        args.duration_secs > 0.0 && args.duration_secs <= MAX_WINDOW_SECS,
        "--duration-secs must be in (0, {MAX_WINDOW_SECS}]"
    );
    ensure!(
        (0.0..=MAX_WINDOW_SECS).contains(&args.warmup_secs),
        "--warmup-secs must be in [0, {MAX_WINDOW_SECS}]"
    );
    ensure!(args.requests != Some(0), "--requests must be at least 1");
    if let Some(rate) = args.rate {
        ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate must be a positive number"
        );
    }
    ensure!(args.timeout_ms > 0, "--timeout-ms must be at least 1");
    Ok(())
}

async fn load(args: Args, bodies: Vec<Bytes>) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let answer = probe(&args.url, &bodies[0], timeout).await?;
    if let Some(path) = &args.save_probe_response {
        std::fs::write(path, &answer).with_context(|| format!("writing {}", path.display()))?;
    }

    let events = bodies.len();
    let plan = Plan {
        url: args.url.clone(),
        bodies,
        connections: args.connections,
        warmup: Duration::from_secs_f64(args.warmup_secs),
        measure: Duration::from_secs_f64(args.duration_secs),
        max_requests: args.requests,
        rate_per_s: args.rate,
        timeout,
        stop: stop_on_ctrl_c(),
        observer: None,
    };
    let measure_planned = plan.measure;
    let measure_started = tokio::time::Instant::now() + plan.warmup;
    let result = run::run(plan).await?;
    // The window is the planned one (an open loop's schedule fills it exactly),
    // unless the request cap closed it early.
    let measured = if result.capped {
        measure_planned.min(measure_started.elapsed())
    } else {
        measure_planned
    };

    let mode = match args.rate {
        Some(rate_per_s) => Mode::Open {
            rate_per_s,
            missed: result.missed,
        },
        None => Mode::Closed,
    };
    let mut summary = Summary {
        label: args.label,
        url: args.url.to_string(),
        connections: args.connections,
        mode,
        measured,
        warmup: Duration::from_secs_f64(args.warmup_secs),
        events,
        response_bytes: answer.len(),
        latency_us: latency_histogram(),
        outcomes: Default::default(),
    };
    for tally in result.tallies {
        summary.merge(tally);
    }

    print!("{}", summary.table());
    if let Some(path) = &args.json {
        summary.write_json(path)?;
    }
    ensure!(summary.succeeded() > 0, "no request succeeded");
    Ok(())
}

/// A flag that turns true at the first Ctrl-C.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: ending the run and reporting what was measured");
            flag.store(true, Ordering::Relaxed);
        }
    });
    stop
}

/// One request before the run: a wrong URL or an event the server rejects
/// fails here with the server's answer, not as a run full of errors.
async fn probe(url: &Url, body: &Bytes, timeout: Duration) -> anyhow::Result<Bytes> {
    let client = run::connection_client(timeout)?;
    let (outcome, _, answer) = run::send(&client, url, body.clone()).await;
    if !outcome.is_success() {
        bail!(
            "probe request to {url} ended with {outcome:?}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(answer)
}
