//! `yichuang bench local-write`: how much a durable case creation costs over a
//! plain durable SQLite insert of the same bytes, concurrent writers, and a hub
//! store of a million cases (time to ready, memory, list and search latency).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rusqlite::params;
use serde::Serialize;
use yichuang_shared::ids::{NodeId, Role};

use super::fake::{self, Rng};
use super::{quantile, rss_bytes};
use crate::store::{CaseFilter, NodeSettings, Store};

/// Cases generated per transaction when filling the large store: big enough to
/// amortise the fsync, small enough to keep the WAL modest.
const FILL_BATCH: usize = 5_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Durable creations (and plain inserts) to time, interleaved.
    #[arg(long, default_value_t = 400)]
    samples: usize,
    /// Cases each of the 8 concurrent writers creates.
    #[arg(long, default_value_t = 100)]
    concurrent_per_writer: usize,
    /// Cases in the large hub store.
    #[arg(long, default_value_t = 1_000_000)]
    open_cases: usize,
    /// Keep (and reuse) the large store in this folder; it takes minutes to fill.
    #[arg(long)]
    keep: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 200)]
    queries: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    samples: usize,
    case_bytes_mean: f64,
    create_median_us: f64,
    create_p99_us: f64,
    sqlite_insert_median_us: f64,
    sqlite_insert_p99_us: f64,
    ratio: f64,
    concurrent_writers: usize,
    concurrent_creates_per_s: f64,
    open_cases: usize,
    open_1m_seconds: f64,
    open_1m_rss_bytes: u64,
    list_p99_ms: f64,
    search_p99_ms: f64,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct ProbeReport {
    open_seconds: f64,
    rss_bytes: u64,
    cases: i64,
    list_p99_ms: f64,
    search_p99_ms: f64,
}

fn settings(role: Role, center: &str) -> NodeSettings {
    NodeSettings {
        node_id: NodeId(crate::store::random_bytes()),
        name: format!("bench-{role}"),
        role,
        district: crate::store::district().code,
        center: center.to_owned(),
        staff: String::new(),
        created_ms: crate::store::now_ms(),
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yichuang-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn item_codes(store: &mut Store) -> Result<Vec<String>> {
    Ok(store.catalog()?.keys().cloned().collect())
}

pub fn run(args: Args) -> Result<()> {
    let dir = temp_dir("write");
    let mut store = Store::init(&dir, settings(Role::Center, "001"))?;
    let items = item_codes(&mut store)?;
    let mut rng = Rng::new(1);
    // Warm the catalog, the statement cache and the file before timing.
    for _ in 0..20 {
        store.create_case(&fake::case_request(&mut rng, &items, "bench"))?;
    }
    let bytes_before: i64 = store.connection().query_row(
        "SELECT COALESCE(SUM(length(bytes)),0) FROM changes",
        [],
        |r| r.get(0),
    )?;
    let plain = rusqlite::Connection::open(dir.join("plain.db"))?;
    plain.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
    plain.pragma_update(None, "synchronous", "FULL")?;
    plain.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")?;
    let mut create_us = Vec::with_capacity(args.samples);
    let mut insert_us = Vec::with_capacity(args.samples);
    let mut blob: Vec<u8> = Vec::new();
    for i in 0..args.samples {
        let req = fake::case_request(&mut rng, &items, "bench");
        let t = Instant::now();
        store.create_case(&req)?;
        create_us.push(t.elapsed().as_secs_f64() * 1e6);
        if i == 0 {
            // The plain insert writes as many bytes as a case's stored change.
            let total: i64 = store.connection().query_row(
                "SELECT COALESCE(SUM(length(bytes)),0) FROM changes",
                [],
                |r| r.get(0),
            )?;
            blob = vec![0x5a_u8; (total - bytes_before).max(1) as usize];
        }
        let t = Instant::now();
        plain.execute("INSERT INTO t (data) VALUES (?1)", params![blob])?;
        insert_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let bytes_after: i64 = store.connection().query_row(
        "SELECT COALESCE(SUM(length(bytes)),0) FROM changes",
        [],
        |r| r.get(0),
    )?;
    let case_bytes_mean = (bytes_after - bytes_before) as f64 / args.samples.max(1) as f64;
    drop(store);

    // Eight clerks' requests at once, through the store thread as `serve` runs it:
    // whatever queues up while one group commits goes into the next group.
    let writers = 8;
    let handle = crate::store::StoreHandle::spawn(Store::open(&dir)?);
    let t = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let handle = handle.clone();
                let items = items.clone();
                let n = args.concurrent_per_writer;
                scope.spawn(move || -> Result<()> {
                    let mut rng = Rng::new(100 + w as u64);
                    for _ in 0..n {
                        let req = fake::case_request(&mut rng, &items, "bench");
                        handle.call_blocking(move |s| s.create_case(&req))??;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        Ok(())
    })?;
    drop(handle);
    let concurrent_creates_per_s =
        (writers * args.concurrent_per_writer) as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);

    let big = args.keep.clone().unwrap_or_else(|| temp_dir("open"));
    fill(&big, args.open_cases, !args.json)?;
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["bench", "open-probe", "--dir"])
        .arg(&big)
        .output()
        .context("running the open probe")?;
    if !out.status.success() {
        bail!(
            "open probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let probe: ProbeReport = serde_json::from_slice(&out.stdout)?;
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&big);
    }

    let create_median_us = quantile(&mut create_us, 0.5);
    let sqlite_insert_median_us = quantile(&mut insert_us, 0.5);
    let report = Report {
        samples: args.samples,
        case_bytes_mean,
        create_median_us,
        create_p99_us: quantile(&mut create_us, 0.99),
        sqlite_insert_median_us,
        sqlite_insert_p99_us: quantile(&mut insert_us, 0.99),
        ratio: create_median_us / sqlite_insert_median_us.max(1e-9),
        concurrent_writers: writers,
        concurrent_creates_per_s,
        open_cases: probe.cases as usize,
        open_1m_seconds: probe.open_seconds,
        open_1m_rss_bytes: probe.rss_bytes,
        list_p99_ms: probe.list_p99_ms,
        search_p99_ms: probe.search_p99_ms,
    };
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::outln!(
            "durable case creation: median {:.0} µs, p99 {:.0} µs ({:.0} bytes of change each)",
            report.create_median_us,
            report.create_p99_us,
            report.case_bytes_mean
        );
        crate::outln!(
            "plain durable insert:  median {:.0} µs, p99 {:.0} µs",
            report.sqlite_insert_median_us,
            report.sqlite_insert_p99_us
        );
        crate::outln!("ratio {:.2} (target ≤ 1.5)", report.ratio);
        crate::outln!(
            "{} concurrent writers: {:.0} cases/s",
            writers,
            report.concurrent_creates_per_s
        );
        crate::outln!(
            "store of {} cases: ready in {:.3} s (target ≤ 2), {:.1} MiB resident (target ≤ 256)",
            report.open_cases,
            report.open_1m_seconds,
            report.open_1m_rss_bytes as f64 / 1048576.0
        );
        crate::outln!(
            "list p99 {:.2} ms, search p99 {:.2} ms (target ≤ 50)",
            report.list_p99_ms,
            report.search_p99_ms
        );
    }
    Ok(())
}

/// Fills (or tops up) a hub store to `cases` cases.
fn fill(dir: &Path, cases: usize, progress: bool) -> Result<()> {
    let mut store = if dir.join(crate::store::DB_FILE).exists() {
        Store::open(dir)?
    } else {
        Store::init(dir, settings(Role::Hub, "000"))?
    };
    let have = store.case_count()? as usize;
    if have >= cases {
        return Ok(());
    }
    let items = item_codes(&mut store)?;
    let mut rng = Rng::new(have as u64 + 9);
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new((cases - have) as u64);
        b.set_message("filling the large store");
        b
    });
    let mut done = have;
    while done < cases {
        let n = FILL_BATCH.min(cases - done);
        let reqs: Vec<_> = (0..n)
            .map(|_| fake::case_request(&mut rng, &items, "bench"))
            .collect();
        store.create_cases_batch(&reqs)?;
        done += n;
        if let Some(b) = &bar {
            b.inc(n as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(())
}

/// Runs in a fresh process so its memory is the open store's alone.
pub fn probe(args: ProbeArgs) -> Result<()> {
    let t = Instant::now();
    let mut store = Store::open(&args.dir)?;
    // Ready means able to answer the first list a clerk asks for.
    store.list_cases(&CaseFilter {
        limit: 50,
        ..CaseFilter::default()
    })?;
    let open_seconds = t.elapsed().as_secs_f64();
    let cases = store.case_count()?;
    let sample = store.list_cases(&CaseFilter {
        limit: 200,
        ..CaseFilter::default()
    })?;
    let mut rng = Rng::new(3);
    let mut list_ms = Vec::new();
    let mut search_ms = Vec::new();
    let statuses = ["submitted", "accepted", "completed"];
    for i in 0..args.queries {
        let t = Instant::now();
        store.list_cases(&CaseFilter {
            status: Some(statuses[i % 3].into()),
            limit: 50,
            ..CaseFilter::default()
        })?;
        list_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let search = match (
            i % 3,
            sample.get(rng.below(sample.len().max(1) as u64) as usize),
        ) {
            (0, Some(row)) => row.case_no[..row.case_no.len() - 2].to_owned(),
            (1, Some(row)) => row.applicant_name.clone(),
            _ => "补贴".to_owned(),
        };
        let t = Instant::now();
        store.list_cases(&CaseFilter {
            search: Some(search),
            limit: 50,
            ..CaseFilter::default()
        })?;
        search_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let report = ProbeReport {
        open_seconds,
        rss_bytes: rss_bytes(),
        cases,
        list_p99_ms: quantile(&mut list_ms, 0.99),
        search_p99_ms: quantile(&mut search_ms, 0.99),
    };
    crate::outln!("{}", serde_json::to_string(&report)?);
    Ok(())
}
