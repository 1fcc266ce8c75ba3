//! The load generator's command line: what to load, with what, for how long, and
//! the checks that keep every run on this machine and bounded in time.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, ensure};
use clap::Parser;
use reqwest::Url;

/// The longest measured window or warm-up accepted, so every run ends by itself.
pub const MAX_WINDOW_SECS: f64 = 3600.0;

/// Sends login events to a scoring endpoint on this machine and reports
/// throughput, latency percentiles and counts by status.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Args {
    /// Endpoint to load; must be a loopback address (127.0.0.0/8 or ::1).
    #[arg(
        long,
        env = "LOAD_URL",
        default_value = "http://127.0.0.1:8080/v1/score"
    )]
    pub url: Url,

    /// RBA CSV file (plain or .gz) the events are taken from, in file order.
    #[arg(long, env = "LOAD_EVENTS")]
    pub events: PathBuf,

    /// How many rows of the events file to read; requests cycle through them.
    #[arg(long, env = "LOAD_EVENT_LIMIT", default_value_t = 10_000)]
    pub event_limit: usize,

    /// Events per request: above 1, each body is a batch `{"events": [...]}` for the
    /// batch endpoint.
    #[arg(long, env = "LOAD_BATCH", default_value_t = 1)]
    pub batch: usize,

    /// Concurrent keep-alive connections.
    #[arg(long, env = "LOAD_CONNECTIONS", default_value_t = 64)]
    pub connections: usize,

    /// Length of the measured window, in seconds.
    #[arg(long, env = "LOAD_DURATION_SECS", default_value_t = 10.0)]
    pub duration_secs: f64,

    /// Unmeasured load before the window, in seconds.
    #[arg(long, env = "LOAD_WARMUP_SECS", default_value_t = 2.0)]
    pub warmup_secs: f64,

    /// Stop after this many measured requests, even before the window ends.
    #[arg(long, env = "LOAD_REQUESTS")]
    pub requests: Option<u64>,

    /// Offered rate in requests per second (open loop); without it, each
    /// connection sends as fast as answers come back (closed loop).
    #[arg(long, env = "LOAD_RATE")]
    pub rate: Option<f64>,

    /// Per-request timeout, in milliseconds.
    #[arg(long, env = "LOAD_TIMEOUT_MS", default_value_t = 5_000)]
    pub timeout_ms: u64,

    /// Threads of the load generator's own runtime. It shares the machine with
    /// the server it loads, so it defaults to one.
    #[arg(long, env = "LOAD_THREADS", default_value_t = 1)]
    pub threads: usize,

    /// Name of this run in the report.
    #[arg(long, env = "LOAD_LABEL", default_value = "load")]
    pub label: String,

    /// Also write the report as JSON to this file.
    #[arg(long, env = "LOAD_JSON")]
    pub json: Option<PathBuf>,

    /// Write the probe request's answer to this file (`compare.sh` gives the
    /// floor server the real service's answer, so both send as many bytes).
    #[arg(long, env = "LOAD_SAVE_PROBE_RESPONSE")]
    pub save_probe_response: Option<PathBuf>,

    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// Refuses anything that could load another machine or run without end.
pub fn validate(args: &Args) -> anyhow::Result<()> {
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
