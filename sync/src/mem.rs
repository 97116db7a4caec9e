//! An in-memory [`Store`] for simulations, tests and benchmarks: pure data, no I/O.
//! It behaves like the SQLite store (a numbered change log, docs, checkpoints,
//! pending and rejection tables, a feed epoch) and can be cloned as a backup.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::convert::Infallible;

use automerge::{AutoCommit, Change, ChangeHash};
use yichuang_shared::ids::{DocId, NodeId};

use crate::apply::meta_of;
use crate::rules::Scope;
use crate::store::{DocMeta, DocWrite, FeedEntry, NodeInfo, PeerCheckpoint, RejectedChange, Store};

/// One row of the change log.
#[derive(Clone, Debug)]
pub struct MemChange {
    pub seq: u64,
    pub doc: DocId,
    pub hash: ChangeHash,
    pub from_peer: Option<NodeId>,
    pub bytes: Vec<u8>,
    pub at_ms: i64,
    pub routing_changed: bool,
}

/// One row of the rejection log.
#[derive(Clone, Debug)]
pub struct MemRejection {
    pub doc: DocId,
    pub change: RejectedChange,
    pub from_peer: Option<NodeId>,
    pub at_ms: i64,
}

#[derive(Clone, Debug)]
struct MemDoc {
    doc: AutoCommit,
    meta: DocMeta,
}

/// The in-memory store. Cloning it takes a backup.
#[derive(Clone, Debug)]
pub struct MemStore {
    epoch: u64,
    registry: HashMap<NodeId, NodeInfo>,
    log: Vec<MemChange>,
    hashes: HashSet<ChangeHash>,
    docs: BTreeMap<DocId, MemDoc>,
    pending: BTreeMap<DocId, BTreeMap<ChangeHash, Vec<u8>>>,
    rejections: Vec<MemRejection>,
    rejected_hashes: HashSet<(DocId, ChangeHash)>,
    checkpoints: HashMap<NodeId, PeerCheckpoint>,
    departed: BTreeSet<(NodeId, DocId)>,
    owed: BTreeSet<(NodeId, DocId)>,
}

impl MemStore {
    pub fn new(epoch: u64, registry: HashMap<NodeId, NodeInfo>) -> MemStore {
        MemStore {
            epoch,
            registry,
            log: Vec::new(),
            hashes: HashSet::new(),
            docs: BTreeMap::new(),
            pending: BTreeMap::new(),
            rejections: Vec::new(),
            rejected_hashes: HashSet::new(),
            checkpoints: HashMap::new(),
            departed: BTreeSet::new(),
            owed: BTreeSet::new(),
        }
    }

    /// This store as restored from `backup`: the backup's data under a new epoch.
    pub fn restored(backup: &MemStore, new_epoch: u64) -> MemStore {
        let mut s = backup.clone();
        s.epoch = new_epoch;
        s
    }

    pub fn set_registry(&mut self, registry: HashMap<NodeId, NodeInfo>) {
        self.registry = registry;
    }

    /// Stores changes written on this node (a clerk's edit), with no write-rule check:
    /// `doc` is the document after them, `changes` the new changes in causal order.
    pub fn commit_local(
        &mut self,
        doc_id: &DocId,
        mut doc: AutoCommit,
        changes: Vec<Change>,
        now_ms: i64,
    ) {
        let meta = meta_of(doc_id, &mut doc);
        // A new document is not flagged: all of its history follows in the feed.
        let routing_changed = self
            .docs
            .get(doc_id)
            .is_some_and(|d| d.meta.routing != meta.routing);
        for c in changes {
            self.append(doc_id, &c, None, now_ms, routing_changed);
        }
        self.docs.insert(doc_id.clone(), MemDoc { doc, meta });
    }

    fn append(
        &mut self,
        doc_id: &DocId,
        change: &Change,
        from_peer: Option<NodeId>,
        now_ms: i64,
        routing_changed: bool,
    ) {
        let hash = change.hash();
        if !self.hashes.insert(hash) {
            return;
        }
        let seq = self.log.len() as u64 + 1;
        self.log.push(MemChange {
            seq,
            doc: doc_id.clone(),
            hash,
            from_peer,
            bytes: change.raw_bytes().to_vec(),
            at_ms: now_ms,
            routing_changed,
        });
    }

    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.hashes.contains(hash)
    }

    pub fn heads(&self, doc: &DocId) -> Option<Vec<ChangeHash>> {
        self.docs.get(doc).map(|d| {
            let mut h = d.meta.heads.clone();
            h.sort();
            h
        })
    }

    pub fn doc_ids(&self) -> impl Iterator<Item = &DocId> {
        self.docs.keys()
    }

    pub fn log(&self) -> &[MemChange] {
        &self.log
    }

    pub fn rejections(&self) -> &[MemRejection] {
        &self.rejections
    }

    /// Documents with changes waiting for dependencies.
    pub fn pending_docs(&self) -> impl Iterator<Item = &DocId> {
        self.pending.keys()
    }

    pub fn pending_count(&self) -> usize {
        self.pending.values().map(BTreeMap::len).sum()
    }

    pub fn doc(&self, doc: &DocId) -> Option<AutoCommit> {
        self.docs.get(doc).map(|d| d.doc.clone())
    }

    pub fn meta(&self, doc: &DocId) -> Option<&DocMeta> {
        self.docs.get(doc).map(|d| &d.meta)
    }
}

impl Store for MemStore {
    type Error = Infallible;

    fn feed_epoch(&self) -> Result<u64, Infallible> {
        Ok(self.epoch)
    }

    fn last_seq(&self) -> Result<u64, Infallible> {
        Ok(self.log.len() as u64)
    }

    fn changes_after(
        &self,
        after_seq: u64,
        max_entries: usize,
    ) -> Result<Vec<FeedEntry>, Infallible> {
        let start = usize::try_from(after_seq)
            .unwrap_or(usize::MAX)
            .min(self.log.len());
        Ok(self.log[start..]
            .iter()
            .take(max_entries)
            .map(|c| FeedEntry {
                seq: c.seq,
                doc: c.doc.clone(),
                from_peer: c.from_peer,
                bytes: c.bytes.clone(),
                routing_changed: c.routing_changed,
                in_scope: None,
            })
            .collect())
    }

    fn node_info(&self, node: NodeId) -> Result<Option<NodeInfo>, Infallible> {
        Ok(self.registry.get(&node).cloned())
    }

    fn doc_meta(&self, doc: &DocId) -> Result<Option<DocMeta>, Infallible> {
        Ok(self.docs.get(doc).map(|d| d.meta.clone()))
    }

    fn load_doc(&self, doc: &DocId) -> Result<Option<AutoCommit>, Infallible> {
        Ok(self.doc(doc))
    }

    fn docs_in_scope(&self, scopes: &[Scope]) -> Result<Vec<(DocId, Vec<ChangeHash>)>, Infallible> {
        Ok(self
            .docs
            .iter()
            .filter(|(id, d)| {
                scopes
                    .iter()
                    .all(|s| s.includes(id, d.meta.routing.as_ref()))
            })
            .map(|(id, d)| (id.clone(), d.meta.heads.clone()))
            .collect())
    }

    fn pending(&self, doc: &DocId) -> Result<Vec<Vec<u8>>, Infallible> {
        Ok(self
            .pending
            .get(doc)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default())
    }

    fn pending_docs(&self, max: usize) -> Result<Vec<DocId>, Infallible> {
        Ok(self.pending.keys().take(max).cloned().collect())
    }

    fn write_doc(&mut self, w: DocWrite<'_>) -> Result<(), Infallible> {
        let routing_changed = self
            .docs
            .get(w.doc_id)
            .is_some_and(|d| d.meta.routing != w.meta.routing);
        for c in &w.applied {
            self.append(w.doc_id, c, w.from_peer, w.now_ms, routing_changed);
        }
        if !w.applied.is_empty() || self.docs.contains_key(w.doc_id) {
            self.docs.insert(
                w.doc_id.clone(),
                MemDoc {
                    doc: w.doc,
                    meta: w.meta,
                },
            );
        }
        let pending = self.pending.entry(w.doc_id.clone()).or_default();
        for h in &w.unparked {
            pending.remove(h);
        }
        for c in &w.parked {
            pending.insert(c.hash(), c.raw_bytes().to_vec());
        }
        if pending.is_empty() {
            self.pending.remove(w.doc_id);
        }
        for r in w.rejected {
            // The log is keyed by change like the SQLite table: a change refused again is recorded once.
            if !self.rejected_hashes.insert((w.doc_id.clone(), r.hash)) {
                continue;
            }
            self.rejections.push(MemRejection {
                doc: w.doc_id.clone(),
                change: r,
                from_peer: w.from_peer,
                at_ms: w.now_ms,
            });
        }
        Ok(())
    }

    fn checkpoint(&self, peer: NodeId) -> Result<Option<PeerCheckpoint>, Infallible> {
        Ok(self.checkpoints.get(&peer).cloned())
    }

    fn set_checkpoint(
        &mut self,
        peer: NodeId,
        checkpoint: &PeerCheckpoint,
    ) -> Result<(), Infallible> {
        self.checkpoints.insert(peer, checkpoint.clone());
        Ok(())
    }

    fn owed_syncs(&self, peer: NodeId, max: usize) -> Result<Vec<DocId>, Infallible> {
        Ok(self
            .owed
            .iter()
            .filter(|(p, _)| *p == peer)
            .take(max)
            .map(|(_, d)| d.clone())
            .collect())
    }

    fn set_owed_sync(&mut self, peer: NodeId, doc: &DocId, owed: bool) -> Result<(), Infallible> {
        if owed {
            self.owed.insert((peer, doc.clone()));
        } else {
            self.owed.remove(&(peer, doc.clone()));
        }
        Ok(())
    }

    fn departed(&self, peer: NodeId) -> Result<BTreeSet<DocId>, Infallible> {
        Ok(self
            .departed
            .iter()
            .filter(|(p, _)| *p == peer)
            .map(|(_, d)| d.clone())
            .collect())
    }

    fn set_departed(
        &mut self,
        peer: NodeId,
        doc: &DocId,
        departed: bool,
    ) -> Result<(), Infallible> {
        if departed {
            self.departed.insert((peer, doc.clone()));
        } else {
            self.departed.remove(&(peer, doc.clone()));
        }
        Ok(())
    }
}
