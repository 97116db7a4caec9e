//! What a reconnect costs, counted in messages and flights rather than time:
//! at most three round trips after the handshake, and no more messages for more documents.

use yichuang_shared::case::EventKind;
use yichuang_shared::ids::NodeId;
use yichuang_sync::NodeInfo;
use yichuang_sync::fixture::{Clerk, registry, seeded_store};
use yichuang_sync::mem::MemStore;
use yichuang_sync::pair::{PAIR_CENTER, PAIR_HUB, PairOutcome, run_hub_center};

const HUB: NodeId = PAIR_HUB;
const CENTER: NodeId = PAIR_CENTER;

fn connect(hub: &mut MemStore, center: &mut MemStore, now: i64) -> PairOutcome {
    run_hub_center(hub, center, now).expect("the pair settles")
}

/// A hub with `n` cases, half of them at center A, a center holding its half,
/// both in sync; then `k` changes while apart, split between the two; returns
/// the reconnect.
fn reconnect_after(n: usize, k: usize) -> PairOutcome {
    let reg = registry(&[(HUB, NodeInfo::hub()), (CENTER, NodeInfo::center("001"))]);
    let mut hub = seeded_store(1, reg.clone());
    let mut center = seeded_store(2, reg);
    let mut clerk = Clerk::new(HUB, 1, "hub");
    let mut ours = Vec::new();
    for i in 0..n {
        let home = if i % 2 == 0 { "001" } else { "002" };
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let (doc, _) = clerk
            .create_case(&mut hub, random, home, 1_000)
            .expect("a sample case");
        if home == "001" {
            // The center starts with the same documents (as after an earlier sync).
            let mut am = hub.doc(&doc).expect("just created");
            let changes = am.get_changes(&[]);
            center.commit_local(&doc, am, changes, 1_000);
            ours.push(doc);
        }
    }
    let first = connect(&mut hub, &mut center, 2_000);
    assert!(first.caught_up);
    let mut center_clerk = Clerk::new(CENTER, 1, "center");
    for (i, doc) in ours.iter().take(k).enumerate() {
        if i % 2 == 0 {
            clerk
                .event(&mut hub, doc, EventKind::Accepted, &[], 3_000)
                .expect("a legal step");
        } else {
            center_clerk
                .event(&mut center, doc, EventKind::Accepted, &[], 3_000)
                .expect("a legal step");
        }
    }
    // The hub also works on cases of other centers; none of it may reach A.
    let others: Vec<_> = hub
        .doc_ids()
        .filter(|d| d.is_case() && !ours.contains(d))
        .take(k)
        .cloned()
        .collect();
    for doc in others {
        clerk
            .event(&mut hub, &doc, EventKind::Accepted, &[], 3_000)
            .expect("a legal step");
    }
    let out = connect(&mut hub, &mut center, 4_000);
    for doc in &ours {
        assert_eq!(hub.heads(doc), center.heads(doc));
    }
    out
}

#[test]
fn reconnect_costs_what_changed_not_what_exists() {
    for k in [0, 10] {
        let small = reconnect_after(100, k);
        let large = reconnect_after(1_000, k);
        for out in [&small, &large] {
            assert!(out.caught_up);
            let rt = out.stats.round_trips_after_handshake();
            assert!(rt <= 3, "k = {k}: {rt} round trips: {:?}", out.stats);
            assert!(
                !out.stats.frames_by_kind.contains_key("reconcile"),
                "checkpoints are trusted: {:?}",
                out.stats
            );
        }
        assert_eq!(
            small.stats.frames, large.stats.frames,
            "k = {k}: messages grew with the documents"
        );
        assert!(
            large.stats.wire_bytes <= small.stats.wire_bytes + 64,
            "k = {k}: bytes grew with the documents: {} vs {}",
            large.stats.wire_bytes,
            small.stats.wire_bytes
        );
    }
}
