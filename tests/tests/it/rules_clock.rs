//! A node whose clock is a day fast or slow. The home center (right clock) accepts a
//! case for 高龄津贴 (10 working days) on Monday 2026-03-02 and assigns it to a field
//! worker, whose laptop asks for missing material (补正) at the applicant's door on
//! Tuesday 10:00; the material reaches the center on Thursday 03-05. Changes travel
//! between the nodes as sync would carry them. Everywhere, the pause is (03-03, 03-05],
//! two working days, so 03-16 becomes 03-18; the laptop's own stamp would give 03-17
//! (a day fast: paused from Wednesday) or 03-19 (a day slow: paused from Monday).

use serde_json::Value;
use yichuang_tests::{TempDir, carry};

use crate::rules_support::{DAY_MS, ELDERLY, Node, at, day};

fn run(laptop_offset_ms: i64, direction: &str) {
    let dir = TempDir::new("clock");
    let center = Node::init(&dir.join("c1"), "center", Some("001"), 0);
    let laptop = Node::init(&dir.join("laptop"), "laptop", Some("001"), laptop_offset_ms);
    let hub = Node::init(&dir.join("hub"), "hub", None, 0);

    let (case, doc) = center.new_case(&at("2026-03-02", "09:00"), ELDERLY, &[]);
    center.step(&at("2026-03-02", "10:00"), &case, "accepted", &[]);
    center.step(
        &at("2026-03-02", "10:05"),
        &case,
        "assigned",
        &["staff=S01"],
    );
    // The laptop syncs at 10:30 by the true time; its own clock reads otherwise.
    let laptop_clock = |t: &str, hm: &str| at(t, hm).ms + laptop_offset_ms;
    carry(
        &center.dir,
        &laptop.dir,
        &doc,
        laptop_clock("2026-03-02", "10:30"),
    );
    laptop.step(
        &at("2026-03-03", "10:00"),
        &case,
        "supplement_requested",
        &["materials=M02"],
    );
    carry(&laptop.dir, &center.dir, &doc, at("2026-03-03", "10:30").ms);
    center.step(
        &at("2026-03-05", "10:00"),
        &case,
        "supplement_received",
        &[],
    );
    carry(
        &center.dir,
        &laptop.dir,
        &doc,
        laptop_clock("2026-03-05", "11:00"),
    );
    carry(&center.dir, &hub.dir, &doc, at("2026-03-05", "11:00").ms);
    carry(&laptop.dir, &hub.dir, &doc, at("2026-03-05", "11:05").ms);
    carry(&hub.dir, &center.dir, &doc, at("2026-03-05", "11:10").ms);
    carry(
        &hub.dir,
        &laptop.dir,
        &doc,
        laptop_clock("2026-03-05", "11:10"),
    );

    let now = at("2026-03-05", "12:00");
    let views: Vec<(&str, Value)> = [("center", &center), ("laptop", &laptop), ("hub", &hub)]
        .into_iter()
        .map(|(name, node)| (name, node.show(&now, &case)))
        .collect();
    for (name, v) in &views {
        let d = &v["deadlines"];
        assert_eq!(
            (
                day(&d["promised_ms"]).as_str(),
                day(&d["statutory_ms"]).as_str()
            ),
            ("2026-03-18", "2026-04-01"),
            "{name} ({direction})"
        );
        assert_eq!(v["status"], "accepted", "{name}");
        assert_eq!(v["event_conflicts"], serde_json::json!([]), "{name}");
        let skewed: Vec<(&str, &str)> = v["skewed_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["node"].as_str().unwrap(),
                    s["direction"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            !skewed.is_empty(),
            "{name}: the laptop's events are flagged"
        );
        assert!(
            skewed.iter().all(|(_, dir)| *dir == direction),
            "{name}: {skewed:?}"
        );
        let request = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "supplement_requested")
            .unwrap();
        assert!(
            v["skewed_events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["event_id"] == request["id"]),
            "{name}: the request itself is flagged"
        );
    }
    // Every node agrees on everything the rules derive.
    for (name, v) in &views[1..] {
        for key in ["deadlines", "facts", "skewed_events", "status", "events"] {
            let (reference, mine) = (&views[0].1[key], &v[key]);
            if key == "deadlines" {
                assert_eq!(reference["promised_ms"], mine["promised_ms"], "{name}");
                assert_eq!(reference["statutory_ms"], mine["statutory_ms"], "{name}");
            } else {
                assert_eq!(reference, mine, "{name}: {key}");
            }
        }
    }
}

#[test]
fn a_laptop_a_day_fast() {
    run(DAY_MS, "ahead");
}

#[test]
fn a_laptop_a_day_slow() {
    run(-DAY_MS, "behind");
}
