//! The working-day calendar from the command line: adding working days across the
//! 2026 holidays, a year nobody has published, and the hub publishing one to every node.

use yichuang_tests::{TempDir, carry, fails, json, run};

use crate::rules_support::{ELDERLY, Node, at, day};

/// The expected answer: (date, calendar version), or a part of the error message.
type Expected = Result<(&'static str, &'static str), &'static str>;

const HUB_2027: &str =
    r#"{"year":2027,"version":"hub-2027-v1","holidays":["2027-01-01"],"workdays":[]}"#;

#[track_caller]
fn check_add(dir: &str, from: &str, days: &str, expected: Expected) {
    let args = [
        "calendar",
        "add-workdays",
        "--dir",
        dir,
        "--from",
        from,
        "--days",
        days,
        "--json",
    ];
    match expected {
        Ok((date, version)) => {
            let v = json(&args);
            assert_eq!(
                (v["date"].as_str(), v["calendar_version"].as_str()),
                (Some(date), Some(version)),
                "{from} + {days}"
            );
        }
        Err(message) => {
            let out = run(&args);
            assert!(!out.status.success(), "{from} + {days} should fail");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(message), "{from} + {days}: {stderr}");
            assert!(out.stdout.is_empty(), "no date is guessed");
        }
    }
}

#[test]
fn add_workdays_across_the_2026_holidays() {
    let dir = TempDir::new("cal-add");
    let node = Node::init(dir.path(), "center", Some("001"), 0);
    let official = "official-2026.0.1";
    let rows: [(&str, &str, Expected); 7] = [
        // Monday + 5 is next Monday; the date itself is not counted; 0 days is the date.
        ("2026-03-02", "5", Ok(("2026-03-09", official))),
        ("2026-03-06", "0", Ok(("2026-03-06", official))),
        // 春节: 02-13, make-up Saturday 02-14, then 02-24..26.
        ("2026-02-12", "5", Ok(("2026-02-26", official))),
        // 国庆: 09-30, then 10-08, 10-09; the make-up Saturday 10-10 works.
        ("2026-09-29", "3", Ok(("2026-10-09", official))),
        ("2026-10-09", "1", Ok(("2026-10-10", official))),
        // Into 2027, which nobody has published: a non-zero exit saying so.
        ("2026-12-28", "5", Err("calendar unknown for year 2027")),
        ("2026-12-31", "1", Err("calendar unknown for year 2027")),
    ];
    for (from, days, expected) in rows {
        check_add(&node.dir, from, days, expected);
    }
    let text = String::from_utf8(
        run(&[
            "calendar",
            "add-workdays",
            "--dir",
            &node.dir,
            "--from",
            "2026-09-30",
            "--days",
            "1",
        ])
        .stdout,
    )
    .expect("utf-8");
    assert!(text.starts_with("2026-10-08"), "{text}");
    assert!(
        fails(&[
            "calendar",
            "add-workdays",
            "--dir",
            &node.dir,
            "--from",
            "2026-2-30",
            "--days",
            "1"
        ])
        .contains("YYYY-MM-DD")
    );
}

#[test]
fn show_a_year() {
    let dir = TempDir::new("cal-show");
    let node = Node::init(dir.path(), "center", Some("001"), 0);
    let v = json(&[
        "calendar", "show", "--dir", &node.dir, "--year", "2026", "--json",
    ]);
    // 261 weekdays, 19 weekday holidays, 6 make-up days (the calendar module's own count).
    assert_eq!(v["workday_count"], 248);
    assert_eq!(v["calendar_version"], "official-2026.0.1");
    let holidays: Vec<&str> = v["holidays"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert!(holidays.contains(&"2026-02-16") && holidays.contains(&"2026-10-07"));
    let make_up: Vec<&str> = v["workdays_on_weekends"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert_eq!(
        make_up,
        [
            "2026-01-04",
            "2026-02-14",
            "2026-02-28",
            "2026-05-09",
            "2026-09-20",
            "2026-10-10"
        ]
    );
    assert!(
        fails(&["calendar", "show", "--dir", &node.dir, "--year", "2027"])
            .contains("calendar unknown for year 2027")
    );
}

#[test]
fn only_the_hub_publishes_a_year_and_every_node_uses_it() {
    let dir = TempDir::new("cal-hub");
    let hub = Node::init(&dir.join("hub"), "hub", None, 0);
    let center = Node::init(&dir.join("c1"), "center", Some("001"), 0);
    let file = dir.join("2027.json");
    std::fs::write(&file, HUB_2027).expect("write");
    let file = file.to_str().expect("utf-8");

    let refused = fails(&["calendar", "set-year", "--dir", &center.dir, "--file", file]);
    assert!(
        refused.contains("only the hub may write reference documents; this node is a center"),
        "{refused}"
    );

    let bad = dir.join("bad.json");
    for (text, message) in [
        (
            r#"{"year":2027,"version":"v","holiday":["2027-01-01"],"workdays":[]}"#,
            "unknown field",
        ),
        (
            r#"{"year":2027,"version":"v","holidays":["2028-01-01"],"workdays":[]}"#,
            "in another year",
        ),
        (
            r#"{"year":2027,"version":"v","holidays":["2027-01-01"],"workdays":["2027-01-01"]}"#,
            "both as a holiday and as a workday",
        ),
    ] {
        std::fs::write(&bad, text).expect("write");
        let err = fails(&[
            "calendar",
            "set-year",
            "--dir",
            &hub.dir,
            "--file",
            bad.to_str().unwrap(),
        ]);
        assert!(err.contains(message), "{text}: {err}");
    }

    let set = json(&[
        "calendar", "set-year", "--dir", &hub.dir, "--file", file, "--json",
    ]);
    assert_eq!(set["calendar_version"], "hub-2027-v1");
    let both = "official-2026.0.1+hub-2027-v1";
    check_add(&hub.dir, "2026-12-28", "5", Ok(("2027-01-05", both)));
    check_add(
        &center.dir,
        "2026-12-28",
        "5",
        Err("calendar unknown for year 2027"),
    );
    // The calendar document reaches the center as any reference document does.
    assert!(
        carry(
            &hub.dir,
            &center.dir,
            "ref-calendar",
            at("2026-12-01", "09:00").ms
        ) > 0
    );
    check_add(&center.dir, "2026-12-28", "5", Ok(("2027-01-05", both)));
    let summary = json(&[
        "calendar",
        "show",
        "--dir",
        &center.dir,
        "--year",
        "2027",
        "--json",
    ]);
    assert_eq!(
        (
            summary["workday_count"].as_i64(),
            summary["calendar_version"].as_str()
        ),
        (Some(260), Some("hub-2027-v1"))
    );
}

#[test]
fn a_calendar_change_recomputes_deadlines() {
    let dir = TempDir::new("cal-reindex");
    let hub = Node::init(&dir.join("hub"), "hub", None, 0);
    let accepted = at("2026-12-21", "10:00");
    let (case, _) = hub.new_case(&accepted, ELDERLY, &[]);
    let v = hub.step(&accepted, &case, "accepted", &[]);
    // 12-22..31 are eight working days; the other two fall in 2027.
    assert_eq!(v["deadlines"]["state"], "calendar_unknown");
    assert_eq!(v["deadlines"]["year"], 2027);
    let late = at("2027-01-20", "10:00");
    assert_eq!(
        hub.json(&late, &["case", "list", "--overdue", "--json"]),
        serde_json::json!([]),
        "unknown is not overdue"
    );

    let file = dir.join("2027.json");
    std::fs::write(&file, HUB_2027).expect("write");
    let set = hub.json(
        &at("2026-12-22", "09:00"),
        &[
            "calendar",
            "set-year",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(set["cases_reindexed"], 1);

    let shown = hub.show(&at("2026-12-22", "10:00"), &case);
    let d = &shown["deadlines"];
    assert_eq!(
        (d["state"].as_str(), day(&d["promised_ms"]).as_str()),
        (Some("known"), "2027-01-05")
    );
    assert_eq!(d["calendar_version"], "official-2026.0.1+hub-2027-v1");
    let near = hub.json(
        &at("2027-01-05", "09:00"),
        &["case", "list", "--near-overdue", "--json"],
    );
    assert_eq!(near.as_array().map(Vec::len), Some(1));
    let overdue = hub.json(
        &at("2027-01-06", "09:00"),
        &["case", "list", "--overdue", "--json"],
    );
    assert_eq!(overdue[0]["case_no"], case.as_str());
    assert_eq!(overdue[0]["deadlines"]["remaining_working_days"], -1);
}
