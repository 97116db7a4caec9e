//! `yichuang bench reconnect`: what a center's reconnect to the hub costs after K
//! cases changed while they were apart, against per-document Automerge sync of
//! the center's documents in the same run (DESIGN.md §5 and §8). In memory, with
//! the real sync engine; wire bytes are encoded frames, round trips are flights.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use serde::Serialize;
use yichuang_shared::case::EventKind;
use yichuang_shared::ids::DocId;
use yichuang_sync::NodeInfo;
use yichuang_sync::fixture::{Clerk, registry, seeded_store};
use yichuang_sync::mem::MemStore;
use yichuang_sync::pair::{
    PAIR_CENTER as CENTER, PAIR_CENTER_CODE as CENTER_CODE, PAIR_HUB as HUB, run_hub_center,
};
/// Other centers the rest of the hub's cases belong to.
const OTHER_CENTERS: [&str; 3] = ["002", "003", "004"];
/// Flights after which the baseline gives up on one document (it needs three to five).
const BASELINE_FLIGHTS_MAX: u32 = 64;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Cases at the hub.
    #[arg(long, default_value_t = 100_000)]
    pub docs: usize,
    /// Of those, cases at the center (its scope).
    #[arg(long, default_value_t = 10_000)]
    pub center_docs: usize,
    /// Cases changed while apart, half at the hub and half at the center.
    #[arg(long, default_value_t = 100)]
    pub changed: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct ReconnectReport {
    pub docs: usize,
    pub center_docs: usize,
    pub changed: usize,
    /// Round trips after the handshake.
    pub round_trips: u32,
    pub messages: u64,
    pub wire_bytes: u64,
    /// Raw bytes of the changes made while apart.
    pub raw_change_bytes: u64,
    pub seconds: f64,
    /// 1.3 × raw change bytes + 100 B per changed case + 4 KiB.
    pub wire_bytes_budget: u64,
    pub baseline_round_trips: u32,
    pub baseline_messages: u64,
    pub baseline_wire_bytes: u64,
    pub baseline_seconds: f64,
    pub bytes_vs_baseline: f64,
    pub time_vs_baseline: f64,
    pub setup_seconds: f64,
}

fn case_id(i: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    id[8] = 0xbe;
    id
}

/// Builds the hub and the center in sync, then changes `changed` cases while apart.
fn setup(args: &Args) -> Result<(MemStore, MemStore, Vec<DocId>, u64)> {
    if args.center_docs > args.docs || args.changed > args.center_docs {
        bail!("need changed <= center-docs <= docs");
    }
    let reg = registry(&[
        (HUB, NodeInfo::hub()),
        (CENTER, NodeInfo::center(CENTER_CODE)),
    ]);
    let mut hub = seeded_store(1, reg.clone());
    let mut center = seeded_store(2, reg);
    let mut hub_clerk = Clerk::new(HUB, 1, "hub");
    let mut ours = Vec::with_capacity(args.center_docs);
    for i in 0..args.docs {
        // Spread the center's cases among the others, as the hub's log would have them.
        let at_center = i * args.center_docs / args.docs.max(1)
            != (i + 1) * args.center_docs / args.docs.max(1);
        let home = if at_center {
            CENTER_CODE
        } else {
            OTHER_CENTERS[i % OTHER_CENTERS.len()]
        };
        let (doc, _) = hub_clerk
            .create_case(&mut hub, case_id(i), home, 1_000)
            .with_context(|| format!("creating case {i}"))?;
        if at_center {
            // The center holds the same document, as after an earlier sync.
            let mut am = hub.doc(&doc).context("a case just created")?;
            let changes = am.get_changes(&[]);
            center.commit_local(&doc, am, changes, 1_000);
            ours.push(doc);
        }
    }
    // First contact: the stores agree, so reconciliation finds nothing; it leaves checkpoints.
    let first = run_hub_center(&mut hub, &mut center, 2_000).context("first contact")?;
    if !first.caught_up {
        bail!("the first contact did not catch up");
    }
    let mut center_clerk = Clerk::new(CENTER, 1, "center");
    let mut raw = 0u64;
    let step = ours.len() / args.changed.max(1);
    for k in 0..args.changed {
        let doc = &ours[k * step.max(1)];
        let (store, clerk) = if k % 2 == 0 {
            (&mut hub, &mut hub_clerk)
        } else {
            (&mut center, &mut center_clerk)
        };
        for hash in clerk.event(store, doc, EventKind::Accepted, &[], 3_000)? {
            let mut am = store.doc(doc).context("a changed case")?;
            let change = am
                .get_change_by_hash(&hash)
                .context("the change just made")?;
            raw += change.raw_bytes().len() as u64;
        }
    }
    Ok((hub, center, ours, raw))
}

/// Per-document Automerge sync of every case the center holds, from fresh sync
/// states as after a reconnect, all documents in parallel: messages, bytes and
/// flights (the slowest document decides).
fn baseline(pairs: &mut [(AutoCommit, AutoCommit)]) -> Result<(u32, u64, u64)> {
    let mut messages = 0u64;
    let mut bytes = 0u64;
    let mut flights_max = 0u32;
    for (a, b) in pairs.iter_mut() {
        let mut sa = sync::State::new();
        let mut sb = sync::State::new();
        let mut flights = 0u32;
        let mut to_b = a.sync().generate_sync_message(&mut sa);
        let mut to_a = b.sync().generate_sync_message(&mut sb);
        while to_a.is_some() || to_b.is_some() {
            flights += 1;
            if flights > BASELINE_FLIGHTS_MAX {
                bail!("per-document sync did not settle");
            }
            if let Some(m) = to_b.take() {
                let encoded = m.encode();
                messages += 1;
                bytes += encoded.len() as u64;
                b.sync()
                    .receive_sync_message(&mut sb, sync::Message::decode(&encoded)?)?;
            }
            if let Some(m) = to_a.take() {
                let encoded = m.encode();
                messages += 1;
                bytes += encoded.len() as u64;
                a.sync()
                    .receive_sync_message(&mut sa, sync::Message::decode(&encoded)?)?;
            }
            to_b = a.sync().generate_sync_message(&mut sa);
            to_a = b.sync().generate_sync_message(&mut sb);
        }
        flights_max = flights_max.max(flights);
    }
    Ok((flights_max.div_ceil(2), messages, bytes))
}

/// Runs the benchmark once.
pub fn run_reconnect(args: &Args) -> Result<ReconnectReport> {
    let started = Instant::now();
    let (mut hub, mut center, ours, raw) = setup(args)?;
    let mut pairs = Vec::with_capacity(ours.len());
    for doc in &ours {
        pairs.push((
            hub.doc(doc).context("hub copy")?,
            center.doc(doc).context("center copy")?,
        ));
    }
    let setup_seconds = started.elapsed().as_secs_f64();

    let t = Instant::now();
    let out = run_hub_center(&mut hub, &mut center, 4_000).context("reconnect")?;
    let seconds = t.elapsed().as_secs_f64();
    for doc in &ours {
        if hub.heads(doc) != center.heads(doc) {
            bail!("{doc} differs after the reconnect");
        }
    }

    let t = Instant::now();
    let (baseline_round_trips, baseline_messages, baseline_wire_bytes) = baseline(&mut pairs)?;
    let baseline_seconds = t.elapsed().as_secs_f64();

    let k = args.changed as u64;
    Ok(ReconnectReport {
        docs: args.docs,
        center_docs: ours.len(),
        changed: args.changed,
        round_trips: out.stats.round_trips_after_handshake(),
        messages: out.stats.frames,
        wire_bytes: out.stats.wire_bytes,
        raw_change_bytes: raw,
        seconds,
        wire_bytes_budget: raw * 13 / 10 + 100 * k + 4096,
        baseline_round_trips,
        baseline_messages,
        baseline_wire_bytes,
        baseline_seconds,
        bytes_vs_baseline: baseline_wire_bytes as f64 / out.stats.wire_bytes.max(1) as f64,
        time_vs_baseline: baseline_seconds / seconds.max(1e-9),
        setup_seconds,
    })
}

pub fn run(args: Args) -> Result<()> {
    let r = run_reconnect(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "reconnect: {} cases at the hub, {} at the center, {} changed while apart",
        r.docs, r.center_docs, r.changed
    );
    println!(
        "  engine:   {} round trips after the handshake, {} messages, {} B on the wire ({} B of changes, budget {} B), {:.3} s",
        r.round_trips, r.messages, r.wire_bytes, r.raw_change_bytes, r.wire_bytes_budget, r.seconds
    );
    println!(
        "  baseline: {} round trips, {} messages, {} B, {:.3} s (per-document Automerge sync)",
        r.baseline_round_trips, r.baseline_messages, r.baseline_wire_bytes, r.baseline_seconds
    );
    println!(
        "  {:.0}× fewer bytes, {:.0}× less time; setup {:.1} s",
        r.bytes_vs_baseline, r.time_vs_baseline, r.setup_seconds
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_reconnect_meets_its_budget() {
        let args = Args {
            docs: 400,
            center_docs: 100,
            changed: 10,
            json: true,
        };
        let r = run_reconnect(&args).unwrap();
        assert!(r.round_trips <= 3, "{r:?}");
        assert!(r.wire_bytes <= r.wire_bytes_budget, "{r:?}");
        assert!(r.baseline_messages >= 2 * 100, "{r:?}");
    }
}
