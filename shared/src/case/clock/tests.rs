//! The clock rule on hand-made change graphs: evidence, verdicts and the causal order.

use super::*;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
const T0: i64 = 1_772_416_800_000; // 2026-03-02 10:00 China time.

fn event(id: &str, node: &str, stamp_ms: i64) -> Event {
    Event {
        id: id.into(),
        kind: "visited".into(),
        hlc: Hlc::new(stamp_ms, 0),
        wall_ms: stamp_ms,
        clerk: String::new(),
        node: node.into(),
        note: String::new(),
        data: Default::default(),
    }
}

/// One event per change; `deps[i]` lists the changes change `i` depends on.
fn run(events: &[Event], deps: &[&[usize]], creator: &str) -> Vec<EventClock> {
    let changes: Vec<(usize, Vec<usize>)> = deps
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d.to_vec()))
        .collect();
    let (graph, position) = CausalGraph::new(&changes);
    let placed: Vec<Placed<'_>> = events
        .iter()
        .enumerate()
        .map(|(i, event)| Placed {
            event,
            change: Some(position[i]),
        })
        .collect();
    analyse(&placed, &graph, creator)
}

#[test]
fn graph_is_sorted_and_ignores_unknown_dependencies() {
    // Change 0 depends on 2, which depends on 1; 1 names a change nobody has.
    let (graph, position) =
        CausalGraph::new(&[("a", vec!["c"]), ("b", vec!["zz"]), ("c", vec!["b"])]);
    assert_eq!(position, [2, 0, 1]);
    assert_eq!(graph.parents, [vec![], vec![0], vec![1]]);
}

#[test]
fn right_clocks_keep_their_stamps() {
    let events = [
        event("a", "n1", T0),
        event("b", "n2", T0 + H),
        event("c", "n1", T0 + 2 * H),
    ];
    let clocks = run(&events, &[&[], &[0], &[1]], "n1");
    let times: Vec<i64> = clocks.iter().map(|c| c.at_ms).collect();
    assert_eq!(times, [T0, T0 + H, T0 + 2 * H]);
    assert!(clocks.iter().all(|c| c.skew.is_none()));
}

#[test]
fn a_small_drift_is_tolerated_but_still_ordered_causally() {
    // n2 answers a with a stamp a minute earlier: within the skew, so no verdict, but
    // the answer still folds after what it answered.
    let events = [event("a", "n1", T0), event("b", "n2", T0 - 60_000)];
    let clocks = run(&events, &[&[], &[0]], "n1");
    assert_eq!((clocks[0].at_ms, clocks[1].at_ms), (T0, T0 - 60_000));
    assert!(clocks[1].skew.is_none());
    assert!(clocks[1].order > clocks[0].order);
}

#[test]
fn verdicts() {
    // (why, events, deps, creator, expected times, expected flags)
    type Row = (
        &'static str,
        Vec<Event>,
        Vec<&'static [usize]>,
        &'static str,
        Vec<i64>,
        Vec<Option<SkewDirection>>,
    );
    let rows: Vec<Row> = vec![
        (
            "n2 a day fast, answered by the creator an hour later: shifted back 23 hours",
            vec![
                event("a", "n1", T0),
                event("b", "n2", T0 + DAY + H),
                event("c", "n1", T0 + 2 * H),
                event("d", "n2", T0 + DAY + 3 * H),
            ],
            vec![&[], &[0], &[1], &[2]],
            "n1",
            vec![T0, T0 + 2 * H, T0 + 2 * H, T0 + 4 * H],
            vec![
                None,
                Some(SkewDirection::Ahead),
                None,
                Some(SkewDirection::Ahead),
            ],
        ),
        (
            "n2 a day slow, after the creator's step: shifted forward to the evidence",
            vec![event("a", "n1", T0), event("b", "n2", T0 - DAY + H)],
            vec![&[], &[0]],
            "n1",
            vec![T0, T0],
            vec![None, Some(SkewDirection::Behind)],
        ),
        (
            "the creator is outvoted: n1 disagrees with n2 and n3, who agree",
            vec![
                event("a", "n1", T0 + DAY),
                event("b", "n2", T0 + H),
                event("c", "n3", T0 + 2 * H),
            ],
            vec![&[], &[0], &[1]],
            "n1",
            vec![T0 + H, T0 + H, T0 + 2 * H],
            vec![Some(SkewDirection::Ahead), None, None],
        ),
        (
            "two nodes neither of which created the case: the future stamp is blamed",
            vec![
                event("a", "n1", T0),
                event("b", "n2", T0 + DAY),
                event("c", "n3", T0 + H),
            ],
            vec![&[], &[0], &[1]],
            "n1",
            // n2 disagrees with n3 only (n1's a is before b): tie, n2 is ahead.
            vec![T0, T0 + H, T0 + H],
            vec![None, Some(SkewDirection::Ahead), None],
        ),
        (
            "concurrent events give no evidence, however far apart",
            vec![
                event("a", "n1", T0),
                event("b", "n2", T0 + 5 * DAY),
                event("c", "n3", T0 - 5 * DAY),
            ],
            // b follows a by five days (late is allowed); c saw neither.
            vec![&[], &[0], &[]],
            "n1",
            vec![T0, T0 + 5 * DAY, T0 - 5 * DAY],
            vec![None, None, None],
        ),
    ];
    for (why, events, deps, creator, times, flags) in rows {
        let clocks = run(&events, &deps, creator);
        assert_eq!(
            clocks.iter().map(|c| c.at_ms).collect::<Vec<_>>(),
            times,
            "{why}"
        );
        assert_eq!(
            clocks.iter().map(|c| c.skew).collect::<Vec<_>>(),
            flags,
            "{why}"
        );
        // Whatever the clocks, every event orders after its causes.
        for (i, parents) in deps.iter().enumerate() {
            for &p in *parents {
                assert!(clocks[i].order > clocks[p].order, "{why}: {i} after {p}");
            }
        }
    }
}
