//! Case-level tests: events written into case documents by one or more nodes, read
//! back as deadlines, rule checks, clock verdicts and merged views.

mod deadlines;
mod props;
mod rules;
mod skew;

use time::Date;

use super::deadlines::{CaseDeadlines, ItemLimits, case_deadlines};
use super::facts::CaseFacts;
use super::timeline::skew_notes;
use super::*;
use crate::calendar::WorkCalendar;
use crate::deadline::{Limit, LimitUnit, end_of_china_day_ms};
use crate::hlc::Hlc;
use crate::ids::NodeId;

const MS_PER_HOUR: i64 = 3_600_000;
pub(super) const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
/// A resident ID with a valid GB 11643 check digit (the standard's own example).
const APPLICANT_ID: &str = "11010519491231002X";

/// UTC ms of `hour`:00 China time on `date`.
pub(super) fn at(date: Date, hour: u8) -> i64 {
    end_of_china_day_ms(date) + 1 - MS_PER_DAY + i64::from(hour) * MS_PER_HOUR
}

pub(super) fn wd(value: u32) -> Limit {
    Limit {
        value,
        unit: LimitUnit::WorkingDays,
    }
}

pub(super) fn limits(promised: u32, statutory: u32) -> ItemLimits {
    ItemLimits {
        promised: wd(promised),
        statutory: wd(statutory),
    }
}

fn new_case() -> NewCase {
    NewCase {
        case_no: "440399-001-20260302-0001".into(),
        district: "440399".into(),
        home_center: "001".into(),
        item_code: "1".repeat(31),
        item_name: "测试事项".into(),
        department: "测试局".into(),
        applicant_kind: ApplicantKind::NaturalPerson,
        applicant: Party {
            name: "张三".into(),
            id_no: APPLICANT_ID.into(),
            ..Party::default()
        },
        agent: None,
        materials: vec![],
        delivery_method: "window".into(),
        delivery_address: String::new(),
    }
}

/// One node's copy of a case, written with a clock `offset_ms` off the true time.
pub(super) struct Writer {
    pub node: NodeId,
    pub doc: CaseDoc,
    pub offset_ms: i64,
    seq: u32,
}

impl Writer {
    /// Creates the case on node `n` at true time `true_ms`.
    pub fn create(n: u8, offset_ms: i64, true_ms: i64) -> Writer {
        Writer::create_with(n, offset_ms, true_ms, new_case())
    }

    pub fn create_with(n: u8, offset_ms: i64, true_ms: i64, new: NewCase) -> Writer {
        let node = NodeId([n; 8]);
        let stamp = Stamp {
            node,
            clerk: format!("clerk-{node}"),
            hlc: Hlc::new(true_ms + offset_ms, 0),
            event_id: format!("e{n:02x}000"),
        };
        let doc = CaseDoc::create(&new, node.actor([0; 4]), &stamp).expect("valid new case");
        Writer {
            node,
            doc,
            offset_ms,
            seq: 0,
        }
    }

    /// A copy of this writer's document on node `n` (as if synced), which then writes
    /// with its own clock.
    pub fn fork(&mut self, n: u8, offset_ms: i64) -> Writer {
        let node = NodeId([n; 8]);
        let forked = self.doc.automerge().fork().with_actor(node.actor([0; 4]));
        Writer {
            node,
            doc: CaseDoc::from_automerge(forked).expect("a case"),
            offset_ms,
            seq: 0,
        }
    }

    pub fn stamp(&mut self, true_ms: i64) -> Stamp {
        self.seq += 1;
        Stamp {
            node: self.node,
            clerk: format!("clerk-{}", self.node),
            hlc: Hlc::new(true_ms + self.offset_ms, 0),
            event_id: format!("e{:02x}{:03}", self.node.0[0], self.seq),
        }
    }

    /// A step at true time `true_ms`.
    pub fn step(
        &mut self,
        kind: EventKind,
        true_ms: i64,
        data: &[(&str, &str)],
    ) -> Result<(), CaseError> {
        self.step_with_note(kind, true_ms, data, "")
    }

    pub fn step_with_note(
        &mut self,
        kind: EventKind,
        true_ms: i64,
        data: &[(&str, &str)],
        note: &str,
    ) -> Result<(), CaseError> {
        let stamp = self.stamp(true_ms);
        let ev = NewEvent {
            note: note.to_owned(),
            data: data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.doc.append_event(kind, &stamp, &ev)
    }

    #[track_caller]
    pub fn ok(&mut self, kind: EventKind, true_ms: i64, data: &[(&str, &str)]) {
        if let Err(e) = self.step(kind, true_ms, data) {
            panic!("{kind} at {true_ms}: {e}");
        }
    }

    /// Receives the other copy's changes at true time `true_ms`, recording receipts of
    /// events stamped in this node's future, as the node store does.
    pub fn receive(&mut self, other: &mut Writer, true_ms: i64) {
        self.doc
            .automerge()
            .merge(other.doc.automerge())
            .expect("merge");
        let now = true_ms + self.offset_ms;
        let timeline = self.doc.timeline();
        for note in skew_notes(&timeline, &self.node.to_string(), now) {
            let stamp = self.stamp(true_ms);
            self.doc
                .note_clock_skew(&stamp, &note)
                .expect("a receipt is always legal");
        }
    }

    pub fn deadlines(
        &mut self,
        limits: &ItemLimits,
        cal: &WorkCalendar,
        now_ms: i64,
    ) -> CaseDeadlines {
        let facts = CaseFacts::from_timeline(&self.doc.timeline());
        case_deadlines(&facts, limits, cal, now_ms)
    }
}
