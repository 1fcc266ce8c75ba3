//! Serving a router on a listener until shutdown: a cap on open connections, a timeout
//! on reading request headers, and a bounded drain.
//!
//! NOTE: this is hyper's connection builder rather than `axum::serve`, which sets no
//! timer (so a client sending half a header, or an idle keep-alive client, would hold
//! its connection for ever) and accepts connections without limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
    /// Most open connections; a connection beyond them gets one 503 and is closed.
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
        // A connection over the cap is still answered, once, with a 503 that asks the
        // client to come back later, rather than left in the accept queue to time out.
        let slot = Arc::clone(&connections).try_acquire_owned().ok();
        let service = match slot {
            Some(_) => router.clone(),
            None => Router::new().fallback(over_capacity),
        };
        let service = TowerToHyperService::new(
            service.map_request(|request: Request<Incoming>| request.map(Body::new)),
        );
        let connection = graceful.watch(http1.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // NOTE: errors here are the client's (a reset, a header timeout); hyper has
            // already answered what could be answered.
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
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

/// The one answer on a connection over the cap: 503 `overloaded`, Retry-After, close.
async fn over_capacity() -> Response {
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => "over_capacity", "status" => "503")
        .increment(1);
    let mut response = ApiError::Overloaded.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
