//! Calendar arithmetic that needs no holiday data: days, months and years.

use time::{Date, Duration, Month};

use super::{CalendarError, check_span};

/// Months beyond which no result can fit in `SPAN_MAX_DAYS`; checked first so a huge
/// input fails as too long rather than overflowing the year.
const MONTHS_PRECHECK_MAX: u32 = 12 * 20;

/// `from` plus `days` calendar days.
pub fn add_calendar_days(from: Date, days: u32) -> Result<Date, CalendarError> {
    let to = from
        .checked_add(Duration::days(i64::from(days)))
        .ok_or(CalendarError::DateOutOfRange)?;
    check_span(from, to)?;
    Ok(to)
}

/// The same day of the month `months` later, clamped to that month's last day
/// (01-31 plus one month is 02-28, or 02-29 in a leap year).
pub fn add_months(from: Date, months: u32) -> Result<Date, CalendarError> {
    if months > MONTHS_PRECHECK_MAX {
        return Err(CalendarError::SpanTooLong {
            max_days: super::SPAN_MAX_DAYS,
        });
    }
    let index =
        i64::from(from.year()) * 12 + i64::from(u8::from(from.month()) - 1) + i64::from(months);
    let year = i32::try_from(index.div_euclid(12)).map_err(|_| CalendarError::DateOutOfRange)?;
    // rem_euclid(12) + 1 lies in 1..=12, so both conversions succeed.
    let month = u8::try_from(index.rem_euclid(12) + 1)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or(CalendarError::DateOutOfRange)?;
    let day = from.day().min(month.length(year));
    let to =
        Date::from_calendar_date(year, month, day).map_err(|_| CalendarError::DateOutOfRange)?;
    check_span(from, to)?;
    Ok(to)
}

/// The same day `years` later; 02-29 becomes 02-28 in a common year.
pub fn add_years(from: Date, years: u32) -> Result<Date, CalendarError> {
    let months = years.checked_mul(12).ok_or(CalendarError::SpanTooLong {
        max_days: super::SPAN_MAX_DAYS,
    })?;
    add_months(from, months)
}
