//! Live sync status: one watcher re-reads the status every second (and at once after
//! a write) and publishes it on a watch channel; each browser's banner follows it
//! over server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio_util::sync::CancellationToken;

use super::auth::Clerk;
use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::net::board::Board;
use crate::store::StoreHandle;
use crate::store::SyncStatus;

/// How often the status is re-read. The banner's "last contact" and online/offline
/// must follow the link within a couple of seconds; one query set per second is
/// nothing for SQLite.
pub const SYNC_POLL_MS: u64 = 1_000;
/// Browsers following the status at once: a hall's counters and the hub's screens,
/// with room to spare; each holds one connection open.
pub const SSE_CLIENTS_MAX: usize = 64;
/// A comment line this often keeps proxies and the browser from closing an idle stream.
const SSE_KEEPALIVE_MS: u64 = 15_000;

/// The status with its read time zeroed, to tell whether anything really changed.
fn comparable(s: &SyncStatus) -> SyncStatus {
    SyncStatus {
        now_ms: 0,
        ..s.clone()
    }
}

/// Re-reads the sync status until `cancel`, publishing each change.
pub async fn watch_sync(
    store: StoreHandle,
    live: Option<Arc<Board>>,
    tx: watch::Sender<SyncStatus>,
    refresh: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(SYNC_POLL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            () = refresh.notified() => {}
            _ = tick.tick() => {}
        }
        match super::read_sync(&store, live.as_deref()).await {
            Ok(status) => {
                tx.send_if_modified(|old| {
                    if comparable(old) == comparable(&status) {
                        return false;
                    }
                    *old = status;
                    true
                });
            }
            Err(e) => tracing::warn!(error = %e, "reading sync status"),
        }
    }
}

struct Follower {
    rx: watch::Receiver<SyncStatus>,
    cancel: CancellationToken,
    first: bool,
    _permit: OwnedSemaphorePermit,
}

fn event_of(status: &SyncStatus) -> Event {
    match Event::default().event("sync").json_data(status) {
        Ok(e) => e,
        Err(_) => Event::default().comment("status unavailable"),
    }
}

fn follow(f: Follower) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(f, |mut f| async move {
        if f.first {
            f.first = false;
            let ev = event_of(&f.rx.borrow_and_update());
            return Some((Ok(ev), f));
        }
        let changed = tokio::select! {
            biased;
            () = f.cancel.cancelled() => false,
            changed = f.rx.changed() => changed.is_ok(),
        };
        if !changed {
            return None;
        }
        let ev = event_of(&f.rx.borrow_and_update());
        Some((Ok(ev), f))
    })
}

/// Server-sent events: a `sync` event with the full status now and on every change.
#[utoipa::path(get, path = "/api/sync/stream", tag = "node", security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of `sync` events", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody),
        (status = 503, description = "Too many followers", body = ErrorBody)))]
pub async fn sync_stream(
    State(state): State<AppState>,
    _clerk: Clerk,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = state
        .sse_clients
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::overloaded())?;
    let follower = Follower {
        rx: state.sync.clone(),
        cancel: state.cancel.clone(),
        first: true,
        _permit: permit,
    };
    Ok(Sse::new(follow(follower))
        .keep_alive(KeepAlive::new().interval(Duration::from_millis(SSE_KEEPALIVE_MS))))
}
