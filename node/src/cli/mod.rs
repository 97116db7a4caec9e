//! The `yichuang` command line: argument definitions and their dispatch.

mod backup;
mod calendar;
mod case;
pub mod http;
mod net;
mod report;
pub mod table;
mod user;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use yichuang_shared::ids::{NodeId, Role};

use crate::store::{self, NodeSettings, Store};

#[derive(Debug, Parser)]
#[command(
    name = "yichuang",
    version,
    about = "Yichuang (一窗): the offline-first case node for street public-service centers"
)]
pub struct Cli {
    /// Log as JSON lines instead of human text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The node's data folder.
#[derive(Debug, Args, Clone)]
pub struct DirArg {
    /// The node's data folder.
    #[arg(long, env = "YICHUANG_DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// A whole district on this machine: hub, centers, laptops, real QUIC; cut a center off, heal, check.
    Demo(crate::demo::DemoArgs),
    /// Create a node's data folder: its identity, role and seeded reference data.
    Init(InitArgs),
    /// The district's service-item catalog.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Register, list, show and advance cases (办件).
    Case {
        // Boxed: `case new` carries many fields, and the enum is as large as its
        // largest variant.
        #[command(subcommand)]
        command: Box<case::CaseCommand>,
    },
    /// The working-day calendar: add working days, show a year, publish a year (hub).
    Calendar {
        #[command(subcommand)]
        command: calendar::CalendarCommand,
    },
    /// District metrics: 按时办结率, 最多跑一次, 一次办结率, 好差评 and case counts.
    Report(report::ReportArgs),
    /// Show who this node is.
    Info {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        json: bool,
    },
    /// Clerks' accounts for the web pages and the API.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Run only the HTTP server (API, pages, dashboard, metrics) on a data folder.
    #[command(hide = true)]
    Http(http::HttpArgs),
    /// Issue an enrollment bundle for a new node (hub only).
    Issue(net::IssueArgs),
    /// Attach this node to its hub with an enrollment bundle.
    Join(net::JoinArgs),
    /// Revoke a node: the hub refuses it at once, the centers once the list reaches them.
    Revoke(net::RevokeArgs),
    /// Run the node: listen (hub, center), dial (center, laptop), sync live.
    Serve(net::ServeArgs),
    /// The node, its peers, what waits to be sent or received, conflicts.
    Status(net::StatusArgs),
    /// Write a consistent copy of the node's data file (safe while `serve` runs).
    Backup(backup::BackupArgs),
    /// Put a backup back in place (the node stopped); its peers then reconcile with it.
    Restore(backup::RestoreArgs),
    /// Measure the node against its performance targets.
    Bench {
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[arg(long)]
    pub role: Role,
    /// The district's 6-digit code.
    #[arg(long)]
    pub district: String,
    /// The street center's code (required for center and laptop).
    #[arg(long)]
    pub center: Option<String>,
    /// A name for this node; defaults to the role and center.
    #[arg(long)]
    pub node: Option<String>,
    /// The field staff member a laptop serves.
    #[arg(long)]
    pub staff: Option<String>,
    /// Where the node accepts connections (the hub's default: 0.0.0.0:7400).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List service items.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Only items whose code or name contains this text.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Where a hub listens unless told otherwise.
const DEFAULT_HUB_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 7400);

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init(args) => init(args),
        Command::Catalog {
            command: CatalogCommand::List { dir, search, json },
        } => catalog_list(&dir, search, json),
        Command::Case { command } => case::run(*command),
        Command::Calendar { command } => calendar::run(command),
        Command::Report(args) => report::run(args),
        Command::Info { dir, json } => info(&dir, json),
        Command::User { command } => user::run(command),
        Command::Http(args) => http::run(args),
        Command::Demo(args) => crate::demo::run(args),
        Command::Issue(args) => net::issue(args),
        Command::Join(args) => net::join(args),
        Command::Revoke(args) => net::revoke(args),
        Command::Serve(args) => net::serve(args),
        Command::Status(args) => net::status(args),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Bench { command } => crate::bench::run(command),
    }
}

pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    crate::outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn init(args: InitArgs) -> Result<()> {
    let district = store::district();
    let center = match (args.role, args.center) {
        (Role::Hub, None) => district.hub.code.clone(),
        (Role::Hub, Some(c)) => c,
        (_, Some(c)) => c,
        (role, None) => bail!(
            "a {role} node needs --center CODE (one of {})",
            centers(&district)
        ),
    };
    if args.role == Role::Laptop && args.staff.as_deref().is_none_or(str::is_empty) {
        bail!("a laptop node needs --staff ID: the field staff member whose cases it carries");
    }
    let name = args
        .node
        .unwrap_or_else(|| format!("{}-{}", args.role, center));
    let settings = NodeSettings {
        node_id: NodeId(store::random_bytes()),
        name,
        role: args.role,
        district: args.district,
        center,
        staff: args.staff.unwrap_or_default(),
        created_ms: store::now_ms(),
    };
    let mut store = Store::init(&args.dir.dir, settings).map_err(|e| match e {
        store::StoreError::UnknownCenter(..) => {
            anyhow::anyhow!("{e}; known centers: {}", centers(&district))
        }
        other => other.into(),
    })?;
    match args.role {
        Role::Hub => net::init_hub(&mut store, Some(args.listen.unwrap_or(DEFAULT_HUB_LISTEN)))?,
        _ => {
            if let Some(listen) = args.listen {
                crate::net::enroll::NetConfig {
                    listen: Some(listen),
                    ..Default::default()
                }
                .save(&args.dir.dir)?;
            }
        }
    }
    if args.json {
        print_json(store.settings())?;
    } else {
        let s = store.settings();
        crate::outln!(
            "initialised {} node {:?} ({}) for district {} center {} in {}",
            s.role,
            s.name,
            s.node_id,
            s.district,
            s.center,
            args.dir.dir.display()
        );
    }
    Ok(())
}

fn centers(district: &yichuang_shared::catalog::District) -> String {
    district
        .centers
        .iter()
        .map(|c| format!("{} {}", c.code, c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn catalog_list(dir: &DirArg, search: Option<String>, json: bool) -> Result<()> {
    let mut store = Store::open(&dir.dir)?;
    let items: Vec<_> = store
        .catalog()?
        .values()
        .filter(|i| {
            search
                .as_deref()
                .is_none_or(|s| i.code.contains(s) || i.name.contains(s))
        })
        .cloned()
        .collect();
    if json {
        return print_json(&items);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.code.clone(),
                i.name.clone(),
                i.department.clone(),
                format!(
                    "{}{}",
                    i.promised_limit.value,
                    i.promised_limit.unit.label_zh()
                ),
                format!(
                    "{}{}",
                    i.statutory_limit.value,
                    i.statutory_limit.unit.label_zh()
                ),
                i.visits.to_string(),
            ]
        })
        .collect();
    crate::out!(
        "{}",
        table::render(
            &[
                "编码 code",
                "事项 item",
                "部门 department",
                "承诺 promised",
                "法定 statutory",
                "跑动 visits"
            ],
            &rows
        )
    );
    crate::outln!("{} items", items.len());
    Ok(())
}

fn info(dir: &DirArg, json: bool) -> Result<()> {
    let store = Store::open(&dir.dir).with_context(|| format!("opening {}", dir.dir.display()))?;
    let s = store.settings().clone();
    let cases = store.case_count()?;
    if json {
        return print_json(
            &serde_json::json!({ "node": s, "cases": cases, "feed_epoch": store.feed_epoch()? }),
        );
    }
    crate::outln!(
        "node {} ({}), role {}, district {}, center {}, {} cases",
        s.name,
        s.node_id,
        s.role,
        s.district,
        s.center,
        cases
    );
    Ok(())
}

/// Writes to standard output; a closed pipe (`yichuang case list | head`) ends the
/// program quietly instead of panicking in `println!`.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing output: {e}");
        std::process::exit(1);
    }
}

#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::write_out(format_args!($($t)*)) };
}

#[macro_export]
macro_rules! outln {
    () => { $crate::cli::write_out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::cli::write_out(format_args!("{}\n", format_args!($($t)*))) };
}
