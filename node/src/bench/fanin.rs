//! `yichuang bench fanin`: 13 centers and 50 laptops, each with 200 cases changed
//! while apart, reconnect at once to one hub over loopback QUIC. The nodes first
//! meet the hub (enrolment: first contact, reconciled), go offline, register their
//! cases, and then all come back at once. Reports the time until all have converged
//! again, the first contact's time, the hub's peak resident memory (the hub runs as
//! its own `yichuang serve` process, so the figure is the hub's alone), and the
//! live-push latency from a center to the hub once connected.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use serde::Serialize;

use super::fake::{self, Rng};
use crate::district::{self, Layout};
use crate::serve::{Node, ServeOptions};
use crate::store::Store;

/// Longest the benchmark waits for convergence before it reports a failure.
const CONVERGE_TIMEOUT_MS: u64 = 300_000;
/// How often convergence is checked.
const CHECK_EVERY_MS: u64 = 20;
/// How long to wait for the hub process to report its address.
const HUB_START_TIMEOUT_MS: u64 = 30_000;
/// A pushed case that takes longer than this is a failure, not a slow sample.
const PUSH_TIMEOUT_MS: u64 = 30_000;
/// How often the hub's database is checked for a pushed case.
const PUSH_POLL_MS: u64 = 2;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[arg(long, default_value_t = 13)]
    centers: usize,
    #[arg(long, default_value_t = 50)]
    laptops: usize,
    /// Cases changed at each node while it was apart.
    #[arg(long, default_value_t = 200)]
    cases: usize,
    /// Live-push samples after convergence.
    #[arg(long, default_value_t = 30)]
    push_samples: usize,
    /// Keep the district here instead of a temporary folder.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    nodes: usize,
    changed_total: usize,
    converge_seconds: f64,
    /// The first meeting of every node with the hub, before any case (reconciliation).
    first_contact_seconds: f64,
    hub_peak_rss_bytes: u64,
    push_latency_ms_median: f64,
    push_latency_ms_p90: f64,
    build: &'static str,
}

struct HubProcess(Child);

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn hub_peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn hub_count(reader: &Store) -> Result<i64> {
    Ok(reader
        .connection()
        .query_row("SELECT COUNT(*) FROM case_index", [], |r| r.get(0))?)
}

fn prepare(root: &Path, args: &Args) -> Result<Layout> {
    Ok(district::enroll_district(root, args.centers, args.laptops)?)
}

/// Each client registers its cases while offline.
fn register_offline(layout: &Layout, args: &Args) -> Result<()> {
    for (i, m) in layout.centers.iter().chain(&layout.laptops).enumerate() {
        let mut s = Store::open(&m.dir)?;
        let items: Vec<String> = s.catalog()?.keys().take(20).cloned().collect();
        let mut rng = Rng::new(i as u64 + 1);
        let reqs: Vec<_> = (0..args.cases)
            .map(|_| fake::case_request(&mut rng, &items, "bench"))
            .collect();
        s.create_cases_batch(&reqs)?;
    }
    Ok(())
}

/// Starts every client at once and waits until the hub holds `expected` cases and
/// every client reports its upstream caught up with nothing waiting.
async fn connect_all(
    clients: &[PathBuf],
    hub_addr: std::net::SocketAddr,
    reader: &Store,
    expected: usize,
) -> Result<(Duration, Vec<Node>)> {
    let t0 = Instant::now();
    let mut starting = tokio::task::JoinSet::new();
    for dir in clients {
        let opts = ServeOptions {
            hub: Some(hub_addr),
            ..Default::default()
        };
        let dir = dir.clone();
        starting.spawn(async move { Node::start(&dir, opts).await });
    }
    let mut nodes = Vec::new();
    while let Some(n) = starting.join_next().await {
        nodes.push(n??);
    }
    let deadline = t0 + Duration::from_millis(CONVERGE_TIMEOUT_MS);
    loop {
        let at_hub = hub_count(reader)? as usize;
        let settled = nodes.iter().all(|n: &Node| {
            n.board()
                .snapshot()
                .iter()
                .any(|p| p.connected && p.caught_up && p.waiting_out == 0 && p.waiting_in == 0)
        });
        if at_hub >= expected && settled {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "not converged after {} s: hub has {at_hub} of {expected} cases",
                CONVERGE_TIMEOUT_MS / 1000
            );
        }
        tokio::time::sleep(Duration::from_millis(CHECK_EVERY_MS)).await;
    }
    Ok((t0.elapsed(), nodes))
}

pub fn run(args: Args) -> Result<()> {
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("yichuang-fanin-{}", std::process::id())),
    };
    if root.exists() {
        bail!(
            "{} exists; the benchmark wants a fresh folder",
            root.display()
        );
    }
    if !args.json {
        crate::outln!(
            "preparing {} centers and {} laptops with {} changed cases each in {}",
            args.centers,
            args.laptops,
            args.cases,
            root.display()
        );
    }
    let layout = prepare(&root, &args)?;
    let result = measure(&args, &layout);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    let report = result?;
    if args.json {
        crate::outln!("{}", serde_json::to_string(&report)?);
    } else {
        crate::outln!(
            "{} nodes, {} changed cases: converged in {:.2} s (target ≤ 5 s; first contact {:.2} s); hub peak RSS {:.1} MiB (target ≤ 300 MiB); \
             live push median {:.1} ms, p90 {:.1} ms (target median ≤ 100 ms); {} build",
            report.nodes,
            report.changed_total,
            report.converge_seconds,
            report.first_contact_seconds,
            report.hub_peak_rss_bytes as f64 / (1024.0 * 1024.0),
            report.push_latency_ms_median,
            report.push_latency_ms_p90,
            report.build
        );
    }
    Ok(())
}

fn measure(args: &Args, layout: &Layout) -> Result<Report> {
    let exe = std::env::current_exe().context("locating the yichuang binary")?;
    let _ = std::fs::remove_file(layout.hub.dir.join(crate::serve::STATUS_FILE));
    let child = Command::new(exe)
        .args(["serve", "--dir"])
        .arg(&layout.hub.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the hub")?;
    let hub = HubProcess(child);
    let started = Instant::now();
    let hub_addr = loop {
        if let Some(addr) = crate::serve::read_status(&layout.hub.dir).and_then(|s| s.listen) {
            break addr;
        }
        if started.elapsed() > Duration::from_millis(HUB_START_TIMEOUT_MS) {
            bail!("the hub did not start");
        }
        std::thread::sleep(Duration::from_millis(CHECK_EVERY_MS));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reader = Store::open(&layout.hub.dir)?;
    let expected = (args.centers + args.laptops) * args.cases;
    let clients: Vec<PathBuf> = layout
        .centers
        .iter()
        .chain(&layout.laptops)
        .map(|m| m.dir.clone())
        .collect();
    let (first_contact, converge, nodes) = runtime.block_on(async {
        let (first_contact, nodes) = connect_all(&clients, hub_addr, &reader, 0).await?;
        for n in nodes {
            n.shutdown().await;
        }
        register_offline(layout, args)?;
        let (converge, nodes) = connect_all(&clients, hub_addr, &reader, expected).await?;
        Ok::<_, anyhow::Error>((first_contact, converge, nodes))
    })?;
    // Live push: a clerk at the first center registers a case; when does the hub have it?
    let mut latencies = Vec::new();
    let mut center = Store::open(&layout.centers[0].dir)?;
    let items: Vec<String> = center.catalog()?.keys().take(5).cloned().collect();
    let mut rng = Rng::new(4242);
    for _ in 0..args.push_samples {
        let before = hub_count(&reader)?;
        let t = Instant::now();
        center.create_case(&fake::case_request(&mut rng, &items, "bench"))?;
        loop {
            if hub_count(&reader)? > before {
                break;
            }
            if t.elapsed() > Duration::from_millis(PUSH_TIMEOUT_MS) {
                bail!("a pushed case did not reach the hub within {PUSH_TIMEOUT_MS} ms");
            }
            std::thread::sleep(Duration::from_millis(PUSH_POLL_MS));
        }
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let peak = hub_peak_rss(hub.0.id());
    runtime.block_on(async {
        for n in nodes {
            n.shutdown().await;
        }
    });
    drop(hub);
    let median = super::quantile(&mut latencies, 0.5);
    let p90 = super::quantile(&mut latencies, 0.9);
    Ok(Report {
        nodes: args.centers + args.laptops + 1,
        changed_total: expected,
        converge_seconds: converge.as_secs_f64(),
        first_contact_seconds: first_contact.as_secs_f64(),
        hub_peak_rss_bytes: peak,
        push_latency_ms_median: median,
        push_latency_ms_p90: p90,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    })
}
