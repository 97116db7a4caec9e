//! Deadline tables over the 2026 calendar, and properties of pauses and extensions.

use proptest::prelude::*;
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

use super::*;
use crate::calendar::{OFFICIAL_VERSION, YearOverride};

fn ms(t: OffsetDateTime) -> i64 {
    t.unix_timestamp() * 1000 + i64::from(t.millisecond())
}

/// UTC ms of `hour`:00 China time on `date`.
fn china_ms(date: Date, hour: u8) -> i64 {
    end_of_china_day_ms(date) + 1 - MS_PER_DAY + i64::from(hour) * 3_600_000
}

fn wd(value: u32) -> Limit {
    Limit {
        value,
        unit: LimitUnit::WorkingDays,
    }
}

fn cd(value: u32) -> Limit {
    Limit {
        value,
        unit: LimitUnit::CalendarDays,
    }
}

fn months(value: u32) -> Limit {
    Limit {
        value,
        unit: LimitUnit::Months,
    }
}

fn years(value: u32) -> Limit {
    Limit {
        value,
        unit: LimitUnit::Years,
    }
}

fn case(
    accepted: OffsetDateTime,
    promised: Limit,
    statutory: Limit,
    now: OffsetDateTime,
) -> DeadlineInput {
    DeadlineInput {
        accepted_at_ms: ms(accepted),
        promised,
        statutory,
        pauses: vec![],
        extensions: vec![],
        now_ms: ms(now),
    }
}

fn supplement(from: OffsetDateTime, to: Option<OffsetDateTime>) -> Pause {
    Pause {
        kind: PauseKind::Supplement,
        from_ms: ms(from),
        to_ms: to.map(ms),
    }
}

fn special(from: OffsetDateTime, to: OffsetDateTime) -> Pause {
    Pause {
        kind: PauseKind::SpecialProcedure,
        from_ms: ms(from),
        to_ms: Some(ms(to)),
    }
}

/// The expected answer in China dates, which a reader can check against a calendar.
#[derive(Debug, PartialEq, Eq)]
struct Expect {
    promised: Date,
    statutory: Date,
    remaining: i64,
    overdue: bool,
    near: bool,
    paused: bool,
    version: String,
}

fn expect(promised: Date, statutory: Date, remaining: i64) -> Expect {
    Expect {
        promised,
        statutory,
        remaining,
        overdue: false,
        near: false,
        paused: false,
        version: OFFICIAL_VERSION.to_owned(),
    }
}

impl Expect {
    fn overdue(self) -> Self {
        Self {
            overdue: true,
            ..self
        }
    }
    fn near(self) -> Self {
        Self { near: true, ..self }
    }
    fn paused(self) -> Self {
        Self {
            paused: true,
            ..self
        }
    }
    fn version(self, version: &str) -> Self {
        Self {
            version: version.to_owned(),
            ..self
        }
    }
}

#[track_caller]
fn check(
    cal: &WorkCalendar,
    why: &str,
    input: &DeadlineInput,
    expected: Result<Expect, CalendarError>,
) {
    let got = compute(input, cal).and_then(|d| {
        // Both deadlines are the last millisecond of a China day, and share a version.
        for stamped in [&d.promised, &d.statutory] {
            assert_eq!(
                stamped.value,
                end_of_china_day_ms(china_date(stamped.value)?),
                "{why}"
            );
        }
        assert_eq!(
            d.promised.calendar_version, d.statutory.calendar_version,
            "{why}"
        );
        Ok(Expect {
            promised: china_date(d.promised.value)?,
            statutory: china_date(d.statutory.value)?,
            remaining: d.remaining_working_days,
            overdue: d.overdue,
            near: d.near_overdue,
            paused: d.paused,
            version: d.promised.calendar_version,
        })
    });
    assert_eq!(got, expected, "{why}");
}

#[test]
fn ordinary_weeks() {
    let cal = WorkCalendar::official();
    let rows = [
        (
            "Monday + 5 working days is next Monday; 20 is four weeks on (no March holidays)",
            case(
                datetime!(2026-03-02 10:00 +8),
                wd(5),
                wd(20),
                datetime!(2026-03-02 11:00 +8),
            ),
            Ok(expect(date!(2026 - 03 - 09), date!(2026 - 03 - 30), 5)),
        ),
        (
            "Friday + 1 is Monday; on that Monday nothing is left after today: near overdue",
            case(
                datetime!(2026-03-06 16:00 +8),
                wd(1),
                wd(1),
                datetime!(2026-03-09 09:00 +8),
            ),
            Ok(expect(date!(2026 - 03 - 09), date!(2026 - 03 - 09), 0).near()),
        ),
        (
            "the Monday deadline passed; Tuesday is one working day late",
            case(
                datetime!(2026-03-06 16:00 +8),
                wd(1),
                wd(1),
                datetime!(2026-03-10 09:00 +8),
            ),
            Ok(expect(date!(2026 - 03 - 09), date!(2026 - 03 - 09), -1).overdue()),
        ),
        (
            "the last millisecond of the deadline day is still in time",
            case(
                datetime!(2026-03-06 16:00 +8),
                wd(1),
                wd(1),
                datetime!(2026-03-09 23:59:59.999 +8),
            ),
            Ok(expect(date!(2026 - 03 - 09), date!(2026 - 03 - 09), 0).near()),
        ),
        (
            "Friday's deadline seen on Saturday: overdue, though no working day has passed",
            case(
                datetime!(2026-03-05 10:00 +8),
                wd(1),
                wd(1),
                datetime!(2026-03-07 10:00 +8),
            ),
            Ok(expect(date!(2026 - 03 - 06), date!(2026 - 03 - 06), 0).overdue()),
        ),
        (
            "China dates, not UTC: 2026-03-02 01:00 +8 is still 03-01 in UTC",
            case(
                datetime!(2026-03-01 17:00 UTC),
                wd(5),
                wd(5),
                datetime!(2026-03-01 17:00 UTC),
            ),
            Ok(expect(date!(2026 - 03 - 09), date!(2026 - 03 - 09), 5)),
        ),
        (
            "an instant item (即办件) is due on the acceptance day, even a make-up Saturday",
            case(
                datetime!(2026-02-14 10:00 +8),
                wd(0),
                wd(0),
                datetime!(2026-02-14 11:00 +8),
            ),
            Ok(expect(date!(2026 - 02 - 14), date!(2026 - 02 - 14), 0).near()),
        ),
    ];
    for (why, input, expected) in rows {
        check(&cal, why, &input, expected);
    }
}

#[test]
fn holidays_2026() {
    let cal = WorkCalendar::official();
    let rows = [
        (
            "Spring Festival: 02-13, make-up Saturday 02-14, then 02-24 after the 02-15..23 break; \
             20 runs 02-24..28 (7), March 2-6 (12), 9-13 (17), 16-18 (20)",
            case(
                datetime!(2026-02-12 10:00 +8),
                wd(3),
                wd(20),
                datetime!(2026-02-12 10:00 +8),
            ),
            Ok(expect(date!(2026 - 02 - 24), date!(2026 - 03 - 18), 3)),
        ),
        (
            "National Day: 10-01..07 rest, so 10-08; then 10-09, make-up Saturday 10-10, 10-12, 10-13",
            case(
                datetime!(2026-09-30 10:00 +8),
                wd(1),
                wd(5),
                datetime!(2026-09-30 10:00 +8),
            ),
            Ok(expect(date!(2026 - 10 - 08), date!(2026 - 10 - 13), 1)),
        ),
        (
            "Mid-Autumn 09-25..27 then National Day: 09-28, 29, 30, 10-08, 09 (5); 10-10, 12..15 (10)",
            case(
                datetime!(2026-09-24 10:00 +8),
                wd(5),
                wd(10),
                datetime!(2026-09-24 10:00 +8),
            ),
            Ok(expect(date!(2026 - 10 - 09), date!(2026 - 10 - 15), 5)),
        ),
        (
            "12 calendar days end on Saturday 03-14, which moves to Monday; 30 end on Wednesday 04-01",
            case(
                datetime!(2026-03-02 10:00 +8),
                cd(12),
                cd(30),
                datetime!(2026-03-02 10:00 +8),
            ),
            Ok(expect(date!(2026 - 03 - 16), date!(2026 - 04 - 01), 10)),
        ),
        (
            "30 days or one month from 09-05 is 10-05, inside National Day: moved to 10-08; \
             19 working days counting make-up Sunday 09-20",
            case(
                datetime!(2026-09-05 10:00 +8),
                cd(30),
                months(1),
                datetime!(2026-09-05 10:00 +8),
            ),
            Ok(expect(date!(2026 - 10 - 08), date!(2026 - 10 - 08), 19)),
        ),
        (
            "one month from 01-31 is clamped to 02-28, a make-up Saturday, so it stays; two is 03-31",
            case(
                datetime!(2026-01-31 10:00 +8),
                months(1),
                months(2),
                datetime!(2026-01-31 10:00 +8),
            ),
            Ok(expect(date!(2026 - 02 - 28), date!(2026 - 03 - 31), 16)),
        ),
        (
            "one year from 2025-02-16 is 2026-02-16, in Spring Festival: moved to 02-24, due today",
            case(
                datetime!(2025-02-16 10:00 +8),
                years(1),
                years(1),
                datetime!(2026-02-24 10:00 +8),
            ),
            Ok(expect(date!(2026 - 02 - 24), date!(2026 - 02 - 24), 0).near()),
        ),
    ];
    for (why, input, expected) in rows {
        check(&cal, why, &input, expected);
    }
}

#[test]
fn pauses_and_extensions() {
    let cal = WorkCalendar::official();
    let march =
        |promised, statutory, now| case(datetime!(2026-03-02 10:00 +8), promised, statutory, now);
    let rows = [
        (
            "补正 from Wed 02-11 to Wed 02-25 over Spring Festival: 02-10, 02-11 count, 02-12..25 \
             do not, then 02-26, 27 and make-up Saturday 28 (without it: 02-14)",
            DeadlineInput {
                pauses: vec![supplement(
                    datetime!(2026-02-11 15:00 +8),
                    Some(datetime!(2026-02-25 10:00 +8)),
                )],
                ..case(
                    datetime!(2026-02-09 10:00 +8),
                    wd(5),
                    wd(20),
                    datetime!(2026-02-26 09:00 +8),
                )
            },
            Ok(expect(date!(2026 - 02 - 28), date!(2026 - 03 - 20), 2)),
        ),
        (
            "特别程序 03-04..03-10 covers 05, 06, 09, 10: both deadlines move by four working days \
             (03-16 to 03-20, 03-30 to 04-03)",
            DeadlineInput {
                pauses: vec![special(
                    datetime!(2026-03-04 09:00 +8),
                    datetime!(2026-03-10 17:00 +8),
                )],
                ..march(wd(10), wd(20), datetime!(2026-03-11 09:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 20), date!(2026 - 04 - 03), 7)),
        ),
        (
            "a pause that starts and ends on the same day costs nothing",
            DeadlineInput {
                pauses: vec![special(
                    datetime!(2026-03-04 09:00 +8),
                    datetime!(2026-03-04 17:00 +8),
                )],
                ..march(wd(10), wd(20), datetime!(2026-03-04 18:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 16), date!(2026 - 03 - 30), 8)),
        ),
        (
            "overlapping 03-04..10 and 03-09..12 merge to six working days, not eight; \
             the statutory one also crosses 清明 04-04..06",
            DeadlineInput {
                pauses: vec![
                    supplement(
                        datetime!(2026-03-04 09:00 +8),
                        Some(datetime!(2026-03-10 17:00 +8)),
                    ),
                    special(
                        datetime!(2026-03-09 09:00 +8),
                        datetime!(2026-03-12 17:00 +8),
                    ),
                ],
                ..march(wd(10), wd(20), datetime!(2026-03-13 09:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 24), date!(2026 - 04 - 08), 7)),
        ),
        (
            "a pause wholly before acceptance is ignored",
            DeadlineInput {
                pauses: vec![supplement(
                    datetime!(2026-02-25 09:00 +8),
                    Some(datetime!(2026-03-01 09:00 +8)),
                )],
                ..march(wd(5), wd(5), datetime!(2026-03-02 11:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 09), date!(2026 - 03 - 09), 5)),
        ),
        (
            "a pause begun before acceptance counts only after it: 03-03",
            DeadlineInput {
                pauses: vec![supplement(
                    datetime!(2026-02-25 09:00 +8),
                    Some(datetime!(2026-03-03 12:00 +8)),
                )],
                ..march(wd(5), wd(5), datetime!(2026-03-04 09:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 10), date!(2026 - 03 - 10), 4)),
        ),
        (
            "a pause that ends before it starts covers nothing",
            DeadlineInput {
                pauses: vec![supplement(
                    datetime!(2026-03-06 09:00 +8),
                    Some(datetime!(2026-03-04 09:00 +8)),
                )],
                ..march(wd(5), wd(5), datetime!(2026-03-02 11:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 09), date!(2026 - 03 - 09), 5)),
        ),
        (
            "a calendar-day limit skips paused calendar days: 03-12 plus 05, 06 is Saturday 03-14, \
             moved to Monday",
            DeadlineInput {
                pauses: vec![supplement(
                    datetime!(2026-03-04 09:00 +8),
                    Some(datetime!(2026-03-06 09:00 +8)),
                )],
                ..march(cd(10), cd(10), datetime!(2026-03-07 10:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 16), date!(2026 - 03 - 16), 6)),
        ),
        (
            "an open 补正 since 03-05, seen 03-11: counted as paused through today (3 used, 7 left)",
            DeadlineInput {
                pauses: vec![supplement(datetime!(2026-03-05 10:00 +8), None)],
                ..march(wd(10), wd(20), datetime!(2026-03-11 10:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 20), date!(2026 - 04 - 03), 7).paused()),
        ),
        (
            "pausing an overdue case does not rescue it: due 03-03, paused 03-05, two days late then",
            DeadlineInput {
                pauses: vec![supplement(datetime!(2026-03-05 10:00 +8), None)],
                ..march(wd(1), wd(3), datetime!(2026-03-06 10:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 03), date!(2026 - 03 - 05), -2)
                .overdue()
                .paused()),
        ),
        (
            "延期 of 10 working days extends both: 20 is 03-30; 30 crosses 清明 to 04-14",
            DeadlineInput {
                extensions: vec![Extension {
                    value: 10,
                    unit: LimitUnit::WorkingDays,
                }],
                ..march(wd(10), wd(20), datetime!(2026-03-02 11:00 +8))
            },
            Ok(expect(date!(2026 - 03 - 30), date!(2026 - 04 - 14), 20)),
        ),
        (
            "延期 in another unit counts on from the limit: one month is 04-02, ten days more is \
             Sunday 04-12, moved to Monday; 20 working days is 03-30, ten days more is 04-09",
            DeadlineInput {
                extensions: vec![Extension {
                    value: 10,
                    unit: LimitUnit::CalendarDays,
                }],
                ..march(months(1), wd(20), datetime!(2026-03-02 11:00 +8))
            },
            Ok(expect(date!(2026 - 04 - 13), date!(2026 - 04 - 09), 29)),
        ),
    ];
    for (why, input, expected) in rows {
        check(&cal, why, &input, expected);
    }
}

#[test]
fn unknown_years() {
    let input = case(
        datetime!(2026-12-28 10:00 +8),
        wd(5),
        wd(5),
        datetime!(2026-12-28 10:00 +8),
    );
    check(
        &WorkCalendar::official(),
        "12-29..31 are three; the next two are in 2027, which nobody has published",
        &input,
        Err(CalendarError::Unknown { year: 2027 }),
    );
    let hub = YearOverride {
        year: 2027,
        version: "hub-2027-v1".to_owned(),
        holidays: vec![date!(2027 - 01 - 01)],
        workdays: vec![],
    };
    check(
        &WorkCalendar::new(vec![hub]).expect("valid override"),
        "with the hub's 2027: New Year rests, then 01-04 and 01-05; both versions named",
        &input,
        Ok(expect(date!(2027 - 01 - 05), date!(2027 - 01 - 05), 5)
            .version("official-2026.0.1+hub-2027-v1")),
    );
    check(
        &WorkCalendar::official(),
        "a time outside any date is an error, not a panic",
        &DeadlineInput {
            accepted_at_ms: i64::MAX,
            ..input.clone()
        },
        Err(CalendarError::TimeOutOfRange { ms: i64::MAX }),
    );
}

#[test]
fn china_dates() {
    let rows = [
        // 16:00 UTC is midnight in China: the next day starts.
        (
            ms(datetime!(2026-03-01 15:59:59.999 UTC)),
            Ok(date!(2026 - 03 - 01)),
        ),
        (
            ms(datetime!(2026-03-01 16:00 UTC)),
            Ok(date!(2026 - 03 - 02)),
        ),
        // Before 1970 the division must round down, not toward zero.
        (-1, Ok(date!(1970 - 01 - 01))),
        (-8 * 3_600_000 - 1, Ok(date!(1969 - 12 - 31))),
        (
            i64::MIN,
            Err(CalendarError::TimeOutOfRange { ms: i64::MIN }),
        ),
    ];
    for (ms, expected) in rows {
        assert_eq!(china_date(ms), expected, "{ms}");
    }
    assert_eq!(
        end_of_china_day_ms(date!(2026 - 03 - 01)),
        ms(datetime!(2026-03-01 23:59:59.999 +8))
    );
}

#[test]
fn clamp_event_times() {
    let rows = [
        // Within the allowed skew: kept.
        ((1_000, 900, 100), (1_000, false)),
        // Beyond it: clamped to the receiver's clock and flagged.
        ((1_001, 900, 100), (900, true)),
        // Old events are legitimate (an offline laptop): kept.
        ((0, 900, 100), (0, false)),
        // A negative skew is treated as none.
        ((901, 900, -5), (900, true)),
        // No overflow at the edges.
        ((i64::MAX, i64::MAX, i64::MAX), (i64::MAX, false)),
    ];
    for ((event_ms, received_ms, max_skew_ms), expected) in rows {
        assert_eq!(
            clamp_event_time(event_ms, received_ms, max_skew_ms),
            expected
        );
    }
}

#[test]
fn limit_units() {
    for unit in [
        LimitUnit::CalendarDays,
        LimitUnit::WorkingDays,
        LimitUnit::Months,
        LimitUnit::Years,
    ] {
        assert_eq!(LimitUnit::from_code(unit.code()), Some(unit));
    }
    assert_eq!(LimitUnit::from_code(4), None);
    let limit: Limit =
        serde_json::from_str(r#"{"value": 20, "unit": "working_days"}"#).expect("catalog form");
    assert_eq!(limit, wd(20));
    let pause: Pause =
        serde_json::from_str(r#"{"kind": "special_procedure", "from_ms": 1, "to_ms": null}"#)
            .expect("case form");
    assert_eq!(pause.kind, PauseKind::SpecialProcedure);
}

// Properties. Acceptance in 2025's first quarter, at most a year of limit, two short
// extensions and pauses within four months keep every walk inside the official years.

fn date_in(first: Date, last: Date) -> impl Strategy<Value = Date> {
    // Every Julian day between two valid dates is a valid date.
    (first.to_julian_day()..=last.to_julian_day())
        .prop_map(|jd| Date::from_julian_day(jd).expect("in range"))
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        (0u32..60).prop_map(wd),
        (0u32..60).prop_map(cd),
        (0u32..6).prop_map(months),
        (0u32..=1).prop_map(years),
    ]
}

fn extension() -> impl Strategy<Value = Extension> {
    prop_oneof![
        (0u32..10).prop_map(|value| Extension {
            value,
            unit: LimitUnit::WorkingDays
        }),
        (0u32..10).prop_map(|value| Extension {
            value,
            unit: LimitUnit::CalendarDays
        }),
        (0u32..2).prop_map(|value| Extension {
            value,
            unit: LimitUnit::Months
        }),
    ]
}

/// A pause starting a few days before to two months after `accepted`, up to 20 days
/// long, or open.
fn pause(accepted: Date) -> impl Strategy<Value = Pause> {
    (
        -3i64..60,
        0u8..24,
        prop::option::weighted(0.8, 0i64..20),
        any::<bool>(),
    )
        .prop_map(move |(start_days, hour, length_days, special)| {
            let from_ms = china_ms(accepted, hour) + start_days * MS_PER_DAY;
            Pause {
                kind: if special {
                    PauseKind::SpecialProcedure
                } else {
                    PauseKind::Supplement
                },
                from_ms,
                to_ms: length_days.map(|days| from_ms + days * MS_PER_DAY + 3_600_000),
            }
        })
}

fn input() -> impl Strategy<Value = DeadlineInput> {
    date_in(date!(2025 - 01 - 01), date!(2025 - 03 - 31)).prop_flat_map(|accepted| {
        (
            0u8..24,
            limit(),
            limit(),
            prop::collection::vec(pause(accepted), 0..4),
            prop::collection::vec(extension(), 0..3),
            0i64..120,
        )
            .prop_map(
                move |(hour, promised, statutory, pauses, extensions, now_days)| DeadlineInput {
                    accepted_at_ms: china_ms(accepted, hour),
                    promised,
                    statutory,
                    pauses,
                    extensions,
                    now_ms: china_ms(accepted, hour) + now_days * MS_PER_DAY,
                },
            )
    })
}

fn input_and_pause() -> impl Strategy<Value = (DeadlineInput, Pause)> {
    input().prop_flat_map(|input| {
        // The input's acceptance time is a valid China time by construction.
        let accepted = china_date(input.accepted_at_ms).expect("valid");
        (Just(input), pause(accepted))
    })
}

proptest! {
    #[test]
    fn a_pause_never_makes_a_deadline_earlier((input, extra) in input_and_pause()) {
        let cal = WorkCalendar::official();
        let before = compute(&input, &cal).expect("official years");
        let mut paused = input.clone();
        paused.pauses.push(extra);
        let after = compute(&paused, &cal).expect("official years");
        prop_assert!(after.promised.value >= before.promised.value);
        prop_assert!(after.statutory.value >= before.statutory.value);
    }

    #[test]
    fn order_of_pauses_and_extensions_does_not_matter(
        (input, pauses, extensions) in input().prop_flat_map(|input| {
            let pauses = Just(input.pauses.clone()).prop_shuffle();
            let extensions = Just(input.extensions.clone()).prop_shuffle();
            (Just(input), pauses, extensions)
        })
    ) {
        let cal = WorkCalendar::official();
        let shuffled = DeadlineInput { pauses, extensions, ..input.clone() };
        prop_assert_eq!(compute(&input, &cal), compute(&shuffled, &cal));
    }

    #[test]
    fn a_pause_before_the_deadline_moves_it_by_its_working_days(
        accepted in date_in(date!(2025 - 01 - 01), date!(2025 - 06 - 30)),
        n in 1u32..40,
        start_offset_days in 0i64..1000,
        length_days in 0i64..30,
    ) {
        let cal = WorkCalendar::official();
        let due = cal.add_workdays(accepted, n).expect("official years").value;
        // Any start on or after acceptance and before the unpaused deadline.
        let span_days = (due - accepted).whole_days();
        let start = accepted + time::Duration::days(start_offset_days % span_days);
        let end = start + time::Duration::days(length_days);
        let k = cal.workdays_between(start, end).expect("official years").value;
        let k = u32::try_from(k).expect("end is not before start");
        let input = DeadlineInput {
            accepted_at_ms: china_ms(accepted, 9),
            promised: wd(n),
            statutory: wd(n),
            pauses: vec![Pause {
                kind: PauseKind::Supplement,
                from_ms: china_ms(start, 15),
                to_ms: Some(china_ms(end, 10)),
            }],
            extensions: vec![],
            now_ms: china_ms(accepted, 10),
        };
        let expected = cal.add_workdays(due, k).expect("official years").value;
        let got = compute(&input, &cal).expect("official years");
        prop_assert_eq!(got.promised.value, end_of_china_day_ms(expected));
        // Nothing has passed yet, and paused days are not left to work: still n.
        prop_assert_eq!(got.remaining_working_days, i64::from(n));
    }
}
