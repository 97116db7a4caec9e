//! The SQLite implementation of the sync engine's store boundary, checked against
//! the engine's own rules: the scoped feed decides scope exactly as `Scope::includes`
//! does over `doc_meta`, a moved case flags its change, checkpoints and per-peer
//! flags survive a reopen.

use std::collections::BTreeMap;

use yichuang_node::bench::fake::{self, Rng};
use yichuang_node::store::sync::{KnownNodes, SyncStore};
use yichuang_node::store::{NodeSettings, Store};
use yichuang_shared::case::EventKind;
use yichuang_shared::ids::{NodeId, Role};
use yichuang_shared::wire::FeedPos;
use yichuang_sync::Scope;
use yichuang_sync::store::{PeerCheckpoint, Store as _};
use yichuang_tests::TempDir;

fn center(code: &str) -> NodeSettings {
    NodeSettings {
        node_id: NodeId([3; 8]),
        name: format!("center-{code}"),
        role: Role::Center,
        district: "440399".into(),
        center: code.into(),
        staff: String::new(),
        created_ms: 0,
    }
}

/// Six cases of center 001: two stay, two move to 002, one is assigned to staff s1,
/// one to s2 and then moved to 003.
fn populated(dir: &std::path::Path) -> Store {
    let mut s = Store::init(dir, center("001")).unwrap();
    let items: Vec<String> = s.catalog().unwrap().keys().take(3).cloned().collect();
    let mut rng = Rng::new(5);
    let ids: Vec<String> = (0..6)
        .map(|_| {
            s.create_case(&fake::case_request(&mut rng, &items, "clerk"))
                .unwrap()
                .doc_id
                .to_string()
        })
        .collect();
    let event = |s: &mut Store, id: &str, kind: EventKind, key: &str, value: &str| {
        let data = BTreeMap::from([(key.to_owned(), value.to_owned())]);
        s.case_event(id, kind, "clerk", "", data).unwrap();
    };
    event(&mut s, &ids[2], EventKind::Transferred, "to_center", "002");
    event(&mut s, &ids[3], EventKind::Transferred, "to_center", "002");
    event(&mut s, &ids[4], EventKind::Assigned, "staff", "s1");
    event(&mut s, &ids[5], EventKind::Assigned, "staff", "s2");
    event(&mut s, &ids[5], EventKind::Transferred, "to_center", "003");
    s
}

#[test]
fn the_scoped_feed_decides_scope_as_the_engine_does() {
    let dir = TempDir::new("sync-store-scope");
    let mut store = populated(dir.path());
    let known = KnownNodes::new();
    let sync = SyncStore::new(&mut store, &known);
    let all = sync.changes_after(0, 10_000).unwrap();
    assert!(all.len() > 10);
    let scopes = [
        Scope::All,
        Scope::Center("001".into()),
        Scope::Center("002".into()),
        Scope::Center("003".into()),
        Scope::Center("009".into()),
        Scope::Center(String::new()),
        Scope::Staff("s1".into()),
        Scope::Staff("s2".into()),
        Scope::Staff(String::new()),
    ];
    for scope in &scopes {
        let feed = sync.feed_after(0, 10_000, scope).unwrap();
        assert_eq!(feed.len(), all.len(), "{scope:?}: every change is listed");
        let mut inside = 0;
        for (e, plain) in feed.iter().zip(&all) {
            assert_eq!((e.seq, &e.doc), (plain.seq, &plain.doc));
            let meta = sync.doc_meta(&e.doc).unwrap();
            let expected = meta.is_some_and(|m| scope.includes(&e.doc, m.routing.as_ref()));
            assert_eq!(e.in_scope, Some(expected), "{scope:?} {}", e.doc);
            if expected {
                inside += 1;
                assert_eq!(e.bytes, plain.bytes, "a change in scope carries its bytes");
            } else {
                assert!(e.bytes.is_empty(), "a change outside the scope is not read");
            }
        }
        match scope {
            Scope::All => assert_eq!(inside, all.len()),
            Scope::Center(c) | Scope::Staff(c) if c == "009" || c.is_empty() => {
                assert!(
                    feed.iter()
                        .filter(|e| e.in_scope == Some(true))
                        .all(|e| e.doc.reference().is_some())
                );
            }
            _ => assert!(
                feed.iter()
                    .any(|e| e.in_scope == Some(true) && e.doc.is_case()),
                "{scope:?}"
            ),
        }
    }
    // A chunk boundary is honoured.
    let first = sync.feed_after(0, 3, &Scope::Center("002".into())).unwrap();
    assert_eq!(first.len(), 3);
    let rest = sync
        .feed_after(first[2].seq, 10_000, &Scope::Center("002".into()))
        .unwrap();
    assert_eq!(rest.len(), all.len() - 3);
}

#[test]
fn a_change_that_moves_a_case_is_flagged_and_others_are_not() {
    let dir = TempDir::new("sync-store-moved");
    let mut store = populated(dir.path());
    let known = KnownNodes::new();
    let sync = SyncStore::new(&mut store, &known);
    let all = sync.changes_after(0, 10_000).unwrap();
    let flagged = all.iter().filter(|e| e.routing_changed).count();
    // Two transfers to 002, one assignment to s1, one to s2 and its transfer to 003.
    assert_eq!(flagged, 5, "{all:#?}");
    assert!(
        all.iter()
            .filter(|e| e.doc.reference().is_some())
            .all(|e| !e.routing_changed)
    );
}

#[test]
fn checkpoints_and_peer_flags_survive_a_reopen() {
    let dir = TempDir::new("sync-store-checkpoints");
    let peer = NodeId([9; 8]);
    let cp = PeerCheckpoint {
        recv: Some(FeedPos {
            epoch: u64::MAX - 3,
            seq: 42,
        }),
        sent: Some(FeedPos { epoch: 7, seq: 40 }),
        reconcile_due: false,
        reconciled_at_ms: Some(1_700_000_000_000),
    };
    let doc = {
        let mut store = populated(dir.path());
        let doc = store
            .list_cases(&Default::default())
            .unwrap()
            .first()
            .unwrap()
            .doc_id
            .parse::<yichuang_shared::ids::DocId>()
            .unwrap();
        let known = KnownNodes::new();
        let mut sync = SyncStore::new(&mut store, &known);
        assert_eq!(
            sync.checkpoint(peer).unwrap(),
            None,
            "a peer never met has none"
        );
        sync.set_checkpoint(peer, &cp).unwrap();
        sync.set_owed_sync(peer, &doc, true).unwrap();
        sync.set_departed(peer, &doc, true).unwrap();
        doc
    };
    let mut store = Store::open(dir.path()).unwrap();
    let known = KnownNodes::new();
    let mut sync = SyncStore::new(&mut store, &known);
    assert_eq!(
        sync.checkpoint(peer).unwrap(),
        Some(cp),
        "the epoch keeps all 64 bits"
    );
    assert_eq!(sync.owed_syncs(peer, 10).unwrap(), vec![doc.clone()]);
    assert!(sync.departed(peer).unwrap().contains(&doc));
    sync.set_owed_sync(peer, &doc, false).unwrap();
    assert!(sync.owed_syncs(peer, 10).unwrap().is_empty());
    assert!(
        sync.departed(peer).unwrap().contains(&doc),
        "the other flag stays"
    );
    assert!(
        sync.owed_syncs(NodeId([8; 8]), 10).unwrap().is_empty(),
        "flags are per peer"
    );
}

/// Applies at `to` every change of `doc` that `from` holds, as a session would.
fn deliver(from: &mut Store, to: &mut Store, doc: &str, from_node: NodeId, known: &KnownNodes) {
    let id: yichuang_shared::ids::DocId = doc.parse().unwrap();
    let bytes: Vec<Vec<u8>> = from
        .raw_changes(&id)
        .unwrap()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let mut sync = SyncStore::new(to, known);
    let applied = yichuang_sync::apply::apply_changes(
        &mut sync,
        &id,
        bytes,
        Some(from_node),
        1_800_000_000_000,
    )
    .unwrap();
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
}

fn conflicts_of(store: &mut Store, doc: &str) -> i64 {
    store
        .list_cases(&Default::default())
        .unwrap()
        .into_iter()
        .find(|r| r.doc_id == doc)
        .map(|r| r.conflicts)
        .expect("the case is listed")
}

#[test]
fn synced_concurrent_edits_are_counted_as_conflicts_and_sequential_ones_are_not() {
    let root = TempDir::new("sync-store-conflicts");
    let mut c = Store::init(&root.join("c"), center("001")).unwrap();
    let hub = NodeSettings {
        node_id: NodeId([1; 8]),
        name: "hub".into(),
        role: Role::Hub,
        district: "440399".into(),
        center: "000".into(),
        staff: String::new(),
        created_ms: 0,
    };
    let mut h = Store::init(&root.join("h"), hub.clone()).unwrap();
    let known: KnownNodes = [
        (
            center("001").node_id,
            yichuang_sync::NodeInfo::center("001"),
        ),
        (hub.node_id, yichuang_sync::NodeInfo::hub()),
    ]
    .into();
    let items: Vec<String> = c.catalog().unwrap().keys().take(1).cloned().collect();
    let doc = c
        .create_case(&fake::case_request(&mut Rng::new(9), &items, "clerk"))
        .unwrap()
        .doc_id
        .to_string();
    deliver(&mut c, &mut h, &doc, center("001").node_id, &known);
    assert_eq!(conflicts_of(&mut h, &doc), 0);
    // A sequential edit at the center: one chain, still no conflict.
    let set = |v: &str| vec![("applicant.address".to_owned(), v.to_owned())];
    c.case_edit(&doc, "clerk", &set("一号")).unwrap();
    deliver(&mut c, &mut h, &doc, center("001").node_id, &known);
    assert_eq!(conflicts_of(&mut h, &doc), 0);
    // Both edit the same field before either hears of the other.
    h.case_edit(&doc, "district", &set("二号")).unwrap();
    c.case_edit(&doc, "clerk", &set("三号")).unwrap();
    deliver(&mut c, &mut h, &doc, center("001").node_id, &known);
    assert_eq!(conflicts_of(&mut h, &doc), 1, "the hub lists the conflict");
    deliver(&mut h, &mut c, &doc, hub.node_id, &known);
    assert_eq!(conflicts_of(&mut c, &doc), 1, "and so does the center");
    // A later sequential edit keeps the conflict listed until someone resolves it.
    c.case_note(&doc, "clerk", "已电话联系").unwrap();
    deliver(&mut c, &mut h, &doc, center("001").node_id, &known);
    assert_eq!(conflicts_of(&mut h, &doc), 1);
}
