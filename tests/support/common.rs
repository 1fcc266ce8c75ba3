//! Shared helpers for the integration tests: the ONNX Runtime, the shipped bundles,
//! temporary model roots, and a real server on a port-0 listener.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use login_scorer::bundle::{LoadOptions, ModelStore, ReloadTrigger};
use login_scorer::http::{self, AdminToken, AppState, HttpConfig};
use login_scorer::{runtime, telemetry};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Longest a test waits for something it polls for.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// ORT_DYLIB_PATH (exported by make), else the .venv wheel's library.
pub fn ort_dylib() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH").filter(|path| !path.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => runtime::venv_library(&repo_root()),
    }
}

/// Load options with the shared ONNX Runtime environment. Installs the metrics
/// recorder first, as `serve` does, so the first load's gauges are recorded.
pub fn load_options() -> LoadOptions {
    telemetry::prometheus();
    let environment = runtime::init(&ort_dylib()).expect("ONNX Runtime loads (make setup)");
    LoadOptions {
        environment,
        sessions: 2,
        deny_percentile: 99.9,
    }
}

/// Every shipped version directory, `artifacts/<model>/<version>`.
pub fn shipped_version_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let artifacts = repo_root().join("artifacts");
    for model in std::fs::read_dir(&artifacts)
        .into_iter()
        .flatten()
        .flatten()
    {
        for version in std::fs::read_dir(model.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if version.path().join("manifest.json").is_file() {
                dirs.push(version.path());
            }
        }
    }
    dirs.sort();
    dirs
}

/// The shipped model root `make serve` uses.
pub fn shipped_model_root() -> PathBuf {
    repo_root().join("artifacts/rba-autoencoder")
}

/// The highest shipped version of rba-autoencoder.
pub fn latest_shipped_version() -> PathBuf {
    let versions = login_scorer::bundle::discovery::complete_versions(&shipped_model_root())
        .expect("artifacts/rba-autoencoder exists");
    versions.first().expect("a shipped version").path.clone()
}

/// Copies the bundle in `source` to `root/<version>` with the manifest's version set to
/// match. The manifest is written last, under a temporary name renamed into place, as
/// training does, so a watcher never sees a half-copied bundle as complete.
pub fn copy_version(source: &Path, root: &Path, version: u64) -> PathBuf {
    copy_version_with(source, root, version, |_| {})
}

/// As [`copy_version`], letting the test edit the manifest first.
pub fn copy_version_with(
    source: &Path,
    root: &Path,
    version: u64,
    edit: impl FnOnce(&mut Value),
) -> PathBuf {
    let target = root.join(version.to_string());
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(source).unwrap().flatten() {
        if entry.file_name() != "manifest.json" {
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
    }
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(source.join("manifest.json")).unwrap()).unwrap();
    manifest["version"] = Value::from(version);
    edit(&mut manifest);
    let temporary = root.join(format!(".manifest-{version}.tmp"));
    std::fs::write(&temporary, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    std::fs::rename(&temporary, target.join("manifest.json")).unwrap();
    target
}

/// The 19 real rows, or `None` (with the reason printed) when ../shared is absent.
pub fn sample_csv() -> Option<PathBuf> {
    let path = repo_root().join("../shared/data/rba-sample.csv");
    if path.is_file() {
        Some(path)
    } else {
        println!(
            "SKIP: {} is absent (a user's clone has no ../shared)",
            path.display()
        );
        None
    }
}

/// A store over `root` with its first model loaded.
pub fn loaded_store(root: &Path) -> Arc<ModelStore> {
    let store = Arc::new(ModelStore::new(root, load_options()));
    store
        .reload(ReloadTrigger::Startup)
        .expect("the bundle loads");
    store
}

/// A running server on 127.0.0.1:0.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The served store.
    pub store: Arc<ModelStore>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<bool>>>,
}

impl TestServer {
    /// Serves `store` with the default limits and no admin token.
    pub async fn start(store: Arc<ModelStore>) -> TestServer {
        Self::start_with(store, HttpConfig::default(), None).await
    }

    /// Serves `store` with the given limits and admin token.
    pub async fn start_with(
        store: Arc<ModelStore>,
        config: HttpConfig,
        admin_token: Option<&str>,
    ) -> TestServer {
        let router = http::build_router(AppState {
            store: Arc::clone(&store),
            config: Arc::new(config),
            admin_token: admin_token.and_then(AdminToken::new),
            metrics: telemetry::prometheus(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel::<()>();
        let stopped = async move {
            let _ = stop.await;
        };
        let task = tokio::spawn(http::serve(
            listener,
            router,
            stopped,
            Duration::from_secs(5),
        ));
        let server = TestServer {
            base,
            store,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        server.wait_until_alive().await;
        server
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn wait_until_alive(&self) {
        let deadline = tokio::time::Instant::now() + POLL_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if reqwest::get(self.url("/healthz"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server at {} never answered /healthz", self.base);
    }

    /// Stops the server and waits for the drain.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let drained = task.await.expect("server task").expect("server ran");
            assert!(drained, "requests drained in time");
        }
    }
}

/// A reqwest client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Reads an RBA CSV into JSON events keyed by the CSV column names (the aliases the
/// service accepts), every value a string as the file has it.
pub fn csv_rows_as_json(path: &Path) -> Vec<Value> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let object = headers
                .iter()
                .zip(record.iter())
                .filter(|(name, _)| *name != "index")
                .map(|(name, value)| (name.to_owned(), Value::from(value)))
                .collect();
            Value::Object(object)
        })
        .collect()
}

/// An ordinary desktop login (seen values in every feature) for user `user`, as load
/// tests send it.
pub fn desktop_login(user: i64) -> Value {
    json!({
        "timestamp": "2020-02-03 12:44:19.260",
        "user_id": user,
        "country": "NO",
        "device_type": "desktop",
        "browser_name_and_version": "Chrome 86.0.4202",
        "os_name_and_version": "Mac OS X 10.14.6",
        "login_successful": true,
        "is_attack_ip": false
    })
}
