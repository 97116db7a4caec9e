//! The case as shown to people: `CaseView` with its status derived, conflicts listed
//! and ID numbers and phones masked unless revealed, read from the document or, for a
//! case just registered, made straight from the request.

use std::collections::BTreeMap;

use automerge::{ROOT, ReadDoc, Value};
use serde::Serialize;

use super::*;
use crate::case::clock::SkewedEvent;
use crate::case::deadlines::CaseDeadlines;
use crate::case::facts::CaseFacts;
use crate::case::status::{self, EventConflict, Status};
use crate::case::timeline::Timeline;
use crate::validate;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PartyView {
    pub kind: String,
    pub name: String,
    pub id_no: String,
    pub phone: String,
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MaterialView {
    pub code: String,
    pub name: String,
    pub required: bool,
    pub received: bool,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryView {
    pub method: String,
    pub address: String,
    pub tracking_no: String,
}

/// A case as shown to people: status derived, conflicts listed, ID masked unless revealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseView {
    pub case_no: String,
    pub item_code: String,
    pub item_name: String,
    pub department: String,
    pub district: String,
    pub home_center: String,
    pub current_center: String,
    pub assigned_staff: String,
    pub created_node: String,
    pub created_clerk: String,
    pub created_ms: i64,
    pub status: Option<Status>,
    pub status_label: String,
    pub next_steps: Vec<EventKind>,
    pub conflict_count: usize,
    pub event_conflicts: Vec<EventConflict>,
    pub field_conflicts: Vec<FieldConflict>,
    pub applicant: PartyView,
    pub agent: Option<PartyView>,
    pub materials: Vec<MaterialView>,
    pub delivery: DeliveryView,
    pub events: Vec<Event>,
    pub notes: Vec<String>,
    /// Events whose stamps the clock rule corrected (a node with a wrong clock).
    pub skewed_events: Vec<SkewedEvent>,
    /// What the events establish for deadlines and metrics.
    pub facts: CaseFacts,
    /// Filled by the node, which holds the catalog and calendar; `None` from `view`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadlines: Option<CaseDeadlines>,
}

impl CaseDoc {
    pub fn delivery(&self) -> DeliveryView {
        let delivery = self.obj(ROOT, "delivery").ok();
        let d = |key: &str| {
            delivery
                .as_ref()
                .map(|o| self.str_at(o, key))
                .unwrap_or_default()
        };
        DeliveryView {
            method: d("method"),
            address: d("address"),
            tracking_no: d("tracking_no"),
        }
    }

    /// A read-only picture of the case for lists, detail pages and JSON output.
    pub fn view(&mut self, reveal: bool) -> CaseView {
        let timeline = self.timeline();
        self.view_of(reveal, timeline, true)
    }

    /// [`CaseDoc::view`] from a timeline the caller already folded. With
    /// `fields_may_conflict` false the caller vouches that no two changes of the
    /// document were ever concurrent (its history is one chain), so no field can hold
    /// two values and the search for them is skipped: the costliest part of a view.
    pub fn view_of(
        &mut self,
        reveal: bool,
        timeline: Timeline,
        fields_may_conflict: bool,
    ) -> CaseView {
        let mut field_conflicts = if fields_may_conflict {
            self.field_conflicts()
        } else {
            Vec::new()
        };
        let meta = self.obj(ROOT, "meta").ok();
        let m = |key: &str| {
            meta.as_ref()
                .map(|o| self.str_at(o, key))
                .unwrap_or_default()
        };
        let party = |key: &str| -> Option<PartyView> {
            let obj = self.obj(ROOT, key).ok()?;
            let id_no = self.str_at(&obj, "id_no");
            let phone = self.str_at(&obj, "phone");
            Some(PartyView {
                kind: self.str_at(&obj, "kind"),
                name: self.str_at(&obj, "name"),
                id_no: if reveal {
                    id_no.clone()
                } else {
                    validate::mask_id(&id_no)
                },
                phone: if reveal {
                    phone
                } else {
                    validate::mask_phone(&phone)
                },
                address: self.str_at(&obj, "address"),
            })
        };
        let applicant = party("applicant").unwrap_or_default();
        let agent = party("agent").filter(|a| !a.name.is_empty());
        let mut materials = Vec::new();
        if let Ok(mats) = self.obj(ROOT, "materials") {
            for code in self.doc.keys(&mats).collect::<Vec<_>>() {
                if let Ok(o) = self.obj(&mats, &code) {
                    let flag = |key: &str| matches!(self.doc.get(&o, key), Ok(Some((Value::Scalar(s), _))) if s.as_bool() == Some(true));
                    materials.push(MaterialView {
                        name: self.str_at(&o, "name"),
                        required: flag("required"),
                        received: flag("received"),
                        note: self.str_at(&o, "note"),
                        code,
                    });
                }
            }
        }
        let delivery = self.delivery();
        let mut notes = Vec::new();
        if let Ok(list) = self.obj(ROOT, "notes") {
            for item in self.doc.list_range(&list, ..) {
                notes.push(self.str_at(&item.id(), "text"));
            }
        }
        let routing = routing_from(&timeline, m("home_center"));
        let facts = CaseFacts::from_timeline(&timeline);
        let skewed_events = timeline.skewed();
        let events: Vec<Event> = timeline.events.iter().map(|e| e.event.clone()).collect();
        let folded = timeline.folded;
        if !reveal {
            for c in &mut field_conflicts {
                if c.path.ends_with("id_no") {
                    c.values
                        .iter_mut()
                        .for_each(|v| v.value = validate::mask_id(&v.value));
                }
                if c.path.ends_with("phone") {
                    c.values
                        .iter_mut()
                        .for_each(|v| v.value = validate::mask_phone(&v.value));
                }
            }
        }
        let event_conflicts: Vec<EventConflict> = folded
            .conflicts
            .into_iter()
            .filter(|c| !c.acknowledged)
            .collect();
        CaseView {
            case_no: m("case_no"),
            item_code: m("item_code"),
            item_name: m("item_name"),
            department: m("department"),
            district: m("district"),
            home_center: m("home_center"),
            current_center: routing.current_center,
            assigned_staff: routing.assigned_staff,
            created_node: m("created_node"),
            created_clerk: m("created_clerk"),
            created_ms: meta
                .as_ref()
                .and_then(|o| match self.doc.get(o, "created_ms") {
                    Ok(Some((Value::Scalar(s), _))) => s.as_i64(),
                    _ => None,
                })
                .unwrap_or(0),
            status: folded.status,
            status_label: folded
                .status
                .map(Status::label_zh)
                .unwrap_or("未知")
                .to_owned(),
            next_steps: status::legal_steps(folded.status),
            conflict_count: event_conflicts.len() + field_conflicts.len(),
            event_conflicts,
            field_conflicts,
            applicant,
            agent,
            materials,
            delivery,
            events,
            notes,
            skewed_events,
            facts,
            deadlines: None,
        }
    }
}

/// The view of a case [`CaseDoc::create`] has just built, made from the request
/// instead of read back from the document: registering a case is the clerk's
/// critical path, and reading a fresh document back costs as much as building it.
/// A test holds the two equal.
pub fn new_case_view(new: &NewCase, stamp: &Stamp) -> CaseView {
    let party = |p: &Party, kind: &str| PartyView {
        kind: kind.to_owned(),
        name: p.name.clone(),
        id_no: validate::mask_id(&validate::normalize_resident_id(&p.id_no)),
        phone: validate::mask_phone(&p.phone),
        address: p.address.clone(),
    };
    let mut materials: Vec<MaterialView> = new
        .materials
        .iter()
        .map(|m| MaterialView {
            code: m.code.clone(),
            name: m.name.clone(),
            required: m.required,
            received: m.received,
            note: String::new(),
        })
        .collect();
    materials.sort_by(|a, b| a.code.cmp(&b.code));
    CaseView {
        case_no: new.case_no.clone(),
        item_code: new.item_code.clone(),
        item_name: new.item_name.clone(),
        department: new.department.clone(),
        district: new.district.clone(),
        home_center: new.home_center.clone(),
        current_center: new.home_center.clone(),
        assigned_staff: String::new(),
        created_node: stamp.node.to_string(),
        created_clerk: stamp.clerk.clone(),
        created_ms: stamp.hlc.wall_ms(),
        status: Some(Status::Submitted),
        status_label: Status::Submitted.label_zh().to_owned(),
        next_steps: status::legal_steps(Some(Status::Submitted)),
        conflict_count: 0,
        event_conflicts: Vec::new(),
        field_conflicts: Vec::new(),
        applicant: party(&new.applicant, new.applicant_kind.as_str()),
        agent: new
            .agent
            .as_ref()
            .filter(|a| !a.name.is_empty())
            .map(|a| party(a, "")),
        materials,
        delivery: DeliveryView {
            method: new.delivery_method.clone(),
            address: new.delivery_address.clone(),
            tracking_no: String::new(),
        },
        events: vec![Event {
            id: stamp.event_id.clone(),
            kind: EventKind::Submitted.as_str().to_owned(),
            hlc: stamp.hlc,
            wall_ms: stamp.hlc.wall_ms(),
            clerk: stamp.clerk.clone(),
            node: stamp.node.to_string(),
            note: String::new(),
            data: BTreeMap::new(),
        }],
        notes: Vec::new(),
        skewed_events: Vec::new(),
        facts: CaseFacts::default(),
        deadlines: None,
    }
}
