//! Field conflicts: map keys that hold concurrent values after a merge, each value
//! with the node and clerk that wrote it, listed in the same order on every node until
//! a clerk writes the chosen value.

use automerge::{ObjId, ObjType, ROOT, ReadDoc, Value};
use serde::Serialize;

use super::*;
use crate::ids::NodeId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConflictValue {
    pub value: String,
    pub node: String,
    pub clerk: String,
}

/// A field that holds concurrent values until a clerk picks one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldConflict {
    pub path: String,
    pub values: Vec<ConflictValue>,
}

impl CaseDoc {
    /// Resolves a field conflict by writing the chosen value, which supersedes every
    /// concurrent value on every copy once it has synced.
    pub fn resolve_field(
        &mut self,
        path: &str,
        value: &str,
        stamp: &Stamp,
    ) -> Result<(), CaseError> {
        if !self.field_conflicts().iter().any(|c| c.path == path) {
            return Err(CaseError::NoConflict(path.to_owned()));
        }
        self.set_field(path, value, stamp)
    }

    /// Every map key that holds more than one concurrent value, with who wrote each.
    pub fn field_conflicts(&mut self) -> Vec<FieldConflict> {
        let mut out = Vec::new();
        self.collect_conflicts(ROOT, String::new(), &mut out);
        out
    }

    fn collect_conflicts(&mut self, obj: ObjId, prefix: String, out: &mut Vec<FieldConflict>) {
        let keys: Vec<String> = self.doc.keys(&obj).collect();
        for key in keys {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let values = self.doc.get_all(&obj, key.as_str()).unwrap_or_default();
            if values.len() > 1 {
                let mut listed = Vec::new();
                for (value, id) in &values {
                    let node = match id {
                        automerge::ObjId::Id(_, actor, _) => {
                            NodeId::of_actor(actor).map(|n| n.to_string())
                        }
                        automerge::ObjId::Root => None,
                    };
                    let clerk = self
                        .doc
                        .hash_for_opid(id)
                        .and_then(|h| self.doc.get_change_by_hash(&h))
                        .and_then(|c| c.message().map(str::to_owned));
                    let value = match value {
                        Value::Scalar(s) => scalar_text(s),
                        Value::Object(t) => format!("({t:?})"),
                    };
                    listed.push(ConflictValue {
                        value,
                        node: node.unwrap_or_default(),
                        clerk: clerk.unwrap_or_default(),
                    });
                }
                // Deterministic order, so every node lists a conflict the same way.
                listed.sort_by(|a, b| (&a.node, &a.value).cmp(&(&b.node, &b.value)));
                out.push(FieldConflict {
                    path: path.clone(),
                    values: listed,
                });
            }
            // Lists hold events and notes, which only grow; only maps can hold field conflicts.
            if let Some((Value::Object(ObjType::Map), child)) = values.last().cloned() {
                self.collect_conflicts(child, path, out);
            }
        }
    }
}
