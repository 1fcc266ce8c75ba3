//! Serving a router on a listener until shutdown: a cap on open connections, a timeout
//! on reading request headers, and a bounded drain.
//!
//! NOTE: this is hyper's connection builder rather than `axum::serve`, which sets no
//! timer (so a client sending half a header, or an idle keep-alive client, would hold
//! its connection for ever) and accepts connections without limit.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use super::error::ApiError;
use crate::telemetry;

/// Default most connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Pause after an accept error (e.g. out of file descriptors) so it cannot spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Limits of the listener itself.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Most connections served at once; requests on any further one get a fast 503.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers, and so also how long a
    /// keep-alive connection may sit idle; then the connection is closed.
    pub header_timeout: Duration,
    /// Longest requests in flight may take to finish after shutdown begins.
    pub drain: Duration,
}

impl ServeLimits {
    /// The defaults with the given drain.
    pub fn with_drain(drain: Duration) -> ServeLimits {
        ServeLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: super::router::DEFAULT_REQUEST_TIMEOUT,
            drain,
        }
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets requests in flight
/// finish for at most `drain`. Returns `true` if they all finished in time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<bool> {
    serve_with(listener, router, shutdown, ServeLimits::with_drain(drain)).await
}

/// As [`serve`], with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<bool> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let admission = Arc::new(Admission {
            slots: Arc::clone(&connections),
            slot: Mutex::new(None),
        });
        let router = router.clone();
        let service = tower::service_fn(move |request: Request<Incoming>| {
            let request = request.map(Body::new);
            let admitted = admission.admitted();
            let router = router.clone();
            async move {
                if admitted {
                    router.oneshot(request).await
                } else {
                    Ok(over_capacity())
                }
            }
        });
        let connection = graceful
            .watch(http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            // NOTE: errors here are the client's (a reset, a header timeout); hyper has
            // already answered what could be answered.
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!(
        drain_seconds = limits.drain.as_secs_f64(),
        "shutting down; draining requests"
    );
    match tokio::time::timeout(limits.drain, graceful.shutdown()).await {
        Ok(()) => Ok(true),
        Err(_) => {
            tracing::warn!("drain timed out; dropping the remaining connections");
            Ok(false)
        }
    }
}

/// A connection's claim on one of the `--max-connections` slots, held until it closes.
/// A connection that found them all taken asks again on each request, so it is served
/// as soon as another connection closes; until then each of its requests gets a 503.
///
/// NOTE: the 503 keeps the connection open. Closing it made every shed request cost a
/// new TCP connection, and that reconnect churn halved throughput under load.
struct Admission {
    slots: Arc<Semaphore>,
    slot: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Admission {
    fn admitted(&self) -> bool {
        let mut slot = self
            .slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Arc::clone(&self.slots).try_acquire_owned().ok();
        }
        slot.is_some()
    }
}

/// The answer on a connection over the cap: 503 `overloaded` with Retry-After.
fn over_capacity() -> Response {
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => "over_capacity", "status" => "503")
        .increment(1);
    ApiError::Overloaded.into_response()
}
