//! The metrics of a small fixture district, worked out by hand below.
//!
//! Items: I1 公司设立登记 (市场监管局, 承诺件), I2 个体户登记 (市场监管局, 即办件),
//! I3 高龄津贴 (民政局, 承诺件). Cases, all dates 2026 (China dates):
//!
//! | # | center | item | what happened | visits | evaluation |
//! |---|---|---|---|---|---|
//! | 1 | 001 | I1 | accepted 03-02, completed 03-05 on time | 1 | 满意 03-06 |
//! | 2 | 001 | I1 | accepted 03-03, 补正 once, completed 03-12 late | 2 | 不满意 03-13, followed up 03-14 |
//! | 3 | 001 | I2 | accepted and completed 03-04, on time | 1 | 非常满意 03-04 |
//! | 4 | 002 | I3 | accepted 03-05, 延期 03-10, 退回 once, completed 03-20 on time | 0 | 非常不满意 03-21, not followed up |
//! | 5 | 002 | I3 | accepted 03-09 by an agent (代办), 异常终止 03-15 | 1 | |
//! | 6 | 002 | I2 | 不予受理 03-10 | 0 | 基本满意 03-10 |
//! | 7 | 003 | I1 | accepted 02-26, completed 03-02 on time | 1 | |
//! | 8 | 003 | I3 | accepted 03-30, 延期 04-01, completed 04-02 on time | 1 | |
//! | 9 | 003 | I1 | accepted 03-16, 撤销 03-17 | 0 | |
//! | 10 | 001 | I3 | accepted 03-18, completed 03-25, deadline unknown | 1 | |

use time::Date;
use time::macros::date;

use super::*;
use crate::case::deadlines::KnownDeadlines;
use crate::case::facts::{EvaluationFact, ExtensionFact};
use crate::deadline::{LimitUnit, end_of_china_day_ms};

/// Noon, China time.
fn ms(d: Date) -> i64 {
    end_of_china_day_ms(d) - 12 * 3_600_000
}

#[derive(Default)]
struct Spec {
    accepted: Option<Date>,
    completed: Option<Date>,
    rejected: Option<Date>,
    terminated: Option<Date>,
    cancelled: Option<Date>,
    extended: Option<Date>,
    on_time: Option<bool>,
    supplements: u32,
    returns: u32,
    visits: u32,
    agent: bool,
    evaluation: Option<(EvaluationLevel, Date, Option<Date>)>,
}

fn case(center: &str, item: &str, spec: Spec) -> MetricsCase {
    let (item_name, department, handling) = match item {
        "I1" => ("公司设立登记", "市场监管局", Handling::Promised),
        "I2" => ("个体户登记", "市场监管局", Handling::Instant),
        _ => ("高龄津贴", "民政局", Handling::Promised),
    };
    let facts = CaseFacts {
        accepted_ms: spec.accepted.map(ms),
        completed_ms: spec.completed.map(ms),
        rejected_ms: spec.rejected.map(ms),
        terminated_ms: spec.terminated.map(ms),
        cancelled_ms: spec.cancelled.map(ms),
        extensions: spec
            .extended
            .map(|d| ExtensionFact {
                value: 10,
                unit: LimitUnit::WorkingDays,
                at_ms: ms(d),
            })
            .into_iter()
            .collect(),
        supplements: spec.supplements,
        returns: spec.returns,
        visits: spec.visits,
        evaluations: spec
            .evaluation
            .map(|(level, on, followed)| EvaluationFact {
                event_id: "e1".into(),
                occurrence: "e0".into(),
                level,
                channel: "window".into(),
                at_ms: ms(on),
                followed_up_ms: followed.map(ms),
            })
            .into_iter()
            .collect(),
        ..CaseFacts::default()
    };
    let deadlines = match spec.on_time {
        Some(on_time) => CaseDeadlines::Known(KnownDeadlines {
            promised_ms: 0,
            statutory_ms: 0,
            calendar_version: "official-2026.0.1".into(),
            remaining_working_days: 0,
            overdue: !on_time,
            near_overdue: false,
            paused: false,
            as_of_ms: 0,
            on_time: Some(on_time),
        }),
        None => CaseDeadlines::CalendarUnknown { year: 2027 },
    };
    MetricsCase {
        // I3 (高龄津贴) promises no visit at all; the others one.
        item_visits: if item == "I3" { 0 } else { 1 },
        center: center.into(),
        center_name: format!("中心{center}"),
        item_code: item.into(),
        item_name: item_name.into(),
        department: department.into(),
        handling,
        agent: spec.agent,
        facts,
        deadlines,
    }
}

fn district() -> Vec<MetricsCase> {
    use EvaluationLevel::*;
    vec![
        case(
            "001",
            "I1",
            Spec {
                accepted: Some(date!(2026 - 03 - 02)),
                completed: Some(date!(2026 - 03 - 05)),
                on_time: Some(true),
                visits: 1,
                evaluation: Some((Satisfied, date!(2026 - 03 - 06), None)),
                ..Spec::default()
            },
        ),
        case(
            "001",
            "I1",
            Spec {
                accepted: Some(date!(2026 - 03 - 03)),
                completed: Some(date!(2026 - 03 - 12)),
                on_time: Some(false),
                supplements: 1,
                visits: 2,
                evaluation: Some((
                    Dissatisfied,
                    date!(2026 - 03 - 13),
                    Some(date!(2026 - 03 - 14)),
                )),
                ..Spec::default()
            },
        ),
        case(
            "001",
            "I2",
            Spec {
                accepted: Some(date!(2026 - 03 - 04)),
                completed: Some(date!(2026 - 03 - 04)),
                on_time: Some(true),
                visits: 1,
                evaluation: Some((VerySatisfied, date!(2026 - 03 - 04), None)),
                ..Spec::default()
            },
        ),
        case(
            "002",
            "I3",
            Spec {
                accepted: Some(date!(2026 - 03 - 05)),
                extended: Some(date!(2026 - 03 - 10)),
                completed: Some(date!(2026 - 03 - 20)),
                on_time: Some(true),
                returns: 1,
                evaluation: Some((VeryDissatisfied, date!(2026 - 03 - 21), None)),
                ..Spec::default()
            },
        ),
        case(
            "002",
            "I3",
            Spec {
                accepted: Some(date!(2026 - 03 - 09)),
                terminated: Some(date!(2026 - 03 - 15)),
                on_time: Some(true),
                visits: 1,
                agent: true,
                ..Spec::default()
            },
        ),
        case(
            "002",
            "I2",
            Spec {
                rejected: Some(date!(2026 - 03 - 10)),
                evaluation: Some((Basic, date!(2026 - 03 - 10), None)),
                ..Spec::default()
            },
        ),
        case(
            "003",
            "I1",
            Spec {
                accepted: Some(date!(2026 - 02 - 26)),
                completed: Some(date!(2026 - 03 - 02)),
                on_time: Some(true),
                visits: 1,
                ..Spec::default()
            },
        ),
        case(
            "003",
            "I3",
            Spec {
                accepted: Some(date!(2026 - 03 - 30)),
                extended: Some(date!(2026 - 04 - 01)),
                completed: Some(date!(2026 - 04 - 02)),
                on_time: Some(true),
                visits: 1,
                ..Spec::default()
            },
        ),
        case(
            "003",
            "I1",
            Spec {
                accepted: Some(date!(2026 - 03 - 16)),
                cancelled: Some(date!(2026 - 03 - 17)),
                on_time: Some(true),
                ..Spec::default()
            },
        ),
        case(
            "001",
            "I3",
            Spec {
                accepted: Some(date!(2026 - 03 - 18)),
                completed: Some(date!(2026 - 03 - 25)),
                on_time: None,
                visits: 1,
                ..Spec::default()
            },
        ),
    ]
}

fn march(by: GroupBy) -> ReportQuery {
    ReportQuery {
        from: date!(2026 - 03 - 01),
        to: date!(2026 - 03 - 31),
        by,
        period: Period::All,
        once_rule: OnceRule::default(),
    }
}

/// The counts a row is checked by, in a fixed order a reader can follow:
/// accepted, instant, promised, agent, rejected, completed, on time, late, unknown,
/// once, at most one visit, items completed, items at most one visit, extended,
/// terminated, cancelled, evaluations (5 levels), bad, followed up, pending.
fn counts(m: &Metrics) -> [u64; 24] {
    let e = &m.evaluations;
    [
        m.accepted,
        m.instant,
        m.promised,
        m.agent,
        m.rejected,
        m.completed,
        m.completed_on_time,
        m.completed_late,
        m.completed_deadline_unknown,
        m.completed_once,
        m.completed_at_most_one_visit,
        m.items_completed,
        m.items_at_most_one_visit,
        m.extended,
        m.terminated,
        m.cancelled,
        e.very_satisfied,
        e.satisfied,
        e.basic,
        e.dissatisfied,
        e.very_dissatisfied,
        m.bad_reviews,
        m.bad_reviews_followed_up,
        m.bad_reviews_pending,
    ]
}

#[track_caller]
fn check(m: &Metrics, expected: [u64; 24], rates: [Option<f64>; 4]) {
    assert_eq!(counts(m), expected);
    assert_eq!(
        [
            m.on_time_rate,
            m.once_rate,
            m.one_visit_rate,
            m.item_one_visit_rate
        ],
        rates
    );
}

#[test]
fn district_total_for_march() {
    let report = report(&district(), &march(GroupBy::All)).expect("valid query");
    // Accepted in March: 1, 2, 3, 4, 5, 8, 9, 10 (7 was accepted in February, 6 never);
    // only 3 is instant; 5 had an agent. Completed in March: 1, 2, 3, 4, 7, 10 (8 in
    // April): on time 1, 3, 4, 7; late 2; unknown 10, so 按时办结率 = 4 / 5. 一次办结
    // (no 补正, no 退回): 1, 3, 7, 10 = 4 / 6. At most one visit: all but 2 = 5 / 6. Items
    // completed: I1, I2, I3; I1 had case 2 with two visits, so 2 / 3 items. 延期: 4 (8's
    // was in April). One of each level; bad: 2 (followed up) and 4 (pending).
    check(
        &report.total,
        [
            8, 1, 7, 1, 1, 6, 4, 1, 1, 4, 5, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1,
        ],
        [
            Some(4.0 / 5.0),
            Some(4.0 / 6.0),
            Some(5.0 / 6.0),
            Some(2.0 / 3.0),
        ],
    );
    assert_eq!(report.rows.len(), 1);
    assert_eq!(report.rows[0].period, "2026-03-01..2026-03-31");
    // More visits than the catalog promises: case 2 (two, I1 promises one) and case 10
    // (one, I3 promises none); case 4 (I3) came in zero times.
    assert_eq!(report.total.completed_visits_over_promise, 2);
}

#[test]
fn by_center() {
    let report = report(&district(), &march(GroupBy::Center)).expect("valid query");
    let keys: Vec<(&str, &str)> = report
        .rows
        .iter()
        .map(|r| (r.key.as_str(), r.label.as_str()))
        .collect();
    assert_eq!(
        keys,
        [("001", "中心001"), ("002", "中心002"), ("003", "中心003")]
    );
    // 001: cases 1, 2, 3, 10. Completed all four: on time 1, 3; late 2; unknown 10 → 2/3.
    // Once: 1, 3, 10 → 3/4; one visit: 1, 3, 10 → 3/4; items I1 (not, case 2), I2, I3 → 2/3.
    check(
        &report.rows[0].metrics,
        [
            4, 1, 3, 0, 0, 4, 2, 1, 1, 3, 3, 3, 2, 0, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0,
        ],
        [
            Some(2.0 / 3.0),
            Some(3.0 / 4.0),
            Some(3.0 / 4.0),
            Some(2.0 / 3.0),
        ],
    );
    // 002: cases 4, 5, 6. Accepted 4, 5 (5 by an agent); 6 rejected. Completed 4, on
    // time but returned once, so not 一次办结; no visit. 延期 4, 异常终止 5.
    check(
        &report.rows[1].metrics,
        [
            2, 0, 2, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 1,
        ],
        [Some(1.0), Some(0.0), Some(1.0), Some(1.0)],
    );
    // 003: cases 7, 8, 9. Accepted in March 8, 9; completed in March 7; 撤销 9.
    check(
        &report.rows[2].metrics,
        [
            2, 0, 2, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        [Some(1.0), Some(1.0), Some(1.0), Some(1.0)],
    );
}

#[test]
fn by_department() {
    let report = report(&district(), &march(GroupBy::Department)).expect("valid query");
    let keys: Vec<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["市场监管局", "民政局"]);
    // 市场监管局 (I1, I2): cases 1, 2, 3, 6, 7, 9. Accepted 1, 2, 3, 9; completed 1, 2, 3,
    // 7 (late 2) → 3/4; once 1, 3, 7 → 3/4; one visit 3/4; items I1 no, I2 yes → 1/2.
    check(
        &report.rows[0].metrics,
        [
            4, 1, 3, 0, 1, 4, 3, 1, 0, 3, 3, 2, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0,
        ],
        [
            Some(3.0 / 4.0),
            Some(3.0 / 4.0),
            Some(3.0 / 4.0),
            Some(1.0 / 2.0),
        ],
    );
    // 民政局 (I3): cases 4, 5, 8, 10. Accepted all four; completed in March 4, 10 (10's
    // deadline unknown) → 1/1 on time; once only 10 → 1/2; visits 0 and 1 → 2/2.
    check(
        &report.rows[1].metrics,
        [
            4, 0, 4, 1, 0, 2, 1, 0, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1,
        ],
        [Some(1.0), Some(1.0 / 2.0), Some(1.0), Some(1.0)],
    );
}

#[test]
fn by_month_and_item() {
    let query = ReportQuery {
        from: date!(2026 - 02 - 01),
        to: date!(2026 - 04 - 30),
        by: GroupBy::Item,
        period: Period::Month,
        once_rule: OnceRule::default(),
    };
    let report = report(&district(), &query).expect("valid query");
    let keys: Vec<(&str, &str, u64, u64)> = report
        .rows
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.period.as_str(),
                r.metrics.accepted,
                r.metrics.completed,
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            // Case 7 was accepted in February and completed in March.
            ("I1", "2026-02", 1, 0),
            ("I1", "2026-03", 3, 3),
            ("I2", "2026-03", 1, 1),
            ("I3", "2026-03", 4, 2),
            // Case 8 completed in April, with its extension.
            ("I3", "2026-04", 0, 1),
        ]
    );
    assert_eq!(report.rows[4].metrics.extended, 1);
    assert_eq!(report.rows[1].label, "公司设立登记");
}

#[test]
fn once_rule_is_configured() {
    let rows = [
        ("default", Ok(OnceRule::default())),
        ("no-supplement,no-return", Ok(OnceRule::default())),
        (
            "no-return",
            Ok(OnceRule {
                no_supplement: false,
                no_return: true,
                max_visits: None,
            }),
        ),
        (
            "no-supplement, no-return, max-visits=1",
            Ok(OnceRule {
                no_supplement: true,
                no_return: true,
                max_visits: Some(1),
            }),
        ),
        ("", Err(MetricsError::OnceRule(String::new()))),
        ("no-visits", Err(MetricsError::OnceRule("no-visits".into()))),
        (
            "max-visits=x",
            Err(MetricsError::OnceRule("max-visits=x".into())),
        ),
    ];
    for (text, expected) in rows {
        assert_eq!(OnceRule::parse(text), expected, "{text:?}");
    }
    // With only max-visits=1, case 2 (two visits) is out and 4 (returned) is in:
    // 1, 3, 4, 7, 10.
    let mut query = march(GroupBy::All);
    query.once_rule = OnceRule::parse("max-visits=1").expect("valid");
    let total = report(&district(), &query).expect("valid query").total;
    assert_eq!((total.completed_once, total.completed), (5, 6));
}

#[test]
fn bad_queries_and_csv() {
    let mut query = march(GroupBy::All);
    query.to = date!(2026 - 02 - 01);
    assert!(matches!(
        report(&district(), &query),
        Err(MetricsError::Backwards { .. })
    ));
    query.to = date!(2040 - 01 - 01);
    assert_eq!(report(&district(), &query), Err(MetricsError::SpanTooLong));

    let report = report(&district(), &march(GroupBy::Item)).expect("valid query");
    let csv = to_csv(&report);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.len(),
        1 + report.rows.len() + 1,
        "header, rows, total"
    );
    assert!(lines[0].starts_with("key,label,period,accepted,"));
    assert!(
        lines[1].starts_with("I1,公司设立登记,2026-03-01..2026-03-31,3,0,3,"),
        "{}",
        lines[1]
    );
    assert!(lines.last().is_some_and(|l| l.starts_with("*,合计,")));
    assert_eq!(csv_cell("a,\"b\""), "\"a,\"\"b\"\"\"");
}
