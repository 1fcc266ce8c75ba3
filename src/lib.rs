//! login-scorer: turns one raw login event into a risk score.
//!
//! A request travels `http` (routes, extractors, error mapping) -> `scoring` (event ->
//! features -> ONNX model -> score) using the model that `bundle` loaded, validated and
//! hot-swapped. `offline` scores CSV files on the same path, `evaluation` measures detection
//! quality, `cli` holds the commands (`serve`, `score`, `check-bundle`) and `telemetry`
//! the logging and metrics set-up they share.

pub mod bundle;
pub mod cli;
pub mod evaluation;
pub mod http;
pub mod offline;
pub mod runtime;
pub mod scoring;
pub mod telemetry;
