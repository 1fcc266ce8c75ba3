//! The autoencoder: a small pool of ONNX Runtime sessions over one `model.onnx`.
//!
//! How sessions are shared, and why: `Session::run` takes `&mut self`, so each session
//! sits behind its own mutex and a request borrows whichever is free, trying them
//! round-robin and waiting on one only when all are busy. The pool holds one session per
//! core, each with one intra-op thread, so every core can run inference at once and ONNX
//! Runtime spawns no threads of its own to compete with the async workers. Measured with
//! `examples/measure.rs` on the 2-core machine (shipped bundle, load average 1.4): one-row
//! inference takes a median 3.6 us (a whole event, JSON to score, 6.8 us); two threads
//! sharing one session score 88k events/s (154k bare inferences/s), two sessions 184k
//! events/s (327k inferences/s), so a single shared session would halve throughput.
//! Single events are therefore scored inline on the async worker (a few microseconds,
//! shorter than a hop to another thread); batch bodies over 64 KiB are parsed and scored
//! in `spawn_blocking` (see `crate::http::routes::score`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::bundle::manifest::ModelSignature;

/// Why the model could not be loaded or run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferenceError {
    /// ONNX Runtime refused the model or the session options.
    #[error("cannot create an ONNX Runtime session: {0}")]
    Session(String),
    /// The graph's inputs or outputs do not match the manifest.
    #[error("model.onnx does not match the manifest: {0}")]
    Signature(String),
    /// `Session::run` failed.
    #[error("inference failed: {0}")]
    Run(String),
}

/// A loaded `model.onnx` with a pool of sessions.
#[derive(Debug)]
pub struct OnnxModel {
    sessions: Vec<Mutex<Session>>,
    next_session: AtomicUsize,
    signature: ModelSignature,
}

impl OnnxModel {
    /// Builds `session_count` sessions (at least one) from the model bytes and checks the
    /// graph against `signature`: one float32 input and output, `[batch, width]` each,
    /// with a dynamic batch dimension.
    pub fn load(
        environment: &Environment,
        model_bytes: &[u8],
        signature: &ModelSignature,
        session_count: usize,
    ) -> Result<OnnxModel, InferenceError> {
        let sessions = (0..session_count.max(1))
            .map(|_| build_session(environment, model_bytes).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        {
            let first = sessions[0]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            check_signature(&first, signature)?;
        }
        Ok(OnnxModel {
            sessions,
            next_session: AtomicUsize::new(0),
            signature: signature.clone(),
        })
    }

    /// Number of features per row.
    pub fn width(&self) -> usize {
        self.signature.width
    }

    /// Number of sessions in the pool.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Reconstructs `rows` rows of `width` features (row-major); returns the
    /// reconstruction, same shape.
    pub fn reconstruct(&self, features: &[f32], rows: usize) -> Result<Vec<f32>, InferenceError> {
        let width = self.signature.width;
        if rows == 0 {
            return Ok(Vec::new());
        }
        if features.len() != rows * width {
            return Err(InferenceError::Run(format!(
                "{} values for {rows} rows of {width}",
                features.len()
            )));
        }
        let mut session = self.borrow_session();
        let run_error = |err: ort::Error| InferenceError::Run(err.to_string());

        let input = TensorRef::from_array_view(([rows, width], features)).map_err(run_error)?;
        let outputs = session
            .run(ort::inputs![self.signature.input.as_str() => input])
            .map_err(run_error)?;
        let output = outputs.get(&self.signature.output).ok_or_else(|| {
            InferenceError::Run(format!("no output named {}", self.signature.output))
        })?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(run_error)?;
        if shape.len() != 2 || shape[0] != rows as i64 || shape[1] != width as i64 {
            return Err(InferenceError::Run(format!(
                "output shape {shape:?}, expected [{rows}, {width}]"
            )));
        }
        Ok(values.to_vec())
    }

    fn borrow_session(&self) -> std::sync::MutexGuard<'_, Session> {
        let count = self.sessions.len();
        let start = self.next_session.fetch_add(1, Ordering::Relaxed) % count;
        for offset in 0..count {
            if let Ok(session) = self.sessions[(start + offset) % count].try_lock() {
                return session;
            }
        }
        // NOTE: a poisoned session only means a panic elsewhere while it was borrowed;
        // ONNX Runtime's state is not left half-written by a Rust panic, so keep using it.
        self.sessions[start]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn build_session(environment: &Environment, model_bytes: &[u8]) -> Result<Session, InferenceError> {
    let session_error = |reason: String| InferenceError::Session(reason);
    Session::builder(environment)
        .map_err(|err| session_error(err.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|err| session_error(err.to_string()))?
        .with_intra_threads(1)
        .map_err(|err| session_error(err.to_string()))?
        .with_inter_threads(1)
        .map_err(|err| session_error(err.to_string()))?
        .commit_from_memory(model_bytes)
        .map_err(|err| session_error(err.to_string()))
}

fn check_signature(session: &Session, signature: &ModelSignature) -> Result<(), InferenceError> {
    let mismatch = |reason: String| Err(InferenceError::Signature(reason));
    let (inputs, outputs) = (session.inputs(), session.outputs());
    if inputs.len() != 1 || outputs.len() != 1 {
        return mismatch(format!(
            "{} inputs and {} outputs, expected one of each",
            inputs.len(),
            outputs.len()
        ));
    }
    for (outlet, expected) in [
        (&inputs[0], &signature.input),
        (&outputs[0], &signature.output),
    ] {
        if outlet.name() != expected {
            return mismatch(format!("tensor `{}`, expected `{expected}`", outlet.name()));
        }
        let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
            return mismatch(format!("`{expected}` is not a tensor"));
        };
        if *ty != TensorElementType::Float32 {
            return mismatch(format!("`{expected}` is {ty:?}, expected float32"));
        }
        let dims: &[i64] = shape;
        if dims.len() != 2 || dims[1] != signature.width as i64 {
            return mismatch(format!(
                "`{expected}` has shape {dims:?}, expected [batch, {}]",
                signature.width
            ));
        }
        if dims[0] >= 0 {
            return mismatch(format!(
                "`{expected}` has a fixed batch dimension {}, expected a dynamic one",
                dims[0]
            ));
        }
    }
    Ok(())
}
