//! One sync session between two nodes as a sans-IO state machine: the handshake,
//! the change feed both ways from each side's checkpoint with acknowledgements and
//! a window of batches, live push, range-based reconciliation when checkpoints
//! cannot be trusted, and Automerge's per-document sync for the documents that differ.
//!
//! Inputs arrive through `start`, `handle_message`, `handle_timeout` and
//! `handle_local_change`; outputs leave through `poll_transmit`, `poll_event` and
//! `poll_timeout`. The session assumes an ordered, reliable stream (a QUIC stream):
//! a gap, a duplicate out of place or a round out of order is a protocol error that
//! ends the session, and the next session resumes from the durable checkpoints.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use yichuang_shared::ids::{DocId, NodeId, Role};
use yichuang_shared::wire::{
    Ack, ChangeEntry, Changes, DocSyncEntry, ErrorCode, FRAME_MAX_BYTES, FeedPos, Hello, Message,
    RangeMode, Reconcile, RejectReason, Rejection, WireError,
};

use crate::apply::apply_changes;
use crate::reconcile::{ROUNDS_MAX, ReconcileSet};
use crate::rules::Scope;
use crate::store::{NodeInfo, PeerCheckpoint, Store};

/// Change bytes per feed batch. 512 KiB keeps a batch far below the frame limit
/// and lets a reconnect after 1,000 changed cases (about 600 KiB) go out in two batches.
pub const FEED_BATCH_MAX_BYTES: usize = 512 * 1024;
/// Unacknowledged feed batches in flight. With 8 × 512 KiB, a catch-up of up to
/// 4 MiB needs no wait for an acknowledgement, which keeps it within one round trip.
pub const FEED_WINDOW_BATCHES: usize = 8;
/// Stored changes examined for one batch. Bounds the work of one call when most of
/// the feed is outside the peer's scope (the hub's feed seen by one center).
pub const FEED_SCAN_MAX_ENTRIES: usize = 65_536;
/// Stored changes read from the store at once while building a batch.
pub const FEED_READ_CHUNK: usize = 1_024;
/// Bytes a feed or per-document entry adds around the change itself (document id,
/// length prefixes), used to keep batches under their budget.
pub const ENTRY_OVERHEAD_BYTES: usize = 40;
/// Largest single change or sync message sent: what fits one frame with room for
/// the message header. Larger ones are reported and skipped, never sent.
pub const ENTRY_MAX_BYTES: usize = FRAME_MAX_BYTES - 64 * 1024;
/// Sync-message bytes per DocSync message: a quarter of a frame, so replies to
/// many documents travel in a few frames.
pub const DOC_SYNC_BATCH_MAX_BYTES: usize = 1024 * 1024;
/// Documents whose per-document sync may await an answer at once. Each holds an
/// Automerge sync state (a few hundred bytes); 4,096 bounds the memory per peer
/// while letting a reconnect with thousands of differing documents finish in one exchange.
pub const DOC_SYNCS_IN_FLIGHT_MAX: usize = 4_096;
/// Messages one side sends for one document in one exchange. A normal exchange
/// needs two or three; a refused change keeps the heads apart forever, so the
/// exchange must stop somewhere.
pub const DOC_SYNC_MESSAGES_MAX: u32 = 8;
/// Documents with parked changes a new session asks its peer about. Parked
/// changes are rare (a document that entered the scope while a session broke);
/// the bound keeps a store with many unsatisfiable ones from flooding each session.
pub const PENDING_REPAIR_MAX: usize = 256;
/// How long the session waits for an answer it expects before ending itself.
pub const RESPONSE_TIMEOUT_MS: i64 = 30_000;
/// Batching window of live push: changes made within it travel together.
pub const LIVE_PUSH_DELAY_MS: i64 = 10;
/// How often a session runs reconciliation although its checkpoints agree.
pub const ANTI_ENTROPY_INTERVAL_MS: i64 = 6 * 60 * 60 * 1000;

/// How a session is set up; the node fills it from its registry and the peer's certificate.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub me: NodeId,
    pub my_info: NodeInfo,
    /// The peer this session is with (from its certificate).
    pub peer: NodeId,
    pub anti_entropy_interval_ms: i64,
    pub response_timeout_ms: i64,
    pub live_push_delay_ms: i64,
}

impl SessionConfig {
    pub fn new(me: NodeId, my_info: NodeInfo, peer: NodeId) -> SessionConfig {
        SessionConfig {
            me,
            my_info,
            peer,
            anti_entropy_interval_ms: ANTI_ENTROPY_INTERVAL_MS,
            response_timeout_ms: RESPONSE_TIMEOUT_MS,
            live_push_delay_ms: LIVE_PUSH_DELAY_MS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError<E: std::error::Error + 'static> {
    #[error("store: {0}")]
    Store(#[source] E),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("peer refused: {0}")]
    UnknownPeer(String),
    #[error("no answer from the peer within {0} ms")]
    Timeout(i64),
    #[error("the peer ended the session ({code:?}): {detail}")]
    Peer { code: ErrorCode, detail: String },
}

/// What happened, for the node to log, show and act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    Connected {
        peer: NodeId,
        role: Role,
        reconcile: bool,
    },
    /// Both feeds are exchanged and acknowledged, reconciliation and document syncs are done.
    CaughtUp,
    /// Changes from the peer were stored; other sessions should push them on.
    Applied {
        docs: Vec<DocId>,
        changes: usize,
    },
    /// We refused a change of the peer's.
    Rejected {
        doc: DocId,
        hash: [u8; 32],
        reason: RejectReason,
        detail: String,
    },
    /// The peer refused a change we sent.
    PeerRejectedOurs {
        doc: DocId,
        hash: [u8; 32],
        reason: RejectReason,
        detail: String,
    },
    /// The peer says a document we hold is outside the scope we share.
    Departed {
        doc: DocId,
    },
    Reconciled {
        differing: usize,
    },
    /// A document's sync stopped without agreeing (a refused change keeps it apart).
    DocSyncAbandoned {
        doc: DocId,
    },
    /// A stored change too large to send was skipped.
    ChangeTooLarge {
        doc: DocId,
        bytes: usize,
    },
    Closed {
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    New,
    AwaitHello,
    Open,
    Closed,
}

#[derive(Debug)]
enum Recon {
    Idle,
    /// The peer initiates; we wait for its first round.
    Expected,
    Running {
        set: ReconcileSet,
        expect_round: u32,
    },
    /// The rounds ended; waiting for the document syncs they started.
    Finishing,
}

#[derive(Debug)]
struct DocSyncState {
    state: sync::State,
    awaiting: bool,
    sent: u32,
    /// Dependencies of parked changes already asked for in this exchange.
    requested: BTreeSet<ChangeHash>,
}

impl DocSyncState {
    fn new() -> DocSyncState {
        DocSyncState {
            state: sync::State::new(),
            awaiting: false,
            sent: 0,
            requested: BTreeSet::new(),
        }
    }
}

/// Dependencies of the parked changes of a document that neither the document nor
/// the parked set holds. Automerge cannot see parked changes (they are not in the
/// document), so a bloom-filter false positive for one of their ancestors would
/// never be asked for; we name them in the sync message's `need` instead.
fn missing_deps<S: Store>(
    store: &S,
    doc: &DocId,
    am: &mut AutoCommit,
) -> Result<BTreeSet<ChangeHash>, SessionError<S::Error>> {
    let parked: Vec<automerge::Change> = st(store.pending(doc))?
        .into_iter()
        .filter_map(|b| automerge::Change::from_bytes(b).ok())
        .collect();
    if parked.is_empty() {
        return Ok(BTreeSet::new());
    }
    let parked_hashes: HashSet<ChangeHash> = parked.iter().map(|c| c.hash()).collect();
    let mut out = BTreeSet::new();
    for c in &parked {
        for dep in c.deps() {
            if !parked_hashes.contains(dep) && !crate::apply::holds(am, dep) {
                out.insert(*dep);
            }
        }
    }
    Ok(out)
}

/// Adds `missing` to the `need` of a sync message, making one if Automerge had nothing to say.
fn with_needs(
    msg: Option<sync::Message>,
    missing: Vec<ChangeHash>,
    am: &mut AutoCommit,
) -> Option<sync::Message> {
    if missing.is_empty() {
        return msg;
    }
    let mut msg = msg.unwrap_or_else(|| sync::Message {
        heads: am.get_heads(),
        need: Vec::new(),
        have: Vec::new(),
        changes: sync::ChunkList::empty(),
        flags: None,
        version: sync::MessageVersion::V1,
    });
    for h in missing {
        if !msg.need.contains(&h) {
            msg.need.push(h);
        }
    }
    // Automerge encodes hash lists sorted (and asserts it).
    msg.need.sort();
    Some(msg)
}

/// How far the two feeds have travelled, for status pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedProgress {
    /// How far the peer acknowledged our feed.
    pub acked_by_peer: u64,
    /// How far we stored the peer's feed.
    pub received: u64,
    /// The newest position of the peer's feed it told us of.
    pub peer_head: u64,
}

/// Counters for tests and status pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub changes_sent: u64,
    pub changes_received: u64,
    pub reconcile_rounds: u32,
    pub doc_syncs_started: u64,
}

/// One session with one peer.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    initiator: bool,
    peer_scope: Option<Scope>,
    my_epoch: u64,
    hello_last_seq: u64,
    my_want: bool,
    cp: PeerCheckpoint,
    // Our feed, going out.
    out_sent: u64,
    out_inflight: VecDeque<u64>,
    out_at_end: bool,
    push_at: Option<i64>,
    // The peer's feed, coming in.
    in_epoch: u64,
    in_pos: u64,
    /// The newest position of the peer's feed it has told us of.
    in_head: u64,
    in_caught_up: bool,
    recon: Recon,
    recon_next_at: Option<i64>,
    recon_differing: usize,
    doc_syncs: HashMap<DocId, DocSyncState>,
    doc_sync_queue: VecDeque<DocId>,
    queued: HashSet<DocId>,
    awaiting_docs: usize,
    departed: BTreeSet<DocId>,
    /// Document syncs opened because the document moved into the peer's scope;
    /// recorded in the store until they finish, so a broken session cannot lose them.
    owed: HashSet<DocId>,
    transmit: VecDeque<Message>,
    events: VecDeque<SessionEvent>,
    last_activity_ms: i64,
    caught_up: bool,
    stats: SessionStats,
}

fn st<T, E: std::error::Error + 'static>(r: Result<T, E>) -> Result<T, SessionError<E>> {
    r.map_err(SessionError::Store)
}

impl Session {
    pub fn new(config: SessionConfig, now_ms: i64) -> Session {
        Session {
            initiator: config.me < config.peer,
            config,
            phase: Phase::New,
            peer_scope: None,
            my_epoch: 0,
            hello_last_seq: 0,
            my_want: false,
            cp: PeerCheckpoint::default(),
            out_sent: 0,
            out_inflight: VecDeque::new(),
            out_at_end: false,
            push_at: None,
            in_epoch: 0,
            in_pos: 0,
            in_head: 0,
            in_caught_up: false,
            recon: Recon::Idle,
            recon_next_at: None,
            recon_differing: 0,
            doc_syncs: HashMap::new(),
            doc_sync_queue: VecDeque::new(),
            queued: HashSet::new(),
            awaiting_docs: 0,
            departed: BTreeSet::new(),
            owed: HashSet::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            last_activity_ms: now_ms,
            caught_up: false,
            stats: SessionStats::default(),
        }
    }

    pub fn peer(&self) -> NodeId {
        self.config.peer
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    pub fn progress(&self) -> FeedProgress {
        FeedProgress {
            acked_by_peer: self.cp.sent.map_or(0, |p| p.seq),
            received: self.in_pos,
            peer_head: self.in_head,
        }
    }

    /// Sends the hello. Call once, right after the connection is up.
    pub fn start<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if self.phase != Phase::New {
            return Ok(());
        }
        self.my_epoch = st(store.feed_epoch())?;
        self.hello_last_seq = st(store.last_seq())?;
        let cp = st(store.checkpoint(self.config.peer))?;
        self.my_want = match &cp {
            None => true,
            Some(cp) => {
                cp.reconcile_due
                    || cp.sent.is_some_and(|p| p.epoch != self.my_epoch)
                    || cp
                        .reconciled_at_ms
                        .is_none_or(|t| now_ms - t >= self.config.anti_entropy_interval_ms)
            }
        };
        self.cp = cp.unwrap_or_default();
        self.departed = st(store.departed(self.config.peer))?;
        self.send(
            Message::Hello(Hello {
                node: self.config.me,
                role: self.config.my_info.role,
                epoch: self.my_epoch,
                last_seq: self.hello_last_seq,
                your_feed: self.cp.recv,
                want_reconcile: self.my_want,
            }),
            now_ms,
        );
        self.phase = Phase::AwaitHello;
        Ok(())
    }

    /// The node has stored new changes (written here or received from another
    /// peer): push them after the batching window.
    pub fn handle_local_change(&mut self, now_ms: i64) {
        if self.phase == Phase::Open {
            let at = now_ms + self.config.live_push_delay_ms;
            self.push_at = Some(self.push_at.map_or(at, |p| p.min(at)));
        }
    }

    /// A frame from the peer could not be decoded: the session ends, telling the peer why.
    pub fn handle_bad_frame<E: std::error::Error + 'static>(
        &mut self,
        error: &WireError,
    ) -> SessionError<E> {
        let code = if matches!(error, WireError::Version(_)) {
            ErrorCode::Version
        } else {
            ErrorCode::Protocol
        };
        self.fail(code, format!("undecodable frame: {error}"))
    }

    pub fn handle_message<S: Store>(
        &mut self,
        msg: Message,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.last_activity_ms = now_ms;
        let result = self.dispatch(msg, now_ms, store);
        if let Err(e) = &result
            && self.phase != Phase::Closed
        {
            let code = match e {
                SessionError::Store(_) => ErrorCode::Internal,
                SessionError::UnknownPeer(_) => ErrorCode::UnknownPeer,
                SessionError::Timeout(_) => ErrorCode::Timeout,
                _ => ErrorCode::Protocol,
            };
            let _ = self.fail::<S::Error>(code, e.to_string());
        }
        result
    }

    pub fn handle_timeout<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if matches!(self.phase, Phase::Closed | Phase::New) {
            return Ok(());
        }
        if self.awaiting() && now_ms >= self.last_activity_ms + self.config.response_timeout_ms {
            return Err(self.fail(ErrorCode::Timeout, "no answer in time".into()));
        }
        if self.phase != Phase::Open {
            return Ok(());
        }
        let result = self.on_timers(now_ms, store);
        if let Err(e) = &result {
            let _ = self.fail::<S::Error>(ErrorCode::Internal, e.to_string());
        }
        result
    }

    fn on_timers<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if self.push_at.is_some_and(|t| t <= now_ms) {
            self.push_at = None;
            self.pump_feed(now_ms, store)?;
        }
        if self.recon_next_at.is_some_and(|t| t <= now_ms) && matches!(self.recon, Recon::Idle) {
            self.recon_next_at = None;
            self.start_reconcile(now_ms, store)?;
        }
        self.check_caught_up(now_ms, store)
    }

    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<i64> {
        if matches!(self.phase, Phase::Closed | Phase::New) {
            return None;
        }
        let mut t: Option<i64> = None;
        let mut consider = |x: Option<i64>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.awaiting() {
            consider(Some(
                self.last_activity_ms + self.config.response_timeout_ms,
            ));
        }
        if self.phase == Phase::Open {
            consider(self.push_at);
            if matches!(self.recon, Recon::Idle) {
                consider(self.recon_next_at);
            }
        }
        t
    }

    /// Whether the session waits for an answer from the peer.
    fn awaiting(&self) -> bool {
        self.phase == Phase::AwaitHello
            || !self.out_inflight.is_empty()
            || matches!(self.recon, Recon::Running { .. } | Recon::Expected)
            || self.awaiting_docs > 0
    }

    fn send(&mut self, msg: Message, now_ms: i64) {
        self.last_activity_ms = self.last_activity_ms.max(now_ms);
        self.transmit.push_back(msg);
    }

    fn fail<E: std::error::Error + 'static>(
        &mut self,
        code: ErrorCode,
        detail: String,
    ) -> SessionError<E> {
        if self.phase != Phase::Closed {
            self.transmit.push_back(Message::Error {
                code,
                detail: detail.clone(),
            });
            self.events.push_back(SessionEvent::Closed {
                reason: detail.clone(),
            });
            self.phase = Phase::Closed;
        }
        match code {
            ErrorCode::Timeout => SessionError::Timeout(self.config.response_timeout_ms),
            ErrorCode::UnknownPeer => SessionError::UnknownPeer(detail),
            _ => SessionError::Protocol(detail),
        }
    }

    fn protocol<E: std::error::Error + 'static>(detail: impl Into<String>) -> SessionError<E> {
        SessionError::Protocol(detail.into())
    }

    fn dispatch<S: Store>(
        &mut self,
        msg: Message,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        match (self.phase, msg) {
            (_, Message::Error { code, detail }) => {
                self.events.push_back(SessionEvent::Closed {
                    reason: format!("peer: {detail}"),
                });
                self.phase = Phase::Closed;
                Err(SessionError::Peer { code, detail })
            }
            (Phase::AwaitHello, Message::Hello(h)) => self.on_hello(h, now_ms, store),
            (Phase::Open, Message::Changes(c)) => self.on_changes(c, now_ms, store),
            (Phase::Open, Message::Ack(a)) => self.on_ack(a, now_ms, store),
            (Phase::Open, Message::Rejected(list)) => {
                for r in list {
                    self.events.push_back(SessionEvent::PeerRejectedOurs {
                        doc: r.doc,
                        hash: r.hash,
                        reason: r.reason,
                        detail: r.detail,
                    });
                }
                Ok(())
            }
            (Phase::Open, Message::Reconcile(r)) => self.on_reconcile(r, now_ms, store),
            (Phase::Open, Message::DocSync(list)) => self.on_doc_sync(list, now_ms, store),
            (Phase::Open, Message::Departed(docs)) => self.on_departed(docs, now_ms, store),
            (phase, msg) => Err(Self::protocol(format!(
                "unexpected {} message in phase {phase:?}",
                msg.kind()
            ))),
        }
    }

    fn on_hello<S: Store>(
        &mut self,
        h: Hello,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        let peer = self.config.peer;
        if h.node != peer {
            return Err(SessionError::UnknownPeer(format!(
                "expected node {peer}, the hello names {}",
                h.node
            )));
        }
        let Some(info) = st(store.node_info(peer))? else {
            return Err(SessionError::UnknownPeer(format!(
                "node {peer} is not enrolled"
            )));
        };
        if info.role != h.role {
            return Err(SessionError::UnknownPeer(format!(
                "node {peer} is enrolled as {}, not {}",
                info.role, h.role
            )));
        }
        self.peer_scope = Some(Scope::of(&info));
        // Where our feed resumes: the peer's claim, if it is about this epoch of ours.
        let out_trusted = h
            .your_feed
            .filter(|p| p.epoch == self.my_epoch && p.seq <= self.hello_last_seq);
        self.out_sent = out_trusted.map_or(self.hello_last_seq, |p| p.seq);
        // Where the peer's feed resumes: our claim, if it is about the peer's current epoch.
        let in_trusted = self
            .cp
            .recv
            .filter(|p| p.epoch == h.epoch && p.seq <= h.last_seq);
        self.in_epoch = h.epoch;
        self.in_pos = in_trusted.map_or(h.last_seq, |p| p.seq);
        self.in_head = h.last_seq;
        let reconcile =
            self.my_want || h.want_reconcile || out_trusted.is_none() || in_trusted.is_none();
        self.cp.recv = Some(FeedPos {
            epoch: h.epoch,
            seq: self.in_pos,
        });
        self.cp.sent = Some(FeedPos {
            epoch: self.my_epoch,
            seq: self.out_sent,
        });
        self.cp.reconcile_due |= reconcile;
        st(store.set_checkpoint(peer, &self.cp))?;
        self.phase = Phase::Open;
        self.events.push_back(SessionEvent::Connected {
            peer,
            role: h.role,
            reconcile,
        });
        // Document syncs an earlier session owed this peer and did not finish.
        for doc in st(store.owed_syncs(peer, PENDING_REPAIR_MAX))? {
            self.owed.insert(doc.clone());
            self.queue_doc_sync(&doc);
        }
        // Parked changes from an earlier session: ask this peer for their history.
        for doc in st(store.pending_docs(PENDING_REPAIR_MAX))? {
            let meta = st(store.doc_meta(&doc))?;
            if meta.is_none_or(|m| self.peer_scope().includes(&doc, m.routing.as_ref())) {
                self.queue_doc_sync(&doc);
            }
        }
        self.pump_feed(now_ms, store)?;
        if reconcile {
            if self.initiator {
                self.start_reconcile(now_ms, store)?;
            } else {
                self.recon = Recon::Expected;
            }
        } else if self.initiator {
            let last = self.cp.reconciled_at_ms.unwrap_or(now_ms);
            self.recon_next_at = Some(last + self.config.anti_entropy_interval_ms);
        }
        Ok(())
    }

    fn peer_scope(&self) -> &Scope {
        // Set in on_hello before the phase becomes Open; only Open-phase code calls this.
        static NOTHING: Scope = Scope::Staff(String::new());
        self.peer_scope.as_ref().unwrap_or(&NOTHING)
    }

    /// Sends feed batches while the window has room.
    fn pump_feed<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        self.pump_feed_batches(now_ms, store)?;
        if !self.doc_sync_queue.is_empty() {
            self.pump_doc_syncs(now_ms, store)?;
        }
        Ok(())
    }

    fn pump_feed_batches<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        let peer = self.config.peer;
        let scope = self.peer_scope().clone();
        while self.out_inflight.len() < FEED_WINDOW_BATCHES {
            let last = st(store.last_seq())?;
            if self.out_sent >= last {
                if !self.out_at_end {
                    // Tell the peer it has all of our feed, so it knows it is caught up.
                    self.out_at_end = true;
                    self.out_inflight.push_back(self.out_sent);
                    let at = self.out_sent;
                    self.send(
                        Message::Changes(Changes {
                            from_seq: at,
                            up_to_seq: at,
                            caught_up: true,
                            entries: Vec::new(),
                        }),
                        now_ms,
                    );
                }
                return Ok(());
            }
            let from = self.out_sent;
            let mut up_to = from;
            let mut entries = Vec::new();
            let mut bytes = 0usize;
            let mut scanned = 0usize;
            'scan: loop {
                let chunk = st(store.feed_after(up_to, FEED_READ_CHUNK, &scope))?;
                if chunk.is_empty() {
                    break;
                }
                for e in chunk {
                    if bytes >= FEED_BATCH_MAX_BYTES || scanned >= FEED_SCAN_MAX_ENTRIES {
                        break 'scan;
                    }
                    scanned += 1;
                    up_to = e.seq;
                    // A change is never echoed to the peer it came from, but one that
                    // moved the document may still have moved it into the peer's scope.
                    let echo = e.from_peer == Some(peer);
                    if echo && !e.routing_changed {
                        continue;
                    }
                    let included = match e.in_scope {
                        Some(v) => v,
                        None => {
                            let meta = st(store.doc_meta(&e.doc))?;
                            meta.is_some_and(|m| scope.includes(&e.doc, m.routing.as_ref()))
                        }
                    };
                    if !included {
                        continue;
                    }
                    if e.routing_changed && self.owed.insert(e.doc.clone()) {
                        // The document may have just entered the peer's scope; the feed
                        // skipped its earlier changes, so sync the whole document.
                        st(store.set_owed_sync(peer, &e.doc, true))?;
                        self.queue_doc_sync(&e.doc);
                    }
                    if echo {
                        continue;
                    }
                    if e.bytes.len() > ENTRY_MAX_BYTES {
                        self.events.push_back(SessionEvent::ChangeTooLarge {
                            doc: e.doc,
                            bytes: e.bytes.len(),
                        });
                        continue;
                    }
                    bytes += e.bytes.len() + ENTRY_OVERHEAD_BYTES;
                    entries.push(ChangeEntry {
                        doc: e.doc,
                        bytes: e.bytes,
                    });
                }
            }
            let caught_up = up_to >= last;
            self.stats.changes_sent += entries.len() as u64;
            self.out_sent = up_to;
            self.out_at_end = caught_up;
            self.out_inflight.push_back(up_to);
            self.send(
                Message::Changes(Changes {
                    from_seq: from,
                    up_to_seq: up_to,
                    caught_up,
                    entries,
                }),
                now_ms,
            );
        }
        Ok(())
    }

    fn on_ack<S: Store>(
        &mut self,
        a: Ack,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if a.up_to_seq > self.out_sent || self.out_inflight.front().is_none_or(|f| a.up_to_seq < *f)
        {
            return Err(Self::protocol(format!(
                "acknowledgement of {} matches no batch in flight",
                a.up_to_seq
            )));
        }
        while self.out_inflight.front().is_some_and(|f| *f <= a.up_to_seq) {
            self.out_inflight.pop_front();
        }
        self.cp.sent = Some(FeedPos {
            epoch: self.my_epoch,
            seq: a.up_to_seq,
        });
        st(store.set_checkpoint(self.config.peer, &self.cp))?;
        self.pump_feed(now_ms, store)?;
        self.check_caught_up(now_ms, store)
    }

    fn clear_departed<S: Store>(
        &mut self,
        doc: &DocId,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if self.departed.remove(doc) {
            st(store.set_departed(self.config.peer, doc, false))?;
        }
        Ok(())
    }

    fn on_changes<S: Store>(
        &mut self,
        c: Changes,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if c.from_seq != self.in_pos {
            if c.up_to_seq <= self.in_pos {
                // Already stored: a repeat is harmless and needs no new acknowledgement.
                return Ok(());
            }
            return Err(Self::protocol(format!(
                "feed batch starts at {}, expected {}",
                c.from_seq, self.in_pos
            )));
        }
        let peer = self.config.peer;
        self.stats.changes_received += c.entries.len() as u64;
        // Group by document, keeping the sender's order within each.
        let mut order: Vec<DocId> = Vec::new();
        let mut by_doc: HashMap<DocId, Vec<Vec<u8>>> = HashMap::new();
        for e in c.entries {
            let list = by_doc.entry(e.doc.clone()).or_default();
            if list.is_empty() {
                order.push(e.doc);
            }
            list.push(e.bytes);
        }
        let mut rejections = Vec::new();
        let mut changed = Vec::new();
        let mut applied_total = 0;
        for doc in order {
            let bytes = by_doc.remove(&doc).unwrap_or_default();
            self.clear_departed(&doc, store)?;
            let outcome = st(apply_changes(store, &doc, bytes, Some(peer), now_ms))?;
            if outcome.applied > 0 {
                applied_total += outcome.applied;
                changed.push(doc.clone());
            }
            rejections.extend(outcome.rejected);
            if outcome.pending > 0 {
                // Its history below our checkpoint is missing (it entered our scope, or
                // a dependency was lost): fetch the document with a per-document sync.
                self.queue_doc_sync(&doc);
            }
        }
        self.in_pos = c.up_to_seq;
        self.in_head = self.in_head.max(c.up_to_seq);
        self.cp.recv = Some(FeedPos {
            epoch: self.in_epoch,
            seq: self.in_pos,
        });
        st(store.set_checkpoint(peer, &self.cp))?;
        if c.caught_up {
            self.in_caught_up = true;
        }
        self.report(rejections, changed, applied_total, now_ms);
        self.send(
            Message::Ack(Ack {
                up_to_seq: c.up_to_seq,
            }),
            now_ms,
        );
        self.pump_doc_syncs(now_ms, store)?;
        self.check_caught_up(now_ms, store)
    }

    fn report(
        &mut self,
        rejections: Vec<Rejection>,
        changed: Vec<DocId>,
        changes: usize,
        now_ms: i64,
    ) {
        for r in &rejections {
            self.events.push_back(SessionEvent::Rejected {
                doc: r.doc.clone(),
                hash: r.hash,
                reason: r.reason,
                detail: r.detail.clone(),
            });
        }
        if !rejections.is_empty() {
            self.send(Message::Rejected(rejections), now_ms);
        }
        if !changed.is_empty() {
            self.events.push_back(SessionEvent::Applied {
                docs: changed,
                changes,
            });
        }
    }

    fn start_reconcile<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        let set = self.reconcile_set(store)?;
        let ranges = set.initial();
        self.stats.reconcile_rounds += 1;
        self.recon_differing = 0;
        self.send(Message::Reconcile(Reconcile { round: 0, ranges }), now_ms);
        self.recon = Recon::Running {
            set,
            expect_round: 1,
        };
        Ok(())
    }

    /// The documents in the peer's scope as we see it, minus those it said departed.
    /// Our own scope does not narrow it: a case we created for a center (a laptop's
    /// new case) or wrote while it moved away must still reach the peer; views that
    /// disagree meet in a document sync or a departure notice.
    fn reconcile_set<S: Store>(&self, store: &S) -> Result<ReconcileSet, SessionError<S::Error>> {
        let mut docs = st(store.docs_in_scope(std::slice::from_ref(self.peer_scope())))?;
        docs.retain(|(d, _)| !self.departed.contains(d));
        Ok(ReconcileSet::new(docs))
    }

    fn on_reconcile<S: Store>(
        &mut self,
        r: Reconcile,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if r.round >= ROUNDS_MAX {
            return Err(Self::protocol(format!(
                "reconciliation ran past {ROUNDS_MAX} rounds"
            )));
        }
        let recon = std::mem::replace(&mut self.recon, Recon::Idle);
        let (set, expect) = match recon {
            Recon::Running { set, expect_round } => (set, expect_round),
            Recon::Idle | Recon::Expected | Recon::Finishing if r.round == 0 && !self.initiator => {
                self.recon_differing = 0;
                (self.reconcile_set(store)?, 0)
            }
            other => {
                self.recon = other;
                return Err(Self::protocol(format!(
                    "unexpected reconciliation round {}",
                    r.round
                )));
            }
        };
        if r.round != expect {
            return Err(Self::protocol(format!(
                "reconciliation round {} where {expect} was expected",
                r.round
            )));
        }
        self.stats.reconcile_rounds += 1;
        let terminator = r.ranges.iter().all(|x| x.mode == RangeMode::Skip);
        let out = set
            .process(&r.ranges)
            .map_err(|e| Self::protocol(format!("reconciliation: {e}")))?;
        self.recon_differing += out.differing.len();
        let done = out.is_done();
        self.on_differing(out.differing);
        if terminator {
            self.finish_reconcile();
        } else if done {
            self.send(
                Message::Reconcile(Reconcile {
                    round: r.round + 1,
                    ranges: out.reply,
                }),
                now_ms,
            );
            self.finish_reconcile();
        } else {
            self.send(
                Message::Reconcile(Reconcile {
                    round: r.round + 1,
                    ranges: out.reply,
                }),
                now_ms,
            );
            self.recon = Recon::Running {
                set,
                expect_round: r.round + 2,
            };
        }
        self.pump_doc_syncs(now_ms, store)?;
        self.check_caught_up(now_ms, store)
    }

    fn finish_reconcile(&mut self) {
        self.events.push_back(SessionEvent::Reconciled {
            differing: self.recon_differing,
        });
        self.recon = Recon::Finishing;
    }

    /// Documents found to differ: each gets a document sync. One outside the peer's
    /// scope still does, withheld: we send only hashes and take what the peer has
    /// that we lack (a hub restored from a backup recovers a transfer that way),
    /// then tell it the document departed.
    fn on_differing(&mut self, docs: Vec<DocId>) {
        for doc in docs {
            self.queue_doc_sync(&doc);
        }
    }

    fn queue_doc_sync(&mut self, doc: &DocId) {
        let busy = self.doc_syncs.get(doc).is_some_and(|d| d.awaiting);
        if !busy && self.queued.insert(doc.clone()) {
            self.doc_sync_queue.push_back(doc.clone());
        }
    }

    /// Opens queued per-document syncs while fewer than the limit await answers.
    fn pump_doc_syncs<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while self.awaiting_docs < DOC_SYNCS_IN_FLIGHT_MAX {
            let Some(doc) = self.doc_sync_queue.pop_front() else {
                break;
            };
            self.queued.remove(&doc);
            let mut am = st(store.load_doc(&doc))?.unwrap_or_default();
            let ds = self
                .doc_syncs
                .entry(doc.clone())
                .or_insert_with(DocSyncState::new);
            if ds.awaiting {
                continue;
            }
            // A new exchange: forget what an earlier one assumed the peer had.
            ds.state = sync::State::new();
            ds.sent = 0;
            ds.requested.clear();
            let generated = am.sync().generate_sync_message(&mut ds.state);
            let missing: Vec<ChangeHash> =
                missing_deps(store, &doc, &mut am)?.into_iter().collect();
            let ds = self
                .doc_syncs
                .entry(doc.clone())
                .or_insert_with(DocSyncState::new);
            ds.requested.extend(missing.iter().copied());
            let Some(m) = with_needs(generated, missing, &mut am) else {
                continue;
            };
            let encoded = m.encode();
            ds.awaiting = true;
            ds.sent = 1;
            self.awaiting_docs += 1;
            self.stats.doc_syncs_started += 1;
            bytes += encoded.len() + ENTRY_OVERHEAD_BYTES;
            out.push(DocSyncEntry {
                doc,
                message: encoded,
            });
            if bytes >= DOC_SYNC_BATCH_MAX_BYTES {
                self.send(Message::DocSync(std::mem::take(&mut out)), now_ms);
                bytes = 0;
            }
        }
        if !out.is_empty() {
            self.send(Message::DocSync(out), now_ms);
        }
        Ok(())
    }

    fn on_doc_sync<S: Store>(
        &mut self,
        list: Vec<DocSyncEntry>,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        let peer = self.config.peer;
        let mut replies = Vec::new();
        let mut reply_bytes = 0usize;
        let mut departed = Vec::new();
        let mut rejections = Vec::new();
        let mut changed = Vec::new();
        let mut applied_total = 0;
        let touched: Vec<DocId> = list.iter().map(|e| e.doc.clone()).collect();
        for entry in list {
            let doc = entry.doc;
            let ds = self
                .doc_syncs
                .entry(doc.clone())
                .or_insert_with(DocSyncState::new);
            if ds.awaiting {
                ds.awaiting = false;
                self.awaiting_docs -= 1;
            }
            if entry.message.is_empty() {
                // The peer has nothing more to say about this document.
                ds.sent = 0;
                continue;
            }
            let mut msg = sync::Message::decode(&entry.message)
                .map_err(|e| Self::protocol(format!("sync message for {doc}: {e}")))?;
            let changes: Vec<Vec<u8>> = msg.changes.iter().map(<[u8]>::to_vec).collect();
            let changes_empty = changes.is_empty();
            if !changes.is_empty() {
                self.clear_departed(&doc, store)?;
                // Through the write rules and the pending set, like the feed.
                let outcome = st(apply_changes(store, &doc, changes, Some(peer), now_ms))?;
                if outcome.applied > 0 {
                    applied_total += outcome.applied;
                    changed.push(doc.clone());
                }
                rejections.extend(outcome.rejected);
            }
            // Automerge sees the message without its changes (we applied them) and
            // without its flags, so it never answers with a whole-document save,
            // which would bypass the write rules on the other side.
            msg.changes = sync::ChunkList::empty();
            msg.flags = None;
            // A peer's hash lists are adopted into the sync state and sent back later;
            // Automerge expects them sorted (and asserts it when encoding), so never
            // trust the peer's order.
            msg.heads.sort();
            msg.heads.dedup();
            msg.need.sort();
            msg.need.dedup();
            for have in &mut msg.have {
                have.last_sync.sort();
                have.last_sync.dedup();
            }
            let their_heads = msg.heads.clone();
            let their_need = msg.need.clone();
            let held = st(store.load_doc(&doc))?;
            let is_held = held.is_some();
            let mut am: AutoCommit = held.unwrap_or_default();
            // Re-borrow: apply_changes needed the store, not this map.
            let ds = self
                .doc_syncs
                .entry(doc.clone())
                .or_insert_with(DocSyncState::new);
            // Nothing moved on either side since our last message and the peer asks
            // only for what we already sent (a refused change keeps the heads apart):
            // the exchange is over. A need we have not answered (a bloom-filter false
            // positive hid a change from us) keeps it going.
            let stalled = changes_empty
                && ds.state.their_heads.as_ref() == Some(&their_heads)
                && ds.state.last_sent_heads == am.get_heads()
                && their_need
                    .iter()
                    .all(|h| ds.state.sent_hashes.contains(h) || !crate::apply::holds(&mut am, h));
            am.sync()
                .receive_sync_message(&mut ds.state, msg)
                .map_err(|e| Self::protocol(format!("sync message for {doc}: {e}")))?;
            let withheld = if is_held {
                let meta = st(store.doc_meta(&doc))?;
                let routing = meta.and_then(|m| m.routing);
                !self.peer_scope().includes(&doc, routing.as_ref())
            } else {
                false
            };
            let ds = self
                .doc_syncs
                .entry(doc.clone())
                .or_insert_with(DocSyncState::new);
            if withheld && ds.sent > 0 && changes_empty {
                // We asked for what the peer has and it had nothing more: done.
                ds.sent = 0;
                departed.push(doc);
                continue;
            }
            let capped = ds.sent >= DOC_SYNC_MESSAGES_MAX;
            let generated = if stalled {
                None
            } else if capped {
                self.events
                    .push_back(SessionEvent::DocSyncAbandoned { doc: doc.clone() });
                None
            } else {
                am.sync().generate_sync_message(&mut ds.state)
            };
            let missing: Vec<ChangeHash> = if capped {
                Vec::new()
            } else {
                let requested = ds.requested.clone();
                missing_deps(store, &doc, &mut am)?
                    .into_iter()
                    .filter(|h| !requested.contains(h))
                    .collect()
            };
            let ds = self
                .doc_syncs
                .entry(doc.clone())
                .or_insert_with(DocSyncState::new);
            ds.requested.extend(missing.iter().copied());
            let reply = match with_needs(generated, missing, &mut am) {
                Some(mut m) if withheld => {
                    // Outside the peer's scope: hashes only, never the document.
                    m.changes = sync::ChunkList::empty();
                    Some(m.encode())
                }
                None if withheld => {
                    departed.push(doc);
                    continue;
                }
                other => other.map(sync::Message::encode),
            };
            let message = match reply {
                Some(bytes) if bytes.len() <= ENTRY_MAX_BYTES => {
                    ds.awaiting = true;
                    ds.sent += 1;
                    self.awaiting_docs += 1;
                    bytes
                }
                Some(bytes) => {
                    self.events.push_back(SessionEvent::ChangeTooLarge {
                        doc: doc.clone(),
                        bytes: bytes.len(),
                    });
                    ds.sent = 0;
                    Vec::new()
                }
                None => {
                    ds.sent = 0;
                    Vec::new()
                }
            };
            reply_bytes += message.len() + ENTRY_OVERHEAD_BYTES;
            replies.push(DocSyncEntry { doc, message });
            if reply_bytes >= DOC_SYNC_BATCH_MAX_BYTES {
                self.send(Message::DocSync(std::mem::take(&mut replies)), now_ms);
                reply_bytes = 0;
            }
        }
        self.report(rejections, changed, applied_total, now_ms);
        if !departed.is_empty() {
            self.send(Message::Departed(departed), now_ms);
        }
        self.settle_owed(&touched, store)?;
        if !replies.is_empty() {
            self.send(Message::DocSync(replies), now_ms);
        }
        self.pump_doc_syncs(now_ms, store)?;
        self.check_caught_up(now_ms, store)
    }

    /// Owed document syncs whose exchange ended are paid.
    fn settle_owed<S: Store>(
        &mut self,
        docs: &[DocId],
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        for doc in docs {
            let busy =
                self.doc_syncs.get(doc).is_some_and(|d| d.awaiting) || self.queued.contains(doc);
            if !busy && self.owed.remove(doc) {
                st(store.set_owed_sync(self.config.peer, doc, false))?;
            }
        }
        Ok(())
    }

    fn on_departed<S: Store>(
        &mut self,
        docs: Vec<DocId>,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        for doc in docs {
            if let Some(ds) = self.doc_syncs.get_mut(&doc)
                && ds.awaiting
            {
                ds.awaiting = false;
                ds.sent = 0;
                self.awaiting_docs -= 1;
            }
            if self.departed.insert(doc.clone()) {
                st(store.set_departed(self.config.peer, &doc, true))?;
            }
            self.settle_owed(std::slice::from_ref(&doc), store)?;
            self.events.push_back(SessionEvent::Departed { doc });
        }
        self.pump_doc_syncs(now_ms, store)?;
        self.check_caught_up(now_ms, store)
    }

    fn check_caught_up<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        let docs_idle = self.awaiting_docs == 0 && self.doc_sync_queue.is_empty();
        if matches!(self.recon, Recon::Finishing) && docs_idle {
            self.recon = Recon::Idle;
            self.cp.reconcile_due = false;
            self.cp.reconciled_at_ms = Some(now_ms);
            st(store.set_checkpoint(self.config.peer, &self.cp))?;
            if self.initiator {
                self.recon_next_at = Some(now_ms + self.config.anti_entropy_interval_ms);
            }
        }
        let idle = self.phase == Phase::Open
            && self.in_caught_up
            && self.out_at_end
            && self.out_inflight.is_empty()
            && matches!(self.recon, Recon::Idle)
            && docs_idle;
        if idle && !self.caught_up {
            self.caught_up = true;
            self.events.push_back(SessionEvent::CaughtUp);
        }
        Ok(())
    }
}
