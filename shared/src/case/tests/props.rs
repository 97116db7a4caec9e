//! Properties at the case level: a pause never brings a deadline earlier, and the same
//! changes give the same view on every node whatever order they arrived in.

use automerge::AutoCommit;
use proptest::prelude::*;
use time::macros::date;

use super::*;
use EventKind::*;

const WINDOWS: usize = 4;
/// Each pause lives in its own week after acceptance, so pauses never overlap.
const WINDOW_DAYS: i64 = 7;

/// A pause: (special procedure?, start day within its window, length in days).
type PauseSpec = (bool, i64, i64);

fn pause_spec() -> impl Strategy<Value = PauseSpec> {
    (any::<bool>(), 0i64..3, 0i64..5)
}

/// Writes a case accepted on `accepted` with the given pauses and returns its deadlines.
fn deadlines_with(
    accepted: Date,
    promised: u32,
    statutory: u32,
    pauses: &[Option<PauseSpec>],
) -> CaseDeadlines {
    let accepted_ms = at(accepted, 10);
    let mut w = Writer::create(1, 0, accepted_ms - MS_PER_HOUR);
    w.ok(Accepted, accepted_ms, &[]);
    for (window, spec) in pauses.iter().enumerate() {
        let Some((special, start, length)) = *spec else {
            continue;
        };
        let first_day = accepted_ms + (1 + window as i64 * WINDOW_DAYS + start) * MS_PER_DAY;
        let (open, close) = if special {
            (Suspended, Resumed)
        } else {
            (SupplementRequested, SupplementReceived)
        };
        w.ok(open, first_day + 5 * MS_PER_HOUR, &[]);
        w.ok(
            close,
            first_day + length * MS_PER_DAY + 6 * MS_PER_HOUR,
            &[],
        );
    }
    let now = accepted_ms + 40 * MS_PER_DAY;
    w.deadlines(&limits(promised, statutory), &WorkCalendar::official(), now)
}

fn accepted_day() -> impl Strategy<Value = Date> {
    let first = date!(2026 - 01 - 05).to_julian_day();
    let last = date!(2026 - 06 - 30).to_julian_day();
    (first..=last).prop_map(|jd| Date::from_julian_day(jd).expect("in range"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn adding_a_suspension_never_brings_a_deadline_earlier(
        accepted in accepted_day(),
        promised in 1u32..30,
        extra_statutory in 0u32..30,
        base in prop::collection::vec(prop::option::of(pause_spec()), WINDOWS),
        extra_window in 0..WINDOWS,
        extra in pause_spec(),
    ) {
        let mut base = base;
        base[extra_window] = None;
        let mut more = base.clone();
        more[extra_window] = Some((true, extra.1, extra.2));
        let statutory = promised + extra_statutory;
        let before = deadlines_with(accepted, promised, statutory, &base);
        let after = deadlines_with(accepted, promised, statutory, &more);
        let (Some(before), Some(after)) = (before.known(), after.known()) else {
            return Err(TestCaseError::fail(format!("2026 is known: {before:?} {after:?}")));
        };
        prop_assert!(after.promised_ms >= before.promised_ms);
        prop_assert!(after.statutory_ms >= before.statutory_ms);
    }
}

/// Steps a node may take on an accepted case; concurrent ones may conflict after the
/// merge, which is the point.
const MENU: [&[EventKind]; 6] = [
    &[Visited],
    &[SupplementRequested, SupplementReceived],
    &[Suspended, Resumed],
    &[Extended],
    &[Forwarded],
    &[Completed],
];

fn data_for(kind: EventKind) -> Vec<(&'static str, &'static str)> {
    match kind {
        Extended => vec![("value", "5"), ("approved_by", "局长")],
        _ => vec![],
    }
}

/// Runs a script: the center accepts; two other nodes with the given clock offsets
/// take steps concurrently; receipts are recorded as the nodes meet. Returns every
/// change of the merged case.
fn script(offsets: (i64, i64), steps_a: &[usize], steps_b: &[usize]) -> Vec<automerge::Change> {
    let base = at(date!(2026 - 03 - 02), 9);
    let mut c = Writer::create(1, 0, base);
    c.ok(Accepted, base + MS_PER_HOUR, &[]);
    let mut a = c.fork(2, offsets.0);
    let mut b = c.fork(3, offsets.1);
    for (w, steps, hour) in [(&mut a, steps_a, 2), (&mut b, steps_b, 3)] {
        let mut t = base + hour * MS_PER_HOUR;
        for &choice in steps {
            for &kind in MENU[choice % MENU.len()] {
                t += 7 * MS_PER_HOUR;
                // A step illegal where this node stands is simply not taken.
                let _ = w.step(kind, t, &data_for(kind));
            }
        }
    }
    let meet = base + 20 * MS_PER_DAY;
    c.receive(&mut a, meet);
    c.receive(&mut b, meet + MS_PER_HOUR);
    a.receive(&mut c, meet + 2 * MS_PER_HOUR);
    c.receive(&mut a, meet + 3 * MS_PER_HOUR);
    c.doc.automerge().get_changes(&[])
}

/// What every node must agree on, as JSON.
fn agreed(doc: AutoCommit) -> serde_json::Value {
    let mut case = CaseDoc::from_automerge(doc).expect("a case");
    let now = at(date!(2026 - 04 - 30), 12);
    let mut view = case.view(false);
    let facts = CaseFacts::from_timeline(&case.timeline());
    view.deadlines = Some(case_deadlines(
        &facts,
        &limits(10, 20),
        &WorkCalendar::official(),
        now,
    ));
    let mut value = serde_json::to_value(&view).expect("serialises");
    // The field-conflict list names values, which are equal; nothing else is node-local.
    value.as_object_mut().map(|o| o.remove("field_conflicts"));
    value
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_same_changes_in_any_order_give_the_same_view(
        offsets in (prop::sample::select(vec![-MS_PER_DAY, 0, MS_PER_DAY]), prop::sample::select(vec![-MS_PER_DAY, 0, MS_PER_DAY])),
        steps_a in prop::collection::vec(0usize..MENU.len(), 0..4),
        steps_b in prop::collection::vec(0usize..MENU.len(), 0..4),
        orders in prop::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let changes = script(offsets, &steps_a, &steps_b);
        let mut canonical = AutoCommit::new();
        canonical.apply_changes(changes.clone()).expect("applies");
        let expected = agreed(canonical);
        for order in orders {
            let mut shuffled = changes.clone();
            // A rotation and a reversal: dependencies arrive after their dependants.
            let turn = order.index(shuffled.len().max(1));
            shuffled.rotate_left(turn);
            shuffled.reverse();
            let mut doc = AutoCommit::new();
            for change in shuffled {
                doc.apply_changes([change]).expect("queued until its dependencies arrive");
            }
            prop_assert_eq!(&agreed(doc), &expected);
        }
    }
}
