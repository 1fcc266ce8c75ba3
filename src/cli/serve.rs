//! `login-scorer serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::ModelArgs;
use crate::bundle::{LoadOptions, ModelStore, ReloadTrigger, watch};
use crate::http::router::{
    DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_EVENTS, DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
};
use crate::http::server::DEFAULT_MAX_CONNECTIONS;
use crate::http::{self, AdminToken, AppState, Exposure, HttpConfig, ServeLimits};
use crate::{runtime, telemetry};

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LOGIN_SCORER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Model root: holds version directories 1, 2, ...
    #[arg(
        long,
        env = "LOGIN_SCORER_MODEL_ROOT",
        default_value = "artifacts/rba-autoencoder"
    )]
    pub model_root: PathBuf,

    /// Bearer token for POST /admin/reload; without it the route is disabled.
    #[arg(long, env = "LOGIN_SCORER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<AdminToken>,

    /// Serve /admin/* only on this address (e.g. a private interface), not on --listen.
    #[arg(long, env = "LOGIN_SCORER_ADMIN_LISTEN", requires = "admin_token")]
    pub admin_listen: Option<SocketAddr>,

    /// Most events in one batch request.
    #[arg(long, env = "LOGIN_SCORER_MAX_BATCH_EVENTS", default_value_t = DEFAULT_MAX_BATCH_EVENTS)]
    pub max_batch_events: usize,

    /// Body limit of POST /v1/score, in bytes.
    #[arg(long, env = "LOGIN_SCORER_MAX_EVENT_BYTES", default_value_t = DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,

    /// Body limit of POST /v1/score/batch, in bytes.
    #[arg(long, env = "LOGIN_SCORER_MAX_BATCH_BYTES", default_value_t = DEFAULT_MAX_BATCH_BYTES)]
    pub max_batch_bytes: usize,

    /// Most scoring requests in flight; more get 503 with Retry-After.
    #[arg(long, env = "LOGIN_SCORER_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,

    /// Most connections served at once; each request on one more gets a fast 503 with
    /// Retry-After until a slot frees.
    #[arg(long, env = "LOGIN_SCORER_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Longest any request may take, body upload included, in seconds; then 408.
    /// Also how long a client may take to send headers or stay idle between requests.
    #[arg(
        long,
        env = "LOGIN_SCORER_REQUEST_TIMEOUT_SECONDS",
        default_value = "10",
        value_parser = super::parse_positive_seconds
    )]
    pub request_timeout_seconds: Duration,

    /// Seconds requests in flight may take to finish after SIGTERM or ctrl-c.
    #[arg(
        long,
        env = "LOGIN_SCORER_DRAIN_SECONDS",
        default_value = "10",
        value_parser = super::parse_seconds
    )]
    pub drain_seconds: Duration,

    /// Watch the model root and reload on changes.
    #[arg(long, env = "LOGIN_SCORER_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,

    /// Quiet time after the last file change before a reload, in milliseconds.
    #[arg(long, env = "LOGIN_SCORER_RELOAD_DEBOUNCE_MS", default_value_t = 500)]
    pub reload_debounce_ms: u64,

    /// Model options.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Loads the bundle, binds, serves until SIGTERM or ctrl-c.
pub fn run(args: ServeArgs, dylib: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(args, dylib));
    // NOTE: the file watcher and reloads use blocking threads; do not let one that is
    // mid-load hold the exit after the drain has finished.
    runtime.shutdown_timeout(Duration::from_secs(1));
    served
}

async fn serve(args: ServeArgs, dylib: &Path) -> anyhow::Result<()> {
    let environment = runtime::init(dylib)?;
    let options = LoadOptions {
        environment,
        sessions: args.model.session_count(),
        deny_percentile: args.model.deny_percentile,
    };
    let metrics = telemetry::prometheus();
    let store = Arc::new(ModelStore::new(&args.model_root, options));
    let initial = Arc::clone(&store);
    tokio::task::spawn_blocking(move || initial.reload(ReloadTrigger::Startup))
        .await
        .context("loading the first bundle panicked")?
        .with_context(|| format!("cannot serve from {}", args.model_root.display()))?;

    if args.watch {
        let debounce = Duration::from_millis(args.reload_debounce_ms);
        watch::spawn(Arc::clone(&store), debounce).context("cannot watch the model root")?;
    }
    spawn_sighup_reloader(Arc::clone(&store))?;
    spawn_metrics_upkeep(metrics.clone());

    let config = HttpConfig {
        max_batch_events: args.max_batch_events,
        max_event_bytes: args.max_event_bytes,
        max_batch_bytes: args.max_batch_bytes,
        max_in_flight: args.max_in_flight,
        request_timeout: args.request_timeout_seconds,
    };
    let limits = ServeLimits {
        max_connections: args.max_connections,
        header_timeout: args.request_timeout_seconds,
        drain: args.drain_seconds,
    };
    let state = AppState {
        store,
        config: Arc::new(config),
        admin_token: args.admin_token.clone(),
        metrics,
    };
    let exposure = match args.admin_listen {
        Some(_) => Exposure::Public,
        None => Exposure::All,
    };
    let router = http::build_router_exposing(state.clone(), exposure);
    let listener = bind(args.listen).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        admin_reload = args.admin_token.is_some() && args.admin_listen.is_none(),
        "listening"
    );

    // One shutdown signal stops both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    };
    let admin_server = match args.admin_listen {
        Some(address) => {
            let admin_listener = bind(address).await?;
            tracing::info!(address = %admin_listener.local_addr()?, "admin listening");
            let admin_router = http::build_router_exposing(state, Exposure::Admin);
            Some(tokio::spawn(http::serve_with(
                admin_listener,
                admin_router,
                stopped(),
                limits,
            )))
        }
        None => None,
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let mut drained = http::serve_with(listener, router, stopped(), limits).await?;
    if let Some(admin_server) = admin_server {
        drained &= admin_server
            .await
            .context("the admin listener panicked")??;
    }
    tracing::info!(drained, "stopped");
    Ok(())
}

async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|err| bind_error(address, err))
}

/// Why the listen address could not be bound, with the way out when the port is taken.
fn bind_error(listen: SocketAddr, err: std::io::Error) -> anyhow::Error {
    if err.kind() != std::io::ErrorKind::AddrInUse {
        return anyhow::Error::new(err).context(format!("cannot listen on {listen}"));
    }
    anyhow::anyhow!(
        "cannot listen on {listen}: {err}; port {port} is taken (another login-scorer?): \
         pick another with --listen {ip}:<port> or LOGIN_SCORER_LISTEN \
         (`make serve LISTEN={ip}:<port>`)",
        port = listen.port(),
        ip = listen.ip(),
    )
}

/// Resolves on SIGTERM or ctrl-c.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "ctrl-c", "shutdown requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}

#[cfg(unix)]
fn spawn_sighup_reloader(store: Arc<ModelStore>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            let store = Arc::clone(&store);
            let outcome =
                tokio::task::spawn_blocking(move || store.reload(ReloadTrigger::Signal)).await;
            if let Ok(Err(err)) = outcome {
                tracing::warn!(reason = %err, "reload on SIGHUP failed");
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn spawn_sighup_reloader(_store: Arc<ModelStore>) -> anyhow::Result<()> {
    Ok(())
}

/// Drains histogram buckets now and then so memory stays flat between scrapes.
fn spawn_metrics_upkeep(handle: metrics_exporter_prometheus::PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}
