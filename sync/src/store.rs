//! The store boundary: everything the sync engine reads from and writes to a
//! node's storage. `node/` implements it on SQLite, `mem.rs` in memory.
//!
//! The trait is synchronous on purpose: the engine is a pure state machine and the
//! node runs the SQLite implementation off its async workers. Every method maps to
//! one or a few statements over the tables `changes(seq, doc_id, hash unique, actor,
//! bytes, from_peer, at_ms)`, `docs(doc_id, snapshot, heads, routing…, last_seq)`,
//! `peers(peer, checkpoint…)`, `pending(doc_id, hash, bytes)`, `rejections(…)`,
//! `departed(peer, doc_id)` and a one-row `feed(epoch)`.

use std::collections::BTreeSet;

use automerge::{AutoCommit, Change, ChangeHash};
use yichuang_shared::case::Routing;
use yichuang_shared::ids::{DocId, NodeId, Role};
use yichuang_shared::wire::{FeedPos, RejectReason};

use crate::rules::Scope;

/// What the registry of enrolled nodes says about one node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    pub role: Role,
    /// The center code a center serves or a laptop belongs to; empty for the hub.
    pub center: String,
    /// The staff member a laptop belongs to; empty for hubs and centers.
    pub staff: String,
}

impl NodeInfo {
    pub fn hub() -> NodeInfo {
        NodeInfo {
            role: Role::Hub,
            center: String::new(),
            staff: String::new(),
        }
    }

    pub fn center(code: &str) -> NodeInfo {
        NodeInfo {
            role: Role::Center,
            center: code.to_owned(),
            staff: String::new(),
        }
    }

    pub fn laptop(center: &str, staff: &str) -> NodeInfo {
        NodeInfo {
            role: Role::Laptop,
            center: center.to_owned(),
            staff: staff.to_owned(),
        }
    }
}

/// One stored change as the feed yields it, in `seq` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    /// The local sequence number, increasing with every stored change.
    pub seq: u64,
    pub doc: DocId,
    /// The peer the change arrived from, `None` for changes written here.
    pub from_peer: Option<NodeId>,
    /// The change as Automerge encodes it (`Change::raw_bytes`).
    pub bytes: Vec<u8>,
    /// Storing it changed the document's routing (a transfer or an assignment, or a
    /// merge that reordered them): the document may have entered a peer's scope, and
    /// that peer then needs its whole history, not just this change.
    pub routing_changed: bool,
    /// From [`Store::feed_after`]: whether the document is inside the scope asked
    /// about, as it is routed now (`None`: not decided by the store). The bytes of a
    /// change outside it may be left empty.
    pub in_scope: Option<bool>,
}

/// What the store keeps about a document besides its changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocMeta {
    pub heads: Vec<ChangeHash>,
    /// The case's routing after every applied change; `None` for reference documents.
    pub routing: Option<Routing>,
}

/// How far two nodes have exchanged their feeds, kept by each side for the other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCheckpoint {
    /// How far the peer's feed has been durably applied here.
    pub recv: Option<FeedPos>,
    /// How far the peer acknowledged our feed, under our epoch at the time.
    pub sent: Option<FeedPos>,
    /// A reconciliation is owed (checkpoints were not trusted); cleared when one completes.
    pub reconcile_due: bool,
    /// When the last reconciliation with this peer completed.
    pub reconciled_at_ms: Option<i64>,
}

/// A change the write rules refused, as recorded in the rejection log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedChange {
    pub hash: ChangeHash,
    /// The actor bytes of the author, as far as they could be read.
    pub actor: Vec<u8>,
    pub reason: RejectReason,
    pub detail: String,
}

/// One atomic write of everything a batch did to one document.
#[derive(Debug)]
pub struct DocWrite<'a> {
    pub doc_id: &'a DocId,
    /// The document after the applied changes (for a snapshot, if the store keeps one).
    pub doc: AutoCommit,
    /// Heads and routing after the applied changes.
    pub meta: DocMeta,
    /// Newly applied changes in causal order; each gets the next `seq`.
    pub applied: Vec<Change>,
    /// Where the changes came from (`None`: written on this node).
    pub from_peer: Option<NodeId>,
    /// Changes that wait for missing dependencies; kept, never dropped.
    pub parked: Vec<Change>,
    /// Pending changes that were applied or refused and leave the pending set.
    pub unparked: Vec<ChangeHash>,
    pub rejected: Vec<RejectedChange>,
    pub now_ms: i64,
}

/// The storage the sync engine runs on.
pub trait Store {
    type Error: std::error::Error + Send + Sync + 'static;

    /// A random number made when the store was created and changed whenever it is
    /// restored from a backup, so peers know its sequence numbers were reused.
    fn feed_epoch(&self) -> Result<u64, Self::Error>;
    /// The newest `seq`, 0 for an empty store.
    fn last_seq(&self) -> Result<u64, Self::Error>;
    /// Stored changes with `seq > after_seq`, in `seq` order, at most `max_entries`.
    fn changes_after(
        &self,
        after_seq: u64,
        max_entries: usize,
    ) -> Result<Vec<FeedEntry>, Self::Error>;

    /// [`Store::changes_after`] for a peer with `scope`: each entry says whether its
    /// document is inside the scope now, and a change outside it may come without its
    /// bytes. A store that can decide this where the data lives (one query over the
    /// log and the routing, instead of a lookup per document) should; this default
    /// asks [`Store::doc_meta`] once per document.
    fn feed_after(
        &self,
        after_seq: u64,
        max_entries: usize,
        scope: &Scope,
    ) -> Result<Vec<FeedEntry>, Self::Error> {
        let mut entries = self.changes_after(after_seq, max_entries)?;
        let mut known: std::collections::HashMap<DocId, bool> = std::collections::HashMap::new();
        for e in &mut entries {
            let inside = match known.get(&e.doc) {
                Some(v) => *v,
                None => {
                    let meta = self.doc_meta(&e.doc)?;
                    let v = meta.is_some_and(|m| scope.includes(&e.doc, m.routing.as_ref()));
                    known.insert(e.doc.clone(), v);
                    v
                }
            };
            e.in_scope = Some(inside);
        }
        Ok(entries)
    }

    /// The registry entry of an enrolled node (`None` if unknown or revoked).
    fn node_info(&self, node: NodeId) -> Result<Option<NodeInfo>, Self::Error>;

    fn doc_meta(&self, doc: &DocId) -> Result<Option<DocMeta>, Self::Error>;
    /// The document with every applied change, `None` if this node holds none.
    fn load_doc(&self, doc: &DocId) -> Result<Option<AutoCommit>, Self::Error>;
    /// Every held document inside all of `scopes`, with its heads, sorted by document id.
    fn docs_in_scope(&self, scopes: &[Scope])
    -> Result<Vec<(DocId, Vec<ChangeHash>)>, Self::Error>;
    /// The raw bytes of the changes of `doc` that wait for dependencies.
    fn pending(&self, doc: &DocId) -> Result<Vec<Vec<u8>>, Self::Error>;
    /// Documents with changes waiting for dependencies, at most `max`: a new
    /// session asks its peer for them, since the session that parked them may have
    /// ended before it could.
    fn pending_docs(&self, max: usize) -> Result<Vec<DocId>, Self::Error>;
    /// Applies one [`DocWrite`] atomically.
    fn write_doc(&mut self, write: DocWrite<'_>) -> Result<(), Self::Error>;

    fn checkpoint(&self, peer: NodeId) -> Result<Option<PeerCheckpoint>, Self::Error>;
    fn set_checkpoint(
        &mut self,
        peer: NodeId,
        checkpoint: &PeerCheckpoint,
    ) -> Result<(), Self::Error>;

    /// Documents whose sync with `peer` was opened because they moved into its
    /// scope and has not finished; a new session finishes them, at most `max`.
    fn owed_syncs(&self, peer: NodeId, max: usize) -> Result<Vec<DocId>, Self::Error>;
    fn set_owed_sync(&mut self, peer: NodeId, doc: &DocId, owed: bool) -> Result<(), Self::Error>;

    /// Documents `peer` said are outside the scope we share with it.
    fn departed(&self, peer: NodeId) -> Result<BTreeSet<DocId>, Self::Error>;
    fn set_departed(
        &mut self,
        peer: NodeId,
        doc: &DocId,
        departed: bool,
    ) -> Result<(), Self::Error>;
}
