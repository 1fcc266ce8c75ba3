//! From a raw login event to a risk score: parse the event, turn it into the model's
//! feature vector, run the autoencoder, and read the reconstruction error against the
//! bundle's calibration.

pub mod event;
pub mod features;
pub mod model;
pub mod score;
pub mod timestamp;

pub use event::{EventError, EventField, LoginEvent};
pub use features::{FeatureVector, Preprocessor, PreprocessorError};
pub use model::{InferenceError, OnnxModel};
pub use score::{Action, Calibration, Contribution, ScoreError, ScoreOutcome, Scorer};
