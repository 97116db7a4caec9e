//! Documents on disk: writing changes, loading a document from its snapshot plus
//! the changes after it, periodic compaction, and a bounded cache of hot documents.

use std::collections::{BTreeMap, HashMap};

use automerge::{AutoCommit, Change, ChangeHash};
use rusqlite::{Connection, OptionalExtension, params};
use yichuang_shared::ids::{DocId, RefDoc};

use super::StoreError;

/// Changes after the snapshot that trigger a new snapshot. Loading 32 small changes
/// costs about as much as loading the snapshot, so the tail never dominates a load.
pub const COMPACT_TAIL_CHANGES: i64 = 32;

pub fn kind_of(r: RefDoc) -> &'static str {
    match r {
        RefDoc::Catalog => "catalog",
        RefDoc::Calendar => "calendar",
        RefDoc::Nodes => "nodes",
    }
}

pub fn kind_of_doc(id: &DocId) -> &'static str {
    id.reference().map(kind_of).unwrap_or("case")
}

pub fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

/// A stored change as (hash, bytes).
pub type RawChange = (Vec<u8>, Vec<u8>);

struct Entry {
    doc: AutoCommit,
    last_seq: i64,
    used: u64,
}

/// Hot documents, least recently used evicted first.
pub struct DocCache {
    max: usize,
    entries: HashMap<DocId, Entry>,
    /// Entries by last use, oldest first, kept in step with `Entry::used`: eviction
    /// takes the first instead of scanning every entry (a hub applying thousands of
    /// received cases evicts on every one).
    order: BTreeMap<u64, DocId>,
    clock: u64,
}

impl DocCache {
    pub fn new(max: usize) -> DocCache {
        DocCache {
            max: max.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    pub fn evict(&mut self, id: &DocId) {
        if let Some(e) = self.entries.remove(id) {
            self.order.remove(&e.used);
        }
    }

    fn insert(&mut self, id: DocId, doc: AutoCommit, last_seq: i64) {
        self.evict(&id);
        while self.entries.len() >= self.max {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.clock += 1;
        self.order.insert(self.clock, id.clone());
        self.entries.insert(
            id,
            Entry {
                doc,
                last_seq,
                used: self.clock,
            },
        );
    }

    /// Marks an entry used now.
    fn touch(&mut self, id: &DocId) {
        self.clock += 1;
        if let Some(e) = self.entries.get_mut(id) {
            self.order.remove(&e.used);
            e.used = self.clock;
            self.order.insert(self.clock, id.clone());
        }
    }

    pub fn set_last_seq(&mut self, id: &DocId, last_seq: i64) {
        if let Some(e) = self.entries.get_mut(id) {
            e.last_seq = last_seq;
        }
    }

    pub fn put(&mut self, id: DocId, doc: AutoCommit, last_seq: i64) {
        self.insert(id, doc, last_seq);
    }
}

/// The document as the database holds it now: from the cache when it is current,
/// else brought up to date from the changes other processes added, else loaded.
pub fn fresh_doc<'c>(
    conn: &Connection,
    cache: &'c mut DocCache,
    id: &DocId,
) -> Result<&'c mut AutoCommit, StoreError> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT last_seq, snapshot_seq FROM docs WHERE doc_id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((last_seq, snapshot_seq)) = row else {
        return Err(StoreError::UnknownCase(id.to_string()));
    };
    let behind = match cache.entries.get(id) {
        Some(e) if e.last_seq >= last_seq => None,
        Some(e) => Some(e.last_seq),
        None => {
            let doc = load_from_disk(conn, id, snapshot_seq)?;
            cache.insert(id.clone(), doc, last_seq);
            None
        }
    };
    if let Some(from) = behind {
        let changes = read_changes(conn, id, from)?;
        // Invariant: `behind` is Some only when the entry exists.
        let entry = cache.entries.get_mut(id).expect("entry exists");
        entry.doc.apply_changes(changes)?;
        entry.last_seq = last_seq;
    }
    cache.touch(id);
    // Invariant: the entry was found or inserted above.
    let entry = cache.entries.get_mut(id).expect("entry present");
    Ok(&mut entry.doc)
}

fn read_changes(conn: &Connection, id: &DocId, after_seq: i64) -> Result<Vec<Change>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT bytes, hash FROM changes WHERE doc_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![id.as_str(), after_seq], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (bytes, hash) = row?;
        let change = Change::from_bytes(bytes)
            .map_err(|e| StoreError::Corrupt(format!("change of {id}: {e}")))?;
        // Checked on the way in and again on the way out: a stored change must still
        // hash to the key it was filed under.
        if change.hash().0.as_slice() != hash.as_slice() {
            return Err(StoreError::Corrupt(format!(
                "change of {id} does not match its hash"
            )));
        }
        out.push(change);
    }
    Ok(out)
}

/// A document read from disk without the cache (for readers that hold `&self`).
pub fn load_uncached(conn: &Connection, id: &DocId) -> Result<Option<AutoCommit>, StoreError> {
    let snapshot_seq: Option<i64> = conn
        .query_row(
            "SELECT snapshot_seq FROM docs WHERE doc_id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    snapshot_seq
        .map(|seq| load_from_disk(conn, id, seq))
        .transpose()
}

fn load_from_disk(
    conn: &Connection,
    id: &DocId,
    snapshot_seq: i64,
) -> Result<AutoCommit, StoreError> {
    let snapshot: Option<Vec<u8>> = conn.query_row(
        "SELECT snapshot FROM docs WHERE doc_id = ?1",
        [id.as_str()],
        |r| r.get(0),
    )?;
    let mut doc = match snapshot {
        Some(bytes) => AutoCommit::load(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("snapshot of {id}: {e}")))?,
        None => AutoCommit::new(),
    };
    let after = if doc.is_empty() { 0 } else { snapshot_seq };
    doc.apply_changes(read_changes(conn, id, after)?)?;
    Ok(doc)
}

/// Files changes of one document and brings its row up to date; compacts when the
/// tail has grown. Returns the document's last sequence number and how many of
/// the changes were new. Runs inside the caller's transaction.
pub fn write_changes(
    conn: &Connection,
    id: &DocId,
    kind: &str,
    changes: &[Change],
    doc: &mut AutoCommit,
    from_peer: Option<&str>,
    at_ms: i64,
) -> Result<(i64, usize), StoreError> {
    let mut inserted = 0usize;
    {
        let mut stmt = conn.prepare_cached(
            "INSERT OR IGNORE INTO changes (doc_id, hash, actor, bytes, from_peer, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for c in changes {
            inserted += stmt.execute(params![
                id.as_str(),
                c.hash().0.as_slice(),
                c.actor_id().to_bytes(),
                c.raw_bytes(),
                from_peer,
                at_ms
            ])?;
        }
    }
    // Cached statements: this runs for every stored change, locally and from peers.
    let last_seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes WHERE doc_id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))?;
    let heads = encode_heads(&doc.get_heads());
    let tail: Option<i64> = conn
        .prepare_cached("SELECT tail FROM docs WHERE doc_id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    let tail = tail.unwrap_or(0) + inserted as i64;
    if tail >= COMPACT_TAIL_CHANGES {
        conn.prepare_cached(
            "INSERT INTO docs (doc_id, kind, snapshot, snapshot_seq, heads, last_seq, tail) VALUES (?1, ?2, ?3, ?4, ?5, ?4, 0)
             ON CONFLICT (doc_id) DO UPDATE SET snapshot = ?3, snapshot_seq = ?4, heads = ?5, last_seq = ?4, tail = 0",
        )?
        .execute(params![id.as_str(), kind, doc.save(), last_seq, heads])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO docs (doc_id, kind, snapshot, snapshot_seq, heads, last_seq, tail) VALUES (?1, ?2, NULL, 0, ?3, ?4, ?5)
             ON CONFLICT (doc_id) DO UPDATE SET heads = ?3, last_seq = ?4, tail = ?5",
        )?
        .execute(params![id.as_str(), kind, heads, last_seq, tail])?;
    }
    Ok((last_seq, inserted))
}

impl super::Store {
    /// An owned copy of a document as stored now.
    pub fn load_doc(&mut self, id: &DocId) -> Result<AutoCommit, StoreError> {
        let doc = fresh_doc(&self.conn, &mut self.cache, id)?;
        Ok(doc.clone())
    }

    /// Every stored change of a document, byte for byte, with its stored hash.
    pub fn raw_changes(&self, id: &DocId) -> Result<Vec<RawChange>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT hash, bytes FROM changes WHERE doc_id = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every document id on this node.
    pub fn doc_ids(&self) -> Result<Vec<DocId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT doc_id FROM docs ORDER BY doc_id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            let s = r?;
            out.push(
                s.parse()
                    .map_err(|_| StoreError::Corrupt(format!("document id {s:?}")))?,
            );
        }
        Ok(out)
    }

    pub fn cached_docs(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn id(n: u8) -> DocId {
        DocId::new_case([n; 16])
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut cache = DocCache::new(2);
        cache.put(id(1), AutoCommit::new(), 1);
        cache.put(id(2), AutoCommit::new(), 2);
        cache.touch(&id(1));
        cache.put(id(3), AutoCommit::new(), 3);
        assert_eq!(cache.len(), 2);
        assert!(cache.entries.contains_key(&id(1)), "used last, kept");
        assert!(!cache.entries.contains_key(&id(2)), "used first, evicted");
        // Putting an entry again replaces it without evicting another.
        cache.put(id(3), AutoCommit::new(), 4);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.entries[&id(3)].last_seq, 4);
        cache.evict(&id(1));
        assert_eq!(
            (cache.len(), cache.order.len()),
            (1, 1),
            "order kept in step"
        );
        cache.clear();
        assert!(cache.is_empty() && cache.order.is_empty());
    }
}
