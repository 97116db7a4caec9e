//! The working-day calendar: which China dates are working days, from the official
//! `chinese_holiday` data and the district hub's yearly overrides.
//!
//! A year with no data is an error, never a guess: the State Council publishes each
//! year's holidays and make-up workdays (调休) around November, and an ordinary-weeks
//! guess would silently move deadlines around Spring Festival and National Day.

mod arith;
pub mod document;
mod official;
mod year_override;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Date, Month, Weekday};

pub use arith::{add_calendar_days, add_months, add_years};
pub use official::VERSION as OFFICIAL_VERSION;
pub use year_override::{OVERRIDE_YEAR_MAX, OVERRIDE_YEAR_MIN, YearOverride};

/// Longest span, in calendar days, that one calendar walk or count may cover.
///
/// Ten years and a margin: statutory limits run to weeks and the longest item limit we
/// know is a few years, so a longer walk means bad input; the bound also keeps every
/// day-by-day loop under a few thousand steps.
pub const SPAN_MAX_DAYS: i64 = 3660;

/// Separator between the versions of the years one computation touched.
const VERSION_SEPARATOR: char = '+';

/// Why a calendar question has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar unknown for year {year}")]
    Unknown { year: i32 },
    #[error("span longer than {max_days} days")]
    SpanTooLong { max_days: i64 },
    #[error("date outside the supported range")]
    DateOutOfRange,
    #[error("time {ms} ms is outside the supported range")]
    TimeOutOfRange { ms: i64 },
    #[error("calendar override for year {year} is given twice")]
    DuplicateYear { year: i32 },
    #[error("calendar override year {year} is outside {min}..={max}")]
    YearOutOfRange { year: i32, min: i32, max: i32 },
    #[error("calendar override for year {year} lists {date}, which is in another year")]
    DateOutsideYear { year: i32, date: Date },
    #[error("calendar override lists {date} both as a holiday and as a workday")]
    HolidayAndWorkday { date: Date },
    #[error("calendar override for year {year} has an empty version or one containing '+'")]
    InvalidVersion { year: i32 },
}

/// A computed value together with the calendar versions it was computed from.
///
/// `calendar_version` names the version of every year the computation touched, in year
/// order, each once, joined with `+` (e.g. `official-2026.0.1+hub-2027-v1`), so a
/// deadline can be recomputed, or explained, after the calendar changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub value: T,
    pub calendar_version: String,
}

/// One year at a glance, for a `calendar show` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearSummary {
    pub year: i32,
    pub version: String,
    /// Rest days that fall Monday to Friday: the public holidays and the weekdays
    /// swapped into them.
    pub holidays: Vec<Date>,
    /// Saturdays and Sundays that are working days (调休).
    pub workdays_on_weekends: Vec<Date>,
    pub workday_count: u32,
}

/// Which days are working days, year by year.
///
/// Years 2004..=2026 come from the `chinese_holiday` crate unless overridden; any year
/// may be supplied, or replaced entirely, by a [`YearOverride`] from the district hub.
#[derive(Debug, Clone, Default)]
pub struct WorkCalendar {
    overrides: BTreeMap<i32, YearRules>,
}

/// A validated override: dates are known to lie in the year and the two sets are
/// disjoint.
#[derive(Debug, Clone)]
struct YearRules {
    version: String,
    holidays: BTreeSet<Date>,
    workdays: BTreeSet<Date>,
}

impl YearRules {
    fn is_workday(&self, date: Date) -> bool {
        if self.holidays.contains(&date) {
            return false;
        }
        self.workdays.contains(&date) || !is_weekend(date)
    }
}

impl WorkCalendar {
    /// The official data only (2004..=2026).
    pub fn official() -> Self {
        Self::default()
    }

    /// The official data, with each override replacing its year entirely.
    pub fn new(overrides: Vec<YearOverride>) -> Result<Self, CalendarError> {
        let mut by_year = BTreeMap::new();
        for year_override in overrides {
            let year = year_override.year;
            let rules = year_override.validate()?;
            if by_year.insert(year, rules).is_some() {
                return Err(CalendarError::DuplicateYear { year });
            }
        }
        Ok(Self { overrides: by_year })
    }

    /// Whether `date` is a working day; `Unknown` for a year with no data.
    pub fn is_workday(&self, date: Date) -> Result<bool, CalendarError> {
        if let Some(rules) = self.overrides.get(&date.year()) {
            return Ok(rules.is_workday(date));
        }
        official::is_workday(date).ok_or(CalendarError::Unknown { year: date.year() })
    }

    /// The version of the data that answers for `year`.
    pub fn version_for(&self, year: i32) -> Result<String, CalendarError> {
        if let Some(rules) = self.overrides.get(&year) {
            return Ok(rules.version.clone());
        }
        if official::covers_year(year) {
            return Ok(official::VERSION.to_owned());
        }
        Err(CalendarError::Unknown { year })
    }

    /// The `n`-th working day after `from` (`from` itself not counted); `from` for 0.
    pub fn add_workdays(&self, from: Date, n: u32) -> Result<Stamped<Date>, CalendarError> {
        let day = self.walk_workdays(from, n, |_| false)?;
        self.stamp(day, from, day)
    }

    /// Working days strictly after `a` up to and including `b`; negative if `b < a`.
    pub fn workdays_between(&self, a: Date, b: Date) -> Result<Stamped<i64>, CalendarError> {
        let count = if a <= b {
            i64::from(self.count_workdays(a, b, |_| false)?)
        } else {
            -i64::from(self.count_workdays(b, a, |_| false)?)
        };
        self.stamp(count, a.min(b), a.max(b))
    }

    /// The holidays, make-up workdays and working-day count of `year`.
    pub fn year_summary(&self, year: i32) -> Result<YearSummary, CalendarError> {
        let version = self.version_for(year)?;
        let first = Date::from_calendar_date(year, Month::January, 1)
            .map_err(|_| CalendarError::DateOutOfRange)?;
        let mut summary = YearSummary {
            year,
            version,
            holidays: Vec::new(),
            workdays_on_weekends: Vec::new(),
            workday_count: 0,
        };
        let mut day = first;
        // Bounded: a year has at most 366 days.
        while day.year() == year {
            let workday = self.is_workday(day)?;
            if workday {
                summary.workday_count += 1;
            }
            match (workday, is_weekend(day)) {
                (false, false) => summary.holidays.push(day),
                (true, true) => summary.workdays_on_weekends.push(day),
                _ => {}
            }
            day = day.next_day().ok_or(CalendarError::DateOutOfRange)?;
        }
        Ok(summary)
    }

    /// The `n`-th working day after `from` that `skip` does not exclude.
    ///
    /// `skip` is asked first, so skipped days need no calendar data.
    pub(crate) fn walk_workdays(
        &self,
        from: Date,
        n: u32,
        skip: impl Fn(Date) -> bool,
    ) -> Result<Date, CalendarError> {
        let mut day = from;
        let mut found = 0;
        while found < n {
            day = next_day_within_span(from, day)?;
            if !skip(day) && self.is_workday(day)? {
                found += 1;
            }
        }
        Ok(day)
    }

    /// Working days in `(after, through]` that `skip` does not exclude.
    pub(crate) fn count_workdays(
        &self,
        after: Date,
        through: Date,
        skip: impl Fn(Date) -> bool,
    ) -> Result<u32, CalendarError> {
        check_span(after, through)?;
        let mut count = 0;
        let mut day = after;
        while day < through {
            day = day.next_day().ok_or(CalendarError::DateOutOfRange)?;
            if !skip(day) && self.is_workday(day)? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Stamps `value` with the versions of every year from `first` to `last`.
    pub(crate) fn stamp<T>(
        &self,
        value: T,
        first: Date,
        last: Date,
    ) -> Result<Stamped<T>, CalendarError> {
        check_span(first.min(last), first.max(last))?;
        let mut versions: Vec<String> = Vec::new();
        for year in first.year().min(last.year())..=first.year().max(last.year()) {
            let version = self.version_for(year)?;
            if !versions.contains(&version) {
                versions.push(version);
            }
        }
        let mut calendar_version = String::new();
        for (i, version) in versions.iter().enumerate() {
            if i > 0 {
                calendar_version.push(VERSION_SEPARATOR);
            }
            calendar_version.push_str(version);
        }
        Ok(Stamped {
            value,
            calendar_version,
        })
    }
}

/// The `n`-th day after `from` that `skip` does not exclude; no calendar needed.
pub(crate) fn walk_days(
    from: Date,
    n: u32,
    skip: impl Fn(Date) -> bool,
) -> Result<Date, CalendarError> {
    let mut day = from;
    let mut found = 0;
    while found < n {
        day = next_day_within_span(from, day)?;
        if !skip(day) {
            found += 1;
        }
    }
    Ok(day)
}

/// The day after `day`, refusing to leave `SPAN_MAX_DAYS` of `from`.
fn next_day_within_span(from: Date, day: Date) -> Result<Date, CalendarError> {
    let next = day.next_day().ok_or(CalendarError::DateOutOfRange)?;
    check_span(from, next)?;
    Ok(next)
}

fn check_span(first: Date, last: Date) -> Result<(), CalendarError> {
    if (last - first).whole_days() > SPAN_MAX_DAYS {
        return Err(CalendarError::SpanTooLong {
            max_days: SPAN_MAX_DAYS,
        });
    }
    Ok(())
}

/// The rule for a day no notice mentions: Saturday and Sunday rest.
fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

#[cfg(test)]
mod tests;
