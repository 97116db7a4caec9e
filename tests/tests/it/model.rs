//! The case model: the fold is order-independent, illegal merges become listed
//! conflicts, concurrent field edits are kept and resolved on every copy.

use automerge::AutoCommit;
use proptest::prelude::*;
use yichuang_shared::case::status::{EventOrder, FoldEvent, fold};
use yichuang_shared::case::{
    ApplicantKind, CaseDoc, EventKind, MaterialSpec, NewCase, NewEvent, Party, Stamp, Status,
};
use yichuang_shared::hlc::Hlc;
use yichuang_shared::ids::NodeId;

const NODE_A: NodeId = NodeId([0xa; 8]);
const NODE_B: NodeId = NodeId([0xb; 8]);

fn new_case() -> NewCase {
    NewCase {
        case_no: "440399-003-20261128-0001".into(),
        district: "440399".into(),
        home_center: "003".into(),
        item_code: "1".repeat(31),
        item_name: "公共场所卫生许可证（新办）".into(),
        department: "云溪区卫生健康局".into(),
        applicant_kind: ApplicantKind::NaturalPerson,
        applicant: Party {
            name: "测试甲".into(),
            id_no: "11010519491231002X".into(),
            phone: "13800138000".into(),
            address: String::new(),
        },
        agent: None,
        materials: vec![MaterialSpec {
            code: "M01".into(),
            name: "申请表".into(),
            required: true,
            received: false,
        }],
        delivery_method: "window".into(),
        delivery_address: String::new(),
    }
}

fn stamp(node: NodeId, hlc: u64, id: &str) -> Stamp {
    Stamp {
        node,
        clerk: format!("clerk-{id}"),
        hlc: Hlc(hlc),
        event_id: id.into(),
    }
}

fn merged(a: &mut AutoCommit, b: &mut AutoCommit) {
    a.merge(b).expect("merge b into a");
    b.merge(a).expect("merge a into b");
}

/// Two copies of one case, as two nodes hold it after the first sync.
fn two_copies() -> (CaseDoc, CaseDoc) {
    let mut a =
        CaseDoc::create(&new_case(), NODE_A.actor([1; 4]), &stamp(NODE_A, 100, "e0")).unwrap();
    let mut fork = a.automerge().fork();
    fork.set_actor(NODE_B.actor([2; 4]));
    (a, CaseDoc::from_automerge(fork).unwrap())
}

#[test]
fn concurrent_field_edits_become_a_conflict_resolved_everywhere() {
    let (mut a, mut b) = two_copies();
    a.set_field("applicant.phone", "13900139000", &stamp(NODE_A, 200, "x"))
        .unwrap();
    b.set_field("applicant.phone", "13700137000", &stamp(NODE_B, 201, "y"))
        .unwrap();
    merged(a.automerge(), b.automerge());
    for copy in [&mut a, &mut b] {
        let conflicts = copy.field_conflicts();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].path, "applicant.phone");
        let mut values: Vec<&str> = conflicts[0]
            .values
            .iter()
            .map(|v| v.value.as_str())
            .collect();
        values.sort();
        assert_eq!(
            values,
            ["13700137000", "13900139000"],
            "every value is kept"
        );
        let nodes: Vec<&str> = conflicts[0]
            .values
            .iter()
            .map(|v| v.node.as_str())
            .collect();
        assert!(
            nodes.contains(&NODE_A.to_string().as_str())
                && nodes.contains(&NODE_B.to_string().as_str())
        );
        assert_eq!(copy.view(false).conflict_count, 1);
    }
    // The clerk at B picks A's value; once synced, no copy lists a conflict.
    b.resolve_field("applicant.phone", "13900139000", &stamp(NODE_B, 300, "z"))
        .unwrap();
    merged(a.automerge(), b.automerge());
    for copy in [&mut a, &mut b] {
        assert!(copy.field_conflicts().is_empty());
        assert_eq!(copy.view(true).applicant.phone, "13900139000");
    }
    assert!(matches!(
        b.resolve_field("applicant.phone", "1", &stamp(NODE_B, 301, "w")),
        Err(yichuang_shared::case::CaseError::NoConflict(_))
    ));
}

#[test]
fn an_illegal_merge_keeps_both_events_and_lists_a_conflict() {
    let (mut a, mut b) = two_copies();
    let none = NewEvent::default();
    // Offline, the center cancels; meanwhile the hub accepts and approves.
    a.append_event(EventKind::Cancelled, &stamp(NODE_A, 300, "cancel"), &none)
        .unwrap();
    b.append_event(EventKind::Accepted, &stamp(NODE_B, 200, "accept"), &none)
        .unwrap();
    b.append_event(EventKind::Approved, &stamp(NODE_B, 400, "approve"), &none)
        .unwrap();
    merged(a.automerge(), b.automerge());
    let (va, vb) = (a.view(false), b.view(false));
    assert_eq!(va.events.len(), 4, "no event is dropped");
    assert_eq!(va.status, Some(Status::Cancelled));
    assert_eq!(va.status, vb.status);
    assert_eq!(va.event_conflicts, vb.event_conflicts);
    assert_eq!(va.event_conflicts.len(), 1);
    assert_eq!(va.event_conflicts[0].event_id, "approve");
    assert_eq!(va.event_conflicts[0].status_at, Some(Status::Cancelled));
    // Acknowledging it on one copy clears it on both after sync.
    a.acknowledge_event("approve", &stamp(NODE_A, 500, "ack"))
        .unwrap();
    merged(a.automerge(), b.automerge());
    assert_eq!(a.view(false).conflict_count, 0);
    assert_eq!(b.view(false).conflict_count, 0);
}

#[test]
fn a_local_illegal_step_is_refused_naming_the_legal_ones() {
    let (mut a, _) = two_copies();
    let err = a
        .append_event(
            EventKind::Approved,
            &stamp(NODE_A, 200, "x"),
            &NewEvent::default(),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("approved is not allowed while the case is submitted"),
        "{msg}"
    );
    assert!(
        msg.contains("accepted") && msg.contains("rejected"),
        "{msg}"
    );
    assert_eq!(a.events().len(), 1, "nothing was written");
}

fn kind_strategy() -> impl Strategy<Value = EventKind> {
    proptest::sample::select(EventKind::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The fold gives the same status and conflicts for every arrival order.
    #[test]
    fn fold_is_independent_of_arrival_order(
        kinds in proptest::collection::vec(kind_strategy(), 1..25),
        clocks in proptest::collection::vec(0u64..40, 25),
        nodes in proptest::collection::vec(0u8..3, 25),
        seed in any::<u64>(),
    ) {
        let events: Vec<FoldEvent> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| FoldEvent {
                order: EventOrder { hlc: Hlc(clocks[i]), node: format!("n{}", nodes[i]), id: format!("e{i:03}") },
                kind: *k,
                acknowledges: None,
                once_key: None,
            })
            .collect();
        let reference = fold(&events);
        // Every event is either applied or listed; none vanishes.
        prop_assert_eq!(reference.applied.len() + reference.conflicts.len(), events.len());
        let mut shuffled = events.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(fold(&shuffled), reference);
    }
}

/// The view made from a registration request equals the view read back from the
/// document it built, with and without an agent.
#[test]
fn the_new_case_view_matches_the_document() {
    for agent in [
        None,
        Some(Party {
            name: "代办人".into(),
            id_no: "11010519491231002x".into(),
            phone: "13600136000".into(),
            address: String::new(),
        }),
    ] {
        let mut new = new_case();
        new.agent = agent;
        new.materials.push(MaterialSpec {
            code: "M00".into(),
            name: "身份证明".into(),
            required: false,
            received: true,
        });
        let stamp = stamp(NODE_A, 100, "e0");
        let mut doc = CaseDoc::create(&new, NODE_A.actor([1; 4]), &stamp).unwrap();
        assert_eq!(
            yichuang_shared::case::new_case_view(&new, &stamp),
            doc.view(false)
        );
    }
}
