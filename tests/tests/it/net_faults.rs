//! Faults on the path and in the process: a relay that drops, delays, duplicates,
//! reorders and then swallows everything for a while; a center SIGKILLed in the
//! middle of a sync, again and again. Afterwards everything converges, nothing lost.

use std::path::Path;
use std::time::Duration;

use yichuang_node::bench::fake::{self, Rng};
use yichuang_node::district;
use yichuang_node::net::relay::Faults;
use yichuang_node::store::Store;
use yichuang_tests::TempDir;
use yichuang_tests::net::{
    Serve, cli_district, free_udp_port, runtime, wait_for_boards, wait_until,
};

const CONVERGE: Duration = Duration::from_secs(60);

fn make_cases(dir: &Path, n: usize, seed: u64) -> Vec<String> {
    let mut s = Store::open(dir).unwrap();
    let items: Vec<String> = s.catalog().unwrap().keys().take(10).cloned().collect();
    let mut rng = Rng::new(seed);
    let reqs: Vec<_> = (0..n)
        .map(|_| fake::case_request(&mut rng, &items, "clerk"))
        .collect();
    s.create_cases_batch(&reqs).unwrap()
}

fn case_count(dir: &Path) -> usize {
    district::case_digest(dir).map(|d| d.len()).unwrap_or(0)
}

#[test]
fn a_lossy_reordering_link_and_a_blackout_lose_nothing() {
    let root = TempDir::new("net-relay");
    runtime().block_on(async {
        let layout = district::enroll_district(root.path(), 2, 0).unwrap();
        let running = district::start(&layout, false).await.unwrap();
        let bad = Faults {
            drop_rate: 0.1,
            duplicate_rate: 0.05,
            reorder_rate: 0.1,
            delay_ms: 5,
            jitter_ms: 15,
        };
        running.relays[0].set_faults(bad.clone());
        running.relays[1].set_faults(bad);
        let dirs: Vec<_> = layout.all().map(|m| m.dir.clone()).collect();
        let mut made = 0;
        for round in 0..3u64 {
            for (i, d) in dirs.iter().enumerate() {
                let d = d.clone();
                made +=
                    tokio::task::spawn_blocking(move || make_cases(&d, 10, round * 10 + i as u64))
                        .await
                        .unwrap()
                        .len();
            }
            if round == 1 {
                // A blackout: every datagram of the first center's link is swallowed,
                // long enough for the link to be declared dead.
                running.relays[0].set_blackhole(true);
                let c0 = &running.centers[0];
                wait_for_boards(
                    "the cut link is declared dead",
                    CONVERGE,
                    &[c0.board()],
                    async || {
                        let peers = c0.board().snapshot();
                        match peers
                            .iter()
                            .find(|p| p.connected && p.role == yichuang_shared::ids::Role::Hub)
                        {
                            Some(p) => Err(format!("still connected: {p:?}")),
                            None => Ok(()),
                        }
                    },
                )
                .await;
                running.relays[0].set_blackhole(false);
            }
        }
        let boards: Vec<_> = std::iter::once(&running.hub)
            .chain(&running.centers)
            .map(|n| n.board())
            .collect();
        wait_for_boards("every node agrees", CONVERGE, &boards, async || {
            let l = layout.clone();
            let problems =
                tokio::task::spawn_blocking(move || district::disagreements(&l).unwrap())
                    .await
                    .unwrap();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(format!("no convergence: {problems:?}"))
            }
        })
        .await;
        let hub = layout.hub.dir.clone();
        assert_eq!(
            tokio::task::spawn_blocking(move || case_count(&hub))
                .await
                .unwrap(),
            made
        );
        let c = running.relays[0].counters();
        assert!(
            c.dropped.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "the relay did drop datagrams"
        );
        running.shutdown().await;
    });
}

#[test]
fn a_center_killed_mid_sync_again_and_again_converges_and_loses_nothing() {
    let root = TempDir::new("net-kill");
    let (hub, centers) = cli_district(root.path(), free_udp_port(), &["001"]);
    let center = &centers[0];
    let _hub_proc = Serve::start(&hub);
    let mut acknowledged = Vec::new();
    for round in 0..4u64 {
        // A backlog made while the center's serve is down, then a sync cut short.
        acknowledged.extend(make_cases(center, 60, round));
        let before = case_count(&hub);
        let mut c = Serve::start(center);
        wait_until("the sync has started", CONVERGE, || {
            let n = case_count(&hub);
            if n > before {
                Ok(())
            } else {
                Err(format!("hub still at {n}"))
            }
        });
        c.kill();
        // Everything acknowledged at the center is still there after SIGKILL.
        let now_there = district::case_digest(center).unwrap().len();
        assert_eq!(now_there, acknowledged.len(), "round {round}");
    }
    let _c = Serve::start(center);
    wait_until("all cases at the hub", CONVERGE, || {
        let at_hub = case_count(&hub);
        if at_hub == acknowledged.len() {
            Ok(())
        } else {
            Err(format!("{at_hub} of {}", acknowledged.len()))
        }
    });
    let hub_cases = district::case_digest(&hub).unwrap();
    let center_cases = district::case_digest(center).unwrap();
    assert_eq!(hub_cases, center_cases, "same cases, same heads");
    let s = Store::open(&hub).unwrap();
    assert_eq!(s.integrity_check().unwrap(), "ok");
}
