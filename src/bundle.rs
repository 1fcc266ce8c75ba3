//! The scoring bundle (docs/bundle.md): finding versions under a model root, verifying
//! and loading one, and swapping it in while the service runs.

pub mod discovery;
pub mod files;
pub mod golden;
pub mod load;
pub mod manifest;
pub mod preprocess;
pub mod store;
pub mod watch;

use std::path::PathBuf;

pub use load::{LoadOptions, LoadedModel, load_version};
pub use manifest::Manifest;
pub use store::{ModelStore, ReloadOutcome, ReloadTrigger};

use crate::runtime::RuntimeError;
use crate::scoring::{InferenceError, PreprocessorError};

/// How to get a bundle when there is none.
pub const BUNDLE_FIX: &str =
    "`make train` writes one, or use the checkout's shipped artifacts/rba-autoencoder";

/// Why a bundle (or a model root) cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The model root is not a directory.
    #[error(
        "model root {path} is not a directory (a relative path starts from the current \
         directory); {BUNDLE_FIX}"
    )]
    NoModelRoot {
        /// The configured root.
        path: PathBuf,
    },
    /// The model root holds no complete version directory.
    #[error(
        "no complete bundle under {root} (expected version directories 1, 2, ... holding \
         manifest.json); {BUNDLE_FIX}"
    )]
    NoVersions {
        /// The configured root.
        root: PathBuf,
    },
    /// Every complete version failed validation.
    #[error("no valid bundle under {root}: {failures}; {BUNDLE_FIX}")]
    NoValidVersion {
        /// The configured root.
        root: PathBuf,
        /// `version N: reason` for each rejected version.
        failures: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON file does not parse into its expected shape.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        source: serde_json::Error,
    },
    /// A file breaks a rule of the contract.
    #[error("{file}: {reason}")]
    Invalid {
        /// The file name within the bundle.
        file: String,
        /// The broken rule.
        reason: String,
    },
    /// A file name in the manifest could escape the version directory.
    #[error("file `{name}` is not allowed: {reason}")]
    UnsafePath {
        /// The name as the manifest gives it.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A file's SHA-256 differs from the manifest's.
    #[error("{file}: SHA-256 {actual} does not match the manifest's {expected}")]
    Checksum {
        /// The file name.
        file: String,
        /// Hash in the manifest.
        expected: String,
        /// Hash of the file on disk.
        actual: String,
    },
    /// ONNX Runtime could not be started.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// `preprocess.json` cannot be applied.
    #[error("preprocess.json: {0}")]
    Preprocess(#[from] PreprocessorError),
    /// `model.onnx` cannot be loaded or does not match the manifest.
    #[error("model.onnx: {0}")]
    Model(#[from] InferenceError),
    /// A golden row is not reproduced.
    #[error("golden.jsonl line {line}: {reason}")]
    Golden {
        /// 1-based line number (0 for the file as a whole).
        line: usize,
        /// What differs.
        reason: String,
    },
}

impl BundleError {
    /// A contract violation in `file`.
    pub fn invalid(file: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_owned(),
            reason: reason.into(),
        }
    }
}
