//! The rules of case work, checked when a clerk records a step and judged by the fold
//! when two nodes did the same thing concurrently.

use time::macros::date;

use super::*;
use crate::case::rules::{EvaluationLevel, check_center_code};
use EventKind::*;

type Expected<'a> = Result<(), &'a str>;
/// Data, note and the expected outcome.
type NoteRow<'a> = (&'a [(&'a str, &'a str)], &'a str, Expected<'a>);
/// The same with data built at run time.
type BuiltRow<'a> = (Vec<(&'a str, &'a str)>, &'a str, Expected<'a>);
/// A step's data and the expected outcome (an error containing the text).
type Row<'a> = (&'a [(&'a str, &'a str)], Result<(), &'a str>);

fn t(hour: u8) -> i64 {
    at(date!(2026 - 03 - 02), hour)
}

/// A case accepted at 10:00 and completed at 11:00.
fn completed() -> Writer {
    let mut w = Writer::create(1, 0, t(9));
    w.ok(Accepted, t(10), &[]);
    w.ok(Completed, t(11), &[]);
    w
}

/// Records a step and checks the outcome: `Ok(())` or an error containing the text.
#[track_caller]
fn check(
    w: &mut Writer,
    kind: EventKind,
    data: &[(&str, &str)],
    note: &str,
    expected: Result<(), &str>,
) {
    let got = w
        .step_with_note(kind, t(12), data, note)
        .map_err(|e| e.to_string());
    match (&got, expected) {
        (Ok(()), Ok(())) => {}
        (Err(message), Err(part)) if message.contains(part) => {}
        _ => panic!("{kind} {data:?}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn evaluations() {
    let mut w = completed();
    let rows: Vec<NoteRow<'_>> = vec![
        (&[("level", "很好")], "", Err("expected 非常满意")),
        (
            &[("level", "满意"), ("channel", "fax")],
            "",
            Err("expected one of window"),
        ),
        (
            &[("level", "满意"), ("evaluator", "李四")],
            "",
            Err("evaluator stays confidential"),
        ),
        (
            &[("level", "满意")],
            "李四说很好",
            Err("evaluator stays confidential"),
        ),
        (
            &[("level", "满意"), ("occurrence", "e99999")],
            "",
            Err("not a service step"),
        ),
        (&[], "", Err("needs level")),
        // The default occurrence is the latest service step: the completion.
        (&[("level", "不满意"), ("channel", "pad")], "", Ok(())),
        (&[("level", "满意")], "", Err("already evaluated")),
        // The acceptance at the counter was a service occurrence of its own.
        (
            &[("level", "very_satisfied"), ("occurrence", "e01001")],
            "",
            Ok(()),
        ),
    ];
    for (data, note, expected) in rows {
        check(&mut w, Evaluated, data, note, expected);
    }
    let facts = w.doc.view(false).facts;
    let levels: Vec<(String, EvaluationLevel)> = facts
        .evaluations
        .iter()
        .map(|e| (e.occurrence.clone(), e.level))
        .collect();
    assert_eq!(
        levels,
        [
            ("e01002".to_owned(), EvaluationLevel::Dissatisfied),
            ("e01001".to_owned(), EvaluationLevel::VerySatisfied)
        ]
    );
    assert_eq!(facts.bad_reviews_pending(), 1);
    // The stored evaluation holds the level, channel and occurrence, nothing else.
    let stored = w
        .doc
        .events()
        .into_iter()
        .find(|e| e.kind == "evaluated")
        .expect("evaluated");
    assert_eq!(
        stored.data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["channel", "level", "occurrence"]
    );
    assert_eq!(stored.data["level"], "不满意");
    assert_eq!(stored.note, "");

    let bad = facts.evaluations[0].event_id.clone();
    let good = facts.evaluations[1].event_id.clone();
    let follow_ups: Vec<BuiltRow<'_>> = vec![
        (
            vec![("evaluation", good.as_str())],
            "回访",
            Err("only a bad review"),
        ),
        (vec![("evaluation", bad.as_str())], "", Err("needs a note")),
        (
            vec![("evaluation", "e99999")],
            "回访",
            Err("not an evaluation"),
        ),
        (
            vec![("evaluation", bad.as_str())],
            "已电话回访，补发证照",
            Ok(()),
        ),
        (
            vec![("evaluation", bad.as_str())],
            "再次回访",
            Err("already followed up"),
        ),
    ];
    for (data, note, expected) in follow_ups {
        check(&mut w, EvaluationFollowedUp, &data, note, expected);
    }
    assert_eq!(w.doc.view(false).facts.bad_reviews_pending(), 0);
}

#[test]
fn nothing_served_nothing_to_evaluate() {
    let mut w = Writer::create(1, 0, t(9));
    // Evaluated is illegal before acceptance (the transition table) ...
    check(
        &mut w,
        Evaluated,
        &[("level", "满意")],
        "",
        Err("not allowed"),
    );
    w.ok(SupplementRequested, t(10), &[]);
    // ... and with no service step there is no occurrence to evaluate.
    check(
        &mut w,
        Evaluated,
        &[("level", "满意")],
        "",
        Err("nothing has been served"),
    );
}

#[test]
fn one_evaluation_per_occurrence_after_a_merge() {
    let mut a = completed();
    let mut b = a.fork(2, 0);
    a.ok(Evaluated, t(12), &[("level", "满意")]);
    b.ok(Evaluated, t(13), &[("level", "非常不满意")]);
    a.receive(&mut b, t(14));
    let view = a.doc.view(false);
    let conflicts: Vec<(String, EventKind)> = view
        .event_conflicts
        .iter()
        .map(|c| (c.event_id.clone(), c.kind))
        .collect();
    assert_eq!(
        conflicts,
        [("e02001".to_owned(), Evaluated)],
        "the later evaluation of the same occurrence"
    );
    assert_eq!(view.facts.evaluations.len(), 1);
    assert_eq!(view.facts.evaluations[0].level, EvaluationLevel::Satisfied);
}

#[test]
fn extensions() {
    let mut w = Writer::create(1, 0, t(9));
    w.ok(Accepted, t(10), &[]);
    let rows: Vec<Row<'_>> = vec![
        (&[("approved_by", "局长")], Err("needs value")),
        (
            &[("value", "0"), ("approved_by", "局长")],
            Err("from 1 to 60"),
        ),
        (
            &[("value", "61"), ("approved_by", "局长")],
            Err("from 1 to 60"),
        ),
        (
            &[("value", "10"), ("unit", "weeks"), ("approved_by", "局长")],
            Err("expected working_days"),
        ),
        (&[("value", "10")], Err("approving head")),
        (
            &[("value", "10"), ("unit", "1"), ("approved_by", "局长")],
            Ok(()),
        ),
        (
            &[("value", "5"), ("approved_by", "局长")],
            Err("already extended"),
        ),
    ];
    for (data, expected) in rows {
        check(&mut w, Extended, data, "", expected);
    }
    let stored = w
        .doc
        .events()
        .into_iter()
        .find(|e| e.kind == "extended")
        .expect("extended");
    assert_eq!(
        stored.data["unit"], "working_days",
        "a catalog code is stored by name"
    );
    // Two extensions granted concurrently: only the first in fold order counts.
    let mut a = Writer::create(1, 0, t(9));
    a.ok(Accepted, t(10), &[]);
    let mut b = a.fork(2, 0);
    a.ok(Extended, t(11), &[("value", "10"), ("approved_by", "局长")]);
    b.ok(
        Extended,
        t(12),
        &[("value", "15"), ("approved_by", "副局长")],
    );
    a.receive(&mut b, t(13));
    let view = a.doc.view(false);
    assert_eq!(view.facts.extensions.len(), 1);
    assert_eq!(view.facts.extensions[0].value, 10);
    assert_eq!(view.event_conflicts.len(), 1);
}

#[test]
fn transfers_and_scope() {
    let mut w = Writer::create(1, 0, t(9));
    w.ok(Accepted, t(10), &[]);
    let rows: Vec<Row<'_>> = vec![
        (&[], Err("needs a target center")),
        (&[("to_center", "3")], Err("expected a center code")),
        (&[("to_center", "001")], Err("already at 001")),
        (&[("to_center", "003")], Ok(())),
        (&[("to_center", "district")], Ok(())),
    ];
    for (data, expected) in rows {
        check(&mut w, Transferred, data, "", expected);
    }
    let routing = w.doc.routing();
    assert_eq!(
        (
            routing.home_center.as_str(),
            routing.current_center.as_str()
        ),
        ("001", "district")
    );
    assert_eq!(
        routing.scope_centers(),
        ["001"],
        "the back office is the hub's"
    );
    check(&mut w, Transferred, &[("to_center", "005")], "", Ok(()));
    let routing = w.doc.routing();
    assert_eq!(routing.scope_centers(), ["001", "005"]);
    assert!(
        routing.center_may_write("005")
            && routing.center_may_write("001")
            && !routing.center_may_write("003")
    );
    assert_eq!(w.doc.view(false).facts.transfers, 3);
    for (code, ok) in [
        ("district", true),
        ("013", true),
        ("01", false),
        ("0a1", false),
        ("", false),
    ] {
        assert_eq!(check_center_code(code).is_ok(), ok, "{code:?}");
    }
}

#[test]
fn postal_delivery() {
    let mut post = super::new_case();
    post.delivery_method = "post".into();
    assert!(
        NewCase::validate(&post)
            .unwrap_err()
            .to_string()
            .contains("needs an address")
    );
    post.delivery_address = "云溪区溪桥路1号".into();
    let mut w = Writer::create_with(1, 0, t(9), post);
    w.ok(Accepted, t(10), &[]);
    w.ok(Completed, t(11), &[]);
    let rows: Vec<Row<'_>> = vec![
        (&[], Err("needs a tracking number")),
        (&[("tracking_no", "12")], Err("letters and digits")),
        (
            &[("tracking_no", "EA12345678-CN")],
            Err("letters and digits"),
        ),
        (&[("tracking_no", "EA123456789CN")], Ok(())),
    ];
    for (data, expected) in rows {
        check(&mut w, Delivered, data, "", expected);
    }
    let view = w.doc.view(false);
    assert_eq!(
        view.delivery.tracking_no, "EA123456789CN",
        "the tracking number is kept on the case"
    );
    assert_eq!(view.status, Some(Status::Delivered));
    // An edit may not leave a postal case without an address.
    let stamp = w.stamp(t(12));
    w.doc
        .set_field("delivery.address", "", &stamp)
        .expect("a single field is set");
    assert!(w.doc.check_delivery().is_err());
    // Window delivery needs neither.
    let mut window = completed();
    check(&mut window, Delivered, &[], "", Ok(()));
}

#[test]
fn visits_returns_and_supplements_are_counted() {
    let mut w = Writer::create(1, 0, t(9));
    w.ok(Visited, t(9) + 1, &[]);
    w.ok(Accepted, t(10), &[]);
    w.ok(Forwarded, t(10) + 1, &[]);
    w.ok(Returned, t(10) + 2, &[]);
    w.ok(SupplementRequested, t(10) + 3, &[]);
    w.ok(Visited, t(11), &[("purpose", "补交材料")]);
    w.ok(SupplementReceived, t(11) + 1, &[]);
    let facts = w.doc.view(false).facts;
    assert_eq!((facts.visits, facts.returns, facts.supplements), (2, 1, 1));
    assert_eq!(facts.accepted_ms, Some(t(10)));
    assert_eq!(facts.pauses.len(), 1);
}
