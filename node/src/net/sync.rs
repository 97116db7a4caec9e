//! The sync engine's [`Session`] behind [`PeerProtocol`]: every input of the session
//! runs as one job on the store thread (so its writes commit, with one fsync for the
//! group, before anything it queued is sent), frames go out as the session yields
//! them, and its timer becomes the connection task's deadline.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use yichuang_shared::ids::NodeId;
use yichuang_shared::wire::{ErrorCode, Message, WireError};
use yichuang_sync::{Session, SessionConfig, SessionError, SessionEvent};

use super::protocol::{PeerProtocol, PeerStats, ProtocolError};
use super::transport::CloseCode;
use crate::store::sync::{KnownNodes, SyncStore};
use crate::store::{StoreError, StoreHandle, now_ms};

/// Refused changes logged one by one per session; the rest are counted.
const REJECTIONS_LOGGED_MAX: u64 = 8;

pub struct SyncPeer {
    store: StoreHandle,
    known: Arc<KnownNodes>,
    peer: NodeId,
    /// Out on the store thread while a job runs; `None` after a failed commit.
    session: Option<Session>,
    out: VecDeque<Vec<u8>>,
    deadline: Option<Instant>,
    head: u64,
    stats: PeerStats,
}

fn protocol_error(e: SessionError<StoreError>) -> ProtocolError {
    let code = match &e {
        SessionError::Store(_) => CloseCode::Internal,
        SessionError::UnknownPeer(_) => CloseCode::NotAllowed,
        SessionError::Peer {
            code: ErrorCode::Version,
            ..
        } => CloseCode::Version,
        SessionError::Peer { .. } => CloseCode::Shutdown,
        SessionError::Protocol(_) | SessionError::Timeout(_) => CloseCode::Protocol,
    };
    ProtocolError::new(code, e.to_string())
}

impl SyncPeer {
    /// `known` holds this node, its hub and the peer as its certificate names it.
    pub fn new(
        store: StoreHandle,
        known: Arc<KnownNodes>,
        config: SessionConfig,
        head: u64,
    ) -> SyncPeer {
        SyncPeer {
            store,
            known,
            peer: config.peer,
            session: Some(Session::new(config, now_ms())),
            out: VecDeque::new(),
            deadline: None,
            head,
            stats: PeerStats {
                our_head: head,
                ..PeerStats::default()
            },
        }
    }

    /// Runs one input of the session on the store thread; what it queued is taken
    /// only after the store committed its writes.
    async fn run<F>(&mut self, input: F) -> Result<(), ProtocolError>
    where
        F: FnOnce(&mut Session, &mut SyncStore<'_>, i64) -> Result<(), SessionError<StoreError>>
            + Send
            + 'static,
    {
        let mut session = self
            .session
            .take()
            .ok_or_else(|| ProtocolError::internal("the session ended after a failed write"))?;
        let known = self.known.clone();
        let (session, result) = self
            .store
            .call(move |store| {
                let mut sync_store = SyncStore::new(store, &known);
                let result = input(&mut session, &mut sync_store, now_ms());
                (session, result)
            })
            .await
            .map_err(|e| ProtocolError::internal(format!("store: {e}")))?;
        self.session = Some(session);
        self.drain();
        result.map_err(protocol_error)
    }

    /// Takes the session's frames and events and its next deadline.
    fn drain(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        while let Some(msg) = session.poll_transmit() {
            self.out.push_back(msg.encode());
        }
        while let Some(event) = session.poll_event() {
            note_event(self.peer, &mut self.stats, event);
        }
        self.deadline = session.poll_timeout().map(|at| {
            let wait = u64::try_from(at - now_ms()).unwrap_or(0);
            Instant::now() + Duration::from_millis(wait)
        });
        let progress = session.progress();
        let counts = session.stats();
        self.stats.acked_by_peer = progress.acked_by_peer;
        self.stats.received_seq = progress.received;
        self.stats.peer_head = progress.peer_head;
        self.stats.our_head = self.head;
        self.stats.changes_sent = counts.changes_sent;
        self.stats.changes_received = counts.changes_received;
        self.stats.caught_up = session.is_caught_up();
    }
}

fn note_event(peer: NodeId, stats: &mut PeerStats, event: SessionEvent) {
    match event {
        SessionEvent::Connected { reconcile, .. } => {
            tracing::info!(%peer, reconcile, "session open");
        }
        SessionEvent::CaughtUp => tracing::info!(%peer, "caught up"),
        SessionEvent::Applied { docs, changes } => {
            tracing::debug!(%peer, docs = docs.len(), changes, "stored changes");
        }
        SessionEvent::Rejected {
            doc,
            reason,
            detail,
            ..
        } => {
            stats.rejected_from_peer += 1;
            if stats.rejected_from_peer <= REJECTIONS_LOGGED_MAX {
                tracing::warn!(%peer, %doc, %reason, %detail, "refused a change of the peer's");
            }
        }
        SessionEvent::PeerRejectedOurs {
            doc,
            reason,
            detail,
            ..
        } => {
            stats.rejected_by_peer += 1;
            if stats.rejected_by_peer <= REJECTIONS_LOGGED_MAX {
                tracing::warn!(%peer, %doc, %reason, %detail, "the peer refused a change of ours");
            }
        }
        SessionEvent::Departed { doc } => {
            tracing::info!(%peer, %doc, "a document left the scope we share");
        }
        SessionEvent::Reconciled { differing } => {
            tracing::info!(%peer, differing, "reconciled");
        }
        SessionEvent::DocSyncAbandoned { doc } => {
            tracing::warn!(%peer, %doc, "a document's sync stopped without agreeing");
        }
        SessionEvent::ChangeTooLarge { doc, bytes } => {
            tracing::warn!(%peer, %doc, bytes, "a change too large to send was skipped");
        }
        SessionEvent::Closed { reason } => tracing::info!(%peer, %reason, "session closed"),
    }
}

impl PeerProtocol for SyncPeer {
    async fn handle_connected(&mut self) -> Result<(), ProtocolError> {
        self.run(|session, store, now| session.start(now, store))
            .await
    }

    async fn handle_frame(&mut self, payload: Vec<u8>) -> Result<(), ProtocolError> {
        self.stats.frames_received += 1;
        let msg = match Message::decode(&payload) {
            Ok(msg) => msg,
            Err(e) => return Err(self.bad_frame(&e)),
        };
        self.run(move |session, store, now| session.handle_message(msg, now, store))
            .await
    }

    async fn handle_local_change(&mut self, head: u64) -> Result<(), ProtocolError> {
        self.head = self.head.max(head);
        if let Some(session) = self.session.as_mut() {
            session.handle_local_change(now_ms());
        }
        self.drain();
        Ok(())
    }

    async fn handle_timeout(&mut self, _now: Instant) -> Result<(), ProtocolError> {
        self.run(|session, store, now| session.handle_timeout(now, store))
            .await
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn stats(&self) -> PeerStats {
        self.stats.clone()
    }
}

impl SyncPeer {
    fn bad_frame(&mut self, e: &WireError) -> ProtocolError {
        let code = if matches!(e, WireError::Version(_)) {
            CloseCode::Version
        } else {
            CloseCode::Protocol
        };
        let detail = match self.session.as_mut() {
            Some(s) => s.handle_bad_frame::<StoreError>(e).to_string(),
            None => format!("undecodable frame: {e}"),
        };
        ProtocolError::new(code, detail)
    }
}
