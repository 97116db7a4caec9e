//! One case (办件) as an Automerge document: creating it, appending events, editing
//! fields, and reading it back as a view with its status and conflicts.
//!
//! Architecture invariant: the document's shape is fixed when the case is created.
//! Every map a case will ever need exists from its first change; later changes only
//! set scalars and append to lists. So two nodes never create the same object
//! concurrently, and every field conflict is a conflict between scalar values.

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, AutomergeError, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc,
    ScalarValue, Value,
};
use serde::Serialize;

use super::clock::SkewedEvent;
use super::deadlines::CaseDeadlines;
use super::facts::CaseFacts;
use super::rules::{self, StepContext};
use super::status::{self, EventConflict, EventKind, EventOrder, FoldEvent, Status, Transition};
use super::timeline::Timeline;
use crate::hlc::Hlc;
use crate::ids::NodeId;
use crate::validate::{self, ValidationError};

/// The document type marker, so a case can never be mistaken for a reference document.
pub const DOC_TYPE_CASE: &str = "case";
/// Longest free text a clerk may put in one field or note; a case is a record, not a file store.
pub const TEXT_MAX_CHARS: usize = 2_000;
/// Most events one case may hold; a real case has a few dozen.
pub const EVENTS_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{kind} is not allowed while the case is {status}; legal next steps: {legal}")]
    IllegalTransition {
        kind: EventKind,
        status: String,
        legal: String,
    },
    #[error("unknown field {0:?}; editable fields: {fields}", fields = EDITABLE_FIELDS.join(", "))]
    UnknownField(String),
    #[error("invalid value for {field}: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("field {0:?} has no conflict to resolve")]
    NoConflict(String),
    #[error("event {0:?} is not a conflicting event of this case")]
    NoEventConflict(String),
    #[error("the document is not a case: {0}")]
    NotACase(String),
    #[error("the case has reached its limit of {EVENTS_MAX} events")]
    TooManyEvents,
    #[error("{0}")]
    AlreadyRecorded(String),
    #[error("automerge: {0}")]
    Automerge(#[from] AutomergeError),
}

/// Applicant types of the national exchange specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicantKind {
    /// 1 自然人
    NaturalPerson,
    /// 2 企业法人
    EnterpriseLegalPerson,
    /// 3 事业单位
    PublicInstitution,
    /// 4 社会组织
    SocialOrganisation,
    /// 5 非法人企业
    NonLegalPersonEnterprise,
    /// 6 行政机关
    AdministrativeOrgan,
    /// 9 其他
    Other,
}

impl ApplicantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicantKind::NaturalPerson => "natural_person",
            ApplicantKind::EnterpriseLegalPerson => "enterprise_legal_person",
            ApplicantKind::PublicInstitution => "public_institution",
            ApplicantKind::SocialOrganisation => "social_organisation",
            ApplicantKind::NonLegalPersonEnterprise => "non_legal_person_enterprise",
            ApplicantKind::AdministrativeOrgan => "administrative_organ",
            ApplicantKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<ApplicantKind> {
        [
            ApplicantKind::NaturalPerson,
            ApplicantKind::EnterpriseLegalPerson,
            ApplicantKind::PublicInstitution,
            ApplicantKind::SocialOrganisation,
            ApplicantKind::NonLegalPersonEnterprise,
            ApplicantKind::AdministrativeOrgan,
            ApplicantKind::Other,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Natural persons carry a resident ID; every other kind a credit code.
    pub fn id_type(self) -> &'static str {
        match self {
            ApplicantKind::NaturalPerson => "resident_id",
            _ => "credit_code",
        }
    }
}

/// A person or body as entered at the counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Party {
    pub name: String,
    pub id_no: String,
    pub phone: String,
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaterialSpec {
    pub code: String,
    pub name: String,
    pub required: bool,
    pub received: bool,
}

/// Everything needed to register a case.
#[derive(Clone, Debug)]
pub struct NewCase {
    pub case_no: String,
    pub district: String,
    pub home_center: String,
    pub item_code: String,
    pub item_name: String,
    pub department: String,
    pub applicant_kind: ApplicantKind,
    pub applicant: Party,
    pub agent: Option<Party>,
    pub materials: Vec<MaterialSpec>,
    pub delivery_method: String,
    /// Where results are posted; required when `delivery_method` is `post`.
    pub delivery_address: String,
}

/// Who is acting and when; every change a node makes carries one.
#[derive(Clone, Debug)]
pub struct Stamp {
    pub node: NodeId,
    pub clerk: String,
    pub hlc: Hlc,
    pub event_id: String,
}

/// A request to record an event.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    pub note: String,
    pub data: BTreeMap<String, String>,
}

/// The fields a clerk may edit, as `path=value`.
pub const EDITABLE_FIELDS: &[&str] = &[
    "applicant.name",
    "applicant.id_no",
    "applicant.phone",
    "applicant.address",
    "agent.name",
    "agent.id_no",
    "agent.phone",
    "delivery.method",
    "delivery.address",
    "delivery.tracking_no",
    "materials.<code>.received",
    "materials.<code>.note",
];

pub const DELIVERY_METHODS: &[&str] = &["window", "post", "locker"];

/// A case document.
#[derive(Debug)]
pub struct CaseDoc {
    doc: AutoCommit,
}

fn text_check(field: &str, value: &str) -> Result<(), CaseError> {
    if value.chars().count() > TEXT_MAX_CHARS {
        return Err(CaseError::InvalidValue {
            field: field.to_owned(),
            reason: format!("longer than {TEXT_MAX_CHARS} characters"),
        });
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(CaseError::InvalidValue {
            field: field.to_owned(),
            reason: "contains control characters".into(),
        });
    }
    Ok(())
}

fn check_party_id(kind: ApplicantKind, id_no: &str) -> Result<(), ValidationError> {
    match kind {
        ApplicantKind::NaturalPerson => validate::check_resident_id(id_no),
        _ => validate::check_credit_code(id_no),
    }
}

impl NewCase {
    /// Checks what a clerk entered before anything is written.
    pub fn validate(&self) -> Result<(), CaseError> {
        if self.applicant.name.trim().is_empty() {
            return Err(CaseError::InvalidValue {
                field: "applicant.name".into(),
                reason: "must not be empty".into(),
            });
        }
        for (field, value) in [
            ("applicant.name", &self.applicant.name),
            ("applicant.address", &self.applicant.address),
        ] {
            text_check(field, value)?;
        }
        check_party_id(self.applicant_kind, &self.applicant.id_no)?;
        if !self.applicant.phone.is_empty() {
            validate::check_phone(&self.applicant.phone)?;
        }
        if let Some(agent) = &self.agent {
            text_check("agent.name", &agent.name)?;
            validate::check_resident_id(&agent.id_no)?;
            if !agent.phone.is_empty() {
                validate::check_phone(&agent.phone)?;
            }
        }
        if !DELIVERY_METHODS.contains(&self.delivery_method.as_str()) {
            return Err(CaseError::InvalidValue {
                field: "delivery.method".into(),
                reason: format!("expected one of {}", DELIVERY_METHODS.join(", ")),
            });
        }
        text_check("delivery.address", &self.delivery_address)?;
        check_delivery(&self.delivery_method, &self.delivery_address)?;
        Ok(())
    }
}

fn commit_options(stamp: &Stamp) -> CommitOptions {
    // The clerk id rides in the change message so a conflict can say who wrote each value;
    // the time is the stamp's, never the library's own clock read.
    CommitOptions::default()
        .with_message(stamp.clerk.clone())
        .with_time(stamp.hlc.wall_ms())
}

fn put_party(
    doc: &mut AutoCommit,
    obj: &ObjId,
    party: &Party,
    kind: Option<ApplicantKind>,
) -> Result<(), AutomergeError> {
    // Empty fields are left out: an absent key reads as empty, and every operation
    // costs time on the clerk's critical path.
    for (key, value) in [
        ("name", party.name.clone()),
        ("id_no", validate::normalize_resident_id(&party.id_no)),
        ("phone", party.phone.clone()),
        ("address", party.address.clone()),
    ] {
        if !value.is_empty() {
            doc.put(obj, key, value)?;
        }
    }
    if let Some(kind) = kind {
        doc.put(obj, "kind", kind.as_str())?;
        doc.put(obj, "id_type", kind.id_type())?;
    }
    Ok(())
}

impl CaseDoc {
    /// Builds a new case whose first change holds its whole shape and the 申办 event.
    pub fn create(new: &NewCase, actor: ActorId, stamp: &Stamp) -> Result<CaseDoc, CaseError> {
        new.validate()?;
        let mut doc = AutoCommit::new().with_actor(actor);
        doc.put(ROOT, "type", DOC_TYPE_CASE)?;
        let meta = doc.put_object(ROOT, "meta", ObjType::Map)?;
        for (k, v) in [
            ("case_no", new.case_no.as_str()),
            ("district", new.district.as_str()),
            ("home_center", new.home_center.as_str()),
            ("item_code", new.item_code.as_str()),
            ("item_name", new.item_name.as_str()),
            ("department", new.department.as_str()),
            ("created_clerk", stamp.clerk.as_str()),
        ] {
            doc.put(&meta, k, v)?;
        }
        doc.put(&meta, "created_node", stamp.node.to_string())?;
        doc.put(&meta, "created_ms", stamp.hlc.wall_ms())?;
        let applicant = doc.put_object(ROOT, "applicant", ObjType::Map)?;
        put_party(
            &mut doc,
            &applicant,
            &new.applicant,
            Some(new.applicant_kind),
        )?;
        let agent = doc.put_object(ROOT, "agent", ObjType::Map)?;
        put_party(
            &mut doc,
            &agent,
            new.agent.as_ref().unwrap_or(&Party::default()),
            None,
        )?;
        let materials = doc.put_object(ROOT, "materials", ObjType::Map)?;
        for m in &new.materials {
            let obj = doc.put_object(&materials, m.code.as_str(), ObjType::Map)?;
            doc.put(&obj, "name", m.name.as_str())?;
            doc.put(&obj, "required", m.required)?;
            doc.put(&obj, "received", m.received)?;
        }
        let delivery = doc.put_object(ROOT, "delivery", ObjType::Map)?;
        doc.put(&delivery, "method", new.delivery_method.as_str())?;
        if !new.delivery_address.is_empty() {
            doc.put(&delivery, "address", new.delivery_address.as_str())?;
        }
        doc.put_object(ROOT, "events", ObjType::List)?;
        doc.put_object(ROOT, "notes", ObjType::List)?;
        let mut case = CaseDoc { doc };
        case.push_event(EventKind::Submitted, stamp, &NewEvent::default())?;
        case.doc.commit_with(commit_options(stamp));
        Ok(case)
    }

    pub fn from_automerge(doc: AutoCommit) -> Result<CaseDoc, CaseError> {
        match doc.get(ROOT, "type")? {
            Some((Value::Scalar(s), _)) if s.as_str() == Some(DOC_TYPE_CASE) => Ok(CaseDoc { doc }),
            other => Err(CaseError::NotACase(format!("type is {other:?}"))),
        }
    }

    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    pub fn into_automerge(self) -> AutoCommit {
        self.doc
    }

    pub fn set_actor(&mut self, actor: ActorId) {
        self.doc.set_actor(actor);
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The change the last local operation committed.
    pub fn last_change(&mut self) -> Option<Change> {
        self.doc.get_last_local_change()
    }

    fn push_event(
        &mut self,
        kind: EventKind,
        stamp: &Stamp,
        ev: &NewEvent,
    ) -> Result<(), CaseError> {
        text_check("note", &ev.note)?;
        for (k, v) in &ev.data {
            text_check(k, v)?;
        }
        let events = self.obj(ROOT, "events")?;
        let len = self.doc.length(&events);
        if len >= EVENTS_MAX {
            return Err(CaseError::TooManyEvents);
        }
        let e = self.doc.insert_object(&events, len, ObjType::Map)?;
        self.doc.put(&e, "id", stamp.event_id.as_str())?;
        self.doc.put(&e, "kind", kind.as_str())?;
        self.doc.put(&e, "hlc", stamp.hlc.0 as i64)?;
        self.doc.put(&e, "wall_ms", stamp.hlc.wall_ms())?;
        self.doc.put(&e, "clerk", stamp.clerk.as_str())?;
        self.doc.put(&e, "node", stamp.node.to_string())?;
        self.doc.put(&e, "note", ev.note.as_str())?;
        let data = self.doc.put_object(&e, "data", ObjType::Map)?;
        for (k, v) in &ev.data {
            self.doc.put(&data, k.as_str(), v.as_str())?;
        }
        Ok(())
    }

    /// Records an event a clerk asked for, refusing it if the current status does not
    /// allow it or it breaks a rule of case work (see [`rules`]).
    pub fn append_event(
        &mut self,
        kind: EventKind,
        stamp: &Stamp,
        ev: &NewEvent,
    ) -> Result<(), CaseError> {
        let timeline = self.timeline();
        let status = timeline.folded.status;
        if kind == EventKind::Submitted || status::transition(status, kind).is_none() {
            return Err(illegal(kind, status));
        }
        let routing = self.routing_in(&timeline);
        let delivery = self.delivery();
        let ev = rules::prepare(
            kind,
            ev,
            &StepContext {
                timeline: &timeline,
                routing: &routing,
                delivery: &delivery,
            },
        )?;
        self.push_event(kind, stamp, &ev)?;
        if kind == EventKind::Delivered
            && let Some(tracking_no) = ev.data.get("tracking_no")
        {
            let obj = self.obj(ROOT, "delivery")?;
            self.doc.put(&obj, "tracking_no", tracking_no.as_str())?;
        }
        self.doc.commit_with(commit_options(stamp));
        Ok(())
    }

    /// Checks the delivery fields together, after an edit that may set several.
    pub fn check_delivery(&self) -> Result<(), CaseError> {
        let d = self.delivery();
        check_delivery(&d.method, &d.address)
    }

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

    /// A text field of the case's `meta` map.
    pub fn meta_text(&self, key: &str) -> String {
        self.obj(ROOT, "meta")
            .map(|m| self.str_at(&m, key))
            .unwrap_or_default()
    }

    /// Records an audit event that never changes the status (for example a reveal of an ID number).
    pub fn append_audit(
        &mut self,
        kind: EventKind,
        stamp: &Stamp,
        ev: &NewEvent,
    ) -> Result<(), CaseError> {
        debug_assert_eq!(
            status::transition(Some(Status::Cancelled), kind),
            Some(Transition::Stay)
        );
        self.push_event(kind, stamp, ev)?;
        self.doc.commit_with(commit_options(stamp));
        Ok(())
    }

    pub fn add_note(&mut self, stamp: &Stamp, text: &str) -> Result<(), CaseError> {
        text_check("note", text)?;
        let notes = self.obj(ROOT, "notes")?;
        let len = self.doc.length(&notes);
        let n = self.doc.insert_object(&notes, len, ObjType::Map)?;
        self.doc.put(&n, "text", text)?;
        self.doc.put(&n, "clerk", stamp.clerk.as_str())?;
        self.doc.put(&n, "wall_ms", stamp.hlc.wall_ms())?;
        self.doc.commit_with(commit_options(stamp));
        Ok(())
    }

    /// Sets one editable field after checking its value.
    pub fn set_field(&mut self, path: &str, value: &str, stamp: &Stamp) -> Result<(), CaseError> {
        self.put_field(path, value)?;
        self.doc.commit_with(commit_options(stamp));
        Ok(())
    }

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

    /// Acknowledges an event conflict: the event stays in the history, but no longer
    /// asks for attention.
    pub fn acknowledge_event(&mut self, event_id: &str, stamp: &Stamp) -> Result<(), CaseError> {
        let known = self
            .fold()
            .conflicts
            .iter()
            .any(|c| c.event_id == event_id && !c.acknowledged);
        if !known {
            return Err(CaseError::NoEventConflict(event_id.to_owned()));
        }
        let mut ev = NewEvent::default();
        ev.data.insert("event".into(), event_id.to_owned());
        self.push_event(EventKind::ConflictAcknowledged, stamp, &ev)?;
        self.doc.commit_with(commit_options(stamp));
        Ok(())
    }

    fn put_field(&mut self, path: &str, value: &str) -> Result<(), CaseError> {
        let parts: Vec<&str> = path.split('.').collect();
        let invalid = |reason: &str| CaseError::InvalidValue {
            field: path.to_owned(),
            reason: reason.to_owned(),
        };
        text_check(path, value)?;
        match parts.as_slice() {
            [
                "applicant",
                field @ ("name" | "id_no" | "phone" | "address"),
            ] => {
                match *field {
                    "name" if value.trim().is_empty() => return Err(invalid("must not be empty")),
                    "id_no" => check_party_id(self.applicant_kind(), value)?,
                    "phone" if !value.is_empty() => validate::check_phone(value)?,
                    _ => {}
                }
                let obj = self.obj(ROOT, "applicant")?;
                self.doc.put(&obj, *field, normalized(field, value))?;
            }
            ["agent", field @ ("name" | "id_no" | "phone")] => {
                match *field {
                    "id_no" if !value.is_empty() => validate::check_resident_id(value)?,
                    "phone" if !value.is_empty() => validate::check_phone(value)?,
                    _ => {}
                }
                let obj = self.obj(ROOT, "agent")?;
                self.doc.put(&obj, *field, normalized(field, value))?;
            }
            ["delivery", field @ ("method" | "address" | "tracking_no")] => {
                if *field == "method" && !DELIVERY_METHODS.contains(&value) {
                    return Err(invalid(&format!(
                        "expected one of {}",
                        DELIVERY_METHODS.join(", ")
                    )));
                }
                let obj = self.obj(ROOT, "delivery")?;
                self.doc.put(&obj, *field, value)?;
            }
            ["materials", code, field @ ("received" | "note")] => {
                let materials = self.obj(ROOT, "materials")?;
                let Ok(obj) = self.obj(&materials, code) else {
                    return Err(invalid(&format!("this case has no material {code:?}")));
                };
                if *field == "received" {
                    let received = match value {
                        "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        _ => return Err(invalid("expected true or false")),
                    };
                    self.doc.put(&obj, "received", received)?;
                } else {
                    self.doc.put(&obj, "note", value)?;
                }
            }
            _ => return Err(CaseError::UnknownField(path.to_owned())),
        }
        Ok(())
    }

    fn obj(&self, parent: impl AsRef<automerge::ObjId>, key: &str) -> Result<ObjId, CaseError> {
        match self.doc.get(parent, key)? {
            Some((Value::Object(_), id)) => Ok(id),
            _ => Err(CaseError::NotACase(format!("missing object {key:?}"))),
        }
    }

    fn str_at(&self, obj: &ObjId, key: &str) -> String {
        match self.doc.get(obj, key) {
            Ok(Some((Value::Scalar(s), _))) => scalar_text(&s),
            _ => String::new(),
        }
    }

    fn applicant_kind(&self) -> ApplicantKind {
        self.obj(ROOT, "applicant")
            .ok()
            .and_then(|a| ApplicantKind::parse(&self.str_at(&a, "kind")))
            .unwrap_or(ApplicantKind::NaturalPerson)
    }

    /// Every event in document order, as stored.
    pub fn events(&self) -> Vec<Event> {
        self.events_with_ids().into_iter().map(|(e, _)| e).collect()
    }

    /// Every event in document order with the change that wrote it.
    pub(super) fn placed_events(&self) -> Vec<(Event, Option<ChangeHash>)> {
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

    /// The fold of the events in causal order with trusted times (see [`super::clock`]).
    pub fn fold(&mut self) -> status::Folded {
        self.timeline().folded
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

    /// The case's routing: where it lives now and who carries it.
    pub fn routing(&mut self) -> Routing {
        let timeline = self.timeline();
        self.routing_in(&timeline)
    }

    fn routing_in(&self, timeline: &Timeline) -> Routing {
        routing_from(timeline, self.meta_text("home_center"))
    }

    /// A read-only picture of the case for lists, detail pages and JSON output.
    pub fn view(&mut self, reveal: bool) -> CaseView {
        let timeline = self.timeline();
        let mut field_conflicts = self.field_conflicts();
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

/// Postal delivery needs an address.
fn check_delivery(method: &str, address: &str) -> Result<(), CaseError> {
    if method == "post" && address.trim().is_empty() {
        return Err(CaseError::InvalidValue {
            field: "delivery.address".into(),
            reason: "postal delivery needs an address".into(),
        });
    }
    Ok(())
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

fn normalized(field: &str, value: &str) -> String {
    if field == "id_no" {
        validate::normalize_resident_id(value)
    } else {
        value.to_owned()
    }
}

fn scalar_text(s: &ScalarValue) -> String {
    match s {
        ScalarValue::Str(t) => t.to_string(),
        ScalarValue::Int(i) => i.to_string(),
        ScalarValue::Uint(u) => u.to_string(),
        ScalarValue::Boolean(b) => b.to_string(),
        ScalarValue::F64(f) => f.to_string(),
        ScalarValue::Null => String::new(),
        other => format!("{other}"),
    }
}

fn illegal(kind: EventKind, status: Option<Status>) -> CaseError {
    let legal: Vec<&str> = status::legal_steps(status)
        .into_iter()
        .map(EventKind::as_str)
        .collect();
    CaseError::IllegalTransition {
        kind,
        status: status.map(Status::as_str).unwrap_or("empty").to_owned(),
        legal: if legal.is_empty() {
            "none".to_owned()
        } else {
            legal.join(", ")
        },
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

/// Routing after the events of a timeline that took effect.
pub fn routing_from(timeline: &Timeline, home_center: String) -> Routing {
    let mut routing = Routing {
        current_center: home_center.clone(),
        home_center,
        assigned_staff: String::new(),
    };
    for e in timeline.applied() {
        match e.kind {
            Some(EventKind::Transferred) => {
                routing.current_center = e.event.data.get("to_center").cloned().unwrap_or_default()
            }
            Some(EventKind::Assigned) => {
                routing.assigned_staff = e.event.data.get("staff").cloned().unwrap_or_default()
            }
            _ => {}
        }
    }
    routing
}

/// Routing after the events that took effect: transfers and assignments.
pub fn routing_of(events: &[Event], home_center: String) -> Routing {
    let folded = fold_events(events);
    let applied: std::collections::HashSet<&str> =
        folded.applied.iter().map(String::as_str).collect();
    let mut sorted: Vec<&Event> = events
        .iter()
        .filter(|e| applied.contains(e.id.as_str()))
        .collect();
    sorted.sort_by_key(|e| e.order());
    let mut routing = Routing {
        current_center: home_center.clone(),
        home_center,
        assigned_staff: String::new(),
    };
    for e in sorted {
        match e.kind.as_str() {
            "transferred" => {
                routing.current_center = e.data.get("to_center").cloned().unwrap_or_default()
            }
            "assigned" => routing.assigned_staff = e.data.get("staff").cloned().unwrap_or_default(),
            _ => {}
        }
    }
    routing
}

/// Where a case lives: its home center (fixed), the center (or `district`) that
/// holds it now, and the staff member whose laptop carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Routing {
    pub home_center: String,
    pub current_center: String,
    pub assigned_staff: String,
}

impl Routing {
    /// The centers whose scope holds the case: its home center keeps it (it answers
    /// for it to the applicant), and the center it was transferred to holds it while it
    /// works on it. The district back office is the hub's, which sees every case.
    pub fn scope_centers(&self) -> Vec<String> {
        let mut centers = vec![self.home_center.clone()];
        if self.current_center != self.home_center
            && self.current_center != rules::DISTRICT_BACK_OFFICE
        {
            centers.push(self.current_center.clone());
        }
        centers
    }

    /// Whether a center may write the case: the centers in its scope. (The hub may
    /// write any case; a laptop the cases assigned to its staff member.)
    pub fn center_may_write(&self, center: &str) -> bool {
        self.scope_centers().iter().any(|c| c == center)
    }
}

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
