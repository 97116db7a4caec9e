//! The set of China days on which a case's clock stood still, merged from its pauses.

use time::Date;

use super::{Pause, china_date};
use crate::calendar::CalendarError;

/// Paused days as disjoint, sorted, non-adjacent intervals `(after, through]`.
#[derive(Debug, Clone, Default)]
pub(super) struct PausedDays {
    intervals: Vec<(Date, Date)>,
    open_since: Option<Date>,
}

impl PausedDays {
    /// Pauses become `(start date, end date]`, clamped to after `accepted`; an open pause
    /// ends `today`.
    pub(super) fn new(
        pauses: &[Pause],
        accepted: Date,
        today: Date,
    ) -> Result<Self, CalendarError> {
        let mut intervals = Vec::with_capacity(pauses.len());
        let mut open_since: Option<Date> = None;
        for pause in pauses {
            let after = china_date(pause.from_ms)?.max(accepted);
            let through = match pause.to_ms {
                Some(to_ms) => china_date(to_ms)?,
                None => {
                    open_since = Some(open_since.map_or(after, |since| since.min(after)));
                    today
                }
            };
            if through > after {
                intervals.push((after, through));
            }
        }
        intervals.sort_unstable();
        let mut merged: Vec<(Date, Date)> = Vec::with_capacity(intervals.len());
        for (after, through) in intervals {
            match merged.last_mut() {
                // `(a, b]` and `(c, d]` with `c <= b` overlap or touch: one stretch.
                Some(last) if after <= last.1 => last.1 = last.1.max(through),
                _ => merged.push((after, through)),
            }
        }
        Ok(Self {
            intervals: merged,
            open_since,
        })
    }

    pub(super) fn contains(&self, day: Date) -> bool {
        // The only interval that can hold `day` is the last one starting before it.
        let starts_before = self.intervals.partition_point(|&(after, _)| after < day);
        starts_before
            .checked_sub(1)
            .and_then(|i| self.intervals.get(i))
            .is_some_and(|&(_, through)| day <= through)
    }

    /// The start date of the earliest open pause (clamped to acceptance), if any.
    pub(super) fn open_since(&self) -> Option<Date> {
        self.open_since
    }
}
