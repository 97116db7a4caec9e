//! A node restored from an old backup re-converges: it gets back what it lost,
//! keeps what others wrote after the backup, and nothing is sent twice wholesale.

use yichuang_shared::case::EventKind;
use yichuang_shared::ids::NodeId;
use yichuang_sync::fixture::{Clerk, registry, seeded_store};
use yichuang_sync::mem::MemStore;
use yichuang_sync::pair::{PAIR_CENTER, PAIR_HUB, PairOutcome, run_hub_center};
use yichuang_sync::{NodeInfo, SessionEvent};

const HUB: NodeId = PAIR_HUB;
const CENTER: NodeId = PAIR_CENTER;

fn connect(hub: &mut MemStore, center: &mut MemStore, now: i64) -> PairOutcome {
    run_hub_center(hub, center, now).expect("the pair settles")
}

fn changes_sent(out: &PairOutcome) -> u64 {
    out.stats.bytes_by_kind.get("changes").copied().unwrap_or(0)
        + out
            .stats
            .bytes_by_kind
            .get("doc_sync")
            .copied()
            .unwrap_or(0)
}

struct World {
    hub: MemStore,
    center: MemStore,
    hub_clerk: Clerk,
    center_clerk: Clerk,
    docs: Vec<yichuang_shared::ids::DocId>,
}

fn world(n: usize) -> World {
    let reg = registry(&[(HUB, NodeInfo::hub()), (CENTER, NodeInfo::center("001"))]);
    let mut w = World {
        hub: seeded_store(1, reg.clone()),
        center: seeded_store(2, reg),
        hub_clerk: Clerk::new(HUB, 1, "hub"),
        center_clerk: Clerk::new(CENTER, 1, "center"),
        docs: Vec::new(),
    };
    for i in 0..n {
        let mut random = [0u8; 16];
        random[0] = i as u8 + 1;
        let (doc, _) = w
            .center_clerk
            .create_case(&mut w.center, random, "001", 1_000)
            .expect("a sample case");
        w.docs.push(doc);
    }
    let out = connect(&mut w.hub, &mut w.center, 2_000);
    assert!(out.caught_up);
    w
}

fn assert_converged(w: &World) {
    assert_eq!(
        w.hub.pending_count(),
        0,
        "hub pending; rejections {:?}",
        w.hub.rejections()
    );
    assert_eq!(
        w.center.pending_count(),
        0,
        "center pending; rejections {:?}",
        w.center.rejections()
    );
    for doc in &w.docs {
        assert_eq!(w.hub.heads(doc), w.center.heads(doc), "{doc}");
    }
}

#[test]
fn center_restored_from_backup_reconverges() {
    let mut w = world(40);
    let backup = w.center.clone();
    // After the backup: the center works and syncs, the hub works on the center's cases.
    let mut lost = Vec::new();
    for doc in w.docs.iter().take(5) {
        lost.extend(
            w.center_clerk
                .event(&mut w.center, doc, EventKind::Accepted, &[], 3_000)
                .unwrap(),
        );
    }
    connect(&mut w.hub, &mut w.center, 3_500);
    let mut theirs = Vec::new();
    for doc in w.docs.iter().skip(5).take(5) {
        theirs.extend(
            w.hub_clerk
                .event(&mut w.hub, doc, EventKind::Accepted, &[], 4_000)
                .unwrap(),
        );
    }
    // The disk dies; the center comes back from the old backup under a new epoch and actor.
    w.center = MemStore::restored(&backup, 99);
    w.center_clerk = Clerk::new(CENTER, 2, "center");
    let out = connect(&mut w.hub, &mut w.center, 5_000);
    assert!(out.caught_up);
    assert!(
        out.events_a
            .iter()
            .any(|e| matches!(e, SessionEvent::Reconciled { .. })),
        "a restore forces reconciliation"
    );
    assert_converged(&w);
    for h in lost.iter().chain(&theirs) {
        assert!(w.center.has_change(h), "the restored center lacks {h}");
    }
    // Only the ten touched documents travel, not all forty.
    let first_sync = {
        let mut fresh = world(40);
        let reg = registry(&[(HUB, NodeInfo::hub()), (CENTER, NodeInfo::center("001"))]);
        fresh.center = seeded_store(7, reg);
        changes_sent(&connect(&mut fresh.hub, &mut fresh.center, 5_000))
    };
    let resync = changes_sent(&out);
    assert!(
        resync * 2 < first_sync,
        "restore sent {resync} bytes, a full sync {first_sync}"
    );
    // Work goes on under the new actor.
    w.center_clerk
        .event(&mut w.center, &w.docs[0], EventKind::Forwarded, &[], 6_000)
        .unwrap();
    let out = connect(&mut w.hub, &mut w.center, 6_500);
    assert!(out.caught_up);
    assert_converged(&w);
}

#[test]
fn hub_restored_from_backup_recovers_from_the_center() {
    let mut w = world(20);
    let backup = w.hub.clone();
    let mut after = Vec::new();
    for doc in w.docs.iter().take(6) {
        after.extend(
            w.center_clerk
                .event(&mut w.center, doc, EventKind::Accepted, &[], 3_000)
                .unwrap(),
        );
    }
    connect(&mut w.hub, &mut w.center, 3_500);
    w.hub = MemStore::restored(&backup, 77);
    w.hub_clerk = Clerk::new(HUB, 2, "hub");
    let out = connect(&mut w.hub, &mut w.center, 5_000);
    assert!(out.caught_up);
    assert_converged(&w);
    for h in &after {
        assert!(w.hub.has_change(h), "the restored hub lacks {h}");
    }
}
