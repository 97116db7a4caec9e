//! The sync engine's store boundary ([`yichuang_sync::Store`]) on this SQLite store:
//! the change log is the feed, `docs` and `case_index` give heads and routing,
//! `peers` the checkpoints, `peer_docs` the owed syncs and departures, `pending`
//! and `rejections` what the engine parks and refuses.
//!
//! The engine runs on the store thread (every call of a session is one closure
//! there), so these methods are plain blocking SQLite calls.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use automerge::{AutoCommit, ChangeHash};
use rusqlite::{OptionalExtension, params};
use yichuang_shared::case::Routing;
use yichuang_shared::ids::{DocId, NodeId, Role};
use yichuang_shared::wire::FeedPos;
use yichuang_sync::store::{DocMeta, DocWrite, FeedEntry, NodeInfo, PeerCheckpoint};
use yichuang_sync::{Scope, Store as SyncStoreTrait};

use super::docs::fresh_doc;
use super::{Store, StoreError, now_ms};

/// Nodes known without the registry: this node, its hub, and peers whose district
/// certificates were just verified (a center that has not yet received the registry
/// still knows the hub that dials it). The registry's revocations override them.
pub type KnownNodes = HashMap<NodeId, NodeInfo>;

/// What a node's settings say about the node itself, for the write rules.
pub fn info_of(role: Role, center: &str, staff: &str) -> NodeInfo {
    match role {
        Role::Hub => NodeInfo::hub(),
        Role::Center => NodeInfo::center(center),
        Role::Laptop => NodeInfo::laptop(center, staff),
    }
}

/// The SQLite store seen through the sync engine's trait, for the length of one call.
/// The store sits in a cell because the trait reads through `&self` while loading a
/// document goes through the store's cache of hot documents.
pub struct SyncStore<'a> {
    store: RefCell<&'a mut Store>,
    known: &'a KnownNodes,
}

impl<'a> SyncStore<'a> {
    pub fn new(store: &'a mut Store, known: &'a KnownNodes) -> SyncStore<'a> {
        SyncStore {
            store: RefCell::new(store),
            known,
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse_doc(text: &str) -> Result<DocId, StoreError> {
    text.parse()
        .map_err(|_| corrupt(format!("document id {text:?}")))
}

fn parse_node(text: &str) -> Result<NodeId, StoreError> {
    text.parse()
        .map_err(|_| corrupt(format!("node id {text:?}")))
}

fn decode_heads(blob: &[u8]) -> Result<Vec<ChangeHash>, StoreError> {
    if !blob.len().is_multiple_of(32) {
        return Err(corrupt("stored heads are not whole hashes"));
    }
    Ok(blob
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            ChangeHash(h)
        })
        .collect())
}

fn routing(
    home: Option<String>,
    current: Option<String>,
    staff: Option<String>,
) -> Option<Routing> {
    Some(Routing {
        home_center: home?,
        current_center: current?,
        assigned_staff: staff?,
    })
}

/// An epoch is a random u64 kept in an INTEGER column bit for bit.
fn epoch_col(e: u64) -> i64 {
    e as i64
}

impl SyncStoreTrait for SyncStore<'_> {
    type Error = StoreError;

    fn feed_epoch(&self) -> Result<u64, StoreError> {
        self.store.borrow().feed_epoch()
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        self.store.borrow().feed_head()
    }

    fn changes_after(
        &self,
        after_seq: u64,
        max_entries: usize,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let mut entries = self.feed_after(after_seq, max_entries, &Scope::All)?;
        for e in &mut entries {
            e.in_scope = None;
        }
        Ok(entries)
    }

    fn feed_after(
        &self,
        after_seq: u64,
        max_entries: usize,
        scope: &Scope,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        // The scope is decided in the query, against the case index, so a center's
        // session scanning the hub's feed reads one row per change and the bytes of
        // only the changes it sends. Same rule as `Scope::includes`.
        const REFS: &str = "substr(c.doc_id, 1, 4) = 'ref-'";
        let (cond, arg) = match scope {
            Scope::All => ("1".to_owned(), None),
            Scope::Center(x) if !x.is_empty() => (
                format!("({REFS} OR ci.home_center = ?3 OR ci.current_center = ?3)"),
                Some(x.as_str()),
            ),
            Scope::Staff(x) if !x.is_empty() => (
                format!("({REFS} OR ci.assigned_staff = ?3)"),
                Some(x.as_str()),
            ),
            Scope::Center(_) | Scope::Staff(_) => (REFS.to_owned(), None),
        };
        let sql = format!(
            "SELECT c.seq, c.doc_id, c.from_peer, CASE WHEN {cond} THEN c.bytes END,
                    c.routing_changed, {cond}
             FROM changes c LEFT JOIN case_index ci ON ci.doc_id = c.doc_id
             WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2"
        );
        let store = self.store.borrow();
        let mut stmt = store.conn.prepare_cached(&sql)?;
        let mut rows = match arg {
            Some(a) => stmt.query(params![after_seq as i64, max_entries as i64, a])?,
            None => stmt.query(params![after_seq as i64, max_entries as i64])?,
        };
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let from_peer: Option<String> = row.get(2)?;
            out.push(FeedEntry {
                seq: row.get::<_, i64>(0)? as u64,
                doc: parse_doc(&row.get::<_, String>(1)?)?,
                from_peer: from_peer.as_deref().map(parse_node).transpose()?,
                bytes: row.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                routing_changed: row.get::<_, i64>(4)? != 0,
                in_scope: Some(row.get::<_, i64>(5)? != 0),
            });
        }
        Ok(out)
    }

    fn node_info(&self, node: NodeId) -> Result<Option<NodeInfo>, StoreError> {
        let registry = self.store.borrow().registry_now()?;
        if registry.revoked.contains_key(&node) {
            return Ok(None);
        }
        if let Some(info) = self.known.get(&node) {
            return Ok(Some(info.clone()));
        }
        Ok(registry
            .nodes
            .get(&node)
            .map(|r| info_of(r.role, &r.center, &r.staff)))
    }

    fn doc_meta(&self, doc: &DocId) -> Result<Option<DocMeta>, StoreError> {
        type Row = (Vec<u8>, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> = self
            .store
            .borrow()
            .conn
            .prepare_cached(
                "SELECT d.heads, ci.home_center, ci.current_center, ci.assigned_staff
                 FROM docs d LEFT JOIN case_index ci ON ci.doc_id = d.doc_id
                 WHERE d.doc_id = ?1",
            )?
            .query_row([doc.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        row.map(|(heads, home, current, staff)| {
            Ok(DocMeta {
                heads: decode_heads(&heads)?,
                routing: routing(home, current, staff),
            })
        })
        .transpose()
    }

    fn load_doc(&self, doc: &DocId) -> Result<Option<AutoCommit>, StoreError> {
        let mut store = self.store.borrow_mut();
        let store = &mut **store;
        match fresh_doc(&store.conn, &mut store.cache, doc) {
            Ok(d) => Ok(Some(d.clone())),
            Err(StoreError::UnknownCase(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn docs_in_scope(&self, scopes: &[Scope]) -> Result<Vec<(DocId, Vec<ChangeHash>)>, StoreError> {
        // The narrowest scope picks the rows with an index; the rest filter in memory.
        let narrow = scopes.iter().find(|s| **s != Scope::All);
        let (sql, arg) = match narrow {
            None => (
                "SELECT d.doc_id, d.heads, ci.home_center, ci.current_center, ci.assigned_staff
                 FROM docs d LEFT JOIN case_index ci ON ci.doc_id = d.doc_id
                 ORDER BY d.doc_id",
                None,
            ),
            Some(Scope::Center(c)) => (
                "SELECT d.doc_id, d.heads, ci.home_center, ci.current_center, ci.assigned_staff
                 FROM docs d LEFT JOIN case_index ci ON ci.doc_id = d.doc_id
                 WHERE d.kind != 'case' OR ci.home_center = ?1 OR ci.current_center = ?1
                 ORDER BY d.doc_id",
                Some(c.as_str()),
            ),
            Some(Scope::Staff(s)) => (
                "SELECT d.doc_id, d.heads, ci.home_center, ci.current_center, ci.assigned_staff
                 FROM docs d LEFT JOIN case_index ci ON ci.doc_id = d.doc_id
                 WHERE d.kind != 'case' OR ci.assigned_staff = ?1
                 ORDER BY d.doc_id",
                Some(s.as_str()),
            ),
            Some(Scope::All) => unreachable!("filtered above"),
        };
        let store = self.store.borrow();
        let mut stmt = store.conn.prepare_cached(sql)?;
        let mut rows = match arg {
            Some(a) => stmt.query([a])?,
            None => stmt.query([])?,
        };
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id = parse_doc(&row.get::<_, String>(0)?)?;
            let r = routing(row.get(2)?, row.get(3)?, row.get(4)?);
            if scopes.iter().all(|s| s.includes(&id, r.as_ref())) {
                out.push((id, decode_heads(&row.get::<_, Vec<u8>>(1)?)?));
            }
        }
        Ok(out)
    }

    fn pending(&self, doc: &DocId) -> Result<Vec<Vec<u8>>, StoreError> {
        let store = self.store.borrow();
        let mut stmt = store
            .conn
            .prepare_cached("SELECT bytes FROM pending WHERE doc_id = ?1 ORDER BY at_ms, hash")?;
        let rows = stmt.query_map([doc.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn pending_docs(&self, max: usize) -> Result<Vec<DocId>, StoreError> {
        let store = self.store.borrow();
        let mut stmt = store
            .conn
            .prepare_cached("SELECT DISTINCT doc_id FROM pending ORDER BY doc_id LIMIT ?1")?;
        let rows = stmt.query_map([max as i64], |r| r.get::<_, String>(0))?;
        rows.map(|r| parse_doc(&r?)).collect()
    }

    fn write_doc(&mut self, write: DocWrite<'_>) -> Result<(), StoreError> {
        self.store.get_mut().write_synced(write)
    }

    fn checkpoint(&self, peer: NodeId) -> Result<Option<PeerCheckpoint>, StoreError> {
        type Row = (Option<i64>, i64, Option<i64>, i64, i64, Option<i64>);
        let row: Option<Row> = self
            .store
            .borrow()
            .conn
            .prepare_cached(
                "SELECT recv_epoch, received_seq, sent_epoch, sent_seq, reconcile_due, reconciled_at_ms
                 FROM peers WHERE peer = ?1",
            )?
            .query_row([peer.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .optional()?;
        Ok(row.map(|(re, rs, se, ss, due, at)| PeerCheckpoint {
            recv: re.map(|e| FeedPos {
                epoch: e as u64,
                seq: rs as u64,
            }),
            sent: se.map(|e| FeedPos {
                epoch: e as u64,
                seq: ss as u64,
            }),
            reconcile_due: due != 0,
            reconciled_at_ms: at,
        }))
    }

    fn set_checkpoint(&mut self, peer: NodeId, cp: &PeerCheckpoint) -> Result<(), StoreError> {
        // `their_epoch` stays in step for the status page, which reads the old columns.
        self.store.get_mut().conn.prepare_cached(
            "INSERT INTO peers (peer, their_epoch, received_seq, recv_epoch, sent_seq, sent_epoch,
                 reconcile_due, reconciled_at_ms, last_contact_ms)
             VALUES (?1, COALESCE(?3, 0), ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (peer) DO UPDATE SET their_epoch = COALESCE(?3, 0), received_seq = ?2,
                 recv_epoch = ?3, sent_seq = ?4, sent_epoch = ?5, reconcile_due = ?6,
                 reconciled_at_ms = ?7, last_contact_ms = ?8",
        )?
        .execute(params![
            peer.to_string(),
            cp.recv.map_or(0, |p| p.seq as i64),
            cp.recv.map(|p| epoch_col(p.epoch)),
            cp.sent.map_or(0, |p| p.seq as i64),
            cp.sent.map(|p| epoch_col(p.epoch)),
            cp.reconcile_due,
            cp.reconciled_at_ms,
            now_ms(),
        ])?;
        Ok(())
    }

    fn owed_syncs(&self, peer: NodeId, max: usize) -> Result<Vec<DocId>, StoreError> {
        let store = self.store.borrow();
        let mut stmt = store.conn.prepare_cached(
            "SELECT doc_id FROM peer_docs WHERE peer = ?1 AND owed_sync = 1 ORDER BY doc_id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![peer.to_string(), max as i64], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|r| parse_doc(&r?)).collect()
    }

    fn set_owed_sync(&mut self, peer: NodeId, doc: &DocId, owed: bool) -> Result<(), StoreError> {
        self.set_peer_doc(peer, doc, "owed_sync", owed)
    }

    fn departed(&self, peer: NodeId) -> Result<BTreeSet<DocId>, StoreError> {
        let store = self.store.borrow();
        let mut stmt = store
            .conn
            .prepare_cached("SELECT doc_id FROM peer_docs WHERE peer = ?1 AND departed = 1")?;
        let rows = stmt.query_map([peer.to_string()], |r| r.get::<_, String>(0))?;
        rows.map(|r| parse_doc(&r?)).collect()
    }

    fn set_departed(
        &mut self,
        peer: NodeId,
        doc: &DocId,
        departed: bool,
    ) -> Result<(), StoreError> {
        self.set_peer_doc(peer, doc, "departed", departed)
    }
}

impl Store {
    /// The newest change sequence number: the head of this node's feed.
    pub fn feed_head(&self) -> Result<u64, StoreError> {
        let seq: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")?
            .query_row([], |r| r.get(0))?;
        Ok(seq as u64)
    }
}

impl SyncStore<'_> {
    /// Sets one flag of a (peer, document) row; a row with no flag left is removed.
    fn set_peer_doc(
        &mut self,
        peer: NodeId,
        doc: &DocId,
        column: &'static str,
        on: bool,
    ) -> Result<(), StoreError> {
        let conn = &self.store.get_mut().conn;
        let (peer, doc) = (peer.to_string(), doc.as_str());
        conn.prepare_cached(&format!(
            "INSERT INTO peer_docs (peer, doc_id, {column}) VALUES (?1, ?2, ?3)
             ON CONFLICT (peer, doc_id) DO UPDATE SET {column} = ?3"
        ))?
        .execute(params![peer, doc, on])?;
        conn.prepare_cached(
            "DELETE FROM peer_docs WHERE peer = ?1 AND doc_id = ?2 AND departed = 0 AND owed_sync = 0",
        )?
        .execute(params![peer, doc])?;
        Ok(())
    }
}
