//! Criterion benchmarks of the in-process scoring path, stage by stage: JSON -> LoginEvent,
//! LoginEvent -> FeatureVector, inference at several batch sizes, one whole event, and a
//! batch of 1,000 events.
//!
//! Run with `make bench` (bounded warm-up and measurement), or
//!   cargo bench --bench scoring -- --warm-up-time 1 --measurement-time 3
//! The events are the shipped bundle's golden rows (real-looking logins, including
//! unseen and missing values), cycled to fill a batch. ONNX Runtime comes from
//! ORT_DYLIB_PATH, else the `.venv` wheel, as for the service.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use login_scorer::bundle::{LoadOptions, LoadedModel, golden, load_version};
use login_scorer::runtime;
use login_scorer::scoring::{FeatureVector, LoginEvent};

/// The shipped bundle, relative to the package root (where `cargo bench` runs).
const BUNDLE: &str = "artifacts/rba-autoencoder/1";
/// Inference batch sizes: one request, a small and a large batch request, an offline chunk.
const INFERENCE_BATCHES: [usize; 4] = [1, 16, 256, 1_024];
/// Events per batch in the batch-scoring benchmark (the per-core throughput target).
const SCORING_BATCH: usize = 1_000;

struct Fixture {
    model: LoadedModel,
    bodies: Vec<Vec<u8>>,
    events: Vec<LoginEvent>,
    vectors: Vec<FeatureVector>,
}

fn fixture() -> Fixture {
    let dylib = runtime::resolve_dylib_path(None);
    let environment = runtime::init(&dylib)
        .unwrap_or_else(|err| panic!("ONNX Runtime ({}): {err}", dylib.display()));
    // One session: every benchmark runs on one thread, so these are per-core figures.
    let options = LoadOptions {
        environment,
        sessions: 1,
        deny_percentile: 99.9,
    };
    let dir = Path::new(BUNDLE);
    let model = load_version(dir, &options).expect("load the shipped bundle");
    let golden_bytes = std::fs::read(dir.join("golden.jsonl")).expect("read golden.jsonl");
    let rows = golden::parse(&golden_bytes).expect("parse golden.jsonl");
    let bodies: Vec<Vec<u8>> = rows
        .iter()
        .map(|row| serde_json::to_vec(&row.event).expect("serialize an event"))
        .collect();
    let events: Vec<LoginEvent> = bodies.iter().map(|body| parse_event(body)).collect();
    let vectors = events
        .iter()
        .map(|event| model.scorer.preprocessor().encode(event))
        .collect();
    Fixture {
        model,
        bodies,
        events,
        vectors,
    }
}

/// The service's parse: bytes -> serde_json::Value -> LoginEvent.
fn parse_event(body: &[u8]) -> LoginEvent {
    let value: serde_json::Value = serde_json::from_slice(body).expect("golden event is JSON");
    LoginEvent::from_json(&value).expect("golden event is valid")
}

fn stages(c: &mut Criterion) {
    let fixture = fixture();
    let scorer = &fixture.model.scorer;
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(1));

    let mut bodies = fixture.bodies.iter().cycle();
    group.bench_function("parse_json", |b| {
        b.iter(|| parse_event(black_box(bodies.next().expect("cycle"))))
    });

    let mut events = fixture.events.iter().cycle();
    group.bench_function("build_features", |b| {
        b.iter(|| {
            scorer
                .preprocessor()
                .encode(black_box(events.next().expect("cycle")))
        })
    });

    let mut bodies = fixture.bodies.iter().cycle();
    group.bench_function("score_one_from_json", |b| {
        b.iter(|| {
            let event = parse_event(black_box(bodies.next().expect("cycle")));
            let vector = scorer.preprocessor().encode(&event);
            scorer
                .score_vectors(std::slice::from_ref(&vector))
                .expect("score")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("inference");
    for rows in INFERENCE_BATCHES {
        let features: Vec<f32> = fixture
            .vectors
            .iter()
            .cycle()
            .take(rows)
            .flat_map(|vector| vector.values.iter().copied())
            .collect();
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(format!("batch_{rows}"), |b| {
            b.iter(|| {
                scorer
                    .model()
                    .reconstruct(black_box(&features), rows)
                    .expect("inference")
            })
        });
    }
    group.finish();

    let batch: Vec<&Vec<u8>> = fixture.bodies.iter().cycle().take(SCORING_BATCH).collect();
    let mut group = c.benchmark_group("batch_scoring");
    group.throughput(Throughput::Elements(SCORING_BATCH as u64));
    group.bench_function(format!("{SCORING_BATCH}_events_from_json"), |b| {
        b.iter(|| {
            let events: Vec<LoginEvent> = batch.iter().map(|body| parse_event(body)).collect();
            scorer.score_events(black_box(&events)).expect("score")
        })
    });
    let events: Vec<LoginEvent> = fixture
        .events
        .iter()
        .cycle()
        .take(SCORING_BATCH)
        .cloned()
        .collect();
    group.bench_function(format!("{SCORING_BATCH}_parsed_events"), |b| {
        b.iter(|| scorer.score_events(black_box(&events)).expect("score"))
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
