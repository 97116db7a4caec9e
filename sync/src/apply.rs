//! Applying a peer's changes to one document: the write rules judged at each
//! change's dependencies, a pending set for changes whose dependencies are missing
//! (kept, never dropped), and one atomic store write per document.

use std::collections::{HashMap, HashSet};

use automerge::{AutoCommit, Change, ChangeHash, ROOT, ReadDoc, Value};
use yichuang_shared::case::{CaseDoc, DOC_TYPE_CASE, Routing};
use yichuang_shared::ids::{DocId, NodeId, Role};
use yichuang_shared::wire::{RejectReason, Rejection};

use crate::rules::{Author, Target, check_write};
use crate::store::{DocMeta, DocWrite, NodeInfo, RejectedChange, Store};

/// What one call of [`apply_changes`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Changes newly applied.
    pub applied: usize,
    /// Changes of this document still waiting for dependencies after the call.
    pub pending: usize,
    /// Changes refused, to report to their sender.
    pub rejected: Vec<Rejection>,
}

/// The routing of a case document; `None` when the document is not a readable case.
pub fn routing_of_doc(doc: &mut AutoCommit) -> Option<Routing> {
    let is_case = matches!(doc.get(ROOT, "type"), Ok(Some((Value::Scalar(s), _))) if s.as_str() == Some(DOC_TYPE_CASE));
    if !is_case {
        return None;
    }
    if let Some(routing) = unmoved_routing(doc) {
        return Some(routing);
    }
    // CaseDoc owns its document; borrow it for the read and put it back.
    let mut case = CaseDoc::from_automerge(std::mem::take(doc)).ok()?;
    let routing = case.routing();
    *doc = case.into_automerge();
    Some(routing)
}

/// The routing of a case that holds no transfer or assignment at all: home, home and
/// nobody, whatever the order of its other events. Most cases never move, and this
/// reads one key per event instead of folding the timeline, which every applied
/// change would otherwise pay. `None` when the case has such an event (or an
/// unreadable home), and the full fold decides.
fn unmoved_routing(doc: &AutoCommit) -> Option<Routing> {
    let text = |obj: &automerge::ObjId, key: &str| -> Option<String> {
        match doc.get(obj, key) {
            Ok(Some((Value::Scalar(s), _))) => s.as_str().map(str::to_owned),
            _ => None,
        }
    };
    let meta = match doc.get(ROOT, "meta") {
        Ok(Some((Value::Object(_), id))) => id,
        _ => return None,
    };
    let home = text(&meta, "home_center")?;
    if let Ok(Some((Value::Object(_), events))) = doc.get(ROOT, "events") {
        for item in doc.list_range(&events, ..) {
            let kind = text(&item.id(), "kind");
            if matches!(kind.as_deref(), Some("transferred" | "assigned")) {
                return None;
            }
        }
    }
    Some(Routing {
        current_center: home.clone(),
        home_center: home,
        assigned_staff: String::new(),
    })
}

/// Whether the document holds a change: a lookup in its change graph. (Automerge's
/// `get_change_by_hash` rebuilds the change from the op set, far dearer.) Our
/// documents never queue changes, so a missing dependency is only ever this one.
pub fn holds(doc: &mut AutoCommit, hash: &ChangeHash) -> bool {
    doc.get_missing_deps(std::slice::from_ref(hash)).is_empty()
}

/// Heads and routing of a document as the store records them.
pub fn meta_of(doc_id: &DocId, doc: &mut AutoCommit) -> DocMeta {
    DocMeta {
        heads: doc.get_heads(),
        routing: if doc_id.is_case() {
            routing_of_doc(doc)
        } else {
            None
        },
    }
}

/// The routing the store recorded for the document's current heads (sorted), which
/// spares the fold for the common change that extends the heads.
type Known = Option<(Vec<ChangeHash>, Option<Routing>)>;

fn routing_at(doc: &mut AutoCommit, deps: &[ChangeHash], known: &Known) -> Option<Routing> {
    if let Some((heads, routing)) = known {
        let mut wanted = deps.to_vec();
        wanted.sort();
        if *heads == wanted {
            return routing.clone();
        }
    }
    let mut heads = doc.get_heads();
    heads.sort();
    let mut wanted = deps.to_vec();
    wanted.sort();
    if heads == wanted {
        return routing_of_doc(doc);
    }
    let mut past = doc.fork_at(deps).ok()?;
    routing_of_doc(&mut past)
}

type Verdict = Result<(), (RejectReason, String)>;

/// Resolves a change's author through the registry and applies the write rules.
fn judge<S: Store>(
    store: &S,
    doc_id: &DocId,
    doc: &mut AutoCommit,
    change: &Change,
    registry: &mut HashMap<NodeId, Option<NodeInfo>>,
    known: &Known,
) -> Result<Verdict, S::Error> {
    let Some(node) = NodeId::of_actor(change.actor_id()) else {
        return Ok(Err((
            RejectReason::UnknownAuthor,
            "the actor is not bound to a node".into(),
        )));
    };
    let author = if node == NodeId::SEED {
        Author::Seed
    } else {
        let info = match registry.get(&node) {
            Some(info) => info.clone(),
            None => {
                let info = store.node_info(node)?;
                registry.insert(node, info.clone());
                info
            }
        };
        match info {
            Some(info) => Author::Node(node, info),
            None => {
                return Ok(Err((
                    RejectReason::UnknownAuthor,
                    format!("node {node} is not enrolled"),
                )));
            }
        }
    };
    let needs_routing = doc_id.reference().is_none()
        && matches!(&author, Author::Node(_, i) if i.role != Role::Hub);
    if !needs_routing {
        return Ok(check_write(&author, doc_id, Target::Existing(None)));
    }
    if change.deps().is_empty() {
        let mut created = AutoCommit::new();
        let routing = match created.apply_changes([change.clone()]) {
            Ok(()) => routing_of_doc(&mut created),
            Err(_) => None,
        };
        return Ok(check_write(
            &author,
            doc_id,
            Target::Created(routing.as_ref()),
        ));
    }
    let routing = routing_at(doc, change.deps(), known);
    Ok(check_write(
        &author,
        doc_id,
        Target::Existing(routing.as_ref()),
    ))
}

fn wire_rejection(doc: &DocId, r: &RejectedChange) -> Rejection {
    Rejection {
        doc: doc.clone(),
        hash: r.hash.0,
        reason: r.reason,
        detail: r.detail.clone(),
    }
}

/// Applies `incoming` (raw change bytes) from `from_peer` to `doc_id`: each change
/// whose dependencies are present is judged by the write rules and applied or
/// refused; the rest wait in the pending set. Pending changes of the document are
/// retried whenever something new arrives for it.
pub fn apply_changes<S: Store>(
    store: &mut S,
    doc_id: &DocId,
    incoming: Vec<Vec<u8>>,
    from_peer: Option<NodeId>,
    now_ms: i64,
) -> Result<Applied, S::Error> {
    let mut doc = store.load_doc(doc_id)?.unwrap_or_default();
    let mut known: Known = store.doc_meta(doc_id)?.map(|m| {
        let mut heads = m.heads;
        heads.sort();
        (heads, m.routing)
    });
    let mut seen = HashSet::new();
    let mut candidates: Vec<(Change, bool)> = Vec::new();
    let mut rejected: Vec<RejectedChange> = Vec::new();
    let mut fresh = Vec::new();
    for bytes in incoming {
        match Change::from_bytes(bytes) {
            Ok(change) => {
                let hash = change.hash();
                if seen.insert(hash) && !holds(&mut doc, &hash) {
                    fresh.push(change);
                }
            }
            Err(e) => rejected.push(RejectedChange {
                hash: ChangeHash([0; 32]),
                actor: Vec::new(),
                reason: RejectReason::Malformed,
                detail: format!("not an automerge change: {e}"),
            }),
        }
    }
    if fresh.is_empty() && rejected.is_empty() {
        return Ok(Applied::default());
    }
    let mut unparked = Vec::new();
    let mut parked_before = HashSet::new();
    for bytes in store.pending(doc_id)? {
        // Pending bytes were parsed before they were parked; one that no longer
        // parses stays where it is rather than being dropped.
        let Ok(change) = Change::from_bytes(bytes) else {
            continue;
        };
        let hash = change.hash();
        if holds(&mut doc, &hash) {
            unparked.push(hash);
        } else if parked_before.insert(hash) {
            candidates.push((change, true));
        }
    }
    for change in fresh {
        if !parked_before.contains(&change.hash()) {
            candidates.push((change, false));
        }
    }
    let mut applied = Vec::new();
    let mut registry = HashMap::new();
    // Every pass either applies or refuses at least one change, or stops.
    loop {
        let mut progress = false;
        let mut i = 0;
        while i < candidates.len() {
            let ready = candidates[i].0.deps().iter().all(|d| holds(&mut doc, d));
            if !ready {
                i += 1;
                continue;
            }
            let (change, was_pending) = candidates.remove(i);
            progress = true;
            if was_pending {
                unparked.push(change.hash());
            }
            let verdict = judge(store, doc_id, &mut doc, &change, &mut registry, &known)?;
            let refusal = match verdict {
                Ok(()) => match doc.apply_changes([change.clone()]) {
                    Ok(()) => None,
                    Err(e) => Some((
                        RejectReason::Malformed,
                        format!("automerge refused the change: {e}"),
                    )),
                },
                Err(refusal) => Some(refusal),
            };
            match refusal {
                None => {
                    // The heads moved: the recorded routing no longer describes them.
                    known = None;
                    applied.push(change);
                }
                Some((reason, detail)) => rejected.push(RejectedChange {
                    hash: change.hash(),
                    actor: change.actor_id().to_bytes().to_vec(),
                    reason,
                    detail,
                }),
            }
        }
        if !progress {
            break;
        }
    }
    let pending = candidates.len();
    let parked: Vec<Change> = candidates
        .into_iter()
        .filter(|(_, was_pending)| !was_pending)
        .map(|(c, _)| c)
        .collect();
    let outcome = Applied {
        applied: applied.len(),
        pending,
        rejected: rejected.iter().map(|r| wire_rejection(doc_id, r)).collect(),
    };
    if applied.is_empty() && parked.is_empty() && unparked.is_empty() && rejected.is_empty() {
        return Ok(outcome);
    }
    let meta = meta_of(doc_id, &mut doc);
    store.write_doc(DocWrite {
        doc_id,
        doc,
        meta,
        applied,
        from_peer,
        parked,
        unparked,
        rejected,
        now_ms,
    })?;
    Ok(outcome)
}
