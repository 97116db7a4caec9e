//! District metrics from cases worked at two centers and gathered at the hub, with the
//! answers worked out by hand. Items: 失业保险金 (JOBLESS, 5 working days, 人社局),
//! 个体户设立 (INSTANT, 即办件, 市场监管局), 高龄津贴 (ELDERLY, 10 working days, 民政局).
//! All dates March 2026:
//!
//! | # | center | item | what happened | visits | evaluation |
//! |---|---|---|---|---|---|
//! | 1 | 001 | JOBLESS | accepted 03-02 (due 03-09), completed 03-05 | 1 | 满意 |
//! | 2 | 001 | JOBLESS | accepted 03-03, 补正 03-03..03-04 (due 03-11), completed 03-12: late | 2 | 不满意, followed up |
//! | 3 | 001 | INSTANT | accepted and completed 03-04 | 1 | 非常满意 |
//! | 4 | 002 | ELDERLY | accepted 03-05 (due 03-19), 退回 once, 延期 5 (due 03-26), completed 03-20 | 0 | 非常不满意, pending |
//! | 5 | 002 | ELDERLY | accepted 03-09 with an agent, 异常终止 03-16 | 1 | |
//! | 6 | 002 | INSTANT | 不予受理 03-10 | 0 | 基本满意 |

use serde_json::Value;
use yichuang_tests::{TempDir, carry, ok};

use crate::rules_support::{ELDERLY, INSTANT, JOBLESS, Node, agent_id, at};

struct District {
    _dir: TempDir,
    hub: Node,
    c1: Node,
}

fn district() -> District {
    let dir = TempDir::new("metrics");
    let hub = Node::init(&dir.join("hub"), "hub", None, 0);
    let c1 = Node::init(&dir.join("c1"), "center", Some("001"), 0);
    let c2 = Node::init(&dir.join("c2"), "center", Some("002"), 0);
    let t = |d: &str, hm: &str| at(&format!("2026-03-{d}"), hm);
    // Each center's steps in time order: a node's clock never runs backwards.
    let (n1, d1) = c1.new_case(&t("02", "09:00"), JOBLESS, &[]);
    c1.step(&t("02", "09:30"), &n1, "visited", &[]);
    c1.step(&t("02", "10:00"), &n1, "accepted", &[]);
    let (n2, d2) = c1.new_case(&t("03", "09:00"), JOBLESS, &[]);
    c1.step(&t("03", "09:30"), &n2, "visited", &[]);
    c1.step(&t("03", "10:00"), &n2, "accepted", &[]);
    c1.step(&t("03", "14:00"), &n2, "supplement_requested", &[]);
    let (n3, d3) = c1.new_case(&t("04", "09:00"), INSTANT, &[]);
    c1.step(&t("04", "09:01"), &n3, "visited", &[]);
    c1.step(&t("04", "09:10"), &n3, "accepted", &[]);
    c1.step(&t("04", "09:30"), &n3, "completed", &[]);
    c1.step(&t("04", "09:35"), &n3, "evaluated", &["level=非常满意"]);
    c1.step(&t("04", "10:30"), &n2, "visited", &["purpose=补交材料"]);
    c1.step(&t("04", "11:00"), &n2, "supplement_received", &[]);
    c1.step(&t("05", "10:00"), &n1, "completed", &[]);
    c1.step(&t("05", "10:05"), &n1, "evaluated", &["level=满意"]);
    c1.step(&t("12", "10:00"), &n2, "completed", &[]);
    let v = c1.step(
        &t("12", "10:05"),
        &n2,
        "evaluated",
        &["level=不满意", "channel=pad"],
    );
    let bad = v["facts"]["evaluations"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let evaluation = format!("evaluation={bad}");
    c1.json(
        &t("13", "10:00"),
        &[
            "case",
            "event",
            &n2,
            "evaluation_followed_up",
            "--data",
            &evaluation,
            "--note",
            "电话回访，已致歉并说明超期原因",
            "--json",
        ],
    );

    let (n4, d4) = c2.new_case(&t("05", "09:00"), ELDERLY, &[]);
    c2.step(&t("05", "10:00"), &n4, "accepted", &[]);
    c2.step(&t("06", "10:00"), &n4, "forwarded", &[]);
    let agent = agent_id();
    let (n5, d5) = c2.new_case(
        &t("09", "09:00"),
        ELDERLY,
        &["--agent-name", "代办乙", "--agent-id", &agent],
    );
    c2.step(&t("09", "09:01"), &n5, "visited", &[]);
    c2.step(&t("09", "10:00"), &n5, "accepted", &[]);
    c2.step(&t("09", "11:00"), &n4, "returned", &[]);
    let (n6, d6) = c2.new_case(&t("10", "09:00"), INSTANT, &[]);
    c2.step(&t("10", "09:30"), &n6, "rejected", &[]);
    c2.step(&t("10", "09:35"), &n6, "evaluated", &["level=基本满意"]);
    c2.step(&t("10", "10:00"), &n4, "forwarded", &[]);
    c2.step(
        &t("10", "11:00"),
        &n4,
        "extended",
        &["value=5", "approved_by=局长"],
    );
    c2.step(&t("16", "10:00"), &n5, "terminated", &[]);
    c2.step(&t("18", "10:00"), &n4, "approved", &[]);
    c2.step(&t("20", "10:00"), &n4, "completed", &[]);
    c2.step(
        &t("20", "10:05"),
        &n4,
        "evaluated",
        &["level=非常不满意", "channel=sms"],
    );

    let docs = [
        (&c1, d1),
        (&c1, d2),
        (&c1, d3),
        (&c2, d4),
        (&c2, d5),
        (&c2, d6),
    ];
    for (node, doc) in &docs {
        carry(&node.dir, &hub.dir, doc, t("31", "18:00").ms);
    }
    District { _dir: dir, hub, c1 }
}

/// The counts checked, in this order: accepted, instant, promised, agent, rejected,
/// completed, on time, late, once, at most one visit, items completed, items at most
/// one visit, extended, terminated, evaluations (非常满意, 满意, 基本满意, 不满意,
/// 非常不满意), bad, followed up, pending.
fn counts(m: &Value) -> Vec<i64> {
    let mut keys: Vec<i64> = [
        "accepted",
        "instant",
        "promised",
        "agent",
        "rejected",
        "completed",
        "completed_on_time",
        "completed_late",
        "completed_once",
        "completed_at_most_one_visit",
        "items_completed",
        "items_at_most_one_visit",
        "extended",
        "terminated",
    ]
    .iter()
    .map(|k| m[*k].as_i64().unwrap_or(-1))
    .collect();
    for level in ["非常满意", "满意", "基本满意", "不满意", "非常不满意"] {
        keys.push(m["evaluations"][level].as_i64().unwrap_or(-1));
    }
    for k in [
        "bad_reviews",
        "bad_reviews_followed_up",
        "bad_reviews_pending",
    ] {
        keys.push(m[k].as_i64().unwrap_or(-1));
    }
    keys
}

fn rates(m: &Value) -> [Option<f64>; 4] {
    [
        "on_time_rate",
        "once_rate",
        "one_visit_rate",
        "item_one_visit_rate",
    ]
    .map(|k| m[k].as_f64())
}

#[test]
fn district_and_center_metrics() {
    let d = district();
    let now = at("2026-04-01", "09:00");
    let report = |node: &Node, by: &str| {
        node.json(
            &now,
            &[
                "report",
                "--from",
                "2026-03-01",
                "--to",
                "2026-03-31",
                "--by",
                by,
                "--json",
            ],
        )
    };

    // The district: accepted 1-5 (6 was rejected); one instant, one with an agent.
    // Completed 1-4: late only 2 → 3/4 on time. 一次办结 (no 补正, no 退回): 1 and 3 → 2/4.
    // At most one visit: all but 2 → 3/4. Items: JOBLESS (case 2 came twice) fails,
    // INSTANT and ELDERLY pass → 2/3. One of each level; bad: 2 (followed up), 4 (pending).
    let total = report(&d.hub, "all");
    let m = &total["total"];
    assert_eq!(
        counts(m),
        [
            5, 1, 4, 1, 1, 4, 3, 1, 2, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1
        ]
    );
    assert_eq!(
        rates(m),
        [Some(0.75), Some(0.5), Some(0.75), Some(2.0 / 3.0)]
    );
    // The catalog promises no visit for 失业保险金 and 高龄津贴, one for 个体户设立:
    // cases 1 and 2 came in more often than promised.
    assert_eq!(m["completed_visits_over_promise"], 2);

    // By center. 001: cases 1-3; completed all three, 2 late → 2/3; once 1, 3; one visit
    // 1, 3; items JOBLESS fails, INSTANT passes. 002: cases 4-6; 4 completed on time but
    // returned; 5 had the agent and was terminated; 6 rejected.
    let by_center = report(&d.hub, "center");
    let rows = by_center["rows"].as_array().unwrap();
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["key"].as_str().unwrap(), r["label"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("001", "云溪街道公共服务中心"),
            ("002", "溪桥街道公共服务中心")
        ]
    );
    assert_eq!(
        counts(&rows[0]),
        [
            3, 1, 2, 0, 0, 3, 2, 1, 2, 2, 2, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0
        ]
    );
    assert_eq!(
        rates(&rows[0]),
        [Some(2.0 / 3.0), Some(2.0 / 3.0), Some(2.0 / 3.0), Some(0.5)]
    );
    assert_eq!(
        counts(&rows[1]),
        [
            2, 0, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1
        ]
    );
    assert_eq!(
        rates(&rows[1]),
        [Some(1.0), Some(0.0), Some(1.0), Some(1.0)]
    );

    // A center reports on itself with the same code and gets the hub's row for it.
    let own = report(&d.c1, "all");
    assert_eq!(counts(&own["total"]), counts(&rows[0]));
    let only = d.hub.json(
        &now,
        &[
            "report",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
            "--center",
            "002",
            "--json",
        ],
    );
    assert_eq!(counts(&only["total"]), counts(&rows[1]));

    // By department: 人社局 holds cases 1 and 2 only.
    let by_department = report(&d.hub, "department");
    let jobs = by_department["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "云溪区人力资源和社会保障局")
        .unwrap();
    assert_eq!(
        (
            jobs["accepted"].as_i64(),
            jobs["completed"].as_i64(),
            jobs["completed_late"].as_i64()
        ),
        (Some(2), Some(2), Some(1))
    );

    // A stricter 一次办结: also at most one visit. Case 3 passes, 1 too (one visit).
    let strict = d.hub.json(
        &now,
        &[
            "report",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
            "--once-rule",
            "no-supplement,no-return,max-visits=0",
            "--json",
        ],
    );
    assert_eq!(
        strict["total"]["completed_once"], 0,
        "cases 1 and 3 each had a visit"
    );
    // By day: on 03-04 case 3 was accepted and completed (case 2's material arrived,
    // which no count dates).
    let daily = d.hub.json(
        &now,
        &[
            "report",
            "--from",
            "2026-03-04",
            "--to",
            "2026-03-04",
            "--period",
            "day",
            "--json",
        ],
    );
    let row = &daily["rows"][0];
    assert_eq!(
        (
            row["period"].as_str(),
            row["accepted"].as_i64(),
            row["completed"].as_i64()
        ),
        (Some("2026-03-04"), Some(1), Some(1))
    );
}

#[test]
fn report_as_csv_and_text() {
    let d = district();
    let dir_arg = d.hub.dir.clone();
    let csv = ok(&[
        "report",
        "--dir",
        &dir_arg,
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--by",
        "center",
        "--csv",
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "header, two centers, total:\n{csv}");
    assert!(
        lines[1].starts_with(
            "001,云溪街道公共服务中心,2026-03-01..2026-03-31,3,1,2,0,0,3,2,1,0,0.6667,"
        ),
        "{}",
        lines[1]
    );
    assert!(lines[3].starts_with("*,合计,"));
    let text = ok(&[
        "report",
        "--dir",
        &dir_arg,
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
    ]);
    assert!(
        text.contains("按时办结率") && text.contains("75.0%"),
        "{text}"
    );
    let bad = yichuang_tests::fails(&[
        "report",
        "--dir",
        &dir_arg,
        "--from",
        "2026-03-31",
        "--to",
        "2026-03-01",
    ]);
    assert!(bad.contains("ends"), "{bad}");
    let bad_rule = yichuang_tests::fails(&[
        "report",
        "--dir",
        &dir_arg,
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--once-rule",
        "fast",
    ]);
    assert!(bad_rule.contains("one-pass rule"), "{bad_rule}");
}
