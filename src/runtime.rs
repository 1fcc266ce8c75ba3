//! Loading the ONNX Runtime shared library once per process.
//!
//! NOTE: ort's `load-dynamic` keeps the first library it loads for the life of the
//! process; a later call with another path reuses the first one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

/// How to get a runtime when it is missing.
pub const RUNTIME_FIX: &str = "the default path is relative to the current directory, \
     so run from the checkout, where `make setup` installs it into .venv; or set \
     ORT_DYLIB_PATH (or --ort-dylib-path) to the absolute path of \
     onnxruntime/capi/libonnxruntime.so.1.31.1 from `pip install onnxruntime==1.31.1`";

/// Where the Python wheel installed by `make setup` puts the library, relative to the repo.
const VENV_SITE_PACKAGES: &str = ".venv/lib";
const VENV_LIBRARY: &str = "site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1";

static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// Why ONNX Runtime could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No file at the library path.
    #[error("ONNX Runtime library not found at {path}: {RUNTIME_FIX}")]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file exists but is not a usable ONNX Runtime.
    #[error("cannot load ONNX Runtime from {path}: {reason}; {RUNTIME_FIX}")]
    Load {
        /// The path that was tried.
        path: PathBuf,
        /// The loader's explanation.
        reason: String,
    },
}

/// The library to load: the flag (or LOGIN_SCORER_ORT_DYLIB_PATH), else ORT_DYLIB_PATH,
/// else the `.venv` wheel under the current directory.
pub fn resolve_dylib_path(configured: Option<&Path>) -> PathBuf {
    if let Some(path) = configured {
        return path.to_path_buf();
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|path| !path.is_empty()) {
        return PathBuf::from(path);
    }
    venv_library(Path::new("."))
}

/// The runtime inside `<root>/.venv`, whatever the Python 3 minor version.
pub fn venv_library(root: &Path) -> PathBuf {
    let lib = root.join(VENV_SITE_PACKAGES);
    let python_dir = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.join(VENV_LIBRARY).is_file())
            .max()
    });
    python_dir
        .unwrap_or_else(|| lib.join("python3.11"))
        .join(VENV_LIBRARY)
}

/// Loads the library (first call only) and returns the shared ONNX Runtime environment.
pub fn init(dylib_path: &Path) -> Result<Environment, RuntimeError> {
    let mut environment = ENVIRONMENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = environment.as_ref() {
        return Ok(existing.clone());
    }
    if !dylib_path.is_file() {
        return Err(RuntimeError::NotFound {
            path: dylib_path.to_path_buf(),
        });
    }
    let load_error = |reason: String| RuntimeError::Load {
        path: dylib_path.to_path_buf(),
        reason,
    };
    let builder = ort::init_from(dylib_path).map_err(|err| load_error(err.to_string()))?;
    let built = builder
        .with_name("login-scorer")
        .with_telemetry(false)
        .build()
        .map_err(|err| load_error(err.to_string()))?;
    *environment = Some(built.clone());
    Ok(built)
}
