//! Nodes whose clocks are a day fast or slow: the deadlines and statuses every node
//! computes stay right, and the skewed events are flagged.
//!
//! The case's home center (node 1) creates it on Monday 2026-03-02 and accepts it at
//! 10:00 for an item promised in 5 working days: due Monday 03-09 unless paused.

use time::macros::date;

use super::*;
use crate::case::clock::SkewDirection;
use crate::deadline::china_date;
use EventKind::*;

const DAY: i64 = MS_PER_DAY;

fn promised(w: &mut Writer, now: i64) -> Date {
    let d = w.deadlines(&limits(5, 20), &WorkCalendar::official(), now);
    china_date(d.known().expect("known deadlines").promised_ms).expect("valid")
}

/// The center creates and accepts the case, and assigns it to a field worker.
fn center() -> Writer {
    let mut c = Writer::create(1, 0, at(date!(2026 - 03 - 02), 9));
    c.ok(Accepted, at(date!(2026 - 03 - 02), 10), &[]);
    c.ok(
        Assigned,
        at(date!(2026 - 03 - 02), 10) + 1_000,
        &[("staff", "S01")],
    );
    c
}

fn skewed_ids(w: &mut Writer) -> Vec<(String, SkewDirection)> {
    w.doc
        .view(false)
        .skewed_events
        .into_iter()
        .map(|s| (s.event_id, s.direction))
        .collect()
}

#[test]
fn a_laptop_a_day_fast_cannot_shorten_a_pause() {
    let mut c = center();
    let mut laptop = c.fork(2, DAY);
    // At the applicant's door on Tuesday 10:00 (the laptop says Wednesday).
    laptop.ok(SupplementRequested, at(date!(2026 - 03 - 03), 10), &[]);
    // The center receives it half an hour later and records the receipt.
    c.receive(&mut laptop, at(date!(2026 - 03 - 03), 10) + 1_800_000);
    c.ok(SupplementReceived, at(date!(2026 - 03 - 05), 10), &[]);
    laptop.receive(&mut c, at(date!(2026 - 03 - 05), 11));
    // Paused (03-03, 03-05]: two working days, so 03-09 becomes 03-11. Trusting the
    // laptop's stamp would pause only from Wednesday and give 03-10.
    let now = at(date!(2026 - 03 - 05), 12);
    assert_eq!(promised(&mut c, now), date!(2026 - 03 - 11));
    assert_eq!(
        promised(&mut laptop, now + DAY),
        date!(2026 - 03 - 11),
        "the same on the fast laptop"
    );
    assert_eq!(
        skewed_ids(&mut c),
        [("e02001".to_owned(), SkewDirection::Ahead)]
    );
    assert_eq!(skewed_ids(&mut laptop), skewed_ids(&mut c));
    let view = c.doc.view(false);
    assert_eq!(view.status, Some(Status::Accepted));
    assert!(
        view.event_conflicts.is_empty(),
        "{:?}",
        view.event_conflicts
    );
}

#[test]
fn a_fast_step_answered_the_same_day_keeps_the_status_right() {
    let mut c = center();
    let mut laptop = c.fork(2, DAY);
    laptop.ok(SupplementRequested, at(date!(2026 - 03 - 03), 10), &[]);
    c.receive(&mut laptop, at(date!(2026 - 03 - 03), 10) + 600_000);
    // The material arrives the same afternoon: by stamps, before it was asked for.
    c.ok(SupplementReceived, at(date!(2026 - 03 - 03), 15), &[]);
    let view = c.doc.view(false);
    assert_eq!(view.status, Some(Status::Accepted));
    assert!(
        view.event_conflicts.is_empty(),
        "{:?}",
        view.event_conflicts
    );
    // A pause within one day costs nothing.
    assert_eq!(
        promised(&mut c, at(date!(2026 - 03 - 03), 16)),
        date!(2026 - 03 - 09)
    );
    // The raw stamps alone would fold the receipt before the request: a conflict.
    assert!(!fold_events(&c.doc.events()).conflicts.is_empty());
}

#[test]
fn a_laptop_a_day_slow_cannot_lengthen_a_pause() {
    let mut c = center();
    // The laptop syncs at 11:00 and, a day slow, sees the center's events in its future.
    let mut laptop = c.fork(2, -DAY);
    laptop.receive(&mut c, at(date!(2026 - 03 - 02), 11));
    laptop.ok(SupplementRequested, at(date!(2026 - 03 - 03), 10), &[]);
    c.receive(&mut laptop, at(date!(2026 - 03 - 03), 11));
    c.ok(SupplementReceived, at(date!(2026 - 03 - 05), 10), &[]);
    laptop.receive(&mut c, at(date!(2026 - 03 - 05), 11));
    // Trusting the laptop's Monday stamp would pause from Monday: three working days.
    let now = at(date!(2026 - 03 - 05), 12);
    assert_eq!(promised(&mut c, now), date!(2026 - 03 - 11));
    assert_eq!(
        promised(&mut laptop, now - DAY),
        date!(2026 - 03 - 11),
        "the same on the slow laptop"
    );
    let flagged = skewed_ids(&mut c);
    assert!(
        flagged
            .iter()
            .all(|(id, dir)| id.starts_with("e02") && *dir == SkewDirection::Behind),
        "{flagged:?}"
    );
    let request = c
        .doc
        .events()
        .into_iter()
        .find(|e| e.kind == "supplement_requested")
        .expect("requested");
    assert!(
        flagged.iter().any(|(id, _)| *id == request.id),
        "the request is flagged: {flagged:?}"
    );
    assert_eq!(c.doc.view(false).status, Some(Status::Accepted));
}

#[test]
fn a_creator_a_day_fast_is_outvoted_by_two_right_clocks() {
    // The center's clock is a day fast: it stamps Tuesday for Monday's acceptance.
    let mut c = Writer::create(1, DAY, at(date!(2026 - 03 - 02), 9));
    c.ok(Accepted, at(date!(2026 - 03 - 02), 10), &[]);
    let mut hub = c.fork(3, 0);
    hub.receive(&mut c, at(date!(2026 - 03 - 02), 10) + 1_800_000);
    let mut laptop = hub.fork(2, 0);
    laptop.receive(&mut hub, at(date!(2026 - 03 - 02), 11));
    c.receive(&mut laptop, at(date!(2026 - 03 - 02), 12));
    hub.receive(&mut c, at(date!(2026 - 03 - 02), 12) + 60_000);
    laptop.receive(&mut c, at(date!(2026 - 03 - 02), 12) + 60_000);
    let now = at(date!(2026 - 03 - 02), 13);
    // Accepted Monday: due 03-09, not the 03-10 the center's stamp gives.
    for (name, w) in [
        ("center", &mut c),
        ("hub", &mut hub),
        ("laptop", &mut laptop),
    ] {
        assert_eq!(promised(w, now), date!(2026 - 03 - 09), "{name}");
        let flagged = skewed_ids(w);
        let all_center_ahead = flagged
            .iter()
            .all(|(id, d)| id.starts_with("e01") && *d == SkewDirection::Ahead);
        assert!(
            flagged.len() == 2 && all_center_ahead,
            "{name}: {flagged:?}"
        );
    }
}

#[test]
fn two_clocks_alone_trust_the_creator() {
    // Only two nodes: nothing in the document says which clock is wrong, so the case's
    // home center keeps the time. The hub's receipt is flagged instead (its clock looks
    // slow); the sync layer's own clock check is what catches this case.
    let mut c = Writer::create(1, DAY, at(date!(2026 - 03 - 02), 9));
    c.ok(Accepted, at(date!(2026 - 03 - 02), 10), &[]);
    let mut hub = c.fork(3, 0);
    hub.receive(&mut c, at(date!(2026 - 03 - 02), 10) + 1_800_000);
    let now = at(date!(2026 - 03 - 03), 13);
    assert_eq!(promised(&mut hub, now), date!(2026 - 03 - 10));
    let flagged = skewed_ids(&mut hub);
    assert!(
        flagged
            .iter()
            .all(|(id, d)| id.starts_with("e03") && *d == SkewDirection::Behind),
        "{flagged:?}"
    );
}

#[test]
fn receipts_are_recorded_once_per_event_and_node() {
    let mut c = center();
    let mut laptop = c.fork(2, DAY);
    laptop.ok(Visited, at(date!(2026 - 03 - 03), 10), &[]);
    c.receive(&mut laptop, at(date!(2026 - 03 - 03), 10) + 60_000);
    c.receive(&mut laptop, at(date!(2026 - 03 - 03), 10) + 120_000);
    let notes: Vec<Event> = c
        .doc
        .events()
        .into_iter()
        .filter(|e| e.kind == "clock_skew_noted")
        .collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].data.get("event").map(String::as_str),
        Some("e02001")
    );
    // A correct clock's events are never noted.
    let mut other = center();
    let mut right = other.fork(2, 0);
    right.ok(Visited, at(date!(2026 - 03 - 03), 10), &[]);
    other.receive(&mut right, at(date!(2026 - 03 - 03), 10) + 60_000);
    assert!(
        other
            .doc
            .events()
            .iter()
            .all(|e| e.kind != "clock_skew_noted")
    );
}
