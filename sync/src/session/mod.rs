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
//!
//! The state machine is one `Session` with `impl` blocks spread over child modules:
//! `hello` (the handshake), `feed` (the change feed), `recon` (reconciliation
//! rounds), `docsync` (per-document sync) and `timers` (`handle_timeout`,
//! `poll_timeout`).

mod docsync;
mod feed;
mod hello;
mod recon;
mod timers;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use yichuang_shared::ids::{DocId, NodeId, Role};
use yichuang_shared::wire::{ErrorCode, FRAME_MAX_BYTES, Hello, Message, RejectReason, WireError};

use crate::reconcile::ReconcileSet;
use crate::rules::Scope;
use crate::store::{NodeInfo, PeerCheckpoint, Store};
use docsync::DocSyncState;

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

    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
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

    fn peer_scope(&self) -> &Scope {
        // Set in on_hello before the phase becomes Open; only Open-phase code calls this.
        static NOTHING: Scope = Scope::Staff(String::new());
        self.peer_scope.as_ref().unwrap_or(&NOTHING)
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
