//! Running schedules: a schedule's two phases (work under faults and partitions, then
//! healed links until idle), and many seeded schedules over at most two threads,
//! reporting the seed and trace of the first that breaks an invariant.

use super::*;

impl Sim {
    /// Phase one: `ops` pieces of work with faults and partitions; phase two: every
    /// link healed and clean, run until idle.
    pub fn run_schedule(&mut self, ops: usize) {
        self.randomize_faults();
        for _ in 0..ops {
            let until = self.now + self.rng.range(20, 600);
            self.run_network(until);
            self.random_op();
        }
        self.heal();
        let idle = self.run_network(i64::MAX);
        assert!(idle, "seed {}: never went idle", self.seed);
    }

    /// Ends every partition and fault; links reconnect at once.
    pub fn heal(&mut self) {
        self.log("heal".into());
        self.pending_heals.clear();
        for link in &mut self.links {
            link.faults = Faults::default();
            link.up = true;
            if link.conn.is_none() {
                link.reconnect_at = Some(self.now);
            }
        }
    }
}

/// Threads the schedules run on: the machine has two cores, shared.
pub const SIM_THREADS_MAX: usize = 2;

fn run_one(seed: u64, ops: usize) -> Result<SimStats, String> {
    let mut sim = Sim::district(seed);
    sim.run_schedule(ops);
    match sim.check() {
        Ok(()) => Ok(sim.stats),
        Err(e) => Err(format!(
            "seed {seed} (replay with SIM_SEED={seed}): {e}\n--- trace ---\n{}",
            sim.trace()
        )),
    }
}

/// Runs `count` random schedules from `base_seed` (or the one in `SIM_SEED`; or
/// `SIM_SCHEDULES` of them) on up to two threads, panicking with the seed and the
/// trace of the first that breaks an invariant.
pub fn run_schedules(count: u64, base_seed: u64, ops: usize) -> SimStats {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let count = std::env::var("SIM_SCHEDULES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(count);
            (0..count).map(|i| base_seed.wrapping_add(i)).collect()
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, SIM_THREADS_MAX);
    let results: Vec<Result<SimStats, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<u64> = seeds.iter().copied().skip(t).step_by(threads).collect();
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for seed in mine {
                        let r = run_one(seed, ops);
                        let failed = r.is_err();
                        out.push(r);
                        if failed {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(_) => vec![Err(
                    "a schedule panicked; its seed is printed above".to_owned()
                )],
            })
            .collect()
    });
    let mut total = SimStats::default();
    for r in results {
        match r {
            Ok(s) => {
                total.steps += s.steps;
                total.frames += s.frames;
                total.wire_bytes += s.wire_bytes;
                total.sessions += s.sessions;
                total.session_errors += s.session_errors;
                total.peer_rejections += s.peer_rejections;
                total.ops += s.ops;
                total.transfers += s.transfers;
                total.assignments += s.assignments;
                total.restores += s.restores;
            }
            Err(e) => panic!("{e}"),
        }
    }
    total
}
