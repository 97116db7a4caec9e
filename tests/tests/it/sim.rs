//! Random schedules of a whole district under faults and partitions: after the
//! partitions heal, every invariant of the sync engine holds.

use std::time::Instant;

use yichuang_tests::sim::run_schedules;

/// Schedules per run; each is a fresh seed, printed on failure.
const SCHEDULES: u64 = 500;
/// Pieces of work per schedule before the partitions heal.
const OPS: usize = 40;

#[test]
fn district_converges_under_faults() {
    let started = Instant::now();
    let base = 0x5eed_0000;
    let stats = run_schedules(SCHEDULES, base, OPS);
    let schedules = stats.ops / OPS as u64;
    println!(
        "{schedules} schedules in {:.1?}: {stats:?}",
        started.elapsed()
    );
    assert!(
        stats.sessions > 0 && stats.ops > 0,
        "links must have connected and clerks worked"
    );
    assert!(
        stats.transfers > 0 && stats.assignments > 0,
        "cases must have moved between scopes: {stats:?}"
    );
}
