//! Changes that arrive from other nodes: applied to the document, filed durably,
//! indexed; changes whose dependencies are missing wait in `pending`, never dropped.

use automerge::{ActorId, AutoCommit, Change};
use rusqlite::{Connection, OptionalExtension, params};
use yichuang_shared::case::CaseDoc;
use yichuang_shared::case::timeline::skew_notes;
use yichuang_shared::ids::{DocId, NodeId};
use yichuang_sync::store::DocWrite;

use super::cases::{index_case, stamp_at};
use super::docs::{fresh_doc, kind_of_doc, write_changes};
use super::{RulesContext, Store, StoreError, Tx, now_ms};

/// The clerk named on receipts the node records by itself.
const SKEW_NOTE_CLERK: &str = "system";

/// What became of a batch of remote changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes new to this node and now part of the document.
    pub stored: usize,
    /// Changes this node already had.
    pub duplicate: usize,
    /// Changes waiting for a dependency this node does not have yet.
    pub pending: usize,
}

fn doc_exists(conn: &Connection, id: &DocId) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM docs WHERE doc_id = ?1)",
        [id.as_str()],
        |r| r.get(0),
    )?)
}

impl Store {
    /// Applies changes of one document received from `from_peer`, in one transaction.
    /// Whatever was waiting in `pending` for this document is retried with them.
    pub fn apply_remote(
        &mut self,
        doc_id: &DocId,
        changes: Vec<Change>,
        from_peer: Option<&str>,
    ) -> Result<Applied, StoreError> {
        self.apply_remote_at(doc_id, changes, from_peer, now_ms())
    }

    /// [`Store::apply_remote`] at a given reading of this node's clock: the time the
    /// changes were received, which dates the receipts of events stamped in its future.
    pub fn apply_remote_at(
        &mut self,
        doc_id: &DocId,
        changes: Vec<Change>,
        from_peer: Option<&str>,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let result = self.apply_remote_inner(doc_id, changes, from_peer, now);
        if result.is_err() {
            self.cache.evict(doc_id);
        }
        result
    }

    fn apply_remote_inner(
        &mut self,
        doc_id: &DocId,
        changes: Vec<Change>,
        from_peer: Option<&str>,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let rules = self.rules_context()?;
        let tx = Tx::begin(&self.conn, self.in_group)?;
        let mut waiting: Vec<Change> = {
            let mut stmt = tx.prepare_cached("SELECT bytes FROM pending WHERE doc_id = ?1")?;
            let rows = stmt.query_map([doc_id.as_str()], |r| r.get::<_, Vec<u8>>(0))?;
            let mut out = Vec::new();
            for bytes in rows {
                out.push(
                    Change::from_bytes(bytes?)
                        .map_err(|e| StoreError::Corrupt(format!("pending change: {e}")))?,
                );
            }
            out
        };
        waiting.extend(changes);
        let exists = doc_exists(&tx, doc_id)?;
        let mut fresh_holder;
        let doc: &mut AutoCommit = if exists {
            fresh_doc(&tx, &mut self.cache, doc_id)?
        } else {
            fresh_holder = AutoCommit::new();
            &mut fresh_holder
        };
        let mut report = Applied::default();
        let mut new_changes = Vec::new();
        let mut known = std::collections::HashSet::new();
        for c in &waiting {
            if !known.insert(c.hash()) {
                continue;
            }
            if doc.get_change_by_hash(&c.hash()).is_some() {
                report.duplicate += 1;
            } else {
                new_changes.push(c.clone());
            }
        }
        doc.apply_changes(new_changes.iter().cloned())?;
        let mut stored = Vec::new();
        tx.execute("DELETE FROM pending WHERE doc_id = ?1", [doc_id.as_str()])?;
        for c in new_changes {
            if doc.get_change_by_hash(&c.hash()).is_some() {
                stored.push(c);
            } else {
                tx.execute(
                    "INSERT OR IGNORE INTO pending (hash, doc_id, bytes, from_peer, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![c.hash().0.as_slice(), doc_id.as_str(), c.raw_bytes(), from_peer, now],
                )?;
                report.pending += 1;
            }
        }
        report.stored = stored.len();
        if stored.is_empty() {
            tx.commit()?;
            return Ok(report);
        }
        if !exists && doc_id.is_case() {
            // A new case must be a case document before it is filed as one.
            CaseDoc::from_automerge(doc.clone())?;
        }
        let mut last_seq = write_changes(
            &tx,
            doc_id,
            kind_of_doc(doc_id),
            &stored,
            doc,
            from_peer,
            now,
        )?
        .0;
        if doc_id.is_case() {
            // Moved into the case and back; on an error the caller evicts the entry.
            let mut case = CaseDoc::from_automerge(std::mem::take(doc))?;
            let me = (self.settings.node_id, &self.actor);
            let case_ref = (&mut case, true);
            last_seq = Self::receipt_and_index(&tx, me, doc_id, case_ref, &rules, now)?
                .unwrap_or(last_seq);
            *doc = case.into_automerge();
        }
        let owned = (!exists).then(|| doc.clone());
        tx.commit()?;
        match owned {
            Some(d) => self.cache.put(doc_id.clone(), d, last_seq),
            None => self.cache.set_last_seq(doc_id, last_seq),
        }
        Ok(report)
    }

    /// After a case's received changes are filed: records the receipt of events
    /// stamped in this node's future (the evidence every node's clock rule reads, see
    /// `case::clock`) and re-indexes the case. Returns the new last sequence number
    /// when receipts were written. `doc` is updated to the document with them.
    /// `fields_may_conflict` false: the caller knows the history is one chain.
    fn receipt_and_index(
        tx: &Tx<'_>,
        (me, actor): (NodeId, &ActorId),
        doc_id: &DocId,
        (case, fields_may_conflict): (&mut CaseDoc, bool),
        rules: &RulesContext,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let timeline = case.timeline();
        let notes = skew_notes(&timeline, &me.to_string(), now);
        let mut last_seq = None;
        let timeline = if notes.is_empty() {
            timeline
        } else {
            case.set_actor(actor.clone());
            let before = case.heads();
            for note in &notes {
                let stamp = stamp_at(tx, me, SKEW_NOTE_CLERK, now)?;
                case.note_clock_skew(&stamp, note)?;
            }
            tracing::warn!(doc = %doc_id, events = notes.len(), "received events stamped in this node's future");
            let own = case.automerge().get_changes(&before);
            let doc = case.automerge();
            last_seq = Some(write_changes(tx, doc_id, "case", &own, doc, None, now)?.0);
            case.timeline()
        };
        let view = case.view_of(false, timeline, fields_may_conflict);
        index_case(tx, doc_id, &view, rules, now)?;
        Ok(last_seq)
    }

    /// Files what the sync engine did to one document, in one transaction: its newly
    /// applied changes (numbered in the feed, the document row and snapshot, the case
    /// index), the changes parked for missing dependencies and those leaving the
    /// pending set, and the refused ones in the rejection log (each change once).
    pub fn write_synced(&mut self, w: DocWrite<'_>) -> Result<(), StoreError> {
        let doc_id = w.doc_id.clone();
        let result = self.write_synced_inner(w);
        if result.is_err() {
            self.cache.evict(&doc_id);
        }
        result
    }

    fn write_synced_inner(&mut self, w: DocWrite<'_>) -> Result<(), StoreError> {
        let rules = self.rules_context()?;
        let tx = Tx::begin(&self.conn, self.in_group)?;
        let doc_id = w.doc_id;
        let from_peer = w.from_peer.map(|p| p.to_string());
        let now = w.now_ms;
        {
            let mut unpark = tx.prepare_cached("DELETE FROM pending WHERE hash = ?1")?;
            for h in &w.unparked {
                unpark.execute([h.0.as_slice()])?;
            }
            let mut park = tx.prepare_cached(
                "INSERT OR IGNORE INTO pending (hash, doc_id, bytes, from_peer, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for c in &w.parked {
                park.execute(params![
                    c.hash().0.as_slice(),
                    doc_id.as_str(),
                    c.raw_bytes(),
                    from_peer,
                    now
                ])?;
            }
            let mut reject = tx.prepare_cached(
                "INSERT INTO rejections (hash, doc_id, author, from_peer, reason, at_ms, detail)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                 WHERE NOT EXISTS (SELECT 1 FROM rejections WHERE doc_id = ?2 AND hash = ?1)",
            )?;
            for r in &w.rejected {
                let author = NodeId::of_actor(&ActorId::from(r.actor.as_slice()))
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unknown".into());
                reject.execute(params![
                    r.hash.0.as_slice(),
                    doc_id.as_str(),
                    author,
                    from_peer,
                    r.reason.as_str(),
                    now,
                    r.detail
                ])?;
            }
        }
        if w.applied.is_empty() {
            tx.commit()?;
            return Ok(());
        }
        let fields_may_conflict = !Self::extends_one_chain(&tx, doc_id, &w.applied)?;
        let mut doc = w.doc;
        let mut last_seq = write_changes(
            &tx,
            doc_id,
            kind_of_doc(doc_id),
            &w.applied,
            &mut doc,
            from_peer.as_deref(),
            now,
        )?
        .0;
        if doc_id.is_case() {
            // The document moves into the case and back: no copy on this hot path.
            doc = match CaseDoc::from_automerge(doc) {
                Ok(mut case) => {
                    let me = (self.settings.node_id, &self.actor);
                    let case_ref = (&mut case, fields_may_conflict);
                    last_seq = Self::receipt_and_index(&tx, me, doc_id, case_ref, &rules, now)?
                        .unwrap_or(last_seq);
                    case.into_automerge()
                }
                // Kept like every accepted change, but not listed: a document the hub
                // wrote that no version of this program reads as a case. Not cached:
                // the next read loads it from disk.
                Err(e) => {
                    tracing::warn!(doc = %doc_id, error = %e, "a synced document is not a readable case");
                    tx.commit()?;
                    self.cache.evict(doc_id);
                    return Ok(());
                }
            };
        }
        tx.commit()?;
        self.cache.put(doc_id.clone(), doc, last_seq);
        Ok(())
    }

    /// Whether a case had no field conflict before and `applied` continues its history
    /// as one chain (each change depends on exactly the heads before it): then no two
    /// of its changes were ever concurrent, and no field can hold two values.
    fn extends_one_chain(
        conn: &rusqlite::Connection,
        doc_id: &DocId,
        applied: &[Change],
    ) -> Result<bool, StoreError> {
        let row: Option<(Vec<u8>, Option<i64>)> = conn
            .prepare_cached(
                "SELECT d.heads, ci.conflicts FROM docs d LEFT JOIN case_index ci ON ci.doc_id = d.doc_id
                 WHERE d.doc_id = ?1",
            )?
            .query_row([doc_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let mut tip: Vec<&[u8]> = match &row {
            None => Vec::new(),
            Some((heads, Some(0))) => heads.chunks_exact(32).collect(),
            // Conflicts already, or a document the index does not read as a case.
            Some(_) => return Ok(false),
        };
        tip.sort_unstable();
        let mut hash;
        for c in applied {
            let mut deps: Vec<&[u8]> = c.deps().iter().map(|h| h.0.as_slice()).collect();
            deps.sort_unstable();
            if deps != tip {
                return Ok(false);
            }
            hash = c.hash();
            tip = vec![hash.0.as_slice()];
        }
        Ok(true)
    }

    /// Changes waiting for dependencies, across all documents.
    pub fn pending_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM pending", [], |r| r.get(0))?)
    }

    /// The changes of a document this node holds that `have` does not (by heads).
    pub fn changes_since(
        &mut self,
        doc_id: &DocId,
        have: &[automerge::ChangeHash],
    ) -> Result<Vec<Change>, StoreError> {
        let doc = fresh_doc(&self.conn, &mut self.cache, doc_id)?;
        Ok(doc.get_changes(have))
    }
}
