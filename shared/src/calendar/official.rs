//! The official calendar for 2004..=2026, read from the `chinese_holiday` crate
//! behind a guard, because the crate panics on any date outside its table.

use chinese_holiday::{Ymd, chinese_holiday};
use time::Date;
use time::macros::date;

use super::is_weekend;

/// Stamp for days answered by the crate. It names the crate version, so it must change
/// with it; a test reads `Cargo.lock` to keep the two in step.
pub const VERSION: &str = "official-2026.0.1";

const FIRST_YEAR: i32 = 2004;
const LAST_YEAR: i32 = 2026;
/// The crate's table starts here...
const CRATE_FIRST_DAY: Date = date!(2004 - 01 - 01);
/// ...and stops here, though the 2026 notice is complete: its last arrangement is
/// National Day, so the remaining December days follow the weekday rule.
const CRATE_LAST_DAY: Date = date!(2026 - 12 - 25);

pub(super) fn covers_year(year: i32) -> bool {
    (FIRST_YEAR..=LAST_YEAR).contains(&year)
}

/// Whether `date` is a working day, or `None` outside the official years.
pub(super) fn is_workday(date: Date) -> Option<bool> {
    if (CRATE_FIRST_DAY..=CRATE_LAST_DAY).contains(&date) {
        // The guard above keeps the year inside the crate's assert (and `Ymd`'s
        // 2000..2128), and `time` keeps month and day valid, so neither can panic.
        let year = u16::try_from(date.year()).ok()?;
        let kind = chinese_holiday(Ymd::new(year, u8::from(date.month()), date.day()));
        return Some(kind.is_workday());
    }
    if date > CRATE_LAST_DAY && date.year() == LAST_YEAR {
        return Some(!is_weekend(date));
    }
    None
}
