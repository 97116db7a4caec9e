//! Deadlines of cases worked through the command line with a set clock, read back from
//! `case show --json`, and the overdue lists.

use yichuang_tests::TempDir;

use crate::rules_support::{ELDERLY, JOBLESS, Node, at, day};

/// One step: (date, time, kind, data).
type Step = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// (why, item, steps, now as (date, time), expected).
type Row = (
    &'static str,
    &'static str,
    Vec<Step>,
    (&'static str, &'static str),
    Want,
);

struct Want {
    promised: &'static str,
    statutory: &'static str,
    remaining: i64,
    overdue: bool,
    on_time: Option<bool>,
}

#[test]
fn deadlines_of_worked_cases() {
    let dir = TempDir::new("deadlines");
    let ext: &[&str] = &["value=10", "approved_by=局长"];
    let rows: Vec<Row> = vec![
        (
            "ordinary weeks: 5 and 20 working days from Monday 03-02",
            JOBLESS,
            vec![("2026-03-02", "10:00", "accepted", &[])],
            ("2026-03-02", "11:00"),
            Want {
                promised: "2026-03-09",
                statutory: "2026-03-30",
                remaining: 5,
                overdue: false,
                on_time: None,
            },
        ),
        (
            "春节: 02-13, make-up 02-14, 02-24..26; twenty reach make-up 02-28 and 03-18",
            JOBLESS,
            vec![("2026-02-12", "10:00", "accepted", &[])],
            ("2026-02-12", "11:00"),
            Want {
                promised: "2026-02-26",
                statutory: "2026-03-18",
                remaining: 5,
                overdue: false,
                on_time: None,
            },
        ),
        (
            "补正 from 09-23 to 10-09 across 中秋 and 国庆 holds six working days",
            ELDERLY,
            vec![
                ("2026-09-21", "10:00", "accepted", &[]),
                ("2026-09-23", "15:00", "supplement_requested", &[]),
                ("2026-10-09", "10:00", "supplement_received", &[]),
            ],
            ("2026-10-09", "11:00"),
            Want {
                promised: "2026-10-20",
                statutory: "2026-11-03",
                remaining: 8,
                overdue: false,
                on_time: None,
            },
        ),
        (
            "特别程序 from 03-05 to 03-12 holds five working days",
            ELDERLY,
            vec![
                ("2026-03-02", "10:00", "accepted", &[]),
                ("2026-03-05", "11:00", "suspended", &[]),
                ("2026-03-12", "16:00", "resumed", &[]),
            ],
            ("2026-03-12", "17:00"),
            Want {
                promised: "2026-03-23",
                statutory: "2026-04-07",
                remaining: 7,
                overdue: false,
                on_time: None,
            },
        ),
        (
            "延期 of ten working days moves both deadlines (清明 04-06 rests)",
            ELDERLY,
            vec![
                ("2026-03-02", "10:00", "accepted", &[]),
                ("2026-03-10", "10:00", "extended", ext),
            ],
            ("2026-03-10", "11:00"),
            Want {
                promised: "2026-03-30",
                statutory: "2026-04-14",
                remaining: 14,
                overdue: false,
                on_time: None,
            },
        ),
        (
            "completed two working days late: judged as of completion",
            JOBLESS,
            vec![
                ("2026-03-02", "10:00", "accepted", &[]),
                ("2026-03-11", "10:00", "completed", &[]),
            ],
            ("2026-04-01", "09:00"),
            Want {
                promised: "2026-03-09",
                statutory: "2026-03-30",
                remaining: -2,
                overdue: true,
                on_time: Some(false),
            },
        ),
    ];
    for (i, (why, item, steps, (now_day, now_time), want)) in rows.into_iter().enumerate() {
        // A node of its own per row: a node's clock (its hybrid logical clock) never
        // runs backwards, and the rows are not in date order.
        let node = Node::init(&dir.join(format!("row{i}")), "center", Some("001"), 0);
        let (case, _) = node.new_case(&at(steps[0].0, "09:00"), item, &[]);
        for (date, time, kind, data) in &steps {
            node.step(&at(date, time), &case, kind, data);
        }
        let v = node.show(&at(now_day, now_time), &case);
        let d = &v["deadlines"];
        assert_eq!(d["state"], "known", "{why}: {d}");
        let got = (
            day(&d["promised_ms"]),
            day(&d["statutory_ms"]),
            d["remaining_working_days"].as_i64(),
            d["overdue"].as_bool(),
            d["on_time"].as_bool(),
        );
        let expected = (
            want.promised.to_owned(),
            want.statutory.to_owned(),
            Some(want.remaining),
            Some(want.overdue),
            want.on_time,
        );
        assert_eq!(got, expected, "{why}");
        assert_eq!(d["calendar_version"], "official-2026.0.1", "{why}");
    }
}

#[test]
fn overdue_and_near_overdue_lists() {
    let dir = TempDir::new("due");
    let node = Node::init(dir.path(), "center", Some("001"), 0);
    // In date order: a node's clock never runs backwards.
    let register = |day: &str| {
        let (case, _) = node.new_case(&at(day, "09:00"), JOBLESS, &[]);
        node.step(&at(day, "10:00"), &case, "accepted", &[]);
        case
    };
    let a = register("2026-03-02"); // due 03-09
    let done = register("2026-03-02");
    let paused = register("2026-03-02");
    // Paused since 03-03: the clock stopped with four working days left.
    node.step(
        &at("2026-03-03", "10:00"),
        &paused,
        "supplement_requested",
        &[],
    );
    let b = register("2026-03-04"); // due 03-11
    node.step(&at("2026-03-05", "10:00"), &done, "completed", &[]);

    let list = |when: &str, flag: &str| -> Vec<String> {
        let v = node.json(&at(when, "10:00"), &["case", "list", flag, "--json"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["case_no"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("2026-03-09", "--overdue"), Vec::<String>::new());
    assert_eq!(
        list("2026-03-09", "--near-overdue"),
        std::slice::from_ref(&a)
    );
    assert_eq!(list("2026-03-10", "--overdue"), std::slice::from_ref(&a));
    assert_eq!(list("2026-03-10", "--near-overdue"), Vec::<String>::new());
    assert_eq!(
        list("2026-03-11", "--near-overdue"),
        std::slice::from_ref(&b)
    );
    assert_eq!(list("2026-03-20", "--overdue"), [a, b]);
    let shown = node.show(&at("2026-03-20", "10:00"), &paused);
    assert_eq!(shown["deadlines"]["paused"], true);
    assert_eq!(shown["deadlines"]["remaining_working_days"], 4);
}
