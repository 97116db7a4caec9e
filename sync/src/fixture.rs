//! Sample documents and a clerk that writes them into a [`MemStore`]: for
//! simulations, tests and the reconnect benchmark. Pure: callers pass the time
//! and the random bytes.

use std::collections::HashMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ChangeHash, ObjType, ROOT, ReadDoc, Value};
use yichuang_shared::case::{
    ApplicantKind, CaseDoc, CaseError, EventKind, MaterialSpec, NewCase, NewEvent, Party, Stamp,
};
use yichuang_shared::catalog::{CatalogFile, seed_calendar, seed_catalog, seed_nodes};
use yichuang_shared::hlc::Hlc;
use yichuang_shared::ids::{DocId, NodeId, RefDoc};

use crate::mem::MemStore;
use crate::store::NodeInfo;

/// The district code the samples use.
pub const DISTRICT: &str = "440399";

/// A registry from (node, info) pairs.
pub fn registry(nodes: &[(NodeId, NodeInfo)]) -> HashMap<NodeId, NodeInfo> {
    nodes.iter().cloned().collect()
}

/// A store holding the byte-identical seed of every reference document, as every node starts.
pub fn seeded_store(epoch: u64, registry: HashMap<NodeId, NodeInfo>) -> MemStore {
    let mut store = MemStore::new(epoch, registry);
    let catalog = CatalogFile {
        version: 1,
        district: DISTRICT.into(),
        items: Vec::new(),
    };
    let docs = [
        (RefDoc::Catalog, seed_catalog(&catalog)),
        (RefDoc::Calendar, seed_calendar()),
        (RefDoc::Nodes, seed_nodes()),
    ];
    for (r, doc) in docs {
        // The seeds are built from constants; failing to build one is a bug in the seed code.
        let mut doc = doc.expect("seeding a reference document from constants");
        let changes = doc.get_changes(&[]);
        store.commit_local(&r.doc_id(), doc, changes, 0);
    }
    store
}

/// A small but realistic case (about 600 bytes as one change).
pub fn sample_case(home_center: &str, case_no: &str) -> NewCase {
    NewCase {
        case_no: case_no.into(),
        district: DISTRICT.into(),
        home_center: home_center.into(),
        item_code: "11440300MB2C92110K4440111009000".into(),
        item_name: "城乡居民基本养老保险参保登记".into(),
        department: "区人力资源和社会保障局".into(),
        applicant_kind: ApplicantKind::NaturalPerson,
        applicant: Party {
            name: "张三".into(),
            id_no: "11010519491231002X".into(),
            phone: "13800138000".into(),
            address: "深圳市南山区粤海街道".into(),
        },
        agent: None,
        materials: vec![MaterialSpec {
            code: "M01".into(),
            name: "身份证".into(),
            required: true,
            received: true,
        }],
        delivery_method: "window".into(),
        delivery_address: String::new(),
    }
}

/// One process of one node writing as a clerk: its actor, clock and event counter.
#[derive(Clone, Debug)]
pub struct Clerk {
    pub node: NodeId,
    pub actor: ActorId,
    pub name: String,
    hlc: Hlc,
    counter: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClerkError {
    #[error("this node holds no document {0}")]
    Missing(DocId),
    #[error(transparent)]
    Case(#[from] CaseError),
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

impl Clerk {
    pub fn new(node: NodeId, nonce: u32, name: &str) -> Clerk {
        Clerk {
            node,
            actor: node.actor(nonce.to_be_bytes()),
            name: name.into(),
            hlc: Hlc(0),
            counter: 0,
        }
    }

    fn stamp(&mut self, now_ms: i64) -> Stamp {
        self.hlc = Hlc::tick(self.hlc, now_ms);
        self.counter += 1;
        Stamp {
            node: self.node,
            clerk: self.name.clone(),
            hlc: self.hlc,
            event_id: format!(
                "{}-{}-{}",
                self.node,
                hex(&self.actor.to_bytes()[8..]),
                self.counter
            ),
        }
    }

    /// Registers a case; returns its id and the hash of its first change.
    pub fn create_case(
        &mut self,
        store: &mut MemStore,
        random: [u8; 16],
        home_center: &str,
        now_ms: i64,
    ) -> Result<(DocId, Vec<ChangeHash>), ClerkError> {
        let id = DocId::new_case(random);
        let stamp = self.stamp(now_ms);
        let case_no = format!("{DISTRICT}-{home_center}-{}", hex(&random[..6]));
        let case = CaseDoc::create(
            &sample_case(home_center, &case_no),
            self.actor.clone(),
            &stamp,
        )?;
        let mut doc = case.into_automerge();
        let changes = doc.get_changes(&[]);
        let hashes = changes.iter().map(|c| c.hash()).collect();
        store.commit_local(&id, doc, changes, now_ms);
        Ok((id, hashes))
    }

    fn edit(
        &mut self,
        store: &mut MemStore,
        doc_id: &DocId,
        now_ms: i64,
        f: impl FnOnce(&mut CaseDoc, &Stamp) -> Result<(), CaseError>,
    ) -> Result<Vec<ChangeHash>, ClerkError> {
        let doc = store
            .doc(doc_id)
            .ok_or_else(|| ClerkError::Missing(doc_id.clone()))?;
        let mut case = CaseDoc::from_automerge(doc)?;
        case.set_actor(self.actor.clone());
        let before = case.heads();
        let stamp = self.stamp(now_ms);
        f(&mut case, &stamp)?;
        let mut doc = case.into_automerge();
        let changes = doc.get_changes(&before);
        let hashes = changes.iter().map(|c| c.hash()).collect();
        store.commit_local(doc_id, doc, changes, now_ms);
        Ok(hashes)
    }

    /// Records an event (with `data`, e.g. `to_center` or `staff`).
    pub fn event(
        &mut self,
        store: &mut MemStore,
        doc_id: &DocId,
        kind: EventKind,
        data: &[(&str, &str)],
        now_ms: i64,
    ) -> Result<Vec<ChangeHash>, ClerkError> {
        let ev = NewEvent {
            note: String::new(),
            data: data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.edit(store, doc_id, now_ms, |case, stamp| {
            case.append_event(kind, stamp, &ev)
        })
    }

    pub fn set_field(
        &mut self,
        store: &mut MemStore,
        doc_id: &DocId,
        path: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<Vec<ChangeHash>, ClerkError> {
        self.edit(store, doc_id, now_ms, |case, stamp| {
            case.set_field(path, value, stamp)
        })
    }

    pub fn add_note(
        &mut self,
        store: &mut MemStore,
        doc_id: &DocId,
        text: &str,
        now_ms: i64,
    ) -> Result<Vec<ChangeHash>, ClerkError> {
        self.edit(store, doc_id, now_ms, |case, stamp| {
            case.add_note(stamp, text)
        })
    }

    /// Writes a key into a reference document's top-level map (`nodes` for ref-nodes).
    pub fn edit_reference(
        &mut self,
        store: &mut MemStore,
        doc_id: &DocId,
        map: &str,
        key: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<Vec<ChangeHash>, ClerkError> {
        let mut doc: AutoCommit = store
            .doc(doc_id)
            .ok_or_else(|| ClerkError::Missing(doc_id.clone()))?;
        doc.set_actor(self.actor.clone());
        let before = doc.get_heads();
        let obj = match doc.get(ROOT, map)? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => doc.put_object(ROOT, map, ObjType::Map)?,
        };
        doc.put(&obj, key, value)?;
        doc.commit_with(
            CommitOptions::default()
                .with_time(now_ms)
                .with_message(self.name.clone()),
        );
        let changes = doc.get_changes(&before);
        let hashes = changes.iter().map(|c| c.hash()).collect();
        store.commit_local(doc_id, doc, changes, now_ms);
        Ok(hashes)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
