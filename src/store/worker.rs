//! The loop every queue's worker runs (a callback app's delivery, an app's outbox sender): a
//! step at the head of its queue, then what the step said: the next item at once, a wait for
//! a new item (or, in fleet mode, a look every `poll`: the queue may be another sidecar's),
//! or a backoff; until shutdown. The queue's depth gauge is kept current whenever the worker
//! stops to wait, and at most once a second while it drains a backlog (it costs a read).

use std::time::Duration;

use pingora::server::ShutdownWatch;
use tokio::sync::Notify;

/// How often the depth is shown while a backlog drains.
const DEPTH_EVERY: Duration = Duration::from_secs(1);

/// What a step leaves the worker to do.
pub enum Next {
    /// Look at the head again at once.
    Again,
    /// Wait for an item (or the poll).
    Idle,
    /// Wait this long (a backoff).
    Wait(Duration),
}

/// A queue's worker.
#[async_trait::async_trait]
pub trait QueueWorker: Send + Sync {
    /// One look at the head.
    async fn step(&self) -> Next;
    /// Sets the queue's gauges from the store.
    async fn show_depth(&self);
    /// Notified when an item is committed (or revived).
    fn wake(&self) -> &Notify;
    /// In fleet mode, how often to look at a queue another sidecar may hold.
    fn poll(&self) -> Option<Duration>;
}

/// Runs `w` until `shutdown`.
pub async fn run(w: &dyn QueueWorker, mut shutdown: ShutdownWatch) {
    let mut shown = tokio::time::Instant::now();
    while !*shutdown.borrow() {
        let next = w.step().await;
        if !matches!(next, Next::Again) || shown.elapsed() >= DEPTH_EVERY {
            w.show_depth().await;
            shown = tokio::time::Instant::now();
        }
        let wait = async {
            match next {
                Next::Again => {}
                Next::Idle => match w.poll() {
                    Some(p) => {
                        let _ = tokio::time::timeout(p, w.wake().notified()).await;
                    }
                    None => w.wake().notified().await,
                },
                Next::Wait(d) => tokio::time::sleep(d).await,
            }
        };
        tokio::select! {
            () = wait => {}
            changed = shutdown.changed() => {
                // The process is ending either way when the watch is gone.
                if changed.is_err() {
                    break;
                }
            }
        }
    }
}
