//! The change feed's side of the store: per-peer checkpoints in `peers`, reading a
//! batch of the local feed in a peer's scope, and checking and filing a received batch.
//! These run on the store thread.

use std::collections::HashMap;

use automerge::{AutoCommit, Change};
use rusqlite::{OptionalExtension, params};
use yichuang_shared::case::CaseDoc;
use yichuang_shared::ids::{DocId, NodeId, Role};

use crate::net::tls::NodeIdentity;
use crate::store::{Store, StoreError, now_ms};
use yichuang_shared::wire::{ChangeEntry as Entry, ENTRIES_MAX, RejectReason, Rejection};

/// Feed rows scanned for one batch; out-of-scope rows are skipped but counted.
const SCAN_ROWS_MAX: usize = 2_048;

/// Where a peer stands with us, as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub their_epoch: u64,
    /// How far the peer acknowledged our feed.
    pub acked_by_peer: u64,
    /// How far we applied the peer's feed.
    pub received_seq: u64,
}

fn ensure_peer(store: &Store, peer: &str) -> Result<(), StoreError> {
    store.connection().execute(
        "INSERT INTO peers (peer) VALUES (?1) ON CONFLICT (peer) DO NOTHING",
        [peer],
    )?;
    Ok(())
}

pub fn checkpoint(store: &Store, peer: &str) -> Result<Checkpoint, StoreError> {
    let row: Option<(i64, i64, i64)> = store
        .connection()
        .query_row(
            "SELECT their_epoch, sent_seq, received_seq FROM peers WHERE peer = ?1",
            [peer],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row
        .map(|(e, s, r)| Checkpoint {
            their_epoch: e as u64,
            acked_by_peer: s as u64,
            received_seq: r as u64,
        })
        .unwrap_or_default())
}

pub fn set_acked_by_peer(store: &Store, peer: &str, seq: u64) -> Result<(), StoreError> {
    ensure_peer(store, peer)?;
    store.connection().execute(
        "UPDATE peers SET sent_seq = MAX(sent_seq, ?2), last_contact_ms = ?3 WHERE peer = ?1",
        params![peer, seq as i64, now_ms()],
    )?;
    Ok(())
}

/// The peer's feed epoch changed (it was restored from a backup): start its feed over.
pub fn set_received(store: &Store, peer: &str, epoch: u64, seq: u64) -> Result<(), StoreError> {
    ensure_peer(store, peer)?;
    store.connection().execute(
        "UPDATE peers SET their_epoch = ?2, received_seq = ?3, last_contact_ms = ?4 WHERE peer = ?1",
        params![peer, epoch as i64, seq as i64, now_ms()],
    )?;
    Ok(())
}

/// Our epoch changed under the peer: what it acknowledged refers to another feed.
pub fn reset_acked_by_peer(store: &Store, peer: &str) -> Result<(), StoreError> {
    ensure_peer(store, peer)?;
    store
        .connection()
        .execute("UPDATE peers SET sent_seq = 0 WHERE peer = ?1", [peer])?;
    Ok(())
}

pub fn feed_head(store: &Store) -> Result<u64, StoreError> {
    let head: i64 =
        store
            .connection()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                r.get(0)
            })?;
    Ok(head as u64)
}

/// Which cases a peer may see, from its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Center(String),
    Staff { staff: String, node: NodeId },
}

impl Scope {
    pub fn of(peer: &NodeIdentity) -> Scope {
        match peer.role {
            Role::Hub => Scope::All,
            Role::Center => Scope::Center(peer.center.clone()),
            Role::Laptop => Scope::Staff {
                staff: peer.staff.clone(),
                node: peer.node_id,
            },
        }
    }

    fn holds(&self, home: &str, current: &str, staff: &str, created_node: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Center(c) => home == c || current == c,
            Scope::Staff { staff: s, node } => {
                staff == s || created_node == Some(node.to_string().as_str())
            }
        }
    }
}

/// The next batch of our feed after `after` for a peer: `(up_to_seq, entries)`.
/// Changes the peer sent us, and cases outside its scope, are skipped but covered by
/// `up_to_seq`, so its acknowledgement moves past them.
pub fn read_batch(
    store: &Store,
    after: u64,
    peer: &str,
    scope: &Scope,
    entries_max: usize,
    bytes_max: usize,
) -> Result<(u64, Vec<Entry>), StoreError> {
    let mut stmt = store.connection().prepare_cached(
        "SELECT c.seq, c.doc_id, c.bytes, c.from_peer, ci.home_center, ci.current_center, ci.assigned_staff
         FROM changes c LEFT JOIN case_index ci ON ci.doc_id = c.doc_id
         WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after as i64, SCAN_ROWS_MAX as i64])?;
    let mut up_to = after;
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let doc: String = row.get(1)?;
        let from_peer: Option<String> = row.get(3)?;
        let in_scope = if doc.starts_with("ref-") {
            true
        } else {
            let home: Option<String> = row.get(4)?;
            let current: Option<String> = row.get(5)?;
            let staff: Option<String> = row.get(6)?;
            scope.holds(
                home.as_deref().unwrap_or(""),
                current.as_deref().unwrap_or(""),
                staff.as_deref().unwrap_or(""),
                None,
            )
        };
        if in_scope && from_peer.as_deref() != Some(peer) {
            let change: Vec<u8> = row.get(2)?;
            if !entries.is_empty()
                && (entries.len() >= entries_max || bytes + change.len() > bytes_max)
            {
                break;
            }
            bytes += change.len() + doc.len();
            let doc: DocId = doc
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("document id {doc:?}")))?;
            entries.push(Entry { doc, bytes: change });
        }
        up_to = seq as u64;
    }
    Ok((up_to, entries))
}

/// What became of a received batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filed {
    pub stored: u64,
    pub duplicate: u64,
    pub pending: u64,
    pub rejected: u64,
    /// What to tell the sender, at most [`ENTRIES_MAX`] (the rest are counted).
    pub rejections: Vec<Rejection>,
}

fn reject(
    store: &Store,
    filed: &mut Filed,
    doc: &DocId,
    changes: &[Change],
    sender: &NodeIdentity,
    why: RejectReason,
    reason: &str,
) -> Result<(), StoreError> {
    for c in changes {
        let author = NodeId::of_actor(c.actor_id())
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into());
        store.connection().execute(
            "INSERT INTO rejections (hash, doc_id, author, from_peer, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![c.hash().0.as_slice(), doc.as_str(), author, sender.node_id.to_string(), reason, now_ms()],
        )?;
    }
    filed.rejected += changes.len() as u64;
    tracing::warn!(peer = %sender.node_id, doc = %doc, changes = changes.len(), reason, "refused changes");
    for c in changes {
        if filed.rejections.len() < ENTRIES_MAX {
            filed.rejections.push(Rejection {
                doc: doc.clone(),
                hash: c.hash().0,
                reason: why,
                detail: reason.to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether `sender` may send these changes of a case: the case, with them applied,
/// must be in the sender's scope. A case whose changes cannot be read yet (missing
/// dependencies) is let through to wait in `pending`.
fn case_in_scope(
    store: &mut Store,
    doc: &DocId,
    changes: &[Change],
    scope: &Scope,
) -> Result<bool, StoreError> {
    if *scope == Scope::All {
        return Ok(true);
    }
    let mut scratch = match store.load_doc(doc) {
        Ok(d) => d,
        Err(StoreError::UnknownCase(_)) => AutoCommit::new(),
        Err(e) => return Err(e),
    };
    if scratch.apply_changes(changes.iter().cloned()).is_err() {
        return Ok(false);
    }
    match CaseDoc::from_automerge(scratch) {
        Ok(mut case) => {
            let v = case.view(false);
            Ok(scope.holds(
                &v.home_center,
                &v.current_center,
                &v.assigned_staff,
                Some(v.created_node.as_str()),
            ))
        }
        Err(_) => Ok(true),
    }
}

const OUT_OF_SCOPE: &str = "the case is outside the sender's scope";

/// Files a center's changes of a case if the case, with them, is the center's (home or
/// current center); `None` when it is not, with nothing filed. Runs inside the store
/// thread's group commit, so the filing nests as a savepoint in ours.
fn file_if_center_case(
    store: &mut Store,
    doc: &DocId,
    changes: Vec<Change>,
    peer: &str,
    center: &str,
) -> Result<Option<crate::store::Applied>, StoreError> {
    store.connection().execute_batch("SAVEPOINT scope_check")?;
    let applied = match store.apply_remote(doc, changes, Some(peer)) {
        Ok(a) => a,
        Err(e) => {
            let _ = store
                .connection()
                .execute_batch("ROLLBACK TO scope_check; RELEASE scope_check");
            store.evict_cached(doc);
            return Err(e);
        }
    };
    let row: Option<(String, String)> = store
        .connection()
        .query_row(
            "SELECT home_center, current_center FROM case_index WHERE doc_id = ?1",
            [doc.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    // No index row: the changes wait in `pending` for their dependencies.
    let in_scope = row.is_none_or(|(home, current)| home == center || current == center);
    if in_scope {
        store.connection().execute_batch("RELEASE scope_check")?;
        Ok(Some(applied))
    } else {
        store
            .connection()
            .execute_batch("ROLLBACK TO scope_check; RELEASE scope_check")?;
        store.evict_cached(doc);
        Ok(None)
    }
}

/// Checks and files a received batch, one document at a time.
pub fn file_batch(
    store: &mut Store,
    sender: &NodeIdentity,
    hub: Option<NodeId>,
    entries: Vec<Entry>,
) -> Result<Filed, StoreError> {
    let mut order: Vec<DocId> = Vec::new();
    let mut by_doc: HashMap<DocId, Vec<Vec<u8>>> = HashMap::new();
    for e in entries {
        if !by_doc.contains_key(&e.doc) {
            order.push(e.doc.clone());
        }
        by_doc.entry(e.doc).or_default().push(e.bytes);
    }
    let scope = Scope::of(sender);
    let peer = sender.node_id.to_string();
    let mut filed = Filed::default();
    for doc in order {
        let raw = by_doc.remove(&doc).unwrap_or_default();
        let mut changes = Vec::with_capacity(raw.len());
        let mut malformed = 0;
        for bytes in raw {
            match Change::from_bytes(bytes) {
                Ok(c) => changes.push(c),
                Err(_) => malformed += 1,
            }
        }
        if malformed > 0 {
            filed.rejected += malformed;
            tracing::warn!(peer = %sender.node_id, doc = %doc, malformed, "refused changes that do not decode");
            // A change that does not decode has no hash to name it by.
            filed.rejections.push(Rejection {
                doc: doc.clone(),
                hash: [0; yichuang_shared::wire::HASH_BYTES],
                reason: RejectReason::Malformed,
                detail: format!("{malformed} changes do not decode"),
            });
        }
        if changes.is_empty() {
            continue;
        }
        if doc.reference().is_some() {
            let hub_written = changes.iter().all(|c| {
                NodeId::of_actor(c.actor_id()).is_some_and(|n| n == NodeId::SEED || Some(n) == hub)
            });
            if !hub_written {
                reject(
                    store,
                    &mut filed,
                    &doc,
                    &changes,
                    sender,
                    RejectReason::ReferenceDoc,
                    "reference documents are written only by the hub",
                )?;
                continue;
            }
        } else if let Scope::Center(center) = &scope {
            // File first, inside a savepoint, then ask the index the filing just wrote
            // where the case lives; out of scope rolls the filing back. This costs one
            // apply instead of two on the hub's busiest path (a center's backlog).
            match file_if_center_case(store, &doc, changes.clone(), &peer, center)? {
                Some(applied) => {
                    filed.stored += applied.stored as u64;
                    filed.duplicate += applied.duplicate as u64;
                    filed.pending += applied.pending as u64;
                }
                None => reject(
                    store,
                    &mut filed,
                    &doc,
                    &changes,
                    sender,
                    RejectReason::NotPermitted,
                    OUT_OF_SCOPE,
                )?,
            }
            continue;
        } else if !case_in_scope(store, &doc, &changes, &scope)? {
            reject(
                store,
                &mut filed,
                &doc,
                &changes,
                sender,
                RejectReason::NotPermitted,
                OUT_OF_SCOPE,
            )?;
            continue;
        }
        let applied = store.apply_remote(&doc, changes, Some(&peer))?;
        filed.stored += applied.stored as u64;
        filed.duplicate += applied.duplicate as u64;
        filed.pending += applied.pending as u64;
    }
    Ok(filed)
}
