//! Changes that arrive from other nodes: applied to the document, filed durably,
//! indexed; changes whose dependencies are missing wait in `pending`, never dropped.

use automerge::{AutoCommit, Change};
use rusqlite::{Connection, params};
use yichuang_shared::case::CaseDoc;
use yichuang_shared::case::timeline::skew_notes;
use yichuang_shared::ids::DocId;

use super::cases::{index_case, stamp_at};
use super::docs::{fresh_doc, kind_of_doc, write_changes};
use super::{Store, StoreError, Tx, now_ms};

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
        let (mut last_seq, _) = write_changes(
            &tx,
            doc_id,
            kind_of_doc(doc_id),
            &stored,
            doc,
            from_peer,
            now,
        )?;
        if doc_id.is_case() {
            let mut case = CaseDoc::from_automerge(doc.clone())?;
            // Events stamped in this node's future: record their receipt, the evidence
            // every node's clock rule reads (see `case::clock`).
            let notes = skew_notes(&case.timeline(), &self.settings.node_id.to_string(), now);
            if !notes.is_empty() {
                case.set_actor(self.actor.clone());
                let before = case.heads();
                for note in &notes {
                    let stamp = stamp_at(&tx, self.settings.node_id, SKEW_NOTE_CLERK, now)?;
                    case.note_clock_skew(&stamp, note)?;
                }
                tracing::warn!(doc = %doc_id, events = notes.len(), "received events stamped in this node's future");
                let own = case.automerge().get_changes(&before);
                *doc = case.automerge().clone();
                last_seq = write_changes(&tx, doc_id, "case", &own, doc, None, now)?.0;
            }
            index_case(&tx, doc_id, &case.view(false), &rules, now)?;
        }
        let owned = (!exists).then(|| doc.clone());
        tx.commit()?;
        match owned {
            Some(d) => self.cache.put(doc_id.clone(), d, last_seq),
            None => self.cache.set_last_seq(doc_id, last_seq),
        }
        Ok(report)
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
