//! One case (办件) as an Automerge document: creating it, appending events, editing
//! fields, and reading it back as a view with its status and conflicts.
//!
//! Architecture invariant: the document's shape is fixed when the case is created.
//! Every map a case will ever need exists from its first change; later changes only
//! set scalars and append to lists. So two nodes never create the same object
//! concurrently, and every field conflict is a conflict between scalar values.
//!
//! The parts: `input` (what a clerk enters and its checks), `write` (building the
//! document and every change to it), `events` (the stored events and their fold),
//! `conflicts` (concurrent field values), `routing` (where a case lives) and `view`
//! (the case as shown to people).

mod conflicts;
mod events;
mod input;
mod routing;
mod view;
mod write;

use automerge::{
    ActorId, AutoCommit, AutomergeError, Change, ChangeHash, ObjId, ROOT, ReadDoc, ScalarValue,
    Value,
};

use super::status::EventKind;
use crate::validate::ValidationError;

pub use conflicts::{ConflictValue, FieldConflict};
pub use events::{Event, fold_events};
pub use input::{
    ApplicantKind, DELIVERY_METHODS, EDITABLE_FIELDS, MaterialSpec, NewCase, NewEvent, Party, Stamp,
};
pub use routing::{Routing, routing_from, routing_of};
pub use view::{CaseView, DeliveryView, MaterialView, PartyView, new_case_view};

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

/// A case document.
#[derive(Debug)]
pub struct CaseDoc {
    doc: AutoCommit,
}

impl CaseDoc {
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

    /// A text field of the case's `meta` map.
    pub fn meta_text(&self, key: &str) -> String {
        self.obj(ROOT, "meta")
            .map(|m| self.str_at(&m, key))
            .unwrap_or_default()
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
