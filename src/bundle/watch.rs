//! Watching the model root: a new version directory or a changed manifest triggers a
//! reload once the directory has been quiet for a moment.

use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::store::{ModelStore, ReloadTrigger};

/// Most file events drained per debounce window, so a flood cannot hold the loop.
const MAX_EVENTS_PER_WINDOW: usize = 10_000;

// TODO: a model root that is deleted and re-created (rather than written into) loses
// its inotify watch; SIGHUP and POST /admin/reload still reload, and the next start
// watches the new directory.

/// Starts watching the store's model root; reloads run on the blocking pool. The
/// returned task owns the watcher and stops when the runtime shuts down.
pub fn spawn(
    store: Arc<ModelStore>,
    debounce: Duration,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if matters(&event.kind) => {
                let _ = events_tx.send(());
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "file watcher error"),
        })?;
    watcher.watch(store.root(), RecursiveMode::Recursive)?;
    tracing::info!(root = %store.root().display(), "watching the model root");

    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        while events_rx.recv().await.is_some() {
            wait_until_quiet(&mut events_rx, debounce).await;
            let store = Arc::clone(&store);
            let reloaded =
                tokio::task::spawn_blocking(move || store.reload(ReloadTrigger::Watch)).await;
            if let Ok(Err(err)) = reloaded {
                tracing::warn!(reason = %err, "reload after a file change failed");
            }
        }
    }))
}

fn matters(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
    )
}

/// Returns once no event arrived for `debounce` (or after a bounded number of events).
async fn wait_until_quiet(events: &mut mpsc::UnboundedReceiver<()>, debounce: Duration) {
    for _ in 0..MAX_EVENTS_PER_WINDOW {
        match tokio::time::timeout(debounce, events.recv()).await {
            Ok(Some(())) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}
