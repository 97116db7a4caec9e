//! Tests of the working-day calendar against the 2026 notice as the crate records it.

use proptest::prelude::*;
use time::Date;
use time::macros::date;

use super::*;

const HUB_2027: &str =
    r#"{"year":2027,"version":"hub-2027-v1","holidays":["2027-01-01"],"workdays":[]}"#;

fn hub_2027() -> WorkCalendar {
    let year_override: YearOverride = serde_json::from_str(HUB_2027).expect("fixture parses");
    WorkCalendar::new(vec![year_override]).expect("fixture is valid")
}

#[track_caller]
fn check_is_workday(cal: &WorkCalendar, date: Date, expected: Result<bool, CalendarError>) {
    assert_eq!(cal.is_workday(date), expected, "{date}");
}

#[test]
fn official_2026_days() {
    let cal = WorkCalendar::official();
    let rows = [
        // 元旦: 01-01 (Thu) to 01-03 rest, Sunday 01-04 works.
        (date!(2026 - 01 - 01), Ok(false)),
        (date!(2026 - 01 - 02), Ok(false)),
        (date!(2026 - 01 - 04), Ok(true)),
        (date!(2026 - 01 - 05), Ok(true)),
        // 春节: Saturday 02-14 works, 02-15 (Sun) to 02-23 (Mon) rest, Saturday 02-28 works.
        (date!(2026 - 02 - 13), Ok(true)),
        (date!(2026 - 02 - 14), Ok(true)),
        (date!(2026 - 02 - 15), Ok(false)),
        (date!(2026 - 02 - 16), Ok(false)),
        (date!(2026 - 02 - 20), Ok(false)),
        (date!(2026 - 02 - 23), Ok(false)),
        (date!(2026 - 02 - 24), Ok(true)),
        (date!(2026 - 02 - 28), Ok(true)),
        // An ordinary Sunday right after the make-up Saturday.
        (date!(2026 - 03 - 01), Ok(false)),
        // 清明: 04-04 (Sat) to 04-06 (Mon) rest, no make-up day.
        (date!(2026 - 04 - 06), Ok(false)),
        // 劳动节: 05-01 to 05-05 rest, Saturday 05-09 works.
        (date!(2026 - 05 - 05), Ok(false)),
        (date!(2026 - 05 - 09), Ok(true)),
        // 中秋 09-25 (Fri) to 09-27 rest; Sunday 09-20 works for National Day.
        (date!(2026 - 09 - 20), Ok(true)),
        (date!(2026 - 09 - 25), Ok(false)),
        // 国庆: 10-01 (Thu) to 10-07 (Wed) rest, Saturday 10-10 works.
        (date!(2026 - 10 - 01), Ok(false)),
        (date!(2026 - 10 - 07), Ok(false)),
        (date!(2026 - 10 - 08), Ok(true)),
        (date!(2026 - 10 - 10), Ok(true)),
        (date!(2026 - 10 - 11), Ok(false)),
        // The crate's last day, then the weekday rule to the end of 2026.
        (date!(2026 - 12 - 25), Ok(true)),
        (date!(2026 - 12 - 26), Ok(false)),
        (date!(2026 - 12 - 27), Ok(false)),
        (date!(2026 - 12 - 28), Ok(true)),
        (date!(2026 - 12 - 31), Ok(true)),
        // The crate's first day is New Year 2004; the day before has no data.
        (date!(2004 - 01 - 01), Ok(false)),
        (
            date!(2003 - 12 - 31),
            Err(CalendarError::Unknown { year: 2003 }),
        ),
        // 2027 is not published in the crate: no guess, even for a plain Monday.
        (
            date!(2027 - 01 - 04),
            Err(CalendarError::Unknown { year: 2027 }),
        ),
    ];
    for (date, expected) in rows {
        check_is_workday(&cal, date, expected);
    }
}

#[test]
fn official_dates_outside_the_crate_never_panic() {
    let cal = WorkCalendar::official();
    for date in [
        Date::MIN,
        date!(1999 - 12 - 31),
        date!(2127 - 12 - 31),
        date!(2128 - 01 - 01),
        Date::MAX,
    ] {
        assert_eq!(
            cal.is_workday(date),
            Err(CalendarError::Unknown { year: date.year() })
        );
    }
}

#[track_caller]
fn check_add_workdays(
    cal: &WorkCalendar,
    from: Date,
    n: u32,
    expected: Result<(Date, &str), CalendarError>,
) {
    let got = cal.add_workdays(from, n);
    let expected = expected.map(|(value, version)| Stamped {
        value,
        calendar_version: version.to_owned(),
    });
    assert_eq!(got, expected, "{from} + {n}");
}

#[test]
fn add_workdays_official() {
    let cal = WorkCalendar::official();
    let v = OFFICIAL_VERSION;
    let rows = [
        // Ordinary week: Monday plus five working days is the next Monday.
        (date!(2026 - 03 - 02), 5, Ok((date!(2026 - 03 - 09), v))),
        // Friday plus one skips the weekend.
        (date!(2026 - 03 - 06), 1, Ok((date!(2026 - 03 - 09), v))),
        // From a Saturday the first working day is Monday.
        (date!(2026 - 03 - 07), 1, Ok((date!(2026 - 03 - 09), v))),
        // Zero is the day itself, even a rest day.
        (date!(2026 - 03 - 07), 0, Ok((date!(2026 - 03 - 07), v))),
        // Friday 02-13 plus one is the make-up Saturday 02-14.
        (date!(2026 - 02 - 13), 1, Ok((date!(2026 - 02 - 14), v))),
        // Plus two jumps the whole Spring Festival to Tuesday 02-24.
        (date!(2026 - 02 - 13), 2, Ok((date!(2026 - 02 - 24), v))),
        // 02-24..02-27 are four, the make-up Saturday 02-28 is the fifth.
        (date!(2026 - 02 - 23), 5, Ok((date!(2026 - 02 - 28), v))),
        // Friday 09-18 plus one is the make-up Sunday 09-20.
        (date!(2026 - 09 - 18), 1, Ok((date!(2026 - 09 - 20), v))),
        // 09-25..27 and 10-01..07 rest: 09-28, 29, 30, 10-08, 10-09.
        (date!(2026 - 09 - 24), 5, Ok((date!(2026 - 10 - 09), v))),
        // 10-08, 10-09, then the make-up Saturday 10-10.
        (date!(2026 - 09 - 30), 3, Ok((date!(2026 - 10 - 10), v))),
        // Across New Year 2026: 2025-12-31, 2026-01-04 (make-up Sunday); one version.
        (date!(2025 - 12 - 30), 2, Ok((date!(2026 - 01 - 04), v))),
        // Past the crate's 12-25 by the weekday rule: Friday 12-25, Monday 12-28.
        (date!(2026 - 12 - 24), 2, Ok((date!(2026 - 12 - 28), v))),
        // 12-31 is the last known day: the next working day lies in an unknown year.
        (
            date!(2026 - 12 - 30),
            2,
            Err(CalendarError::Unknown { year: 2027 }),
        ),
        // Ten-plus years of working days is past any sane limit.
        (
            date!(2005 - 01 - 01),
            3000,
            Err(CalendarError::SpanTooLong {
                max_days: SPAN_MAX_DAYS,
            }),
        ),
    ];
    for (from, n, expected) in rows {
        check_add_workdays(&cal, from, n, expected);
    }
}

#[test]
fn add_workdays_with_hub_2027() {
    let cal = hub_2027();
    let rows = [
        // 01-01 rests by the override, 01-02/03 are a weekend: Monday 01-04.
        (
            date!(2026 - 12 - 31),
            1,
            Ok((date!(2027 - 01 - 04), "official-2026.0.1+hub-2027-v1")),
        ),
        // Entirely inside 2027: only the hub's version.
        (
            date!(2027 - 01 - 04),
            1,
            Ok((date!(2027 - 01 - 05), "hub-2027-v1")),
        ),
        // 2028 is still unknown.
        (
            date!(2027 - 12 - 31),
            1,
            Err(CalendarError::Unknown { year: 2028 }),
        ),
    ];
    for (from, n, expected) in rows {
        check_add_workdays(&cal, from, n, expected);
    }
}

#[test]
fn override_replaces_an_official_year() {
    let replacement = YearOverride {
        year: 2026,
        version: "hub-2026-test".to_owned(),
        holidays: vec![date!(2026 - 03 - 02)],
        workdays: vec![date!(2026 - 03 - 07)],
    };
    let cal = WorkCalendar::new(vec![replacement]).expect("valid");
    // National Day is no longer listed, so Thursday 10-01 follows the weekday rule.
    check_is_workday(&cal, date!(2026 - 10 - 01), Ok(true));
    // The make-up Saturday 02-14 is gone too.
    check_is_workday(&cal, date!(2026 - 02 - 14), Ok(false));
    check_is_workday(&cal, date!(2026 - 03 - 02), Ok(false));
    check_is_workday(&cal, date!(2026 - 03 - 07), Ok(true));
    assert_eq!(cal.version_for(2026).as_deref(), Ok("hub-2026-test"));
    assert_eq!(cal.version_for(2025).as_deref(), Ok(OFFICIAL_VERSION));
}

#[test]
fn invalid_overrides() {
    let base = || YearOverride {
        year: 2027,
        version: "hub-2027-v1".to_owned(),
        holidays: vec![date!(2027 - 01 - 01)],
        workdays: vec![],
    };
    let rows: Vec<(Vec<YearOverride>, CalendarError)> = vec![
        (
            vec![base(), base()],
            CalendarError::DuplicateYear { year: 2027 },
        ),
        (
            vec![YearOverride {
                holidays: vec![date!(2028 - 01 - 01)],
                ..base()
            }],
            CalendarError::DateOutsideYear {
                year: 2027,
                date: date!(2028 - 01 - 01),
            },
        ),
        (
            vec![YearOverride {
                workdays: vec![date!(2027 - 01 - 01)],
                ..base()
            }],
            CalendarError::HolidayAndWorkday {
                date: date!(2027 - 01 - 01),
            },
        ),
        (
            vec![YearOverride {
                version: String::new(),
                ..base()
            }],
            CalendarError::InvalidVersion { year: 2027 },
        ),
        // '+' would make a joined stamp ambiguous.
        (
            vec![YearOverride {
                version: "a+b".to_owned(),
                ..base()
            }],
            CalendarError::InvalidVersion { year: 2027 },
        ),
        (
            vec![YearOverride {
                year: 1999,
                holidays: vec![],
                ..base()
            }],
            CalendarError::YearOutOfRange {
                year: 1999,
                min: OVERRIDE_YEAR_MIN,
                max: OVERRIDE_YEAR_MAX,
            },
        ),
    ];
    for (overrides, expected) in rows {
        assert_eq!(
            WorkCalendar::new(overrides).err(),
            Some(expected.clone()),
            "{expected}"
        );
    }
}

#[test]
fn override_json() {
    let parsed: YearOverride = serde_json::from_str(HUB_2027).expect("parses");
    assert_eq!(parsed.holidays, vec![date!(2027 - 01 - 01)]);
    assert_eq!(
        serde_json::to_string(&parsed).expect("serializes"),
        HUB_2027
    );

    let bad = [
        // Month and day must be two digits.
        r#"{"year":2027,"version":"v","holidays":["2027-1-1"],"workdays":[]}"#,
        r#"{"year":2027,"version":"v","holidays":["2027-02-30"],"workdays":[]}"#,
        // A misspelt list must not read as an empty one.
        r#"{"year":2027,"version":"v","holiday":["2027-01-01"],"workdays":[]}"#,
        r#"{"year":2027,"version":"v","holidays":[]}"#,
    ];
    for text in bad {
        assert!(
            serde_json::from_str::<YearOverride>(text).is_err(),
            "{text}"
        );
    }
}

#[test]
fn year_summary_2026() {
    let summary = WorkCalendar::official()
        .year_summary(2026)
        .expect("2026 is known");
    let holidays = [
        // 元旦 Thu-Fri, 春节 Mon-Fri and Mon, 清明 Mon, 劳动节 Fri, Mon, Tue,
        // 端午 Fri, 中秋 Fri, 国庆 Thu, Fri, Mon, Tue, Wed.
        date!(2026 - 01 - 01),
        date!(2026 - 01 - 02),
        date!(2026 - 02 - 16),
        date!(2026 - 02 - 17),
        date!(2026 - 02 - 18),
        date!(2026 - 02 - 19),
        date!(2026 - 02 - 20),
        date!(2026 - 02 - 23),
        date!(2026 - 04 - 06),
        date!(2026 - 05 - 01),
        date!(2026 - 05 - 04),
        date!(2026 - 05 - 05),
        date!(2026 - 06 - 19),
        date!(2026 - 09 - 25),
        date!(2026 - 10 - 01),
        date!(2026 - 10 - 02),
        date!(2026 - 10 - 05),
        date!(2026 - 10 - 06),
        date!(2026 - 10 - 07),
    ];
    let make_up = [
        date!(2026 - 01 - 04),
        date!(2026 - 02 - 14),
        date!(2026 - 02 - 28),
        date!(2026 - 05 - 09),
        date!(2026 - 09 - 20),
        date!(2026 - 10 - 10),
    ];
    assert_eq!(summary.holidays, holidays);
    assert_eq!(summary.workdays_on_weekends, make_up);
    // 2026 starts on a Thursday: 52 weeks and one Thursday make 261 weekdays;
    // 261 - 19 weekday holidays + 6 make-up days = 248.
    assert_eq!(summary.workday_count, 248);
    assert_eq!(summary.version, OFFICIAL_VERSION);
    assert_eq!(
        WorkCalendar::official().year_summary(2027),
        Err(CalendarError::Unknown { year: 2027 })
    );

    let hub = hub_2027().year_summary(2027).expect("override known");
    // 2027 starts on a Friday: 52 weeks + Friday = 261 weekdays, minus New Year.
    assert_eq!(
        (hub.holidays, hub.workday_count, hub.version.as_str()),
        (vec![date!(2027 - 01 - 01)], 260, "hub-2027-v1")
    );
}

#[track_caller]
fn check_between(cal: &WorkCalendar, a: Date, b: Date, expected: Result<i64, CalendarError>) {
    assert_eq!(
        cal.workdays_between(a, b).map(|s| s.value),
        expected,
        "{a} .. {b}"
    );
}

#[test]
fn workdays_between() {
    let cal = WorkCalendar::official();
    let rows = [
        // Same day: nothing strictly after.
        (date!(2026 - 03 - 02), date!(2026 - 03 - 02), Ok(0)),
        // Monday to next Monday: Tue-Fri and Monday.
        (date!(2026 - 03 - 02), date!(2026 - 03 - 09), Ok(5)),
        // Backwards is the negative of forwards.
        (date!(2026 - 03 - 09), date!(2026 - 03 - 02), Ok(-5)),
        // Friday to Sunday: no working day.
        (date!(2026 - 03 - 06), date!(2026 - 03 - 08), Ok(0)),
        // Across Spring Festival: make-up 02-14, then 02-24.
        (date!(2026 - 02 - 13), date!(2026 - 02 - 24), Ok(2)),
        (
            date!(2026 - 12 - 31),
            date!(2027 - 01 - 04),
            Err(CalendarError::Unknown { year: 2027 }),
        ),
        (
            date!(2005 - 01 - 01),
            date!(2016 - 01 - 01),
            Err(CalendarError::SpanTooLong {
                max_days: SPAN_MAX_DAYS,
            }),
        ),
    ];
    for (a, b, expected) in rows {
        check_between(&cal, a, b, expected);
    }
}

#[track_caller]
fn check_arith(got: Result<Date, CalendarError>, expected: Result<Date, CalendarError>) {
    assert_eq!(got, expected);
}

#[test]
fn calendar_arithmetic() {
    let too_long = Err(CalendarError::SpanTooLong {
        max_days: SPAN_MAX_DAYS,
    });
    // Day arithmetic crosses a year end with no calendar data.
    check_arith(
        add_calendar_days(date!(2026 - 12 - 30), 3),
        Ok(date!(2027 - 01 - 02)),
    );
    check_arith(
        add_calendar_days(date!(2026 - 01 - 01), 3661),
        too_long.clone(),
    );
    // The day of month is kept, or clamped to a shorter month.
    check_arith(
        add_months(date!(2026 - 01 - 15), 1),
        Ok(date!(2026 - 02 - 15)),
    );
    check_arith(
        add_months(date!(2026 - 01 - 31), 1),
        Ok(date!(2026 - 02 - 28)),
    );
    check_arith(
        add_months(date!(2024 - 01 - 31), 1),
        Ok(date!(2024 - 02 - 29)),
    );
    check_arith(
        add_months(date!(2026 - 03 - 31), 1),
        Ok(date!(2026 - 04 - 30)),
    );
    check_arith(
        add_months(date!(2026 - 12 - 15), 1),
        Ok(date!(2027 - 01 - 15)),
    );
    check_arith(
        add_months(date!(2026 - 12 - 15), 0),
        Ok(date!(2026 - 12 - 15)),
    );
    check_arith(
        add_months(date!(2026 - 01 - 01), u32::MAX),
        too_long.clone(),
    );
    // A leap day becomes 02-28 in a common year and stays in a leap year.
    check_arith(
        add_years(date!(2024 - 02 - 29), 1),
        Ok(date!(2025 - 02 - 28)),
    );
    check_arith(
        add_years(date!(2024 - 02 - 29), 4),
        Ok(date!(2028 - 02 - 29)),
    );
    // Ten years fit in the span, eleven do not.
    check_arith(
        add_years(date!(2026 - 01 - 01), 10),
        Ok(date!(2036 - 01 - 01)),
    );
    check_arith(add_years(date!(2026 - 01 - 01), 11), too_long.clone());
    check_arith(add_years(date!(2026 - 01 - 01), u32::MAX), too_long);
}

/// The stamp names the crate version, so it must not drift when `Cargo.lock` moves.
#[test]
fn official_version_matches_the_locked_crate() {
    let lock = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"));
    let crate_version = lock
        .split("[[package]]")
        .find(|package| package.contains("name = \"chinese_holiday\""))
        .and_then(|package| {
            package
                .lines()
                .find_map(|line| line.strip_prefix("version = "))
        })
        .map(|quoted| quoted.trim_matches('"'));
    assert_eq!(
        crate_version.map(|v| format!("official-{v}")).as_deref(),
        Some(OFFICIAL_VERSION)
    );
}

/// Dates whose walks of up to 200 working days stay inside the official years.
fn official_date() -> impl Strategy<Value = Date> {
    let first = date!(2004 - 01 - 01).to_julian_day();
    let last = date!(2025 - 12 - 31).to_julian_day();
    // Every Julian day in this range is a valid date.
    (first..=last).prop_map(|jd| Date::from_julian_day(jd).expect("in range"))
}

proptest! {
    #[test]
    fn add_workdays_is_monotone(from in official_date(), n in 0u32..200, more in 0u32..5) {
        let cal = WorkCalendar::official();
        let near = cal.add_workdays(from, n).expect("official years").value;
        let far = cal.add_workdays(from, n + more).expect("official years").value;
        prop_assert!(near <= far);
        if more > 0 {
            prop_assert!(near < far);
        }
    }

    #[test]
    fn workdays_between_inverts_add_workdays(from in official_date(), n in 0u32..200) {
        let cal = WorkCalendar::official();
        let to = cal.add_workdays(from, n).expect("official years").value;
        prop_assert_eq!(cal.workdays_between(from, to).expect("official years").value, i64::from(n));
        prop_assert_eq!(cal.workdays_between(to, from).expect("official years").value, -i64::from(n));
        // The n-th working day is a working day.
        if n > 0 {
            prop_assert!(cal.is_workday(to).expect("official years"));
        }
    }
}
