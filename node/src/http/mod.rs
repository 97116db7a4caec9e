//! The node's HTTP side: the JSON API under `/api`, the clerks' pages, the hub
//! dashboard, live sync status over server-sent events, and `/metrics`.
//!
//! Architecture invariant: handlers never touch SQLite on an async worker. Every
//! store call goes through the store's [`StoreHandle`] (one thread, a bounded queue,
//! group commit), so a slow disk stalls requests (which wait) but never the runtime.

mod api;
mod auth;
mod error;
mod metrics;
mod openapi;
mod pages;
mod report;
mod roles;
mod sse;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use crate::net::board::Board;
use crate::store::{LivePeer, NodeSettings, Store, StoreError, StoreHandle, SyncStatus};

/// The default HTTP address of `serve`: loopback only, so a node is reachable from
/// the hall's LAN only when an operator says so with `--http`.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8088";
/// Largest request body. A case registration is under 2 KiB; 64 KiB leaves room for
/// notes and many materials while refusing anything that is not a form.
pub const BODY_MAX_BYTES: usize = 64 * 1024;
/// Requests handled at once; the rest get 503 at once rather than queueing without
/// bound. A hall has a few dozen counters, each with a page or two open.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 256;
/// Password checks at once: argon2 takes ~50 ms of one core, and the machine has two.
pub const LOGINS_IN_FLIGHT_MAX: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

/// What every handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub store: StoreHandle,
    pub node: Arc<NodeSettings>,
    /// The latest sync status, refreshed by [`sse::watch_sync`].
    pub sync: watch::Receiver<SyncStatus>,
    pub logins: Arc<Semaphore>,
    /// Wrong-password tallies per name; a name with too many is refused for a while.
    pub login_guard: Arc<throttle::LoginGuard>,
    pub in_flight: Arc<Semaphore>,
    pub sse_clients: Arc<Semaphore>,
    /// Wakes the sync watcher after a write, so the banner counts it at once.
    pub sync_refresh: Arc<Notify>,
    /// The transport's live view of its peers, when `serve` runs sync beside us.
    pub live: Option<Arc<Board>>,
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("node", &self.node.node_id)
            .finish()
    }
}

impl AppState {
    /// Moves the store onto its own thread and starts the sync-status watcher.
    /// Must run inside a tokio runtime. Everything stops when `cancel` fires.
    pub async fn start(store: Store, cancel: CancellationToken) -> Result<AppState, ApiError> {
        let node = store.settings().clone();
        AppState::with_handle(StoreHandle::spawn(store), node, None, cancel).await
    }

    /// Serves a store already on its thread (shared with sync, as `serve` runs it).
    pub async fn with_handle(
        store: StoreHandle,
        node: NodeSettings,
        live: Option<Arc<Board>>,
        cancel: CancellationToken,
    ) -> Result<AppState, ApiError> {
        let first = read_sync(&store, live.as_deref()).await?;
        let (tx, rx) = watch::channel(first);
        let sync_refresh = Arc::new(Notify::new());
        tokio::spawn(sse::watch_sync(
            store.clone(),
            live.clone(),
            tx,
            sync_refresh.clone(),
            cancel.clone(),
        ));
        Ok(AppState {
            store,
            node: Arc::new(node),
            sync: rx,
            logins: Arc::new(Semaphore::new(LOGINS_IN_FLIGHT_MAX)),
            login_guard: Arc::new(throttle::LoginGuard::node_default()),
            in_flight: Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT_MAX)),
            sse_clients: Arc::new(Semaphore::new(sse::SSE_CLIENTS_MAX)),
            sync_refresh,
            live,
            cancel,
        })
    }

    /// The sync status from the store, with the transport's live view laid over it.
    pub async fn sync_status(&self) -> Result<SyncStatus, ApiError> {
        Ok(read_sync(&self.store, self.live.as_deref()).await?)
    }

    /// Asks the sync watcher to re-read the status now (after a write).
    pub fn refresh_sync(&self) {
        self.sync_refresh.notify_one();
    }
}

/// The transport's peers as the status overlay takes them.
pub fn live_peers(board: &Board) -> Vec<LivePeer> {
    board
        .snapshot()
        .into_iter()
        .map(|p| LivePeer {
            peer: p.node_id.to_string(),
            name: p.name,
            role: p.role.as_str().to_owned(),
            center: p.center,
            connected: p.connected,
            last_contact_ms: p.last_contact_ms,
        })
        .collect()
}

/// Reads the sync status and overlays the live board, if any.
pub async fn read_sync(
    store: &StoreHandle,
    live: Option<&Board>,
) -> Result<SyncStatus, StoreError> {
    let status = store.call(|s| s.sync_status()).await??;
    Ok(match live {
        Some(board) => status.with_live(&live_peers(board)),
        None => status,
    })
}

async fn limit_in_flight(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::overloaded().into_response();
    };
    next.run(req).await
}

/// The whole HTTP surface of a node.
pub fn router(state: AppState) -> Router {
    let (api, _) = openapi::api_router().split_for_parts();
    Router::new()
        .merge(api)
        .merge(pages::router())
        .route("/metrics", axum::routing::get(metrics::metrics))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit_in_flight,
        ))
        .with_state(state)
}

/// Serves [`router`] on `addr` until `cancel` fires; returns once open requests
/// finished (live event streams end on `cancel` too).
pub async fn serve_http(
    addr: SocketAddr,
    state: AppState,
    cancel: CancellationToken,
) -> Result<(), HttpError> {
    let listener = bind(addr).await?;
    serve_on(listener, state, cancel).await
}

pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, HttpError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves on a listener already bound (so a caller can learn a port 0 address first).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> Result<(), HttpError> {
    let local = listener.local_addr().map_err(HttpError::Serve)?;
    tracing::info!(%local, "http listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
        .map_err(HttpError::Serve)
}
