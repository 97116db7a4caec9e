//! The store's own thread: async handlers send it closures over a bounded queue and
//! await the answer, so the blocking SQLite store never runs on a tokio worker.

use std::panic::AssertUnwindSafe;

use tokio::sync::{mpsc, oneshot};

use super::ApiError;
use crate::store::Store;

/// Store calls waiting at once. Each is a few milliseconds, so 64 waiting is a
/// fraction of a second of work; beyond that a caller waits to enqueue, which is the
/// back-pressure we want.
pub const STORE_QUEUE_MAX: usize = 64;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A cheap, cloneable way to run work on the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

impl StoreHandle {
    /// Starts the thread. It ends when every handle is dropped.
    pub fn spawn(mut store: Store) -> StoreHandle {
        let (tx, mut rx) = mpsc::channel::<Job>(STORE_QUEUE_MAX);
        let spawned = std::thread::Builder::new()
            .name("yichuang-store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    // A bug in one call must not take the whole node's web side down;
                    // the caller sees its answer channel close and reports 500.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut store))).is_err() {
                        tracing::error!("a store call panicked; the request failed");
                    }
                }
            });
        if let Err(e) = spawned {
            // Without the thread every call fails with "store unavailable": visible, not fatal.
            tracing::error!(error = %e, "cannot start the store thread");
        }
        StoreHandle { tx }
    }

    /// Runs `f` on the store thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = reply.send(f(store));
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| ApiError::unavailable())?;
        answer.await.map_err(|_| ApiError::internal())
    }
}
