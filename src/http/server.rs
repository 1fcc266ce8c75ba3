//! Serving a router on a listener until shutdown: a cap on open connections, a timeout
//! on reading request headers, and a bounded drain.
//!
//! NOTE: this is hyper's connection builder rather than `axum::serve`, which sets no
//! timer (so a client sending half a header, or an idle keep-alive client, would hold
//! its connection for ever) and accepts connections without limit.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use super::shed::{Shed, Shedder};

/// Default most connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Pause after an accept error (e.g. out of file descriptors) so it cannot spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Accept errors come in runs; one warning per this interval says how many there were.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);
/// Largest request head hyper buffers (its default is about 400 KB). An admitted
/// connection that sends half a head holds this much until the header timeout, and
/// `--max-connections` of them hold it each; a longer head gets 431.
const MAX_HEAD_BUFFER_BYTES: usize = 64 * 1024;

/// Limits of the listener itself.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Most connections served at once; requests on any further one get a fast 503
    /// until a slot frees up.
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
///
/// A connection accepted with a slot free is served by hyper and keeps its slot until it
/// closes. One accepted over the cap goes to [`Shedder`], which answers its requests
/// with a cheap 503 until a slot frees up between two of them.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<bool> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shedder = Shedder::new(Arc::clone(&slots), limits.header_timeout);
    let (stop_shedding, shedding_stopped) = watch::channel(false);
    let graceful = GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BUFFER_BYTES)
        // A client may shut its write side once its request is sent and still read
        // the answer.
        .half_close(true);
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                accept_errors.record(&err);
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let connection = Connection {
            http1: http1.clone(),
            router: router.clone(),
            watcher: graceful.watcher(),
        };
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(connection.serve(stream, slot));
            }
            Err(_) => {
                let shedder = shedder.clone();
                let stop = shedding_stopped.clone();
                tokio::spawn(async move {
                    if let Shed::Admitted(stream, slot) = shedder.run(stream, stop).await {
                        connection.serve(stream, slot).await;
                    }
                });
            }
        }
    }

    drop(listener);
    // Shed connections hold a graceful watcher too; they end now rather than at their
    // idle timeout, so the drain waits only for requests being scored.
    let _ = stop_shedding.send(true);
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

/// What serving one admitted connection needs.
struct Connection {
    http1: hyper::server::conn::http1::Builder,
    router: Router,
    watcher: Watcher,
}

impl Connection {
    /// Serves `stream` with hyper until it closes; `_slot` is given back then.
    ///
    /// An answer given before the request's body was read to its end (a 404, a 503
    /// from the in-flight limit) says `connection: close`: hyper closes such a
    /// connection once the unread body is more than it can drain cheaply, and a client
    /// not told so loses its next request on it.
    async fn serve(self, stream: TcpStream, _slot: OwnedSemaphorePermit) {
        let router = self.router;
        let service = tower::service_fn(move |request: Request<Incoming>| {
            let (parts, body) = request.into_parts();
            let (body, read_to_end) = WatchedBody::new(body);
            let answer = router
                .clone()
                .oneshot(Request::from_parts(parts, Body::new(body)));
            async move {
                let mut response = answer.await?;
                if !read_to_end.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = self.watcher.watch(
            self.http1
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
        );
        // NOTE: errors here are the client's (a reset, a header timeout); hyper has
        // already answered what could be answered.
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "connection ended with an error");
        }
    }
}

/// A request body that records whether it was read to its end.
struct WatchedBody {
    inner: Incoming,
    read_to_end: Arc<AtomicBool>,
}

impl WatchedBody {
    fn new(inner: Incoming) -> (WatchedBody, Arc<AtomicBool>) {
        let read_to_end = Arc::new(AtomicBool::new(inner.is_end_stream()));
        let body = WatchedBody {
            inner,
            read_to_end: Arc::clone(&read_to_end),
        };
        (body, read_to_end)
    }
}

impl hyper::body::Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read_to_end.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Accept errors, logged once per [`ACCEPT_ERROR_LOG_EVERY`] with how many there were:
/// out of file descriptors, they repeat every [`ACCEPT_ERROR_BACKOFF`].
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<std::time::Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    fn record(&mut self, err: &std::io::Error) {
        self.unlogged += 1;
        let due = self
            .last_logged
            .is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_EVERY);
        if due {
            tracing::warn!(
                error = %err,
                errors = self.unlogged,
                "cannot accept connections (further errors are counted, reported every 10 s)"
            );
            self.last_logged = Some(std::time::Instant::now());
            self.unlogged = 0;
        }
    }
}
