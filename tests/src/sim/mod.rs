//! A deterministic simulation of a district on one thread: a hub, centers and
//! laptops as in-memory stores running the real sync sessions over links with
//! latency, loss, duplication, reordering and partitions, under a fake clock and a
//! seeded random schedule of clerks' work. Driven until idle, never sleeping; a
//! failure names its seed, and `SIM_SEED=<seed>` replays it.
//!
//! The parts: `network` (links, faults, partitions and the sessions' frames and
//! timers), `work` (the clerks' random work, restarts, backups and restores), `check`
//! (the invariants once the partitions healed) and `run` (a schedule's phases, and
//! many seeds over threads). The seeded generator is the benchmarks' SplitMix64.

mod check;
mod network;
mod run;
mod work;

use std::collections::{BTreeMap, VecDeque};

use automerge::ChangeHash;
use yichuang_shared::ids::{DocId, NodeId};
use yichuang_sync::NodeInfo;
use yichuang_sync::fixture::{Clerk, registry, seeded_store};
use yichuang_sync::mem::MemStore;

pub use network::{Faults, Link};
pub use run::{SIM_THREADS_MAX, run_schedules};
pub use yichuang_node::bench::fake::Rng;

use network::Frame;

/// Steps after which a run is declared stuck. A schedule takes a few thousand.
pub const STEPS_MAX: u64 = 2_000_000;
/// A run is idle when no frame is in flight and no session timer falls within this
/// window: periodic reconciliation (hours away) does not keep it busy.
pub const IDLE_WINDOW_MS: i64 = 120_000;
/// Trace lines kept for a failure report.
pub const TRACE_LINES: usize = 400;

#[derive(Debug)]
pub struct SimNode {
    pub name: String,
    pub id: NodeId,
    pub info: NodeInfo,
    pub store: MemStore,
    pub clerk: Clerk,
    pub nonce: u32,
    /// Changes acknowledged to a clerk here, which must reach the hub.
    pub acked: Vec<(DocId, ChangeHash)>,
    /// Changes written here that the write rules must refuse.
    pub rogue: Vec<(DocId, ChangeHash)>,
    pub backup: Option<MemStore>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SimStats {
    pub steps: u64,
    pub frames: u64,
    pub wire_bytes: u64,
    pub sessions: u64,
    pub session_errors: u64,
    pub peer_rejections: u64,
    pub ops: u64,
    /// Transfers and assignments that took place, so a run shows it moved cases between scopes.
    pub transfers: u64,
    pub assignments: u64,
    pub restores: u64,
}

#[derive(Debug)]
pub struct Sim {
    pub seed: u64,
    pub now: i64,
    pub rng: Rng,
    pub nodes: Vec<SimNode>,
    pub links: Vec<Link>,
    frames: BTreeMap<(i64, u64), Frame>,
    next_order: u64,
    next_conn: u64,
    pub stats: SimStats,
    trace: VecDeque<String>,
    /// Log every delivered frame (set `SIM_DEBUG=1` when replaying a seed).
    pub debug: bool,
    pending_heals: Vec<(i64, usize)>,
}

/// The staff member of the first laptop of center `c`.
fn staff_of(center: &str) -> String {
    format!("staff-{center}")
}

impl Sim {
    /// A hub, centers `A`, `B`, `C`, laptops of `A` and `B`; every laptop can reach
    /// its center and the hub.
    pub fn district(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let specs: Vec<(&str, NodeInfo)> = vec![
            ("hub", NodeInfo::hub()),
            ("001", NodeInfo::center("001")),
            ("002", NodeInfo::center("002")),
            ("003", NodeInfo::center("003")),
            ("lapA", NodeInfo::laptop("001", &staff_of("001"))),
            ("lapB", NodeInfo::laptop("002", &staff_of("002"))),
        ];
        let ids: Vec<NodeId> = (0..specs.len())
            .map(|i| NodeId([0, 0, 0, 0, 0, 0, 1, i as u8 + 1]))
            .collect();
        let reg = registry(
            &ids.iter()
                .copied()
                .zip(specs.iter().map(|s| s.1.clone()))
                .collect::<Vec<_>>(),
        );
        let nodes = specs
            .into_iter()
            .zip(&ids)
            .map(|((name, info), id)| SimNode {
                name: name.to_owned(),
                id: *id,
                store: seeded_store(rng.next_u64(), reg.clone()),
                clerk: Clerk::new(*id, 1, &format!("clerk-{name}")),
                nonce: 1,
                info,
                acked: Vec::new(),
                rogue: Vec::new(),
                backup: None,
            })
            .collect();
        let pairs = [(0, 1), (0, 2), (0, 3), (1, 4), (2, 5), (0, 4), (0, 5)];
        let links = pairs
            .iter()
            .map(|&(a, b)| Link {
                ends: [a, b],
                latency_ms: rng.range(2, 80),
                faults: Faults::default(),
                up: true,
                conn: None,
                reconnect_at: Some(0),
            })
            .collect();
        Sim {
            seed,
            now: 0,
            rng,
            nodes,
            links,
            frames: BTreeMap::new(),
            next_order: 0,
            next_conn: 0,
            stats: SimStats::default(),
            trace: VecDeque::new(),
            debug: std::env::var("SIM_DEBUG").is_ok(),
            pending_heals: Vec::new(),
        }
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t={} {line}", self.now));
    }

    pub fn trace(&self) -> String {
        self.trace.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}
