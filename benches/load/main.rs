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

// NOTE: cargo runs no tests in a `harness = false` target; tests/load_generator.rs
// includes these modules and tests them there.

mod args;
mod events;
mod report;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use reqwest::Url;

use crate::args::{Args, validate};
use crate::report::{Mode, Summary, latency_histogram};
use crate::run::Plan;

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
