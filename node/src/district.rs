//! A whole district on one machine, for the demo, the fan-in benchmark and tests:
//! enrollment of every node in folders under one root, then nodes started in this
//! process with real QUIC on loopback, each center behind a relay that can cut it off.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use yichuang_shared::ids::{NodeId, Role};

use crate::net::enroll::{self, IssueRequest, JoinOptions};
use crate::net::relay::{Faults, Relay};
use crate::serve::{Node, ServeError, ServeOptions};
use crate::store::{self, NodeSettings, Store, StoreError};

/// Loopback with an OS-chosen port.
pub const LOOPBACK_ANY: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

#[derive(Debug, thiserror::Error)]
pub enum DistrictError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enroll(#[from] enroll::EnrollError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("relay: {0}")]
    Relay(std::io::Error),
    #[error("the district has {0} centers; it has 13 at most")]
    TooManyCenters(usize),
}

/// One node's folder and role in the district layout.
#[derive(Clone, Debug)]
pub struct Member {
    pub dir: PathBuf,
    pub settings: NodeSettings,
    /// Index of the center a laptop belongs to.
    pub center_index: Option<usize>,
}

/// The enrolled district on disk.
#[derive(Clone, Debug)]
pub struct Layout {
    pub hub: Member,
    pub centers: Vec<Member>,
    pub laptops: Vec<Member>,
}

impl Layout {
    pub fn all(&self) -> impl Iterator<Item = &Member> {
        std::iter::once(&self.hub)
            .chain(&self.centers)
            .chain(&self.laptops)
    }
}

/// Creates a hub, `centers` centers and `laptops` laptops (spread over the centers)
/// under `root`, each enrolled by the hub and joined with its bundle.
pub fn enroll_district(
    root: &Path,
    centers: usize,
    laptops: usize,
) -> Result<Layout, DistrictError> {
    let district = store::district();
    if centers > district.centers.len() {
        return Err(DistrictError::TooManyCenters(centers));
    }
    let hub_dir = root.join("hub");
    let hub_settings = NodeSettings {
        node_id: NodeId(store::random_bytes()),
        name: "hub".into(),
        role: Role::Hub,
        district: district.code.clone(),
        center: district.hub.code.clone(),
        staff: String::new(),
        created_ms: store::now_ms(),
    };
    let mut hub = Store::init(&hub_dir, hub_settings.clone())?;
    enroll::init_hub(&mut hub, LOOPBACK_ANY)?;
    let mut join = |name: String,
                    role: Role,
                    center: &str,
                    staff: Option<String>,
                    listen: Option<SocketAddr>| {
        let req = IssueRequest {
            name: name.clone(),
            role,
            center: Some(center.to_owned()),
            staff,
            node_id: None,
            center_addr: None,
        };
        let bundle = enroll::issue(&mut hub, &req)?;
        let dir = root.join(&name);
        // The hub's address is known only once it runs; `Node::start` is told it.
        let opts = JoinOptions {
            hub: Some(LOOPBACK_ANY),
            listen,
            center_addr: None,
        };
        let settings = enroll::join(&dir, &bundle, &opts)?;
        Ok::<_, DistrictError>((dir, settings))
    };
    let mut center_members = Vec::new();
    for c in district.centers.iter().take(centers) {
        let (dir, settings) = join(
            format!("center-{}", c.code),
            Role::Center,
            &c.code,
            None,
            Some(LOOPBACK_ANY),
        )?;
        center_members.push(Member {
            dir,
            settings,
            center_index: None,
        });
    }
    let mut laptop_members = Vec::new();
    for i in 0..laptops {
        let ci = i % centers.max(1);
        let code = district.centers[ci].code.clone();
        let (dir, settings) = join(
            format!("laptop-{}-{}", code, i + 1),
            Role::Laptop,
            &code,
            Some(format!("S{:02}", i + 1)),
            None,
        )?;
        laptop_members.push(Member {
            dir,
            settings,
            center_index: Some(ci),
        });
    }
    Ok(Layout {
        hub: Member {
            dir: hub_dir,
            settings: hub_settings,
            center_index: None,
        },
        centers: center_members,
        laptops: laptop_members,
    })
}

/// A district running in this process.
#[derive(Debug)]
pub struct Running {
    pub hub: Node,
    pub centers: Vec<Node>,
    pub laptops: Vec<Node>,
    /// One relay per center, between it and the hub.
    pub relays: Vec<Relay>,
}

/// Starts every node of `layout`: the hub, each center dialing the hub through its
/// own relay, each laptop dialing its center (else the hub).
pub async fn start(layout: &Layout, status_files: bool) -> Result<Running, DistrictError> {
    let hub = Node::start(
        &layout.hub.dir,
        ServeOptions {
            status_file: status_files,
            ..Default::default()
        },
    )
    .await?;
    // Invariant: a hub always listens (Node::start refuses otherwise).
    let hub_addr = hub.listen_addr().expect("the hub listens");
    let mut relays = Vec::new();
    let mut centers = Vec::new();
    for (i, m) in layout.centers.iter().enumerate() {
        let relay = Relay::start(hub_addr, Faults::default(), 0x5eed + i as u64)
            .await
            .map_err(DistrictError::Relay)?;
        let opts = ServeOptions {
            hub: Some(relay.addr()),
            status_file: status_files,
            ..Default::default()
        };
        centers.push(Node::start(&m.dir, opts).await?);
        relays.push(relay);
    }
    let mut laptops = Vec::new();
    for m in &layout.laptops {
        let center = m
            .center_index
            .and_then(|i| centers.get(i))
            .and_then(|c: &Node| c.listen_addr());
        let opts = ServeOptions {
            hub: Some(hub_addr),
            center,
            status_file: status_files,
            ..Default::default()
        };
        laptops.push(Node::start(&m.dir, opts).await?);
    }
    Ok(Running {
        hub,
        centers,
        laptops,
        relays,
    })
}

impl Running {
    pub async fn shutdown(self) {
        let mut all = Vec::new();
        all.extend(self.laptops);
        all.extend(self.centers);
        for n in all {
            n.shutdown().await;
        }
        self.hub.shutdown().await;
        for r in self.relays {
            r.shutdown().await;
        }
    }
}

/// Each case a node holds: its home center and its heads, hex.
pub fn case_digest(dir: &Path) -> Result<BTreeMap<String, (String, String)>, StoreError> {
    let store = Store::open(dir)?;
    let mut stmt = store.connection().prepare(
        "SELECT d.doc_id, ci.home_center, hex(d.heads) FROM docs d JOIN case_index ci ON ci.doc_id = d.doc_id WHERE d.kind = 'case'",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (r.get::<_, String>(1)?, r.get::<_, String>(2)?),
        ))
    })?;
    let mut out = BTreeMap::new();
    for r in rows {
        let (id, v) = r?;
        out.insert(id, v);
    }
    Ok(out)
}

/// Disagreements between the hub and the others: a center must hold exactly the
/// hub's cases of its center, a laptop only cases the hub holds, with the same heads.
pub fn disagreements(layout: &Layout) -> Result<Vec<String>, StoreError> {
    let hub = case_digest(&layout.hub.dir)?;
    let mut out = Vec::new();
    for m in &layout.centers {
        let mine = case_digest(&m.dir)?;
        let expected: BTreeMap<_, _> = hub
            .iter()
            .filter(|(_, (home, _))| *home == m.settings.center)
            .collect();
        let missing_at_hub = mine.keys().filter(|k| !hub.contains_key(*k)).count();
        let missing_here = expected.keys().filter(|k| !mine.contains_key(**k)).count();
        let differ = mine
            .iter()
            .filter(|(k, v)| hub.get(*k).is_some_and(|h| h != *v))
            .count();
        if missing_at_hub + missing_here + differ > 0 {
            out.push(format!(
                "{}: {missing_at_hub} cases not at the hub, {missing_here} of the hub's not here, {differ} differ",
                m.settings.name
            ));
        }
    }
    for m in &layout.laptops {
        let mine = case_digest(&m.dir)?;
        let missing_at_hub = mine.keys().filter(|k| !hub.contains_key(*k)).count();
        let differ = mine
            .iter()
            .filter(|(k, v)| hub.get(*k).is_some_and(|h| h != *v))
            .count();
        if missing_at_hub + differ > 0 {
            out.push(format!(
                "{}: {missing_at_hub} cases not at the hub, {differ} differ",
                m.settings.name
            ));
        }
    }
    Ok(out)
}
