//! The interim change feed: each side streams the changes after the peer's checkpoint
//! that fall in the peer's scope, the receiver files them durably and acknowledges,
//! and new local changes are pushed as they land. It stands in for the sync engine's
//! `Session` behind [`PeerProtocol`] and has no anti-entropy: a case that enters a
//! peer's scope later (a transfer) is not back-filled. It speaks the sync engine's wire
//! codec (`yichuang_shared::wire`): hello, changes, ack, rejected; reconciliation
//! messages are not sent and are ignored if received.

pub mod db;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use yichuang_shared::ids::{NodeId, Role};
use yichuang_shared::wire::{Ack, Changes, FeedPos, Hello, Message, WireError};

use self::db::Scope;
use super::protocol::{PeerProtocol, PeerStats, ProtocolError};
use super::tls::NodeIdentity;
use super::transport::CloseCode;
use crate::store::StoreHandle;

/// Changes per batch: enough to move a reconnect's backlog in a few round trips.
const BATCH_ENTRIES_MAX: usize = 1_024;
/// Bytes per batch: a quarter of a frame, so a batch always fits with room to spare.
const BATCH_MAX_BYTES: usize = super::frame::FRAME_MAX_BYTES / 4;
/// Batches sent and not yet acknowledged. With [`BATCH_MAX_BYTES`] this keeps at most
/// 4 MiB in flight per peer, inside the QUIC windows, so a write never waits on a
/// reader that waits on us.
const WINDOW_BATCHES: usize = 4;
/// Refused changes logged one by one per report; the rest are counted.
const REJECTIONS_LOGGED_MAX: usize = 8;

/// What every session of this node shares.
#[derive(Debug)]
pub struct Local {
    pub node_id: NodeId,
    pub role: Role,
    pub epoch: u64,
    /// The hub's node id: the only author of reference-document changes we accept.
    pub hub: Option<NodeId>,
}

pub struct Feed {
    store: StoreHandle,
    local: Arc<Local>,
    peer: NodeIdentity,
    peer_key: String,
    scope: Scope,
    out: VecDeque<Vec<u8>>,
    hello_seen: bool,
    /// Our feed: how far the peer acknowledged, how far we have sent, our head.
    acked: u64,
    sent: u64,
    head: u64,
    inflight: VecDeque<(u64, u64)>,
    /// The peer's feed: its epoch and how far we filed it.
    their_epoch: u64,
    received: u64,
    stats: PeerStats,
}

impl Feed {
    pub fn new(store: StoreHandle, local: Arc<Local>, peer: NodeIdentity, head: u64) -> Feed {
        Feed {
            store,
            local,
            peer_key: peer.node_id.to_string(),
            scope: Scope::of(&peer),
            peer,
            out: VecDeque::new(),
            hello_seen: false,
            acked: 0,
            sent: 0,
            head,
            inflight: VecDeque::new(),
            their_epoch: 0,
            received: 0,
            stats: PeerStats::default(),
        }
    }

    async fn store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::Store) -> Result<R, crate::store::StoreError> + Send + 'static,
    ) -> Result<R, ProtocolError> {
        match self.store.call(f).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) | Err(e) => Err(ProtocolError::internal(format!("store: {e}"))),
        }
    }

    /// Sends batches while the window has room and the feed has more.
    async fn fill(&mut self) -> Result<(), ProtocolError> {
        while self.hello_seen && self.inflight.len() < WINDOW_BATCHES && self.sent < self.head {
            let (after, peer, scope) = (self.sent, self.peer_key.clone(), self.scope.clone());
            let (up_to, entries) = self
                .store(move |s| {
                    db::read_batch(s, after, &peer, &scope, BATCH_ENTRIES_MAX, BATCH_MAX_BYTES)
                })
                .await?;
            if up_to <= self.sent {
                // Our head estimate ran ahead of the table (a rolled-back write).
                self.head = self.sent;
                break;
            }
            let n = entries.len() as u64;
            let batch = Changes {
                from_seq: after,
                up_to_seq: up_to,
                caught_up: up_to >= self.head,
                entries,
            };
            self.out.push_back(Message::Changes(batch).encode());
            self.inflight.push_back((up_to, n));
            self.sent = up_to;
        }
        self.update_caught_up();
        Ok(())
    }

    fn update_caught_up(&mut self) {
        self.stats.acked_by_peer = self.acked;
        self.stats.our_head = self.head;
        self.stats.received_seq = self.received;
        if self.hello_seen && self.acked >= self.head && self.received >= self.stats.peer_head {
            self.stats.caught_up = true;
        }
    }

    async fn handle_hello(&mut self, h: Hello) -> Result<(), ProtocolError> {
        if self.hello_seen {
            return Err(ProtocolError::protocol("a second hello"));
        }
        if h.node != self.peer.node_id {
            return Err(ProtocolError::protocol(format!(
                "hello names node {}, but the certificate names {}",
                h.node, self.peer.node_id
            )));
        }
        if h.role != self.peer.role {
            return Err(ProtocolError::protocol(format!(
                "hello says {}, but the certificate says {}",
                h.role, self.peer.role
            )));
        }
        self.hello_seen = true;
        self.stats.peer_head = h.last_seq;
        let peer = self.peer_key.clone();
        // Where to resume our feed: the peer's word, if it refers to our current epoch.
        if let Some(FeedPos { epoch, seq }) = h.your_feed
            && epoch == self.local.epoch
        {
            self.acked = seq.min(self.head);
        } else {
            self.acked = 0;
            let p = peer.clone();
            self.store(move |s| db::reset_acked_by_peer(s, &p)).await?;
        }
        self.sent = self.acked;
        if h.epoch != self.their_epoch {
            // The peer's feed is new to us (first contact or a restored peer): start over.
            self.their_epoch = h.epoch;
            self.received = 0;
            let epoch = h.epoch;
            self.store(move |s| db::set_received(s, &peer, epoch, 0))
                .await?;
        }
        self.fill().await
    }

    async fn handle_changes(&mut self, batch: Changes) -> Result<(), ProtocolError> {
        let Changes {
            from_seq,
            up_to_seq,
            caught_up: _,
            entries,
        } = batch;
        if !self.hello_seen {
            return Err(ProtocolError::protocol("changes before hello"));
        }
        if from_seq > self.received {
            return Err(ProtocolError::protocol(format!(
                "feed gap: batch starts at {from_seq}, we have {}",
                self.received
            )));
        }
        self.stats.peer_head = self.stats.peer_head.max(up_to_seq);
        let (sender, hub) = (self.peer.clone(), self.local.hub);
        let (peer, epoch) = (self.peer_key.clone(), self.their_epoch);
        let filed = self
            .store(move |s| {
                let filed = db::file_batch(s, &sender, hub, entries)?;
                db::set_received(s, &peer, epoch, up_to_seq)?;
                Ok(filed)
            })
            .await?;
        self.received = self.received.max(up_to_seq);
        self.stats.changes_received += filed.stored;
        self.stats.rejected_from_peer += filed.rejected;
        if !filed.rejections.is_empty() {
            self.out
                .push_back(Message::Rejected(filed.rejections).encode());
        }
        self.out.push_back(Message::Ack(Ack { up_to_seq }).encode());
        self.update_caught_up();
        Ok(())
    }

    async fn handle_ack(&mut self, up_to_seq: u64) -> Result<(), ProtocolError> {
        if up_to_seq > self.sent {
            return Err(ProtocolError::protocol(format!(
                "ack of {up_to_seq}, beyond what was sent ({})",
                self.sent
            )));
        }
        while let Some(&(seq, n)) = self.inflight.front() {
            if seq > up_to_seq {
                break;
            }
            self.stats.changes_sent += n;
            self.inflight.pop_front();
        }
        if up_to_seq > self.acked {
            self.acked = up_to_seq;
            let peer = self.peer_key.clone();
            self.store(move |s| db::set_acked_by_peer(s, &peer, up_to_seq))
                .await?;
        }
        self.fill().await
    }
}

impl PeerProtocol for Feed {
    async fn handle_connected(&mut self) -> Result<(), ProtocolError> {
        let peer = self.peer_key.clone();
        let (cp, head) = self
            .store(move |s| Ok((db::checkpoint(s, &peer)?, db::feed_head(s)?)))
            .await?;
        self.their_epoch = cp.their_epoch;
        self.received = cp.received_seq;
        self.acked = cp.acked_by_peer;
        self.head = head;
        let your_feed = (cp.their_epoch != 0).then_some(FeedPos {
            epoch: cp.their_epoch,
            seq: cp.received_seq,
        });
        let hello = Hello {
            node: self.local.node_id,
            role: self.local.role,
            epoch: self.local.epoch,
            last_seq: head,
            your_feed,
            // The interim feed has no reconciliation to offer.
            want_reconcile: false,
        };
        self.out.push_back(Message::Hello(hello).encode());
        Ok(())
    }

    async fn handle_frame(&mut self, payload: Vec<u8>) -> Result<(), ProtocolError> {
        let msg = Message::decode(&payload).map_err(|e| match e {
            WireError::Version(_) => ProtocolError::new(CloseCode::Version, e.to_string()),
            other => ProtocolError::protocol(format!("malformed frame: {other}")),
        })?;
        match msg {
            Message::Hello(h) => self.handle_hello(h).await,
            Message::Changes(batch) => self.handle_changes(batch).await,
            Message::Ack(Ack { up_to_seq }) => self.handle_ack(up_to_seq).await,
            Message::Rejected(list) => {
                self.stats.rejected_by_peer += list.len() as u64;
                for r in list.iter().take(REJECTIONS_LOGGED_MAX) {
                    tracing::warn!(peer = %self.peer.node_id, doc = %r.doc, reason = %r.reason, detail = %r.detail, "the peer refused a change of ours");
                }
                Ok(())
            }
            Message::Error { code, detail } => Err(ProtocolError::new(
                CloseCode::Shutdown,
                format!("the peer ended the session ({code:?}): {detail}"),
            )),
            // Reconciliation belongs to the sync engine's session; the interim feed
            // neither asks for it nor answers it.
            other => {
                tracing::debug!(
                    kind = other.kind(),
                    "ignored a message the interim feed does not use"
                );
                Ok(())
            }
        }
    }

    async fn handle_local_change(&mut self, head: u64) -> Result<(), ProtocolError> {
        if head > self.head {
            self.head = head;
            self.stats.caught_up = self.stats.caught_up && self.acked >= head;
        }
        self.fill().await
    }

    async fn handle_timeout(&mut self, _now: Instant) -> Result<(), ProtocolError> {
        Ok(())
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn stats(&self) -> PeerStats {
        self.stats.clone()
    }
}
