//! Scopes over real QUIC: a case the hub transfers from its home center to another
//! reaches the new center with its whole history (it was never in that center's
//! feed before); the new center's work flows back to the hub and the home center,
//! which keeps its case; transferred on to a third center, the case leaves the
//! second one, which receives none of what follows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use yichuang_node::district::{self, Running};
use yichuang_node::store::Store;
use yichuang_shared::case::EventKind;
use yichuang_tests::TempDir;
use yichuang_tests::net::{runtime, wait_for_boards};

const DEADLINE: Duration = Duration::from_secs(30);

/// The heads of `doc` at the node in `dir`, as hex; `None` if it does not hold it.
async fn heads(dir: &Path, doc: &str) -> Option<String> {
    let (dir, doc) = (dir.to_owned(), doc.to_owned());
    tokio::task::spawn_blocking(move || {
        district::case_digest(&dir)
            .unwrap()
            .get(&doc)
            .map(|(_, h)| h.clone())
    })
    .await
    .unwrap()
}

async fn with_store<R: Send + 'static>(
    dir: &Path,
    f: impl FnOnce(&mut Store) -> R + Send + 'static,
) -> R {
    let dir: PathBuf = dir.to_owned();
    tokio::task::spawn_blocking(move || f(&mut Store::open(&dir).unwrap()))
        .await
        .unwrap()
}

/// Waits until the node in `there` holds `doc` with the heads it has in `here`.
async fn same_heads(running: &Running, what: &str, here: &Path, there: &Path, doc: &str) {
    let boards: Vec<_> = std::iter::once(&running.hub)
        .chain(&running.centers)
        .map(|n| n.board())
        .collect();
    wait_for_boards(what, DEADLINE, &boards, async || {
        let (a, b) = (heads(here, doc).await, heads(there, doc).await);
        if a.is_some() && a == b {
            Ok(())
        } else {
            Err(format!("{a:?} vs {b:?}"))
        }
    })
    .await;
}

async fn transfer(hub: &Path, doc: &str, to_center: &str) {
    let (doc, to) = (doc.to_owned(), to_center.to_owned());
    with_store(hub, move |s| {
        let data = BTreeMap::from([("to_center".to_owned(), to)]);
        s.case_event(&doc, EventKind::Transferred, "district", "转办", data)
            .unwrap();
    })
    .await;
}

async fn note(dir: &Path, doc: &str, clerk: &'static str, text: &'static str) {
    let doc = doc.to_owned();
    with_store(dir, move |s| {
        s.case_note(&doc, clerk, text).unwrap();
    })
    .await;
}

#[test]
fn a_transferred_case_reaches_its_new_center_whole_and_leaves_it_when_transferred_on() {
    let root = TempDir::new("net-scope");
    runtime().block_on(async {
        let layout = district::enroll_district(root.path(), 3, 0).unwrap();
        let running = district::start(&layout, false).await.unwrap();
        let hub = layout.hub.dir.clone();
        let [home, second, third] = [0, 1, 2].map(|i| {
            (
                layout.centers[i].dir.clone(),
                layout.centers[i].settings.clone(),
            )
        });
        let doc = with_store(&home.0, |s| {
            let items: Vec<String> = s.catalog().unwrap().keys().take(1).cloned().collect();
            let mut rng = yichuang_node::bench::fake::Rng::new(11);
            let req = yichuang_node::bench::fake::case_request(&mut rng, &items, "clerk-a");
            s.create_case(&req).unwrap().doc_id.to_string()
        })
        .await;
        // History the second center never saw in its feed.
        note(&home.0, &doc, "clerk-a", "材料已收").await;
        note(&home.0, &doc, "clerk-a", "等待补正").await;
        same_heads(&running, "the case reaches the hub", &home.0, &hub, &doc).await;
        assert_eq!(
            heads(&second.0, &doc).await,
            None,
            "not in the second center's scope"
        );

        transfer(&hub, &doc, &second.1.center).await;
        same_heads(
            &running,
            "the case reaches the second center",
            &hub,
            &second.0,
            &doc,
        )
        .await;
        let d = doc.clone();
        let view = with_store(&second.0, move |s| {
            s.case_view(&d, false, "clerk-b").unwrap()
        })
        .await;
        assert_eq!(view.current_center, second.1.center);
        assert_eq!(
            view.notes.len(),
            2,
            "the history before the transfer: {:?}",
            view.notes
        );

        note(&second.0, &doc, "clerk-b", "已受理转办").await;
        same_heads(
            &running,
            "the second center's work reaches the hub",
            &second.0,
            &hub,
            &doc,
        )
        .await;
        same_heads(&running, "and the home center", &hub, &home.0, &doc).await;

        transfer(&hub, &doc, &third.1.center).await;
        same_heads(
            &running,
            "the case reaches the third center",
            &hub,
            &third.0,
            &doc,
        )
        .await;
        note(&third.0, &doc, "clerk-c", "办理中").await;
        same_heads(
            &running,
            "the third center's work reaches the hub",
            &third.0,
            &hub,
            &doc,
        )
        .await;
        same_heads(&running, "and the home center", &hub, &home.0, &doc).await;

        // The second center has acknowledged the hub's whole feed, and the case's
        // changes after it left were not in it.
        let second_id = second.1.node_id;
        let hub_head = with_store(&hub, |s| s.feed_head().unwrap()).await;
        wait_for_boards(
            "the second center acknowledges the hub's whole feed",
            DEADLINE,
            &[running.hub.board()],
            async || {
                let peers = running.hub.board().snapshot();
                match peers.iter().find(|p| p.node_id == second_id) {
                    Some(p) if p.acked_seq >= hub_head => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        let d = doc.clone();
        let view = with_store(&second.0, move |s| {
            s.case_view(&d, false, "clerk-b").unwrap()
        })
        .await;
        assert_eq!(
            view.current_center, second.1.center,
            "it never learnt of the second transfer"
        );
        assert_eq!(
            view.notes.len(),
            3,
            "nothing after it left: {:?}",
            view.notes
        );

        let refused: i64 = with_store(&hub, |s| {
            s.connection()
                .query_row("SELECT COUNT(*) FROM rejections", [], |r| r.get(0))
                .unwrap()
        })
        .await;
        assert_eq!(refused, 0, "every change was its writer's to make");
        running.shutdown().await;
    });
}
