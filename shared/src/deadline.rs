//! Promised (承诺) and statutory (法定) deadlines of a case: a pure function of its
//! acceptance time, limits, pauses and extensions, and the working-day calendar.
//!
//! The rules, each chosen so that the answer is the same on every node:
//!
//! - **Days are China days.** Times are UTC milliseconds; every date is the UTC+8 date
//!   (China has no daylight saving). A deadline is the end of its day, 23:59:59.999
//!   China time, in UTC milliseconds.
//! - **The acceptance day is not counted.** A limit of n working days ends on the n-th
//!   working day after the acceptance date; n calendar days on the n-th day after it;
//!   months and years on the same day of the month later, clamped to the month's end.
//!   A limit of 0 (即办件) ends on the acceptance day itself.
//! - **A calendar-day, month or year deadline that falls on a rest day moves to the
//!   next working day**, as the procedural laws' rule on periods (期间) does: a period
//!   whose last day is a statutory rest day ends on the first day after it. The hall is
//!   closed on that last day, so the applicant could not be served.
//! - **Pauses (补正, 特别程序) stop the clock.** A pause from China date A to China date B
//!   covers the days strictly after A up to and including B: the day it starts still
//!   counts (the clock ran that day), and the day it ends is treated like an acceptance
//!   day (not counted; the clock resumes the next day). So a pause that starts and ends
//!   on the same day costs nothing. Paused days are skipped while counting the limit:
//!   working days for a working-day limit, calendar days otherwise. A pause covering k
//!   working days before a working-day deadline thus moves it out by exactly k working
//!   days, while a pause that starts after the deadline has passed moves nothing: an
//!   overdue case cannot be rescued by pausing it. Overlapping pauses are merged, so no
//!   day counts twice; days on or before the acceptance date are ignored; a pause that
//!   ends before it starts covers nothing.
//! - **An open pause** (no end yet) is treated as lasting through today: the deadlines
//!   reported are the earliest they can become, should the case resume tomorrow. The
//!   remaining working days are those left when the pause began, and `paused` is set.
//! - **Extensions (延期) extend both deadlines.** An approved extension is announced to
//!   the applicant, so the promise moves with the statutory limit; otherwise every
//!   lawfully extended case would count against the on-time rate. (Extensions are
//!   reported separately, so they stay visible.) Extensions in the limit's own unit add
//!   to it (20 working days + 10 = 30); others are counted on from there, summed per
//!   unit, in the fixed order working days, calendar days, months, years, so the order
//!   of the list never matters.
//! - **Remaining, overdue, near overdue.** `remaining_working_days` counts the unpaused
//!   working days after today (or after the open pause's start) up to and including
//!   the promised deadline day; past the deadline it is minus the working days since
//!   then. Overdue means now is past the end of the promised deadline day. Near overdue
//!   means not overdue and less than one working day left, i.e. the deadline is today.
//!   On a rest day just after the deadline, the case is overdue while the count is 0.

mod pauses;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::calendar::{CalendarError, Stamped, WorkCalendar, add_months, add_years, walk_days};
use pauses::PausedDays;

const MS_PER_DAY: i64 = 86_400_000;
/// China Standard Time is UTC+8 all year round.
const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;
/// Julian day number of 1970-01-01, the Unix epoch.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Unit of a time limit; the catalog's numeric codes are 0..=3 in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitUnit {
    CalendarDays,
    WorkingDays,
    Months,
    Years,
}

impl LimitUnit {
    /// The unit for a catalog code (0 calendar days, 1 working days, 2 months, 3 years).
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::CalendarDays),
            1 => Some(Self::WorkingDays),
            2 => Some(Self::Months),
            3 => Some(Self::Years),
            _ => None,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::CalendarDays => "自然日",
            Self::WorkingDays => "工作日",
            Self::Months => "月",
            Self::Years => "年",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::CalendarDays => 0,
            Self::WorkingDays => 1,
            Self::Months => 2,
            Self::Years => 3,
        }
    }
}

/// A time limit such as "20 working days".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub value: u32,
    pub unit: LimitUnit,
}

/// Why the clock stopped. Both kinds stop it the same way; the kind is kept for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseKind {
    /// 补正: waiting for missing material.
    Supplement,
    /// 特别程序: hearing, inspection, testing, appraisal, expert review (Art. 45).
    SpecialProcedure,
}

/// A stretch during which the clock stood still.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub kind: PauseKind,
    pub from_ms: i64,
    /// `None` while the case is still paused.
    pub to_ms: Option<i64>,
}

/// An approved extension (延期), e.g. Art. 42's ten more working days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub value: u32,
    pub unit: LimitUnit,
}

/// Everything the deadline of one case depends on; `now_ms` is passed in, never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineInput {
    pub accepted_at_ms: i64,
    pub promised: Limit,
    pub statutory: Limit,
    pub pauses: Vec<Pause>,
    pub extensions: Vec<Extension>,
    pub now_ms: i64,
}

/// The deadlines of a case as of `now_ms`; served to the hall's screens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    /// End of the promised deadline day, UTC ms.
    pub promised: Stamped<i64>,
    /// End of the statutory deadline day, UTC ms.
    pub statutory: Stamped<i64>,
    /// Towards the promised deadline; negative once past it.
    pub remaining_working_days: i64,
    pub overdue: bool,
    pub near_overdue: bool,
    pub paused: bool,
}

/// Computes both deadlines of a case; see the module documentation for the rules.
pub fn compute(input: &DeadlineInput, cal: &WorkCalendar) -> Result<Deadlines, CalendarError> {
    let accepted = china_date(input.accepted_at_ms)?;
    let today = china_date(input.now_ms)?;
    let paused_days = PausedDays::new(&input.pauses, accepted, today)?;

    let promised_day = deadline_day(
        cal,
        accepted,
        input.promised,
        &input.extensions,
        &paused_days,
    )?;
    let statutory_day = deadline_day(
        cal,
        accepted,
        input.statutory,
        &input.extensions,
        &paused_days,
    )?;

    // While paused, the count is frozen at the pause's start.
    let as_of = match paused_days.open_since() {
        Some(start) => start.min(today),
        None => today,
    };
    let remaining_working_days = if promised_day >= as_of {
        i64::from(cal.count_workdays(as_of, promised_day, |day| paused_days.contains(day))?)
    } else {
        // Pauses after the deadline changed nothing, so none are skipped here.
        -i64::from(cal.count_workdays(promised_day, as_of, |_| false)?)
    };

    let promised_end_ms = end_of_china_day_ms(promised_day);
    let overdue = input.now_ms > promised_end_ms;
    Ok(Deadlines {
        promised: cal.stamp(
            promised_end_ms,
            accepted.min(as_of),
            promised_day.max(as_of),
        )?,
        statutory: cal.stamp(end_of_china_day_ms(statutory_day), accepted, statutory_day)?,
        remaining_working_days,
        overdue,
        near_overdue: !overdue && remaining_working_days < 1,
        paused: paused_days.open_since().is_some(),
    })
}

/// Clamps an event time stamped by a node whose clock runs ahead: more than
/// `max_skew_ms` after `received_ms` (the receiving node's clock) becomes `received_ms`,
/// and the flag says so. A negative skew counts as 0. Past times are kept: a laptop
/// that was offline for a week legitimately delivers old events.
pub fn clamp_event_time(event_ms: i64, received_ms: i64, max_skew_ms: i64) -> (i64, bool) {
    if event_ms > received_ms.saturating_add(max_skew_ms.max(0)) {
        (received_ms, true)
    } else {
        (event_ms, false)
    }
}

/// The China (UTC+8) date of a UTC millisecond time.
pub fn china_date(ms: i64) -> Result<Date, CalendarError> {
    let out_of_range = CalendarError::TimeOutOfRange { ms };
    let local_ms = ms
        .checked_add(CHINA_OFFSET_MS)
        .ok_or(out_of_range.clone())?;
    let julian_day = local_ms.div_euclid(MS_PER_DAY) + UNIX_EPOCH_JULIAN_DAY;
    let julian_day = i32::try_from(julian_day).map_err(|_| out_of_range.clone())?;
    Date::from_julian_day(julian_day).map_err(|_| out_of_range)
}

/// The last millisecond (23:59:59.999 China time) of `date`, in UTC ms.
pub fn end_of_china_day_ms(date: Date) -> i64 {
    // Any `Date` is within ±10,000 years: about 4e6 days, far from overflowing i64 ms.
    let days = i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY;
    (days + 1) * MS_PER_DAY - CHINA_OFFSET_MS - 1
}

/// The deadline day of one limit with the extensions, skipping paused days.
fn deadline_day(
    cal: &WorkCalendar,
    accepted: Date,
    limit: Limit,
    extensions: &[Extension],
    paused_days: &PausedDays,
) -> Result<Date, CalendarError> {
    let skip = |day: Date| paused_days.contains(day);
    let mut day = accepted;
    let mut counted = false;
    for (unit, value) in segments(limit, extensions) {
        if value == 0 {
            continue;
        }
        counted = true;
        day = match unit {
            LimitUnit::WorkingDays => cal.walk_workdays(day, value, skip)?,
            LimitUnit::CalendarDays => walk_days(day, value, skip)?,
            LimitUnit::Months => walk_days(day, days_until(day, add_months(day, value)?)?, skip)?,
            LimitUnit::Years => walk_days(day, days_until(day, add_years(day, value)?)?, skip)?,
        };
    }
    // A working-day count already ends on a working day; other units may not.
    if counted && !cal.is_workday(day)? {
        day = cal.walk_workdays(day, 1, skip)?;
    }
    Ok(day)
}

/// The limit and extensions as (unit, total) steps: the limit's unit first, then the
/// other units in a fixed order, so the order of `extensions` cannot matter.
fn segments(limit: Limit, extensions: &[Extension]) -> Vec<(LimitUnit, u32)> {
    const ORDER: [LimitUnit; 4] = [
        LimitUnit::WorkingDays,
        LimitUnit::CalendarDays,
        LimitUnit::Months,
        LimitUnit::Years,
    ];
    let total = |unit: LimitUnit| {
        let base = if limit.unit == unit { limit.value } else { 0 };
        // Saturating is safe: any total near u32::MAX fails the span check.
        extensions
            .iter()
            .filter(|extension| extension.unit == unit)
            .fold(base, |sum, extension| sum.saturating_add(extension.value))
    };
    let mut steps = vec![(limit.unit, total(limit.unit))];
    for unit in ORDER {
        if unit != limit.unit {
            steps.push((unit, total(unit)));
        }
    }
    steps
}

/// Calendar days from `from` to the later date `to`.
fn days_until(from: Date, to: Date) -> Result<u32, CalendarError> {
    // `add_months` and `add_years` bound `to` within the span, so this fits.
    u32::try_from((to - from).whole_days()).map_err(|_| CalendarError::DateOutOfRange)
}

#[cfg(test)]
mod tests;
