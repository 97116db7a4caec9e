//! `yichuang issue | join | revoke | serve | status`: enrollment and the network.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rusqlite::params;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use yichuang_shared::ids::{NodeId, Role};

use super::{DirArg, print_json};
use crate::http::AppState;
use crate::net::board::PeerStatus;
use crate::net::enroll::{self, IssueRequest, JoinOptions};
use crate::serve::{self, Node, ServeOptions};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// A name for the new node (unique in the district).
    #[arg(long)]
    pub node: String,
    #[arg(long)]
    pub role: Role,
    /// The node's street center (required for center and laptop).
    #[arg(long)]
    pub center: Option<String>,
    /// The field staff member a laptop serves.
    #[arg(long)]
    pub staff: Option<String>,
    /// Bind the certificate to a node that already exists (initialised offline):
    /// the id `yichuang info` prints there. Without it a new id is minted.
    #[arg(long)]
    pub node_id: Option<NodeId>,
    /// The laptop's center address, tried before the hub.
    #[arg(long)]
    pub center_addr: Option<SocketAddr>,
    /// Where to write the bundle (it holds a private key: 0600).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// The enrollment bundle from `yichuang issue`.
    #[arg(long)]
    pub bundle: PathBuf,
    /// The hub's address, if not the one in the bundle.
    #[arg(long)]
    pub hub: Option<SocketAddr>,
    /// Where this node accepts connections (a center, for its laptops).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A laptop's center address, tried before the hub.
    #[arg(long)]
    pub center_addr: Option<SocketAddr>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// The node's name or id.
    #[arg(long)]
    pub node: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Listen here instead of the address in net.json.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Dial this hub instead of the address in net.json.
    #[arg(long)]
    pub hub: Option<SocketAddr>,
    /// Serve the web pages and the API here: loopback unless told otherwise
    /// (port 0 picks a free port).
    #[arg(long = "http", default_value = crate::http::DEFAULT_HTTP_ADDR)]
    pub http: SocketAddr,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[arg(long)]
    pub json: bool,
}

pub fn issue(args: IssueArgs) -> Result<()> {
    let mut store = Store::open(&args.dir.dir)
        .with_context(|| format!("opening {}", args.dir.dir.display()))?;
    let req = IssueRequest {
        name: args.node,
        role: args.role,
        center: args.center,
        staff: args.staff,
        node_id: args.node_id,
        center_addr: args.center_addr,
    };
    let bundle = enroll::issue(&mut store, &req)?;
    enroll::write_bundle(&args.out, &bundle)?;
    if args.json {
        return print_json(&serde_json::json!({
            "node_id": bundle.node_id, "name": bundle.name, "role": bundle.role, "center": bundle.center,
            "staff": bundle.staff, "hub_addr": bundle.hub_addr, "bundle": args.out,
        }));
    }
    crate::outln!(
        "issued {} {:?} ({}) of center {}; bundle written to {} — copy it to the node and run `yichuang join --bundle`",
        bundle.role,
        bundle.name,
        bundle.node_id,
        bundle.center,
        args.out.display()
    );
    Ok(())
}

pub fn join(args: JoinArgs) -> Result<()> {
    let bundle = enroll::read_bundle(&args.bundle)?;
    let opts = JoinOptions {
        hub: args.hub,
        listen: args.listen,
        center_addr: args.center_addr,
    };
    let s = enroll::join(&args.dir.dir, &bundle, &opts)?;
    let net = enroll::NetConfig::load(&args.dir.dir)?;
    if args.json {
        return print_json(&serde_json::json!({ "node": s, "net": net }));
    }
    crate::outln!(
        "joined: {} {:?} ({}) of center {}, hub at {}",
        s.role,
        s.name,
        s.node_id,
        s.center,
        net.hub.map(|a| a.to_string()).unwrap_or_default()
    );
    Ok(())
}

pub fn revoke(args: RevokeArgs) -> Result<()> {
    let mut store = Store::open(&args.dir.dir)?;
    let (id, name) = enroll::revoke(&mut store, &args.node)?;
    if args.json {
        return print_json(&serde_json::json!({ "revoked": id, "name": name }));
    }
    crate::outln!(
        "revoked node {name:?} ({id}): the hub refuses it from now on, and the centers once the list reaches them"
    );
    Ok(())
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let opts = ServeOptions {
            listen: args.listen,
            hub: args.hub,
            center: None,
            status_file: true,
        };
        let node = Node::start(&args.dir.dir, opts).await?;
        let s = node.settings().clone();
        match node.listen_addr() {
            Some(a) => crate::outln!("serving {} {:?} ({}) on {a}", s.role, s.name, s.node_id),
            None => crate::outln!("serving {} {:?} ({})", s.role, s.name, s.node_id),
        }
        // The web side shares the node's store thread and reads its live peer board.
        let web_cancel = CancellationToken::new();
        let state = AppState::with_handle(
            node.store().clone(),
            s.clone(),
            Some(node.board().clone()),
            web_cancel.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting the web side: {}", e.message))?;
        let listener = crate::http::bind(args.http).await?;
        crate::outln!("http listening on http://{}", listener.local_addr()?);
        let web = tokio::spawn(crate::http::serve_on(listener, state, web_cancel.clone()));
        super::http::wait_for_signal().await;
        crate::outln!("shutting down");
        web_cancel.cancel();
        match web.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "http server"),
            Err(e) => tracing::warn!(error = %e, "http server task"),
            Ok(Ok(())) => {}
        }
        node.shutdown().await;
        Ok(())
    })
}

#[derive(Debug, Serialize)]
pub struct StatusPeer {
    pub node_id: String,
    pub name: String,
    pub role: String,
    pub center: String,
    pub addr: Option<SocketAddr>,
    pub connected: bool,
    pub last_contact_ms: i64,
    /// Changes of ours the peer has not acknowledged yet.
    pub waiting_out: u64,
    /// Changes of the peer's we have not filed yet (as far as we know).
    pub waiting_in: u64,
    /// Changes from this peer that we refused.
    pub rejected_from_peer: u64,
    /// Changes of ours this peer refused (this run).
    pub rejected_by_peer: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub node: crate::store::NodeSettings,
    pub serving: bool,
    pub listen: Option<SocketAddr>,
    pub cases: i64,
    pub conflicts: i64,
    pub rejected: i64,
    pub pending: i64,
    /// Why the last dial failed, while `serve` runs and cannot reach its hub or center.
    pub dial_error: Option<String>,
    pub peers: Vec<StatusPeer>,
}

pub(super) fn pid_alive(pid: u32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

pub fn collect_status(dir: &std::path::Path) -> Result<Status> {
    let store = Store::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let conn = store.connection();
    let conflicts: i64 = conn.query_row(
        "SELECT COUNT(*) FROM case_index WHERE conflicts > 0",
        [],
        |r| r.get(0),
    )?;
    let rejected: i64 = conn.query_row("SELECT COUNT(*) FROM rejections", [], |r| r.get(0))?;
    let live = serve::read_status(dir).filter(|l| l.running && pid_alive(l.pid));
    let mut peers: Vec<StatusPeer> = Vec::new();
    let mut stmt = conn
        .prepare("SELECT peer, sent_seq, received_seq, last_contact_ms FROM peers ORDER BY peer")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let live_peers: Vec<PeerStatus> = live.as_ref().map(|l| l.peers.clone()).unwrap_or_default();
    for row in rows {
        let (peer, acked, _received, last_contact_ms) = row?;
        let rejected_from_peer: i64 = conn.query_row(
            "SELECT COUNT(*) FROM rejections WHERE from_peer = ?1",
            [&peer],
            |r| r.get(0),
        )?;
        let found = live_peers.iter().find(|p| p.node_id.to_string() == peer);
        let p = match found {
            Some(l) => StatusPeer {
                node_id: peer.clone(),
                name: l.name.clone(),
                role: l.role.to_string(),
                center: l.center.clone(),
                addr: l.addr,
                connected: l.connected,
                last_contact_ms: l.last_contact_ms.max(last_contact_ms),
                waiting_out: l.waiting_out,
                waiting_in: l.waiting_in,
                rejected_from_peer: rejected_from_peer as u64,
                rejected_by_peer: l.rejected_by_peer,
                last_error: l.last_error.clone(),
            },
            None => {
                // Not served now: what the feed holds past the peer's acknowledgement
                // (an upper bound: it counts changes outside the peer's scope too).
                let waiting_out: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM changes WHERE seq > ?1 AND (from_peer IS NULL OR from_peer != ?2)",
                    params![acked, &peer],
                    |r| r.get(0),
                )?;
                StatusPeer {
                    node_id: peer.clone(),
                    name: String::new(),
                    role: String::new(),
                    center: String::new(),
                    addr: None,
                    connected: false,
                    last_contact_ms,
                    waiting_out: waiting_out as u64,
                    waiting_in: 0,
                    rejected_from_peer: rejected_from_peer as u64,
                    rejected_by_peer: 0,
                    last_error: None,
                }
            }
        };
        peers.push(p);
    }
    drop(stmt);
    // Names for peers known from the registry but not from this run.
    let mut store = store;
    if let Ok(registry) = store.registry() {
        for p in &mut peers {
            if p.name.is_empty()
                && let Ok(id) = p.node_id.parse::<NodeId>()
                && let Some(r) = registry.nodes.get(&id)
            {
                p.name = r.name.clone();
                p.role = r.role.to_string();
                p.center = r.center.clone();
            }
        }
    }
    Ok(Status {
        node: store.settings().clone(),
        serving: live.is_some(),
        listen: live.as_ref().and_then(|l| l.listen),
        cases: store.case_count()?,
        conflicts,
        rejected,
        pending: store.pending_count()?,
        dial_error: live.as_ref().and_then(|l| l.dial_error.clone()),
        peers,
    })
}

pub fn status(args: StatusArgs) -> Result<()> {
    let st = collect_status(&args.dir.dir)?;
    if args.json {
        return print_json(&st);
    }
    let s = &st.node;
    crate::outln!(
        "{} {:?} ({}), center {}: {} cases, {} with conflicts, {} refused changes, {} waiting for dependencies; {}",
        s.role,
        s.name,
        s.node_id,
        s.center,
        st.cases,
        st.conflicts,
        st.rejected,
        st.pending,
        if st.serving { "serving" } else { "not serving" }
    );
    if let Some(e) = &st.dial_error {
        crate::outln!("cannot reach its hub or center: {e}");
    }
    if st.peers.is_empty() {
        crate::outln!("no peers yet");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = st
        .peers
        .iter()
        .map(|p| {
            vec![
                if p.name.is_empty() {
                    p.node_id.clone()
                } else {
                    p.name.clone()
                },
                p.role.clone(),
                if p.connected {
                    "connected".into()
                } else {
                    "-".into()
                },
                if p.last_contact_ms > 0 {
                    crate::store::cases_fmt_time(p.last_contact_ms)
                } else {
                    "never".into()
                },
                p.waiting_out.to_string(),
                p.waiting_in.to_string(),
                p.rejected_from_peer.to_string(),
                p.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    crate::out!(
        "{}",
        super::table::render(
            &[
                "peer",
                "role",
                "link",
                "last contact",
                "to send",
                "to receive",
                "refused",
                "last error"
            ],
            &rows
        )
    );
    Ok(())
}

/// Checks shared by `init`: a hub must say where it listens.
pub fn init_hub(store: &mut Store, listen: Option<SocketAddr>) -> Result<()> {
    let Some(listen) = listen else {
        bail!("a hub needs --listen ADDR (for example 0.0.0.0:7400): centers and laptops dial it");
    };
    enroll::init_hub(store, listen)?;
    Ok(())
}
