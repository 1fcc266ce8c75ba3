//! Loading one version directory in full: manifest, checksums of every file,
//! preprocessing, ONNX signature, golden rows. Nothing is served before all pass.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ort::environment::Environment;

use super::golden::{self, ParityReport};
use super::preprocess::PreprocessSpec;
use super::{BundleError, Manifest, discovery, files};
use crate::scoring::{Calibration, OnnxModel, Preprocessor, Scorer};

/// What every load needs besides the directory.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The ONNX Runtime environment.
    pub environment: Environment,
    /// Sessions per model (see `crate::scoring::model` for why).
    pub sessions: usize,
    /// Percentile at or above which anomalies are denied.
    pub deny_percentile: f64,
}

/// A validated bundle, ready to score.
#[derive(Debug)]
pub struct LoadedModel {
    /// The bundle's manifest.
    pub manifest: Manifest,
    /// Preprocessing, sessions and calibration.
    pub scorer: Scorer,
    /// The (canonical) version directory.
    pub directory: PathBuf,
    /// SHA-256 of `manifest.json`: a changed manifest is a new candidate.
    pub fingerprint: String,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
    /// How closely the golden rows were reproduced.
    pub parity: ParityReport,
}

impl LoadedModel {
    /// The manifest's version.
    pub fn version(&self) -> u64 {
        self.manifest.version
    }
}

/// SHA-256 of a version directory's `manifest.json`, to tell whether it changed.
pub fn manifest_fingerprint(dir: &Path) -> Result<String, BundleError> {
    let dir = canonical(dir)?;
    Ok(files::sha256_hex(&files::read_unverified(
        &dir,
        "manifest.json",
    )?))
}

/// Loads and validates the version directory `dir`; its name must be the version.
pub fn load_version(dir: &Path, options: &LoadOptions) -> Result<LoadedModel, BundleError> {
    let dir = canonical(dir)?;
    let version = dir
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(discovery::parse_version)
        .ok_or_else(|| {
            BundleError::invalid(
                "manifest.json",
                "the version directory is not named 1, 2, ...",
            )
        })?;

    let manifest_bytes = files::read_unverified(&dir, "manifest.json")?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|source| BundleError::Json {
            path: dir.join("manifest.json"),
            source,
        })?;
    manifest.validate(version)?;

    // Every listed file is verified, plots included, before anything is parsed.
    let mut model_bytes = Vec::new();
    let mut preprocess_bytes = Vec::new();
    let mut golden_bytes = Vec::new();
    for (name, expected) in &manifest.files {
        let bytes = files::read_verified(&dir, name, expected)?;
        match name.as_str() {
            "model.onnx" => model_bytes = bytes,
            "preprocess.json" => preprocess_bytes = bytes,
            "golden.jsonl" => golden_bytes = bytes,
            _ => {}
        }
    }

    let spec: PreprocessSpec =
        serde_json::from_slice(&preprocess_bytes).map_err(|source| BundleError::Json {
            path: dir.join("preprocess.json"),
            source,
        })?;
    let preprocessor = Preprocessor::new(&spec)?;
    if preprocessor.width() != manifest.model.width {
        return Err(BundleError::invalid(
            "preprocess.json",
            format!(
                "{} features but the manifest says width {}",
                preprocessor.width(),
                manifest.model.width
            ),
        ));
    }

    let model = OnnxModel::load(
        &options.environment,
        &model_bytes,
        &manifest.model,
        options.sessions,
    )?;
    let calibration = Calibration::from_manifest(&manifest, options.deny_percentile);
    let scorer = Scorer::new(preprocessor, model, calibration);
    let parity = golden::check_parity(&scorer, &golden::parse(&golden_bytes)?)?;

    Ok(LoadedModel {
        manifest,
        scorer,
        directory: dir,
        fingerprint: files::sha256_hex(&manifest_bytes),
        loaded_at: Utc::now(),
        parity,
    })
}

fn canonical(dir: &Path) -> Result<PathBuf, BundleError> {
    dir.canonicalize().map_err(|source| BundleError::Io {
        path: dir.to_path_buf(),
        source,
    })
}
