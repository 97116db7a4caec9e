//! Writing a case: building its document with the whole shape in the first change,
//! appending events through the transition table and the rules of case work, audit
//! events, notes and field edits. Every change carries the clerk and the stamp's time.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, AutomergeError, ObjId, ObjType, ROOT};

use super::input::{check_delivery, check_party_id, text_check};
use super::*;
use crate::case::rules::{self, StepContext};
use crate::case::status::{self, Status, Transition};
use crate::validate;

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

    fn applicant_kind(&self) -> ApplicantKind {
        self.obj(ROOT, "applicant")
            .ok()
            .and_then(|a| ApplicantKind::parse(&self.str_at(&a, "kind")))
            .unwrap_or(ApplicantKind::NaturalPerson)
    }
}

fn normalized(field: &str, value: &str) -> String {
    if field == "id_no" {
        validate::normalize_resident_id(value)
    } else {
        value.to_owned()
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
