//! The clerks' work at random nodes: registering cases, lifecycle steps, concurrent
//! field edits, transfers and assignments, reference edits by the hub, forged cases
//! the write rules must refuse, and node restarts, backups and restores.

use yichuang_shared::case::status::legal_steps;
use yichuang_shared::case::{CaseDoc, EventKind};
use yichuang_shared::ids::{RefDoc, Role};

use super::*;

impl Sim {
    fn after_local_write(&mut self, node: usize, doc: DocId, hashes: Vec<ChangeHash>, rogue: bool) {
        let list = if rogue {
            &mut self.nodes[node].rogue
        } else {
            &mut self.nodes[node].acked
        };
        list.extend(hashes.into_iter().map(|h| (doc.clone(), h)));
        self.notify_node(node);
    }

    /// Cases `node` holds and may write, as it sees them.
    fn writable_cases(&self, node: usize) -> Vec<DocId> {
        let n = &self.nodes[node];
        n.store
            .doc_ids()
            .filter(|d| d.is_case())
            .filter(|d| {
                let Some(r) = n.store.meta(d).and_then(|m| m.routing.clone()) else {
                    return false;
                };
                match n.info.role {
                    Role::Hub => true,
                    Role::Center => {
                        r.home_center == n.info.center || r.current_center == n.info.center
                    }
                    Role::Laptop => r.assigned_staff == n.info.staff,
                }
            })
            .cloned()
            .collect()
    }

    fn status_of(&self, node: usize, doc: &DocId) -> Option<yichuang_shared::case::Status> {
        let d = self.nodes[node].store.doc(doc)?;
        CaseDoc::from_automerge(d).ok()?.fold().status
    }

    /// One random piece of work at a random node.
    pub fn random_op(&mut self) {
        self.stats.ops += 1;
        let now = self.now;
        let roll = self.rng.below(100);
        let node = self.rng.below(self.nodes.len() as u64) as usize;
        match roll {
            0..=14 => {
                // A clerk registers a case at their node's center (the hub picks one).
                let home = match self.nodes[node].info.role {
                    Role::Hub => self
                        .rng
                        .pick(&["001", "002", "003"])
                        .copied()
                        .unwrap_or("001")
                        .to_owned(),
                    _ => self.nodes[node].info.center.clone(),
                };
                let random = self.rng.bytes16();
                let n = &mut self.nodes[node];
                if let Ok((doc, hashes)) = n.clerk.create_case(&mut n.store, random, &home, now) {
                    self.log(format!("{} creates {doc} at {home}", self.nodes[node].name));
                    self.after_local_write(node, doc, hashes, false);
                }
            }
            15..=44 => {
                // A step of the lifecycle on a case the node may write.
                let docs = self.writable_cases(node);
                let Some(doc) = self.rng.pick(&docs).cloned() else {
                    return;
                };
                let steps: Vec<EventKind> = legal_steps(self.status_of(node, &doc))
                    .into_iter()
                    .filter(|k| !matches!(k, EventKind::Transferred | EventKind::Assigned))
                    .collect();
                let Some(kind) = self.rng.pick(&steps).copied() else {
                    return;
                };
                let n = &mut self.nodes[node];
                if let Ok(hashes) = n.clerk.event(&mut n.store, &doc, kind, &[], now) {
                    self.log(format!("{} {kind} {doc}", self.nodes[node].name));
                    self.after_local_write(node, doc, hashes, false);
                }
            }
            45..=59 => {
                // Concurrent edits of one field make conflicts.
                let docs = self.writable_cases(node);
                let Some(doc) = self.rng.pick(&docs).cloned() else {
                    return;
                };
                let phone = format!("139{:08}", self.rng.below(100_000_000));
                let n = &mut self.nodes[node];
                if let Ok(hashes) =
                    n.clerk
                        .set_field(&mut n.store, &doc, "applicant.phone", &phone, now)
                {
                    self.log(format!("{} sets phone of {doc}", self.nodes[node].name));
                    self.after_local_write(node, doc, hashes, false);
                }
            }
            60..=67 => {
                // The hub transfers a case to another center.
                let docs = self.writable_cases(0);
                let Some(doc) = self.rng.pick(&docs).cloned() else {
                    return;
                };
                let to = self
                    .rng
                    .pick(&["001", "002", "003"])
                    .copied()
                    .unwrap_or("001");
                let n = &mut self.nodes[0];
                if let Ok(hashes) = n.clerk.event(
                    &mut n.store,
                    &doc,
                    EventKind::Transferred,
                    &[("to_center", to)],
                    now,
                ) {
                    self.stats.transfers += 1;
                    self.log(format!("hub transfers {doc} to {to}"));
                    self.after_local_write(0, doc, hashes, false);
                }
            }
            68..=75 => {
                // The hub or a center assigns a case to a laptop's staff member.
                let who = if self.rng.per_mille(500) {
                    0
                } else {
                    self.rng.range(1, 4) as usize
                };
                let docs = self.writable_cases(who);
                let Some(doc) = self.rng.pick(&docs).cloned() else {
                    return;
                };
                let staff = staff_of(self.rng.pick(&["001", "002"]).copied().unwrap_or("001"));
                let n = &mut self.nodes[who];
                if let Ok(hashes) = n.clerk.event(
                    &mut n.store,
                    &doc,
                    EventKind::Assigned,
                    &[("staff", &staff)],
                    now,
                ) {
                    self.stats.assignments += 1;
                    self.log(format!("{} assigns {doc} to {staff}", self.nodes[who].name));
                    self.after_local_write(who, doc, hashes, false);
                }
            }
            76..=78 => {
                // The hub edits the enrolled-nodes reference document.
                let key = format!("k{}", self.rng.below(5));
                let value = format!("v{}", self.rng.below(1000));
                let n = &mut self.nodes[0];
                let doc = RefDoc::Nodes.doc_id();
                if let Ok(hashes) =
                    n.clerk
                        .edit_reference(&mut n.store, &doc, "nodes", &key, &value, now)
                {
                    self.log(format!("hub edits {doc}"));
                    self.after_local_write(0, doc, hashes, false);
                }
            }
            79..=80 => {
                // A laptop forges a case for a center it does not belong to.
                let laptop = self.rng.range(4, 6) as usize;
                let home = if self.nodes[laptop].info.center == "001" {
                    "003"
                } else {
                    "001"
                };
                let random = self.rng.bytes16();
                let n = &mut self.nodes[laptop];
                if let Ok((doc, hashes)) = n.clerk.create_case(&mut n.store, random, home, now) {
                    self.log(format!(
                        "{} forges {doc} at {home}",
                        self.nodes[laptop].name
                    ));
                    self.after_local_write(laptop, doc, hashes, true);
                }
            }
            81..=88 => {
                let link = self.rng.below(self.links.len() as u64) as usize;
                let back = self.now + self.rng.range(500, 20_000);
                self.partition(link, back);
            }
            89..=91 => {
                self.nodes[node].backup = Some(self.nodes[node].store.clone());
                self.log(format!("{} backed up", self.nodes[node].name));
            }
            92..=94 => self.restore(node),
            _ => self.restart(node),
        }
    }

    /// The node's process restarts: sessions drop, a new actor.
    pub fn restart(&mut self, node: usize) {
        for link in 0..self.links.len() {
            if self.links[link].ends.contains(&node) {
                self.teardown(link, "restart");
            }
        }
        let n = &mut self.nodes[node];
        n.nonce += 1;
        n.clerk = Clerk::new(n.id, n.nonce, &format!("clerk-{}", n.name));
        let line = format!("{} restarts", self.nodes[node].name);
        self.log(line);
    }

    /// Restores the node from its backup, if every change acknowledged there since
    /// exists on some other node (otherwise a restore would lose it for good, which
    /// is what backups are for and not what this test checks).
    pub fn restore(&mut self, node: usize) {
        let Some(backup) = self.nodes[node].backup.clone() else {
            return;
        };
        let lost: Vec<&(DocId, ChangeHash)> = self.nodes[node]
            .acked
            .iter()
            .filter(|(_, h)| !backup.has_change(h))
            .collect();
        let safe = lost.iter().all(|(_, h)| {
            self.nodes
                .iter()
                .enumerate()
                .any(|(i, n)| i != node && n.store.has_change(h))
        });
        if !safe {
            return;
        }
        let epoch = self.rng.next_u64();
        self.nodes[node].store = MemStore::restored(&backup, epoch);
        self.stats.restores += 1;
        let line = format!("{} restored from backup", self.nodes[node].name);
        self.log(line);
        self.restart(node);
    }
}
