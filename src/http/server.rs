//! Serving a router on a listener until shutdown, with a bounded drain.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves until `shutdown` resolves, then stops accepting and lets requests in flight
/// finish for at most `drain`. Returns `true` if they all finished in time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<bool> {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .into_future();
    tokio::pin!(server);

    tokio::select! {
        finished = &mut server => return finished.map(|()| true),
        () = shutdown => {}
    }
    tracing::info!(
        drain_seconds = drain.as_secs_f64(),
        "shutting down; draining requests"
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(drain, server).await {
        Ok(finished) => finished.map(|()| true),
        Err(_) => {
            tracing::warn!("drain timed out; dropping the remaining connections");
            Ok(false)
        }
    }
}
