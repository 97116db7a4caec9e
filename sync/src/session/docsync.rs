//! Per-document Automerge sync: the sync state per document, the queue of documents
//! awaiting a sync and the limit on those in flight, answering the peer's sync
//! messages (applying their changes, asking for parked changes' missing history),
//! owed syncs recorded in the store, and documents that departed the peer's scope.

use std::collections::{BTreeSet, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use yichuang_shared::ids::DocId;
use yichuang_shared::wire::{DocSyncEntry, Message};

use super::{
    DOC_SYNC_BATCH_MAX_BYTES, DOC_SYNC_MESSAGES_MAX, DOC_SYNCS_IN_FLIGHT_MAX, ENTRY_MAX_BYTES,
    ENTRY_OVERHEAD_BYTES, Session, SessionError, SessionEvent, st,
};
use crate::apply::apply_changes;
use crate::store::Store;

#[derive(Debug)]
pub(super) struct DocSyncState {
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

impl Session {
    pub(super) fn clear_departed<S: Store>(
        &mut self,
        doc: &DocId,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if self.departed.remove(doc) {
            st(store.set_departed(self.config.peer, doc, false))?;
        }
        Ok(())
    }

    pub(super) fn queue_doc_sync(&mut self, doc: &DocId) {
        let busy = self.doc_syncs.get(doc).is_some_and(|d| d.awaiting);
        if !busy && self.queued.insert(doc.clone()) {
            self.doc_sync_queue.push_back(doc.clone());
        }
    }

    /// Opens queued per-document syncs while fewer than the limit await answers.
    pub(super) fn pump_doc_syncs<S: Store>(
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

    pub(super) fn on_doc_sync<S: Store>(
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

    pub(super) fn on_departed<S: Store>(
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
}
