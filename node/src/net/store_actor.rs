//! The store on its own thread. rusqlite blocks, so async tasks never touch it:
//! they send a closure through a bounded queue and await the answer.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::store::Store;

/// Jobs queued for the store thread. A job takes milliseconds; 256 queued means the
/// disk is far behind, and senders should wait rather than pile up more.
const STORE_QUEUE_MAX: usize = 256;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

#[derive(Debug, thiserror::Error)]
#[error("the store thread has stopped")]
pub struct StoreGone;

#[derive(Clone, Debug)]
pub struct StoreHandle {
    tx: mpsc::Sender<Job>,
}

impl StoreHandle {
    /// Starts the thread that owns `store`; it ends when the last handle is dropped.
    pub fn spawn(store: Store, name: &str) -> (StoreHandle, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Job>(STORE_QUEUE_MAX);
        let thread = std::thread::Builder::new()
            .name(format!("store-{name}"))
            .spawn(move || {
                let mut store = store;
                while let Some(job) = rx.blocking_recv() {
                    job(&mut store);
                }
            })
            // Invariant: spawning a thread fails only when the OS is out of threads,
            // and a node cannot run without its store.
            .expect("spawning the store thread");
        (StoreHandle { tx }, thread)
    }

    pub async fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Store) -> R + Send + 'static) -> Result<R, StoreGone> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.tx.send(job).await.map_err(|_| StoreGone)?;
        rx.await.map_err(|_| StoreGone)
    }
}
