//! Scopes over real QUIC: a case the hub transfers from one center to another
//! reaches the new center with its whole history (it was never in that center's
//! feed before), the new center's work on it flows back, and the old center, whose
//! scope the case left, receives none of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use yichuang_node::district::{self, Running};
use yichuang_node::store::Store;
use yichuang_shared::case::EventKind;
use yichuang_tests::TempDir;
use yichuang_tests::net::wait_for_boards;

const DEADLINE: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    // Invariant: building a runtime fails only without OS resources.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

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
    let boards = [
        running.hub.board(),
        running.centers[0].board(),
        running.centers[1].board(),
    ];
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

#[test]
fn a_transferred_case_reaches_its_new_center_whole_and_leaves_the_old_one() {
    let root = TempDir::new("net-scope");
    runtime().block_on(async {
        let layout = district::enroll_district(root.path(), 2, 0).unwrap();
        let running = district::start(&layout, false).await.unwrap();
        let (hub, old, new) = (
            layout.hub.dir.clone(),
            layout.centers[0].dir.clone(),
            layout.centers[1].dir.clone(),
        );
        let to_center = layout.centers[1].settings.center.clone();
        let doc = with_store(&old, |s| {
            let items: Vec<String> = s.catalog().unwrap().keys().take(1).cloned().collect();
            let mut rng = yichuang_node::bench::fake::Rng::new(11);
            let req = yichuang_node::bench::fake::case_request(&mut rng, &items, "clerk-a");
            let doc = s.create_case(&req).unwrap().doc_id.to_string();
            // A few more changes, so the new center needs history it never saw.
            s.case_note(&doc, "clerk-a", "材料已收").unwrap();
            s.case_note(&doc, "clerk-a", "等待补正").unwrap();
            doc
        })
        .await;
        same_heads(&running, "the case reaches the hub", &old, &hub, &doc).await;
        assert_eq!(
            heads(&new, &doc).await,
            None,
            "not yet in the other center's scope"
        );

        let d = doc.clone();
        with_store(&hub, move |s| {
            let data = BTreeMap::from([("to_center".to_owned(), to_center)]);
            s.case_event(&d, EventKind::Transferred, "district", "转至邻近中心", data)
                .unwrap();
        })
        .await;
        same_heads(
            &running,
            "the transferred case reaches its new center",
            &hub,
            &new,
            &doc,
        )
        .await;
        let d = doc.clone();
        let view = with_store(&new, move |s| s.case_view(&d, false, "clerk-b").unwrap()).await;
        assert_eq!(view.current_center, layout.centers[1].settings.center);
        assert_eq!(
            view.notes.len(),
            2,
            "the history from before the transfer arrived: {:?}",
            view.notes
        );
        assert!(
            view.events
                .iter()
                .any(|e| e.kind == EventKind::Transferred.as_str())
        );

        let d = doc.clone();
        with_store(&new, move |s| {
            s.case_note(&d, "clerk-b", "已受理转办").unwrap();
        })
        .await;
        same_heads(
            &running,
            "the new center's work reaches the hub",
            &new,
            &hub,
            &doc,
        )
        .await;

        // The old center has acknowledged the hub's whole feed, and the case's later
        // changes were not in it.
        let old_id = layout.centers[0].settings.node_id;
        wait_for_boards(
            "the old center catches up",
            DEADLINE,
            &[running.hub.board()],
            async || {
                let p = running.hub.board().snapshot();
                match p.iter().find(|p| p.node_id == old_id) {
                    Some(p) if p.connected && p.caught_up && p.waiting_out == 0 => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        let (at_old, at_hub) = (heads(&old, &doc).await, heads(&hub, &doc).await);
        assert!(at_old.is_some());
        assert_ne!(at_old, at_hub, "the case left the old center's scope");

        let refused: i64 = with_store(&hub, |s| {
            s.connection()
                .query_row("SELECT COUNT(*) FROM rejections", [], |r| r.get(0))
                .unwrap()
        })
        .await;
        assert_eq!(refused, 0, "every change was the writer's to make");
        running.shutdown().await;
    });
}
