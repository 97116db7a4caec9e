//! The district's node registry in the `ref-nodes` reference document: which nodes
//! the hub enrolled and which it revoked. Only the hub writes it; sync carries it
//! to every node, so centers refuse revoked laptops too.

use std::collections::{BTreeMap, HashSet};

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, Value};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use yichuang_shared::ids::{NodeId, RefDoc, Role};

use super::docs::{fresh_doc, kind_of, write_changes};
use super::tx::Tx;
use super::{Store, StoreError, now_ms};

/// An enrolled node, as the hub recorded it when it issued the node's certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub role: Role,
    pub center: String,
    #[serde(default)]
    pub staff: String,
    pub issued_ms: i64,
}

/// A revoked node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub name: String,
    pub revoked_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub revoked: BTreeMap<NodeId, RevokedRecord>,
}

impl Registry {
    pub fn revoked_ids(&self) -> HashSet<NodeId> {
        self.revoked.keys().copied().collect()
    }

    /// A node by name or id hex.
    pub fn find(&self, key: &str) -> Option<(NodeId, &NodeRecord)> {
        if let Ok(id) = key.parse::<NodeId>()
            && let Some(r) = self.nodes.get(&id)
        {
            return Some((id, r));
        }
        self.nodes
            .iter()
            .find(|(_, r)| r.name == key)
            .map(|(id, r)| (*id, r))
    }
}

fn read_map<T: serde::de::DeserializeOwned>(
    doc: &automerge::AutoCommit,
    key: &str,
) -> Result<BTreeMap<NodeId, T>, StoreError> {
    let mut out = BTreeMap::new();
    let Some((Value::Object(ObjType::Map), obj)) = doc.get(ROOT, key)? else {
        return Err(StoreError::Corrupt(format!("ref-nodes has no {key} map")));
    };
    for k in doc.keys(&obj) {
        let Ok(id) = k.parse::<NodeId>() else {
            continue;
        };
        if let Some((Value::Scalar(s), _)) = doc.get(&obj, k.as_str())?
            && let Some(text) = s.as_str()
        {
            let value = serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("ref-nodes {key}/{k}: {e}")))?;
            out.insert(id, value);
        }
    }
    Ok(out)
}

impl Store {
    /// The registry as the `ref-nodes` document holds it now.
    pub fn registry(&mut self) -> Result<Registry, StoreError> {
        let doc = fresh_doc(&self.conn, &mut self.cache, &RefDoc::Nodes.doc_id())?;
        Ok(Registry {
            nodes: read_map(doc, "nodes")?,
            revoked: read_map(doc, "revoked")?,
        })
    }

    /// The registry as the `ref-nodes` document holds it now, read again only when
    /// the document changed. Takes `&self`: the sync engine asks about a change's
    /// author in the middle of applying a batch, which may itself have enrolled it.
    pub fn registry_now(&self) -> Result<std::sync::Arc<Registry>, StoreError> {
        let seq = self.registry_seq()?;
        if let Some((at, reg)) = self.registry_memo.borrow().as_ref()
            && *at == seq
        {
            return Ok(reg.clone());
        }
        let doc = super::docs::load_uncached(&self.conn, &RefDoc::Nodes.doc_id())?
            .ok_or_else(|| StoreError::Corrupt("the ref-nodes document is missing".into()))?;
        let reg = std::sync::Arc::new(Registry {
            nodes: read_map(&doc, "nodes")?,
            revoked: read_map(&doc, "revoked")?,
        });
        *self.registry_memo.borrow_mut() = Some((seq, reg.clone()));
        Ok(reg)
    }

    /// The `ref-nodes` document's last change sequence number: a cheap "did it change".
    pub fn registry_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = self
            .conn
            .prepare_cached("SELECT last_seq FROM docs WHERE doc_id = ?1")?
            .query_row([RefDoc::Nodes.doc_id().as_str()], |r| r.get(0))
            .optional()?;
        Ok(seq.unwrap_or(0))
    }

    /// Forgets the cached copy of a document, after the caller rolled back a savepoint
    /// that had changed it, so memory never holds what the disk does not.
    pub fn evict_cached(&mut self, id: &yichuang_shared::ids::DocId) {
        self.cache.evict(id);
    }

    /// Records an enrolled node (hub only).
    pub fn enroll_node(&mut self, id: NodeId, record: &NodeRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.put_registry("nodes", id, json)
    }

    /// Records a revocation (hub only). Revocation is final: the entry is never removed.
    pub fn revoke_node(&mut self, id: NodeId, record: &RevokedRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.put_registry("revoked", id, json)
    }

    fn put_registry(&mut self, map: &str, id: NodeId, json: String) -> Result<(), StoreError> {
        if self.settings.role != Role::Hub {
            return Err(StoreError::Invalid(
                "only the hub writes the node registry".into(),
            ));
        }
        let doc_id = RefDoc::Nodes.doc_id();
        let result = (|| {
            let tx = Tx::begin(&self.conn, self.in_group)?;
            let doc = fresh_doc(&tx, &mut self.cache, &doc_id)?;
            doc.set_actor(self.actor.clone());
            let before = doc.get_heads();
            let obj = match doc.get(ROOT, map)? {
                Some((Value::Object(ObjType::Map), obj)) => obj,
                _ => return Err(StoreError::Corrupt(format!("ref-nodes has no {map} map"))),
            };
            doc.put(&obj, id.to_string(), json)?;
            doc.commit();
            let changes = doc.get_changes(&before);
            let (last_seq, _) = write_changes(
                &tx,
                &doc_id,
                kind_of(RefDoc::Nodes),
                &changes,
                doc,
                None,
                now_ms(),
            )?;
            tx.commit()?;
            Ok(last_seq)
        })();
        match result {
            Ok(last_seq) => {
                self.cache.set_last_seq(&doc_id, last_seq);
                Ok(())
            }
            Err(e) => {
                self.cache.evict(&doc_id);
                Err(e)
            }
        }
    }
}
