//! The store on its own thread: async callers send it work over a bounded queue,
//! and it runs whatever has queued up as one group commit — one fsync for many
//! clerks' writes — replying to each caller only after the commit.

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};

/// Operations queued for the store thread before senders wait. Enough for every
/// clerk of a center and a burst of sync batches; a full queue means the disk is
/// the bottleneck, and waiting is the right back-pressure.
const QUEUE_MAX: usize = 1_024;
/// Most operations in one group commit. Bounds how long the first caller of a group
/// waits for the last one's work, and the size of the transaction.
pub const GROUP_MAX: usize = 64;

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut Store) -> Reply + Send>;

/// A cloneable handle to a store running on its own thread.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

/// Gives every caller of a failed group an error of its own (store errors are not `Clone`).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::DiskFull => StoreError::DiskFull,
        StoreError::ReadOnly => StoreError::ReadOnly,
        StoreError::Busy => StoreError::Busy,
        other => StoreError::CommitFailed(other.to_string()),
    }
}

impl StoreHandle {
    /// Moves the store onto a thread of its own; the thread ends when every handle is dropped.
    pub fn spawn(mut store: Store) -> StoreHandle {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_MAX);
        let spawned = std::thread::Builder::new()
            .name("yichuang-store".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < GROUP_MAX {
                        match rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    let mut replies = Vec::with_capacity(jobs.len());
                    let outcome = store.group(|s| {
                        for job in jobs {
                            replies.push(job(s));
                        }
                    });
                    match outcome {
                        Ok(()) => replies.into_iter().for_each(|r| r(Ok(()))),
                        Err(e) => {
                            tracing::error!(error = %e, "group commit failed");
                            replies.into_iter().for_each(|r| r(Err(copy_error(&e))));
                        }
                    }
                }
            });
        // Invariant: spawning a thread fails only when the OS is out of resources, in which
        // case no part of the node can run.
        spawned.expect("spawning the store thread");
        StoreHandle { jobs: tx }
    }

    fn job<R: Send + 'static>(
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> (Job, oneshot::Receiver<Result<R, StoreError>>) {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |store: &mut Store| {
            let result = f(store);
            Box::new(move |committed: Result<(), StoreError>| {
                // A caller that went away no longer needs its answer.
                let _ = reply_tx.send(committed.map(|()| result));
            })
        });
        (job, reply_rx)
    }

    /// Runs `f` on the store thread; the answer arrives once `f`'s writes are durable.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (job, reply) = Self::job(f);
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        reply.await.map_err(|_| StoreError::Closed)?
    }

    /// [`StoreHandle::call`] for threads outside the async runtime.
    pub fn call_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (job, reply) = Self::job(f);
        self.jobs
            .blocking_send(job)
            .map_err(|_| StoreError::Closed)?;
        reply.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}
