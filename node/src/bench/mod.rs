//! `yichuang bench …`: measurements against the targets in DESIGN.md §8. These
//! are benchmarks, not tests: they report figures and never fail on speed.

pub mod fake;
mod fanin;
mod local_write;
pub mod reconnect;

use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable case creation against a plain durable SQLite insert; concurrent
    /// writers; opening and querying a store of 1,000,000 cases.
    LocalWrite(local_write::Args),
    /// A center's reconnect after K changed cases against per-document Automerge sync.
    Reconnect(reconnect::Args),
    /// 13 centers and 50 laptops reconnect at once to one hub, 200 changed cases each:
    /// time to converge, the hub's peak memory, live-push latency.
    Fanin(fanin::Args),
    /// (internal) Open a store, query it, and report time, memory and latencies.
    #[command(hide = true)]
    OpenProbe(local_write::ProbeArgs),
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::LocalWrite(args) => local_write::run(args),
        BenchCommand::Reconnect(args) => reconnect::run(args),
        BenchCommand::Fanin(args) => fanin::run(args),
        BenchCommand::OpenProbe(args) => local_write::probe(args),
    }
}

/// The value at quantile `q` (0..=1) of unsorted samples.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let idx = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[idx.min(samples.len() - 1)]
}

/// Resident memory of this process in bytes (Linux), 0 where unknown.
pub fn rss_bytes() -> u64 {
    read_status_kib("VmRSS:") * 1024
}

/// Peak resident memory of this process in bytes (Linux), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    read_status_kib("VmHWM:") * 1024
}

fn read_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
