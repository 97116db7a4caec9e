//! The change feed both ways: sending batches of our stored changes within the
//! window of unacknowledged batches, taking the peer's acknowledgements, storing the
//! peer's batches in order and acknowledging them, and reporting what was applied
//! or refused.

use std::collections::HashMap;

use yichuang_shared::ids::DocId;
use yichuang_shared::wire::{Ack, ChangeEntry, Changes, FeedPos, Message, Rejection};

use super::{
    ENTRY_MAX_BYTES, ENTRY_OVERHEAD_BYTES, FEED_BATCH_MAX_BYTES, FEED_READ_CHUNK,
    FEED_SCAN_MAX_ENTRIES, FEED_WINDOW_BATCHES, Session, SessionError, SessionEvent, st,
};
use crate::apply::apply_changes;
use crate::store::Store;

impl Session {
    /// Sends feed batches while the window has room.
    pub(super) fn pump_feed<S: Store>(
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

    pub(super) fn on_ack<S: Store>(
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

    pub(super) fn on_changes<S: Store>(
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

    pub(super) fn report(
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
}
