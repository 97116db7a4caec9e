//! The events stored in a case document, read back in document order (with the change
//! that wrote each), and their fold into a status: by causal order and trusted time for
//! a document, by stamps alone for a bare list of events.

use std::collections::BTreeMap;

use automerge::{ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};
use serde::Serialize;

use super::*;
use crate::case::rules;
use crate::case::status::{self, EventOrder, FoldEvent};
use crate::hlc::Hlc;

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub hlc: Hlc,
    pub wall_ms: i64,
    pub clerk: String,
    pub node: String,
    pub note: String,
    pub data: BTreeMap<String, String>,
}

impl Event {
    pub fn order(&self) -> EventOrder {
        EventOrder {
            hlc: self.hlc,
            node: self.node.clone(),
            id: self.id.clone(),
        }
    }
}

impl CaseDoc {
    /// Every event in document order, as stored.
    pub fn events(&self) -> Vec<Event> {
        self.events_with_ids().into_iter().map(|(e, _)| e).collect()
    }

    /// Every event in document order with the change that wrote it.
    pub(in crate::case) fn placed_events(&self) -> Vec<(Event, Option<ChangeHash>)> {
        self.events_with_ids()
            .into_iter()
            .map(|(e, id)| (e, self.doc.hash_for_opid(&id)))
            .collect()
    }

    fn events_with_ids(&self) -> Vec<(Event, ObjId)> {
        let Ok(events) = self.obj(ROOT, "events") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let ids: Vec<ObjId> = self
            .doc
            .list_range(&events, ..)
            .map(|item| item.id())
            .collect();
        for id in ids {
            if !matches!(self.doc.object_type(&id), Ok(ObjType::Map)) {
                continue;
            }
            let int = |key: &str| match self.doc.get(&id, key) {
                Ok(Some((Value::Scalar(s), _))) => s.as_i64().unwrap_or(0),
                _ => 0,
            };
            let mut data = BTreeMap::new();
            if let Ok(d) = self.obj(&id, "data") {
                for key in self.doc.keys(&d) {
                    data.insert(key.clone(), self.str_at(&d, &key));
                }
            }
            out.push((
                Event {
                    id: self.str_at(&id, "id"),
                    kind: self.str_at(&id, "kind"),
                    hlc: Hlc(int("hlc").max(0) as u64),
                    wall_ms: int("wall_ms"),
                    clerk: self.str_at(&id, "clerk"),
                    node: self.str_at(&id, "node"),
                    note: self.str_at(&id, "note"),
                    data,
                },
                id,
            ));
        }
        out
    }

    /// The fold of the events in causal order with trusted times (see [`crate::case::clock`]).
    pub fn fold(&mut self) -> status::Folded {
        self.timeline().folded
    }
}

/// Folds stored events by their stamps alone; events of a kind this version does not
/// know stay in the history but take no part in the status. A document's own fold
/// ([`CaseDoc::fold`]) also uses its causal order and the clock rule.
pub fn fold_events(events: &[Event]) -> status::Folded {
    let fold_input: Vec<FoldEvent> = events
        .iter()
        .filter_map(|e| {
            let kind = e.kind.parse().ok()?;
            Some(FoldEvent {
                order: e.order(),
                kind,
                acknowledges: e.data.get("event").cloned(),
                once_key: rules::once_key(kind, e),
            })
        })
        .collect();
    status::fold(&fold_input)
}
