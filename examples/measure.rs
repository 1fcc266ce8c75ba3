//! In-process timings of the scoring path, for the README and the session-sharing
//! decision in `scoring::model`.
//!
//! Run with (ORT_DYLIB_PATH as `make` exports it):
//!   cargo run --release --example measure -- artifacts/rba-autoencoder/1
//!
//! 1. one event: JSON bytes -> LoginEvent -> features -> inference -> score, median/p99;
//! 2. batches of 1,000 events on one thread and one session: events/s per core;
//! 3. two threads sharing one session vs. two sessions: why the pool has one per core.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use login_scorer::bundle::{LoadOptions, LoadedModel, golden, load_version};
use login_scorer::runtime;
use login_scorer::scoring::LoginEvent;

/// Single-event timing runs this many iterations (after as many warm-up rounds / 10).
const SINGLE_ITERATIONS: usize = 200_000;
/// Batches timed for the per-core throughput.
const BATCHES: usize = 300;
/// Events per batch.
const BATCH_SIZE: usize = 1_000;
/// Wall time each contention run takes at most.
const CONTENTION_TIME: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: measure <version dir>")?,
    );
    let environment = runtime::init(&runtime::resolve_dylib_path(None))?;
    let load = |sessions| LoadOptions {
        environment: environment.clone(),
        sessions,
        deny_percentile: 99.9,
    };
    let rows = golden::parse(&std::fs::read(dir.join("golden.jsonl"))?)?;
    let bodies: Vec<Vec<u8>> = rows
        .iter()
        .map(|row| serde_json::to_vec(&row.event))
        .collect::<Result<_, _>>()?;

    let one_session = load_version(&dir, &load(1))?;
    single_event(&one_session, &bodies)?;
    batches_per_core(&one_session, &bodies)?;

    let shared = Arc::new(one_session);
    let pooled = Arc::new(load_version(&dir, &load(2))?);
    for (label, model) in [
        ("1 session shared by 2 threads", &shared),
        ("2 sessions, 2 threads", &pooled),
    ] {
        let events_per_second = contention(model, &bodies, false)?;
        let inferences_per_second = contention(model, &bodies, true)?;
        println!(
            "{label}: {events_per_second:.0} events/s end to end, \
             {inferences_per_second:.0} single-row inferences/s"
        );
    }
    Ok(())
}

fn infer_only(model: &LoadedModel, features: &[f32]) -> anyhow::Result<f32> {
    Ok(model.scorer.model().reconstruct(features, 1)?[0])
}

fn score_body(model: &LoadedModel, body: &[u8]) -> anyhow::Result<f64> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    let event = LoginEvent::from_json(&value)?;
    let vector = model.scorer.preprocessor().encode(&event);
    let outcome = model.scorer.score_vectors(std::slice::from_ref(&vector))?;
    Ok(outcome[0].reconstruction_error)
}

fn single_event(model: &LoadedModel, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    for body in bodies.iter().cycle().take(SINGLE_ITERATIONS / 10) {
        score_body(model, body)?;
    }
    let mut nanos = Histogram::<u64>::new(3)?;
    for body in bodies.iter().cycle().take(SINGLE_ITERATIONS) {
        let started = Instant::now();
        std::hint::black_box(score_body(model, body)?);
        nanos.record(started.elapsed().as_nanos() as u64)?;
    }
    let value: serde_json::Value = serde_json::from_slice(&bodies[0])?;
    let features = model
        .scorer
        .preprocessor()
        .encode(&LoginEvent::from_json(&value)?)
        .values;
    let mut inference = Histogram::<u64>::new(3)?;
    for _ in 0..SINGLE_ITERATIONS {
        let started = Instant::now();
        std::hint::black_box(infer_only(model, &features)?);
        inference.record(started.elapsed().as_nanos() as u64)?;
    }
    println!(
        "one event (parse JSON, features, inference, score), {} runs: median {:.1} us, \
         p99 {:.1} us, p99.9 {:.1} us",
        nanos.len(),
        nanos.value_at_quantile(0.5) as f64 / 1e3,
        nanos.value_at_quantile(0.99) as f64 / 1e3,
        nanos.value_at_quantile(0.999) as f64 / 1e3,
    );
    println!(
        "of which one-row inference alone: median {:.1} us, p99 {:.1} us",
        inference.value_at_quantile(0.5) as f64 / 1e3,
        inference.value_at_quantile(0.99) as f64 / 1e3,
    );
    Ok(())
}

fn batches_per_core(model: &LoadedModel, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    let batch: Vec<&Vec<u8>> = bodies.iter().cycle().take(BATCH_SIZE).collect();
    let started = Instant::now();
    for _ in 0..BATCHES {
        let vectors = batch
            .iter()
            .map(|body| {
                let value: serde_json::Value = serde_json::from_slice(body)?;
                Ok(model
                    .scorer
                    .preprocessor()
                    .encode(&LoginEvent::from_json(&value)?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        std::hint::black_box(model.scorer.score_vectors(&vectors)?);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "batches of {BATCH_SIZE} (parse, features, one inference call), 1 thread, 1 session: \
         {:.0} events/s per core",
        (BATCHES * BATCH_SIZE) as f64 / seconds
    );
    Ok(())
}

fn contention(
    model: &Arc<LoadedModel>,
    bodies: &[Vec<u8>],
    inference_only: bool,
) -> anyhow::Result<f64> {
    let value: serde_json::Value = serde_json::from_slice(&bodies[0])?;
    let features = model
        .scorer
        .preprocessor()
        .encode(&LoginEvent::from_json(&value)?)
        .values;
    let started = Instant::now();
    let counts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<u64> {
                    let mut scored = 0;
                    for body in bodies.iter().cycle() {
                        if started.elapsed() >= CONTENTION_TIME {
                            break;
                        }
                        if inference_only {
                            std::hint::black_box(infer_only(model, &features)?);
                        } else {
                            std::hint::black_box(score_body(model, body)?);
                        }
                        scored += 1;
                    }
                    Ok(scored)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("worker"))
            .sum::<anyhow::Result<u64>>()
    })?;
    Ok(counts as f64 / started.elapsed().as_secs_f64())
}
