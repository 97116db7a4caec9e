//! Deadline tables at the case level: events written into a case document, read back
//! as deadlines. Every date below can be checked against the 2026 notice: 春节 rests
//! 02-15..02-23 with make-up Saturdays 02-14 and 02-28; 清明 rests Monday 04-06; 国庆
//! rests 10-01..10-07 with make-up Saturday 10-10; 中秋 rests Friday 09-25.

use time::macros::date;

use super::*;
use crate::calendar::{OFFICIAL_VERSION, YearOverride};
use EventKind::*;

type Steps = Vec<(EventKind, i64, Vec<(&'static str, &'static str)>)>;

#[derive(Debug, PartialEq, Eq)]
enum Want {
    Known {
        promised: Date,
        statutory: Date,
        remaining: i64,
        overdue: bool,
        near: bool,
        paused: bool,
        on_time: Option<bool>,
    },
    NotAccepted,
    Unknown(i32),
}

fn known(promised: Date, statutory: Date, remaining: i64) -> Want {
    Want::Known {
        promised,
        statutory,
        remaining,
        overdue: false,
        near: false,
        paused: false,
        on_time: None,
    }
}

impl Want {
    fn with(mut self, f: impl FnOnce(&mut bool, &mut bool, &mut bool, &mut Option<bool>)) -> Want {
        if let Want::Known {
            overdue,
            near,
            paused,
            on_time,
            ..
        } = &mut self
        {
            f(overdue, near, paused, on_time);
        }
        self
    }
    fn overdue(self) -> Want {
        self.with(|o, _, _, _| *o = true)
    }
    fn near(self) -> Want {
        self.with(|_, n, _, _| *n = true)
    }
    fn paused(self) -> Want {
        self.with(|_, _, p, _| *p = true)
    }
    fn on_time(self, yes: bool) -> Want {
        self.with(|_, _, _, t| *t = Some(yes))
    }
}

fn step(
    kind: EventKind,
    date: Date,
    hour: u8,
) -> (EventKind, i64, Vec<(&'static str, &'static str)>) {
    (kind, at(date, hour), vec![])
}

/// Writes the steps as one correct node would (the case created an hour before the
/// first), then checks the deadlines as of `now`.
#[track_caller]
fn check(
    why: &str,
    cal: &WorkCalendar,
    limits: ItemLimits,
    steps: Steps,
    now: i64,
    want: Want,
) -> Option<String> {
    let first = steps.first().map_or(now, |s| s.1);
    let mut w = Writer::create(1, 0, first - MS_PER_HOUR);
    for (kind, true_ms, data) in &steps {
        w.ok(*kind, *true_ms, data);
    }
    let got = w.deadlines(&limits, cal, now);
    let version = got.known().map(|k| k.calendar_version.clone());
    let got = match got {
        CaseDeadlines::Known(k) => Want::Known {
            promised: crate::deadline::china_date(k.promised_ms).expect("valid"),
            statutory: crate::deadline::china_date(k.statutory_ms).expect("valid"),
            remaining: k.remaining_working_days,
            overdue: k.overdue,
            near: k.near_overdue,
            paused: k.paused,
            on_time: k.on_time,
        },
        CaseDeadlines::NotAccepted => Want::NotAccepted,
        CaseDeadlines::CalendarUnknown { year } => Want::Unknown(year),
        CaseDeadlines::Unavailable { reason } => panic!("{why}: unavailable: {reason}"),
    };
    assert_eq!(got, want, "{why}");
    version
}

#[test]
fn case_deadline_tables() {
    let cal = WorkCalendar::official();
    let ext = vec![("value", "10"), ("approved_by", "局长")];
    let rows: Vec<(&str, ItemLimits, Steps, i64, Want)> = vec![
        (
            "ordinary weeks: Monday + 5 working days is next Monday, + 20 is 03-30",
            limits(5, 20),
            vec![step(Accepted, date!(2026 - 03 - 02), 10)],
            at(date!(2026 - 03 - 02), 11),
            known(date!(2026 - 03 - 09), date!(2026 - 03 - 30), 5),
        ),
        (
            "a Friday acceptance skips the weekend",
            limits(1, 3),
            vec![step(Accepted, date!(2026 - 03 - 06), 10)],
            at(date!(2026 - 03 - 06), 11),
            known(date!(2026 - 03 - 09), date!(2026 - 03 - 11), 1),
        ),
        (
            "on the deadline day: under one working day left",
            limits(5, 20),
            vec![step(Accepted, date!(2026 - 03 - 02), 10)],
            at(date!(2026 - 03 - 09), 15),
            known(date!(2026 - 03 - 09), date!(2026 - 03 - 30), 0).near(),
        ),
        (
            "the day after: overdue by one",
            limits(5, 20),
            vec![step(Accepted, date!(2026 - 03 - 02), 10)],
            at(date!(2026 - 03 - 10), 9),
            known(date!(2026 - 03 - 09), date!(2026 - 03 - 30), -1).overdue(),
        ),
        (
            "completed on Friday: judged as of completion, on time, whatever now is",
            limits(5, 20),
            vec![
                step(Accepted, date!(2026 - 03 - 02), 10),
                step(Completed, date!(2026 - 03 - 06), 16),
            ],
            at(date!(2026 - 04 - 20), 9),
            known(date!(2026 - 03 - 09), date!(2026 - 03 - 30), 1).on_time(true),
        ),
        (
            "completed two working days late",
            limits(5, 20),
            vec![
                step(Accepted, date!(2026 - 03 - 02), 10),
                step(Completed, date!(2026 - 03 - 11), 10),
            ],
            at(date!(2026 - 04 - 20), 9),
            known(date!(2026 - 03 - 09), date!(2026 - 03 - 30), -2)
                .overdue()
                .on_time(false),
        ),
        (
            "an instant item (即办件, 0 days) ends on the acceptance day",
            limits(0, 0),
            vec![
                step(Accepted, date!(2026 - 03 - 02), 10),
                step(Completed, date!(2026 - 03 - 02), 11),
            ],
            at(date!(2026 - 03 - 02), 12),
            known(date!(2026 - 03 - 02), date!(2026 - 03 - 02), 0)
                .near()
                .on_time(true),
        ),
        (
            "春节 2026: 02-13, make-up Saturday 02-14, then 02-24..26; ten reach make-up 02-28 and 03-04",
            limits(5, 10),
            vec![step(Accepted, date!(2026 - 02 - 12), 10)],
            at(date!(2026 - 02 - 12), 11),
            known(date!(2026 - 02 - 26), date!(2026 - 03 - 04), 5),
        ),
        (
            "国庆 2026: 09-30, then 10-08, 10-09; five reach make-up Saturday 10-10 and 10-12",
            limits(3, 5),
            vec![step(Accepted, date!(2026 - 09 - 29), 10)],
            at(date!(2026 - 09 - 29), 11),
            known(date!(2026 - 10 - 09), date!(2026 - 10 - 12), 3),
        ),
        (
            "补正 from 09-23 to 10-09 spans 中秋 and 国庆: it holds 6 working days (09-24, 09-28..30, \
             10-08, 10-09), so 10-12 becomes 10-20 and 10-26 becomes 11-03",
            limits(10, 20),
            vec![
                step(Accepted, date!(2026 - 09 - 21), 10),
                step(SupplementRequested, date!(2026 - 09 - 23), 15),
                step(SupplementReceived, date!(2026 - 10 - 09), 10),
            ],
            at(date!(2026 - 10 - 09), 11),
            known(date!(2026 - 10 - 20), date!(2026 - 11 - 03), 8),
        ),
        (
            "an open 补正 stops the clock: deadlines as if resumed tomorrow, the count frozen at 3",
            limits(5, 20),
            vec![
                step(Accepted, date!(2026 - 03 - 02), 10),
                step(SupplementRequested, date!(2026 - 03 - 04), 10),
            ],
            at(date!(2026 - 03 - 20), 10),
            known(date!(2026 - 03 - 25), date!(2026 - 04 - 16), 3).paused(),
        ),
        (
            "特别程序 from Thursday 03-05 to Thursday 03-12 holds 5 working days",
            limits(10, 20),
            vec![
                step(Accepted, date!(2026 - 03 - 02), 10),
                step(Suspended, date!(2026 - 03 - 05), 11),
                step(Resumed, date!(2026 - 03 - 12), 16),
            ],
            at(date!(2026 - 03 - 12), 17),
            known(date!(2026 - 03 - 23), date!(2026 - 04 - 07), 7),
        ),
        (
            "延期 of 10 working days moves both deadlines; 清明 04-06 rests",
            limits(10, 20),
            vec![
                step(Accepted, date!(2026 - 03 - 02), 10),
                (Extended, at(date!(2026 - 03 - 10), 10), ext.clone()),
            ],
            at(date!(2026 - 03 - 10), 11),
            known(date!(2026 - 03 - 30), date!(2026 - 04 - 14), 14),
        ),
        (
            "补正 before acceptance: the case is accepted when the material arrives (03-04)",
            limits(5, 20),
            vec![
                step(SupplementRequested, date!(2026 - 03 - 02), 11),
                step(SupplementReceived, date!(2026 - 03 - 04), 10),
            ],
            at(date!(2026 - 03 - 04), 11),
            known(date!(2026 - 03 - 11), date!(2026 - 04 - 01), 5),
        ),
        (
            "not accepted yet: no clock runs",
            limits(5, 20),
            vec![],
            at(date!(2026 - 03 - 02), 11),
            Want::NotAccepted,
        ),
        (
            "不予受理: no clock ever runs",
            limits(5, 20),
            vec![step(Rejected, date!(2026 - 03 - 02), 10)],
            at(date!(2026 - 03 - 02), 11),
            Want::NotAccepted,
        ),
        (
            "12-22..31 are eight working days; the rest fall in 2027, which nobody has published",
            limits(10, 20),
            vec![step(Accepted, date!(2026 - 12 - 21), 10)],
            at(date!(2026 - 12 - 21), 11),
            Want::Unknown(2027),
        ),
    ];
    for (why, limits, steps, now, want) in rows {
        let version = check(why, &cal, limits, steps, now, want);
        if let Some(version) = version {
            assert_eq!(version, OFFICIAL_VERSION, "{why}");
        }
    }
}

#[test]
fn the_hubs_calendar_supplies_an_unknown_year() {
    let hub = YearOverride {
        year: 2027,
        version: "hub-2027-v1".to_owned(),
        holidays: vec![date!(2027 - 01 - 01)],
        workdays: vec![],
    };
    let cal = WorkCalendar::new(vec![hub]).expect("valid override");
    let version = check(
        "with the hub's 2027: New Year rests, so 01-04 and 01-05 finish the ten",
        &cal,
        limits(10, 20),
        vec![step(Accepted, date!(2026 - 12 - 21), 10)],
        at(date!(2026 - 12 - 21), 11),
        known(date!(2027 - 01 - 05), date!(2027 - 01 - 19), 10),
    );
    assert_eq!(version.as_deref(), Some("official-2026.0.1+hub-2027-v1"));
}
