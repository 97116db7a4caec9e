//! A case's promised (承诺) and statutory (法定) deadlines from its facts, the item's
//! limits and the working-day calendar: a pure function, so every node holding the same
//! events computes the same dates.
//!
//! The acceptance time, pauses and extension come from [`CaseFacts`] (events that took
//! effect, at the times the clock rule trusts); the date arithmetic is
//! [`crate::deadline::compute`]'s. A closed case (completed, cancelled, terminated) is
//! judged as of its closing: whether it finished on time does not change afterwards.

use serde::{Deserialize, Serialize};

use super::facts::CaseFacts;
use crate::calendar::{CalendarError, WorkCalendar};
use crate::deadline::{self, DeadlineInput, Limit};

/// The item's limits, from the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemLimits {
    pub promised: Limit,
    pub statutory: Limit,
}

/// Deadlines that could be computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDeadlines {
    /// End of the promised deadline day, UTC ms.
    pub promised_ms: i64,
    /// End of the statutory deadline day, UTC ms.
    pub statutory_ms: i64,
    /// The versions of every calendar year the computation used.
    pub calendar_version: String,
    /// Towards the promised deadline, as of `as_of_ms`; negative once past it.
    pub remaining_working_days: i64,
    pub overdue: bool,
    /// Less than one working day left.
    pub near_overdue: bool,
    pub paused: bool,
    /// The time the answer is given for: now, or the closing of a closed case.
    pub as_of_ms: i64,
    /// For a completed case: whether it was completed by its promised deadline.
    pub on_time: Option<bool>,
}

/// A case's deadlines, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CaseDeadlines {
    /// Not accepted (yet, or ever: 不予受理): no clock runs.
    NotAccepted,
    /// A year the deadline reaches has no published calendar; no date is guessed.
    CalendarUnknown {
        year: i32,
    },
    /// The inputs cannot give a date (an item without limits, a span past the bound).
    Unavailable {
        reason: String,
    },
    Known(KnownDeadlines),
}

impl CaseDeadlines {
    pub fn known(&self) -> Option<&KnownDeadlines> {
        match self {
            CaseDeadlines::Known(k) => Some(k),
            _ => None,
        }
    }

    /// A short name of the state, for an index column.
    pub fn state(&self) -> &'static str {
        match self {
            CaseDeadlines::NotAccepted => "not_accepted",
            CaseDeadlines::CalendarUnknown { .. } => "calendar_unknown",
            CaseDeadlines::Unavailable { .. } => "unavailable",
            CaseDeadlines::Known(_) => "known",
        }
    }
}

/// Computes a case's deadlines as of `now_ms`; see the module documentation.
pub fn case_deadlines(
    facts: &CaseFacts,
    limits: &ItemLimits,
    cal: &WorkCalendar,
    now_ms: i64,
) -> CaseDeadlines {
    let Some(accepted_at_ms) = facts.accepted_ms else {
        return CaseDeadlines::NotAccepted;
    };
    let closed = facts.closed_ms();
    // Never before acceptance: a clock that ran backwards must not make the answer
    // older than the case.
    let as_of_ms = closed.map_or(now_ms, |c| c.min(now_ms)).max(accepted_at_ms);
    let input = DeadlineInput {
        accepted_at_ms,
        promised: limits.promised,
        statutory: limits.statutory,
        pauses: facts.pauses.clone(),
        extensions: facts.extensions(),
        now_ms: as_of_ms,
    };
    match deadline::compute(&input, cal) {
        Ok(d) => CaseDeadlines::Known(KnownDeadlines {
            promised_ms: d.promised.value,
            statutory_ms: d.statutory.value,
            calendar_version: d.promised.calendar_version,
            remaining_working_days: d.remaining_working_days,
            overdue: d.overdue,
            near_overdue: d.near_overdue,
            paused: d.paused,
            as_of_ms,
            on_time: facts.completed_ms.map(|done| done <= d.promised.value),
        }),
        Err(CalendarError::Unknown { year }) => CaseDeadlines::CalendarUnknown { year },
        Err(other) => CaseDeadlines::Unavailable {
            reason: other.to_string(),
        },
    }
}
