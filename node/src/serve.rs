//! A running node: its endpoint, the accept loop (hub, and a center for its laptops),
//! the dial loop (center to hub; laptop to its center, else the hub), the watcher
//! that turns new local changes into pushes and registry changes into revocations,
//! and the status file. `yichuang serve`, the demo and the benchmark all run this.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use yichuang_shared::ids::{NodeId, Role};

use crate::net::backoff::Backoff;
use crate::net::board::{Board, PeerStatus};
use crate::net::enroll::{self, EnrollError, NodeNet};
use crate::net::peer::PeerConn;
use crate::net::sync::SyncPeer;
use crate::net::tls::NodeIdentity;
use crate::net::transport::{self, CloseCode, TransportError};
use crate::store::sync::{KnownNodes, info_of};
use crate::store::{NodeSettings, Store, StoreError, StoreHandle, now_ms};

/// Connections accepted at once; a district has ~13 centers and dozens of laptops.
const CONNECTIONS_MAX: usize = 512;
/// A handshake (and the first stream) that takes longer is abandoned.
const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// How often the store is asked whether another process (the CLI, a clerk) wrote.
/// Live push waits at most this long before it starts.
const FEED_POLL_MS: u64 = 15;
/// The registry (revocations) is re-read every this many feed polls: ~150 ms.
const REGISTRY_POLL_EVERY: u32 = 10;
/// How often the status file is rewritten when something changed.
const STATUS_WRITE_MS: u64 = 200;
/// How long shutdown waits for connections to close and the endpoint to go idle.
const SHUTDOWN_IDLE_MS: u64 = 3_000;

/// The file `serve` keeps current for `yichuang status`.
pub const STATUS_FILE: &str = "status.json";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Config(String),
}

/// Overrides of what `net.json` says.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    pub listen: Option<SocketAddr>,
    pub hub: Option<SocketAddr>,
    pub center: Option<SocketAddr>,
    /// Write `status.json` (off for in-process nodes of the benchmark).
    pub status_file: bool,
}

/// What `status.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveStatus {
    pub pid: u32,
    pub updated_ms: i64,
    pub listen: Option<SocketAddr>,
    pub running: bool,
    /// Why the last dial failed (a center or laptop that cannot reach anyone).
    #[serde(default)]
    pub dial_error: Option<String>,
    pub peers: Vec<PeerStatus>,
}

#[derive(Debug)]
pub struct Node {
    settings: NodeSettings,
    endpoint: Endpoint,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    board: Arc<Board>,
    store: StoreHandle,
    listen: Option<SocketAddr>,
    dir: PathBuf,
    status_file: bool,
}

struct Shared {
    settings: NodeSettings,
    board: Arc<Board>,
    store: StoreHandle,
    /// This node and its hub, known to every session before the registry is.
    known: KnownNodes,
    feed_head: watch::Receiver<u64>,
}

impl Node {
    /// Opens the node in `dir` and starts it on the current tokio runtime.
    pub async fn start(dir: &Path, opts: ServeOptions) -> Result<Node, ServeError> {
        let dir_owned = dir.to_owned();
        let (store, net) =
            tokio::task::spawn_blocking(move || -> Result<(Store, NodeNet), ServeError> {
                let store = Store::open(&dir_owned)?;
                let net = enroll::load(&dir_owned, store.settings())?;
                Ok((store, net))
            })
            .await
            .map_err(|e| ServeError::Config(format!("opening the node: {e}")))??;
        let mut store = store;
        let settings = store.settings().clone();
        let registry = store.registry()?;
        net.trust.set_revoked(registry.revoked_ids());
        let head = store.feed_head()?;
        let listen = opts.listen.or(net.config.listen);
        if settings.role == Role::Hub && listen.is_none() {
            return Err(ServeError::Config(
                "the hub needs a listen address (net.json or --listen)".into(),
            ));
        }
        let hub_addr = opts.hub.or(net.config.hub);
        if settings.role != Role::Hub && hub_addr.is_none() {
            return Err(ServeError::Config(
                "no hub address: run `yichuang join` or pass --hub".into(),
            ));
        }
        let endpoint = transport::endpoint(listen, &net.creds, &net.trust)?;
        let listen = if listen.is_some() {
            endpoint.local_addr().ok()
        } else {
            None
        };
        let store = StoreHandle::spawn(store);
        let board = Arc::new(Board::default());
        let cancel = CancellationToken::new();
        let (head_tx, head_rx) = watch::channel(head);
        let hub_id = if settings.role == Role::Hub {
            Some(settings.node_id)
        } else {
            net.config.hub_node_id
        };
        let mut known = KnownNodes::new();
        known.insert(
            settings.node_id,
            info_of(settings.role, &settings.center, &settings.staff),
        );
        if let Some(hub) = hub_id {
            known.insert(hub, yichuang_sync::NodeInfo::hub());
        }
        let shared = Arc::new(Shared {
            settings: settings.clone(),
            board: board.clone(),
            store: store.clone(),
            known,
            feed_head: head_rx,
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(watch_store(
            dir.to_owned(),
            head_tx,
            net.trust.clone(),
            board.clone(),
            cancel.clone(),
        ));
        if listen.is_some() {
            tasks.spawn(accept_loop(
                endpoint.clone(),
                shared.clone(),
                cancel.clone(),
            ));
        }
        if settings.role != Role::Hub {
            let mut targets = Vec::new();
            if settings.role == Role::Laptop
                && let Some(c) = opts.center.or(net.config.center)
            {
                targets.push(c);
            }
            targets.extend(hub_addr);
            tasks.spawn(dial_loop(
                endpoint.clone(),
                shared.clone(),
                targets,
                cancel.clone(),
            ));
        }
        if opts.status_file {
            tasks.spawn(status_loop(
                dir.to_owned(),
                listen,
                board.clone(),
                cancel.clone(),
            ));
        }
        tracing::info!(node = %settings.node_id, role = %settings.role, ?listen, "node started");
        Ok(Node {
            settings,
            endpoint,
            cancel,
            tasks,
            board,
            store,
            listen,
            dir: dir.to_owned(),
            status_file: opts.status_file,
        })
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    /// Stops everything: sessions finish their streams and close, the endpoint goes
    /// idle (bounded), the store thread ends after its last job.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.board
            .close_all(CloseCode::Shutdown, "the node is shutting down");
        self.endpoint
            .close(CloseCode::Shutdown.var_int(), b"the node is shutting down");
        let _ = tokio::time::timeout(
            Duration::from_millis(SHUTDOWN_IDLE_MS),
            self.endpoint.wait_idle(),
        )
        .await;
        if self.status_file {
            let _ = write_status(&self.dir, self.listen, &self.board, false);
        }
        // The store thread ends when the last handle goes; every answered write was
        // committed before its answer, so nothing acknowledged is left in memory.
        drop(self.store);
    }
}

/// What one poll of the store found: the feed's head, and the revoked set when the
/// registry changed since the last look.
type Polled = (u64, Option<(i64, std::collections::HashSet<NodeId>)>);

fn poll_store(s: &mut Store, check_registry: bool, known: i64) -> Result<Polled, StoreError> {
    let head = s.feed_head()?;
    if !check_registry {
        return Ok((head, None));
    }
    let seq = s.registry_seq()?;
    if seq == known {
        return Ok((head, None));
    }
    Ok((head, Some((seq, s.registry()?.revoked_ids()))))
}

/// Polls the store for writes by anyone (this process or the CLI beside it) and for
/// registry changes; closes the connections of nodes revoked meanwhile. It reads on a
/// connection of its own, so polling never queues behind (or holds up) writes.
async fn watch_store(
    dir: PathBuf,
    head_tx: watch::Sender<u64>,
    trust: Arc<crate::net::tls::Trust>,
    board: Arc<Board>,
    cancel: CancellationToken,
) {
    let opened = tokio::task::spawn_blocking(move || Store::open(&dir)).await;
    let mut reader = match opened {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::error!(error = %e, "opening the store for polling"),
        Err(e) => return tracing::error!(error = %e, "opening the store for polling"),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(FEED_POLL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registry_seq = -1i64;
    let mut n = 0u32;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        n = n.wrapping_add(1);
        let check_registry = n.is_multiple_of(REGISTRY_POLL_EVERY) || registry_seq < 0;
        let known = registry_seq;
        let joined = tokio::task::spawn_blocking(move || {
            let r = poll_store(&mut reader, check_registry, known);
            (reader, r)
        })
        .await;
        let polled = match joined {
            Ok((r, polled)) => {
                reader = r;
                polled
            }
            Err(e) => return tracing::error!(error = %e, "the store poller stopped"),
        };
        match polled {
            Ok((head, registry)) => {
                head_tx.send_if_modified(|h| {
                    let moved = head > *h;
                    if moved {
                        *h = head;
                    }
                    moved
                });
                if let Some((seq, revoked)) = registry {
                    registry_seq = seq;
                    // Refuse new handshakes first, then close what is open, so a
                    // revoked node cannot slip back in between.
                    trust.set_revoked(revoked.clone());
                    let closed = board.close_revoked(&revoked);
                    if closed > 0 {
                        tracing::warn!(closed, "closed connections of revoked nodes");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "polling the store"),
        }
    }
}

async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let incoming = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            // Reap finished connection tasks so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (shared, token) = (shared.clone(), cancel.child_token());
        let remote = incoming.remote_address();
        conns.spawn(
            async move {
                let _permit = permit;
                match tokio::time::timeout(
                    Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
                    incoming_session(incoming, &shared),
                )
                .await
                {
                    Ok(Ok((conn, send, recv, peer))) => {
                        run_session(conn, send, recv, peer, &shared, token).await;
                    }
                    Ok(Err(reason)) => tracing::info!(%reason, "refused a connection"),
                    Err(_) => tracing::info!("a handshake timed out"),
                }
            }
            .instrument(tracing::info_span!("incoming", %remote)),
        );
    }
    while conns.join_next().await.is_some() {}
}

type Session = (
    Connection,
    quinn::SendStream,
    quinn::RecvStream,
    NodeIdentity,
);

/// Handshake, version, identity and role checks for an accepted connection, then its stream.
async fn incoming_session(incoming: quinn::Incoming, shared: &Shared) -> Result<Session, String> {
    let conn = incoming
        .accept()
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| transport::describe_close(&e))?;
    let peer = check_peer(&conn, &shared.settings, None)?;
    let (send, recv) = conn
        .accept_bi()
        .await
        .map_err(|e| transport::describe_close(&e))?;
    Ok((conn, send, recv, peer))
}

/// The checks after the TLS handshake: the ALPN we speak, a node certificate, and a
/// role this node talks to. Refusals close the connection with a code and reason.
fn check_peer(
    conn: &Connection,
    me: &NodeSettings,
    expect: Option<&[Role]>,
) -> Result<NodeIdentity, String> {
    let refuse = |code: CloseCode, reason: String| {
        transport::close(conn, code, &reason);
        reason
    };
    if transport::negotiated_alpn(conn).as_deref() != Some(transport::ALPN) {
        return Err(refuse(
            CloseCode::Version,
            format!(
                "this node speaks {} only (ALPN)",
                String::from_utf8_lossy(transport::ALPN)
            ),
        ));
    }
    let Some(peer) = transport::peer_identity(conn) else {
        return Err(refuse(CloseCode::NotAllowed, "no node certificate".into()));
    };
    if peer.node_id == me.node_id {
        return Err(refuse(
            CloseCode::NotAllowed,
            "a node does not sync with itself".into(),
        ));
    }
    let allowed = match expect {
        Some(roles) => {
            roles.contains(&peer.role) && (peer.role != Role::Center || peer.center == me.center)
        }
        None => match me.role {
            Role::Hub => peer.role != Role::Hub,
            Role::Center => peer.role == Role::Laptop && peer.center == me.center,
            Role::Laptop => false,
        },
    };
    if !allowed {
        return Err(refuse(
            CloseCode::NotAllowed,
            format!(
                "a {} of center {} does not sync with a {} of center {}",
                me.role, me.center, peer.role, peer.center
            ),
        ));
    }
    Ok(peer)
}

async fn run_session(
    conn: Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    peer: NodeIdentity,
    shared: &Shared,
    cancel: CancellationToken,
) -> crate::net::peer::Ended {
    if let Some(old) = shared.board.connected(&peer, &conn) {
        transport::close(
            &old,
            CloseCode::Replaced,
            "a newer connection from the same node replaced this one",
        );
    }
    let head = *shared.feed_head.borrow();
    let me = &shared.settings;
    // The peer's certificate is the district CA's word on who it is; the registry,
    // once synced, adds every other node and overrides with revocations.
    let mut known = shared.known.clone();
    known.insert(peer.node_id, info_of(peer.role, &peer.center, &peer.staff));
    let config = yichuang_sync::SessionConfig::new(
        me.node_id,
        info_of(me.role, &me.center, &me.staff),
        peer.node_id,
    );
    let feed = SyncPeer::new(shared.store.clone(), Arc::new(known), config, head);
    PeerConn {
        conn,
        send,
        recv: Some(recv),
        protocol: feed,
        peer,
        cancel,
        feed_head: shared.feed_head.clone(),
        board: shared.board.clone(),
    }
    .run()
    .await
}

/// Dials the first reachable target, runs the session, and dials again with backoff.
async fn dial_loop(
    endpoint: Endpoint,
    shared: Arc<Shared>,
    targets: Vec<SocketAddr>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(u64::from_le_bytes(crate::store::random_bytes()));
    let expect: &[Role] = match shared.settings.role {
        Role::Laptop => &[Role::Center, Role::Hub],
        _ => &[Role::Hub],
    };
    loop {
        let mut connected = false;
        for &target in &targets {
            if cancel.is_cancelled() {
                return;
            }
            let attempt = tokio::time::timeout(
                Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
                dial(&endpoint, target, &shared.settings, expect),
            );
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                r = attempt => r.unwrap_or_else(|_| Err(format!("{target}: no answer within {HANDSHAKE_TIMEOUT_MS} ms"))),
            };
            match result {
                Ok((conn, send, recv, peer)) => {
                    connected = true;
                    backoff.reset();
                    let span = tracing::info_span!("dial", %target);
                    let ended = run_session(conn, send, recv, peer, &shared, cancel.child_token())
                        .instrument(span)
                        .await;
                    if ended == crate::net::peer::Ended::Shutdown {
                        return;
                    }
                    break;
                }
                Err(reason) => {
                    tracing::info!(%target, %reason, "dial failed");
                    shared.board.dial_failed(reason);
                }
            }
        }
        if connected {
            continue;
        }
        let delay = backoff.next_delay();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn dial(
    endpoint: &Endpoint,
    target: SocketAddr,
    me: &NodeSettings,
    expect: &[Role],
) -> Result<Session, String> {
    let connecting = endpoint
        .connect(target, crate::net::tls::SERVER_NAME)
        .map_err(|e| e.to_string())?;
    let conn = connecting
        .await
        .map_err(|e| format!("{target}: {}", transport::describe_close(&e)))?;
    let peer = check_peer(&conn, me, Some(expect))?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| transport::describe_close(&e))?;
    Ok((conn, send, recv, peer))
}

fn write_status(
    dir: &Path,
    listen: Option<SocketAddr>,
    board: &Board,
    running: bool,
) -> Result<(), EnrollError> {
    let mut peers = board.snapshot();
    if !running {
        for p in &mut peers {
            p.connected = false;
        }
    }
    let live = LiveStatus {
        pid: std::process::id(),
        updated_ms: now_ms(),
        listen,
        running,
        dial_error: board.dial_error(),
        peers,
    };
    // Invariant: plain data always serialises.
    let text = serde_json::to_string_pretty(&live).expect("status serialises");
    enroll::write_file(&dir.join(STATUS_FILE), text.as_bytes(), false)
}

async fn status_loop(
    dir: PathBuf,
    listen: Option<SocketAddr>,
    board: Arc<Board>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(STATUS_WRITE_MS));
    let mut first = true;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if board.take_dirty() || first {
            first = false;
            let (dir, board) = (dir.clone(), board.clone());
            let r =
                tokio::task::spawn_blocking(move || write_status(&dir, listen, &board, true)).await;
            match r {
                Ok(Err(e)) => tracing::warn!(error = %e, "writing the status file"),
                // Watchers of the log (the tests) look at the file again on this line.
                Ok(Ok(())) => tracing::debug!("status file written"),
                Err(_) => {}
            }
        }
    }
}

/// Reads `status.json`, if a `serve` ever ran here.
pub fn read_status(dir: &Path) -> Option<LiveStatus> {
    let text = std::fs::read_to_string(dir.join(STATUS_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}
