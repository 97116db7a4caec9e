//! `yichuang demo`: a district on loopback in one process — a hub, centers and laptops
//! with real QUIC between them. Clerks register cases everywhere, one center is cut
//! off and keeps working, the link heals, and the demo checks that every node agrees.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::bench::fake::{self, Rng};
use crate::district::{self, Layout, Running};
use crate::store::Store;

/// How long the demo waits for the district to converge before it calls it a failure.
const CONVERGE_TIMEOUT_MS: u64 = 60_000;
/// How often convergence is checked while waiting.
const CHECK_EVERY_MS: u64 = 100;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Street centers in the district (1–13).
    #[arg(long, default_value_t = 3)]
    pub centers: usize,
    /// Field-staff laptops, spread over the centers.
    #[arg(long, default_value_t = 1)]
    pub laptops: usize,
    /// Cases registered at each node in each round.
    #[arg(long, default_value_t = 5)]
    pub cases: usize,
    /// Seconds the first center stays cut off (long enough for the link to time out).
    #[arg(long, default_value_t = 8)]
    pub cut_seconds: u64,
    /// Keep the data here instead of a fresh temporary folder (kept afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the district running after the checks, until Ctrl-C.
    #[arg(long)]
    pub stay: bool,
}

struct Clock(Instant);

impl Clock {
    fn say(&self, line: impl AsRef<str>) {
        crate::outln!(
            "[{:6.2}s] {}",
            self.0.elapsed().as_secs_f64(),
            line.as_ref()
        );
    }
}

pub fn run(args: DemoArgs) -> Result<()> {
    if args.centers == 0 || args.centers > 13 {
        bail!("--centers must be between 1 and 13 (the district has 13 street centers)");
    }
    let (root, temporary) = match &args.dir {
        Some(d) => {
            if d.exists()
                && d.read_dir()
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(false)
            {
                bail!(
                    "{} is not empty; the demo wants a fresh folder",
                    d.display()
                );
            }
            (d.clone(), false)
        }
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            (
                std::env::temp_dir().join(format!("yichuang-demo-{}-{nanos}", std::process::id())),
                true,
            )
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(demo(&args, &root));
    if temporary && !args.stay {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

async fn demo(args: &DemoArgs, root: &std::path::Path) -> Result<()> {
    let clock = Clock(Instant::now());
    clock.say(format!(
        "creating a district in {}: 1 hub, {} centers, {} laptops",
        root.display(),
        args.centers,
        args.laptops
    ));
    let layout = {
        let (root, c, l) = (root.to_owned(), args.centers, args.laptops);
        tokio::task::spawn_blocking(move || district::enroll_district(&root, c, l)).await??
    };
    clock.say("district CA made; every node enrolled with its own certificate (mutual TLS, ALPN yichuang/1)");
    let running = district::start(&layout, true).await?;
    clock.say(format!(
        "hub listening on {} (QUIC); centers dial it through relays, laptops dial their center",
        running
            .hub
            .listen_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    ));
    let outcome = scenario(args, &layout, &running, &clock).await;
    if args.stay && outcome.is_ok() {
        crate::outln!();
        crate::outln!("the district keeps running (Ctrl-C to stop). Try, in another terminal:");
        for m in layout.all() {
            crate::outln!("  yichuang status --dir {}", m.dir.display());
        }
        crate::outln!("  yichuang case list --dir {}", layout.hub.dir.display());
        let _ = tokio::signal::ctrl_c().await;
    }
    clock.say("shutting down: sessions finish their streams, endpoints go idle");
    running.shutdown().await;
    outcome
}

async fn register(layout: &Layout, which: Vec<usize>, n: usize, seed: u64) -> Result<usize> {
    let dirs: Vec<PathBuf> = layout.all().map(|m| m.dir.clone()).collect();
    tokio::task::spawn_blocking(move || -> Result<usize> {
        let mut total = 0;
        for i in which {
            let mut store = Store::open(&dirs[i])?;
            let items: Vec<String> = store.catalog()?.keys().take(20).cloned().collect();
            let mut rng = Rng::new(seed + i as u64);
            for _ in 0..n {
                store.create_case(&fake::case_request(&mut rng, &items, "demo-clerk"))?;
                total += 1;
            }
        }
        Ok(total)
    })
    .await?
}

async fn count_cases(layout: &Layout) -> Result<Vec<(String, i64)>> {
    let members: Vec<(String, PathBuf)> = layout
        .all()
        .map(|m| (m.settings.name.clone(), m.dir.clone()))
        .collect();
    tokio::task::spawn_blocking(move || -> Result<Vec<(String, i64)>> {
        members
            .into_iter()
            .map(|(name, dir)| Ok((name, Store::open(&dir)?.case_count()?)))
            .collect()
    })
    .await?
}

async fn wait_converged(layout: &Layout, clock: &Clock, what: &str) -> Result<Duration> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(CONVERGE_TIMEOUT_MS);
    let mut last_report = Instant::now();
    loop {
        let l = layout.clone();
        let problems = tokio::task::spawn_blocking(move || district::disagreements(&l)).await??;
        if problems.is_empty() {
            let took = started.elapsed();
            clock.say(format!(
                "{what}: every node agrees ({} ms)",
                took.as_millis()
            ));
            return Ok(took);
        }
        if Instant::now() > deadline {
            bail!(
                "{what}: not converged after {} s: {}",
                CONVERGE_TIMEOUT_MS / 1000,
                problems.join("; ")
            );
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            last_report = Instant::now();
            clock.say(format!("  waiting: {}", problems.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(CHECK_EVERY_MS)).await;
    }
}

fn show_counts(clock: &Clock, counts: &[(String, i64)]) {
    let line: Vec<String> = counts.iter().map(|(n, c)| format!("{n} {c}")).collect();
    clock.say(format!("  cases per node: {}", line.join(", ")));
}

async fn scenario(
    args: &DemoArgs,
    layout: &Layout,
    running: &Running,
    clock: &Clock,
) -> Result<()> {
    let nodes = layout.all().count();
    let made = register(layout, (0..nodes).collect(), args.cases, 1).await?;
    clock.say(format!(
        "round 1: {made} cases registered, {} at every node",
        args.cases
    ));
    wait_converged(layout, clock, "round 1").await?;
    show_counts(clock, &count_cases(layout).await?);

    let cut = &layout.centers[0];
    running.relays[0].set_blackhole(true);
    clock.say(format!(
        "cutting {} off from the hub (its link drops every packet)",
        cut.settings.name
    ));
    let cut_index = 1; // hub is 0, the first center is 1 in `layout.all()`
    let mut round = 2u64;
    let cut_until = Instant::now() + Duration::from_secs(args.cut_seconds);
    let mut offline_made = 0;
    while Instant::now() < cut_until {
        offline_made += register(layout, vec![cut_index], 1, 100 + round).await?;
        let others: Vec<usize> = (0..nodes).filter(|&i| i != cut_index).collect();
        register(layout, others, 1, 1000 + round).await?;
        round += 1;
        let c = &running.centers[0];
        let hub_link = c
            .board()
            .snapshot()
            .iter()
            .any(|p| p.connected && p.role == yichuang_shared::ids::Role::Hub);
        clock.say(format!(
            "  {} works offline: {offline_made} new cases so far; its hub link is {}",
            cut.settings.name,
            if hub_link {
                "not yet declared dead"
            } else {
                "down"
            }
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    running.relays[0].set_blackhole(false);
    clock.say(format!(
        "healing the link of {}: it reconnects and merges by itself",
        cut.settings.name
    ));
    let took = wait_converged(layout, clock, "after healing").await?;
    show_counts(clock, &count_cases(layout).await?);
    let l = layout.clone();
    let problems = tokio::task::spawn_blocking(move || district::disagreements(&l))
        .await
        .context("final check")??;
    if !problems.is_empty() {
        bail!("final check failed: {}", problems.join("; "));
    }
    let hub_cases = count_cases(layout)
        .await?
        .first()
        .map(|(_, c)| *c)
        .unwrap_or(0);
    clock.say(format!(
        "done: the hub holds all {hub_cases} cases, every center its own, every laptop's cases reached the hub; \
         {offline_made} cases made offline merged {} ms after the link came back",
        took.as_millis()
    ));
    Ok(())
}
