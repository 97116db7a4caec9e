//! The handshake: checking the peer's hello against the registry, deciding where
//! each feed resumes and whether the session reconciles, and starting the feed,
//! the owed and parked-change document syncs and the first reconciliation round.

use yichuang_shared::wire::{FeedPos, Hello};

use super::{PENDING_REPAIR_MAX, Phase, Recon, Session, SessionError, SessionEvent, st};
use crate::rules::Scope;
use crate::store::Store;

impl Session {
    pub(super) fn on_hello<S: Store>(
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
}
