//! The invariants a district must hold once its partitions healed: every acknowledged
//! change reached the hub and no forged one did, nothing legitimate was refused, no
//! change is left pending in scope, every node holds what is in its scope at the hub's
//! heads and nothing that never was, and equal heads show the same case everywhere.

use std::collections::HashSet;

use yichuang_shared::case::CaseDoc;
use yichuang_shared::ids::Role;
use yichuang_sync::Scope;

use super::*;

impl Sim {
    /// The invariants after the partitions healed.
    pub fn check(&self) -> Result<(), String> {
        let hub = &self.nodes[0].store;
        let rogue: HashSet<ChangeHash> = self
            .nodes
            .iter()
            .flat_map(|n| n.rogue.iter().map(|r| r.1))
            .collect();
        for n in &self.nodes {
            for (doc, h) in &n.acked {
                if !hub.has_change(h) {
                    return Err(format!(
                        "change {h} of {doc}, acknowledged at {}, is not at the hub",
                        n.name
                    ));
                }
            }
            for (doc, h) in &n.rogue {
                if hub.has_change(h) {
                    return Err(format!(
                        "forged change {h} of {doc} from {} reached the hub",
                        n.name
                    ));
                }
            }
            for r in n.store.rejections() {
                if !rogue.contains(&r.change.hash) {
                    return Err(format!(
                        "{} refused a legitimate change of {}: {:?}",
                        n.name, r.doc, r.change
                    ));
                }
            }
            // Pending changes may stay for a document that left the node's scope
            // (never dropped, never completed); in scope, every gap must be filled.
            for doc in n.store.pending_docs() {
                let routing = hub.meta(doc).and_then(|m| m.routing.clone());
                if hub.meta(doc).is_some() && Scope::of(&n.info).includes(doc, routing.as_ref()) {
                    let held = n.store.heads(doc);
                    let parked: Vec<String> = yichuang_sync::Store::pending(&n.store, doc)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|b| automerge::Change::from_bytes(b).ok())
                        .map(|c| {
                            let deps: Vec<String> = c
                                .deps()
                                .iter()
                                .map(|d| {
                                    format!(
                                        "{} here:{} hub:{}",
                                        &d.to_string()[..8],
                                        n.store.has_change(d),
                                        hub.has_change(d)
                                    )
                                })
                                .collect();
                            format!(
                                "{} (hub has it: {}) deps {deps:?}",
                                &c.hash().to_string()[..8],
                                hub.has_change(&c.hash())
                            )
                        })
                        .collect();
                    let held = (held, parked);
                    return Err(format!(
                        "{} still has pending changes of {doc}, which is in its scope (heads {:?}, hub {:?})",
                        n.name,
                        held,
                        hub.heads(doc)
                    ));
                }
            }
        }
        for doc in hub.doc_ids() {
            let routing = hub.meta(doc).and_then(|m| m.routing.clone());
            let hub_heads = hub.heads(doc);
            for n in &self.nodes[1..] {
                if Scope::of(&n.info).includes(doc, routing.as_ref())
                    && n.store.heads(doc) != hub_heads
                {
                    let hashes = |st: &MemStore| -> std::collections::BTreeSet<String> {
                        st.log()
                            .iter()
                            .filter(|c| &c.doc == doc)
                            .map(|c| c.hash.to_string()[..8].to_owned())
                            .collect()
                    };
                    let (h, o) = (hashes(hub), hashes(&n.store));
                    return Err(format!(
                        "{} holds {doc} at other heads than the hub ({routing:?}); only at the hub: {:?}; only there: {:?}",
                        n.name,
                        h.difference(&o).collect::<Vec<_>>(),
                        o.difference(&h).collect::<Vec<_>>()
                    ));
                }
            }
        }
        for n in &self.nodes[1..] {
            for doc in n.store.doc_ids() {
                if !self.may_hold(n, doc) {
                    return Err(format!(
                        "{} holds {doc}, which was never in its scope",
                        n.name
                    ));
                }
            }
        }
        for doc in hub.doc_ids().filter(|d| d.is_case()) {
            let expected = view_of(hub, doc);
            for n in &self.nodes[1..] {
                if n.store.heads(doc).is_some()
                    && n.store.heads(doc) == hub.heads(doc)
                    && view_of(&n.store, doc) != expected
                {
                    return Err(format!(
                        "{} shows {doc} with another status or conflict list",
                        n.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn may_hold(&self, n: &SimNode, doc: &DocId) -> bool {
        if doc.reference().is_some() {
            return true;
        }
        let created_here = n
            .store
            .doc(doc)
            .and_then(|mut d| {
                d.get_changes(&[])
                    .first()
                    .map(|c| NodeId::of_actor(c.actor_id()))
            })
            .flatten()
            == Some(n.id);
        if created_here {
            return true;
        }
        let Some(d) = self.nodes[0].store.doc(doc) else {
            return false;
        };
        let Ok(mut case) = CaseDoc::from_automerge(d) else {
            return false;
        };
        let events = case.events();
        let home = case.routing().home_center;
        match n.info.role {
            Role::Hub => true,
            Role::Center => {
                home == n.info.center
                    || events.iter().any(|e| {
                        e.kind == "transferred" && e.data.get("to_center") == Some(&n.info.center)
                    })
            }
            Role::Laptop => events
                .iter()
                .any(|e| e.kind == "assigned" && e.data.get("staff") == Some(&n.info.staff)),
        }
    }
}

fn view_of(store: &MemStore, doc: &DocId) -> Option<String> {
    let d = store.doc(doc)?;
    let mut case = CaseDoc::from_automerge(d).ok()?;
    let v = case.view(false);
    serde_json::to_string(&(
        v.status,
        v.event_conflicts,
        v.field_conflicts,
        v.current_center,
        v.assigned_staff,
    ))
    .ok()
}
