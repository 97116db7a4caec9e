//! The district hub's calendar for one year: its document format and validation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::Date;

use super::{CalendarError, VERSION_SEPARATOR, YearRules};

/// First year an override may describe: no case in the system predates it.
pub const OVERRIDE_YEAR_MIN: i32 = 2000;
/// Last year an override may describe; with the minimum it bounds the size of a
/// calendar built from a malformed document.
pub const OVERRIDE_YEAR_MAX: i32 = 2099;

/// One year of the hub's calendar document. It replaces the official data for that
/// year entirely: listed holidays rest, listed workdays (调休) work, and every other
/// day follows the weekday rule (Monday to Friday work).
///
/// Dates travel as `"YYYY-MM-DD"`. Unknown fields are refused: a misspelt list would
/// otherwise read as empty and silently move deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearOverride {
    pub year: i32,
    pub version: String,
    #[serde(with = "date_list")]
    pub holidays: Vec<Date>,
    #[serde(with = "date_list")]
    pub workdays: Vec<Date>,
}

impl YearOverride {
    pub(super) fn validate(self) -> Result<YearRules, CalendarError> {
        let year = self.year;
        if !(OVERRIDE_YEAR_MIN..=OVERRIDE_YEAR_MAX).contains(&year) {
            return Err(CalendarError::YearOutOfRange {
                year,
                min: OVERRIDE_YEAR_MIN,
                max: OVERRIDE_YEAR_MAX,
            });
        }
        // The separator is reserved for joining the versions of several years.
        if self.version.is_empty() || self.version.contains(VERSION_SEPARATOR) {
            return Err(CalendarError::InvalidVersion { year });
        }
        let holidays = dates_in_year(year, self.holidays)?;
        let workdays = dates_in_year(year, self.workdays)?;
        if let Some(&date) = holidays.intersection(&workdays).next() {
            return Err(CalendarError::HolidayAndWorkday { date });
        }
        Ok(YearRules {
            version: self.version,
            holidays,
            workdays,
        })
    }
}

fn dates_in_year(year: i32, dates: Vec<Date>) -> Result<BTreeSet<Date>, CalendarError> {
    let mut set = BTreeSet::new();
    for date in dates {
        if date.year() != year {
            return Err(CalendarError::DateOutsideYear { year, date });
        }
        set.insert(date);
    }
    Ok(set)
}

/// `Vec<Date>` as a list of `"YYYY-MM-DD"` strings.
mod date_list {
    use serde::de::Error as _;
    use serde::ser::{Error as _, SerializeSeq};
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;
    use time::format_description::BorrowedFormatItem;
    use time::macros::format_description;

    const FORMAT: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");

    pub(super) fn serialize<S: Serializer>(
        dates: &[Date],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(dates.len()))?;
        for date in dates {
            let text = date.format(FORMAT).map_err(S::Error::custom)?;
            seq.serialize_element(&text)?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Date>, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        let mut dates = Vec::with_capacity(texts.len());
        for text in texts {
            let date = Date::parse(&text, FORMAT)
                .map_err(|e| D::Error::custom(format!("invalid date {text:?}: {e}")))?;
            dates.push(date);
        }
        Ok(dates)
    }
}
