//! Enrollment on disk: the PEM files and `net.json` in a node's data folder, the
//! hub's CA, issuing an enrollment bundle, joining with one, and revoking a node.
//!
//! The node-id rule: a node never changes its id (its actor ids, and so every change
//! it ever wrote, carry it). `issue` mints a fresh id, or binds the certificate to an
//! existing node's id given with `--node-id` (that node prints it with `yichuang info`).
//! `join` on a new folder creates the node with the bundle's id; on an initialised
//! folder it requires the bundle's id, role and center to be the node's own.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use yichuang_shared::ids::{NodeId, Role};

use super::tls::{self, CertPair, Credentials, NodeIdentity, TlsError, Trust};
use crate::store::nodes::{NodeRecord, RevokedRecord};
use crate::store::{self, NodeSettings, Store, StoreError};

pub const CA_KEY_FILE: &str = "ca.key";
pub const CA_CERT_FILE: &str = "ca.crt";
pub const NODE_KEY_FILE: &str = "node.key";
pub const NODE_CERT_FILE: &str = "node.crt";
pub const NET_FILE: &str = "net.json";
/// Version of the bundle format, checked by `join`.
const BUNDLE_VERSION: u32 = 1;
/// Largest bundle `join` reads: three PEMs and a few addresses.
const BUNDLE_MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {detail}")]
    Format { path: PathBuf, detail: String },
    #[error(
        "this node is not enrolled: no {0}; get a bundle from the hub (`yichuang issue`) and run `yichuang join`"
    )]
    NotEnrolled(PathBuf),
    #[error("only the hub holds the district CA; {0} is a {1} node")]
    NotHub(PathBuf, Role),
    #[error("{0}")]
    Refused(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EnrollError + '_ {
    move |source| EnrollError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a node listens and whom it dials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Where `serve` accepts connections (the hub; a center for its laptops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The hub's address (centers and laptops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<SocketAddr>,
    /// The laptop's center, tried before the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<SocketAddr>,
    /// The hub's node id: the only author whose reference-document changes count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_node_id: Option<NodeId>,
}

impl NetConfig {
    pub fn load(dir: &Path) -> Result<NetConfig, EnrollError> {
        let path = dir.join(NET_FILE);
        if !path.exists() {
            return Ok(NetConfig::default());
        }
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text).map_err(|e| EnrollError::Format {
            path,
            detail: e.to_string(),
        })
    }

    pub fn save(&self, dir: &Path) -> Result<(), EnrollError> {
        // Invariant: a plain struct of addresses always serialises.
        let text = serde_json::to_string_pretty(self).expect("net config serialises");
        write_file(&dir.join(NET_FILE), text.as_bytes(), false)
    }
}

/// Writes a file atomically (temporary file, fsync, rename); `private` files get 0600
/// from the moment they exist, so a key is never readable by others even briefly.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), EnrollError> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = options.open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

fn read_text(path: &Path) -> Result<String, EnrollError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// A node's credentials, trust and addresses, as `serve` needs them.
#[derive(Debug)]
pub struct NodeNet {
    pub creds: Credentials,
    pub trust: Arc<Trust>,
    pub config: NetConfig,
}

pub fn load(dir: &Path, settings: &NodeSettings) -> Result<NodeNet, EnrollError> {
    let cert_path = dir.join(NODE_CERT_FILE);
    if !cert_path.exists() {
        return Err(EnrollError::NotEnrolled(cert_path));
    }
    let pair = CertPair {
        cert_pem: read_text(&cert_path)?,
        key_pem: read_text(&dir.join(NODE_KEY_FILE))?,
    };
    let creds = Credentials::from_pem(&pair)?;
    if creds.identity.node_id != settings.node_id {
        return Err(EnrollError::Refused(format!(
            "{} names node {}, but this folder is node {}",
            cert_path.display(),
            creds.identity.node_id,
            settings.node_id
        )));
    }
    let ca = tls::cert_from_pem(&read_text(&dir.join(CA_CERT_FILE))?)?;
    let trust = Trust::new(settings.district.clone(), ca);
    Ok(NodeNet {
        creds,
        trust,
        config: NetConfig::load(dir)?,
    })
}

fn identity_of(s: &NodeSettings) -> NodeIdentity {
    NodeIdentity {
        node_id: s.node_id,
        name: s.name.clone(),
        role: s.role,
        district: s.district.clone(),
        center: s.center.clone(),
        staff: s.staff.clone(),
    }
}

/// The hub's half of `init`: the district CA, the hub's own certificate, its listen
/// address, and its own entry in the registry.
pub fn init_hub(store: &mut Store, listen: SocketAddr) -> Result<(), EnrollError> {
    let dir = store.dir().to_owned();
    let s = store.settings().clone();
    let ca = tls::make_ca(&s.district)?;
    write_file(&dir.join(CA_KEY_FILE), ca.key_pem.as_bytes(), true)?;
    write_file(&dir.join(CA_CERT_FILE), ca.cert_pem.as_bytes(), false)?;
    let own = tls::issue_node_cert(&ca.key_pem, &identity_of(&s))?;
    write_file(&dir.join(NODE_KEY_FILE), own.key_pem.as_bytes(), true)?;
    write_file(&dir.join(NODE_CERT_FILE), own.cert_pem.as_bytes(), false)?;
    NetConfig {
        listen: Some(listen),
        hub: None,
        center: None,
        hub_node_id: Some(s.node_id),
    }
    .save(&dir)?;
    let record = NodeRecord {
        name: s.name,
        role: Role::Hub,
        center: s.center,
        staff: String::new(),
        issued_ms: store::now_ms(),
    };
    store.enroll_node(s.node_id, &record)?;
    Ok(())
}

/// Everything a node needs to join: its certificate and key, the CA, and where the hub is.
#[derive(Clone, Serialize, Deserialize)]
pub struct Bundle {
    pub version: u32,
    pub district: String,
    pub node_id: NodeId,
    pub name: String,
    pub role: Role,
    pub center: String,
    #[serde(default)]
    pub staff: String,
    pub hub_addr: Option<SocketAddr>,
    pub hub_node_id: NodeId,
    #[serde(default)]
    pub center_addr: Option<SocketAddr>,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("node_id", &self.node_id)
            .field("role", &self.role)
            .finish()
    }
}

/// What `issue` is asked for.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    pub name: String,
    pub role: Role,
    pub center: Option<String>,
    pub staff: Option<String>,
    /// Bind the certificate to an existing node's id instead of minting one.
    pub node_id: Option<NodeId>,
    pub center_addr: Option<SocketAddr>,
}

pub fn issue(store: &mut Store, req: &IssueRequest) -> Result<Bundle, EnrollError> {
    let dir = store.dir().to_owned();
    let hub = store.settings().clone();
    if hub.role != Role::Hub {
        return Err(EnrollError::NotHub(dir, hub.role));
    }
    let district = store::district();
    let center = match (req.role, &req.center) {
        (Role::Hub, _) => {
            return Err(EnrollError::Refused(
                "a district has one hub; issue center or laptop bundles".into(),
            ));
        }
        (_, Some(c)) if district.center(c).is_some() => c.clone(),
        (_, Some(c)) => {
            return Err(EnrollError::Refused(format!(
                "unknown center {c:?} in district {}",
                district.code
            )));
        }
        (role, None) => {
            return Err(EnrollError::Refused(format!(
                "a {role} bundle needs --center CODE"
            )));
        }
    };
    let staff = req.staff.clone().unwrap_or_default();
    if req.role == Role::Laptop && staff.is_empty() {
        return Err(EnrollError::Refused(
            "a laptop bundle needs --staff ID: the field staff member it serves".into(),
        ));
    }
    let registry = store.registry()?;
    if let Some(id) = req.node_id
        && registry.revoked.contains_key(&id)
    {
        return Err(EnrollError::Refused(format!(
            "node {id} is revoked; a revoked node is never enrolled again"
        )));
    }
    if let Some((id, _)) = registry.find(&req.name)
        && Some(id) != req.node_id
    {
        return Err(EnrollError::Refused(format!(
            "the name {:?} is already enrolled as node {id}",
            req.name
        )));
    }
    let node_id = req.node_id.unwrap_or_else(|| NodeId(store::random_bytes()));
    let who = NodeIdentity {
        node_id,
        name: req.name.clone(),
        role: req.role,
        district: hub.district.clone(),
        center: center.clone(),
        staff: staff.clone(),
    };
    let ca_key = read_text(&dir.join(CA_KEY_FILE))?;
    let pair = tls::issue_node_cert(&ca_key, &who)?;
    let net = NetConfig::load(&dir)?;
    let record = NodeRecord {
        name: who.name.clone(),
        role: who.role,
        center: center.clone(),
        staff: staff.clone(),
        issued_ms: store::now_ms(),
    };
    store.enroll_node(node_id, &record)?;
    Ok(Bundle {
        version: BUNDLE_VERSION,
        district: hub.district,
        node_id,
        name: who.name,
        role: who.role,
        center,
        staff,
        // A hub listening on all addresses has no one address to give: `join --hub` says it.
        hub_addr: net.listen.filter(|a| !a.ip().is_unspecified()),
        hub_node_id: hub.node_id,
        center_addr: req.center_addr,
        ca_pem: read_text(&dir.join(CA_CERT_FILE))?,
        cert_pem: pair.cert_pem,
        key_pem: pair.key_pem,
    })
}

pub fn write_bundle(path: &Path, bundle: &Bundle) -> Result<(), EnrollError> {
    // Invariant: the bundle is plain strings and addresses.
    let text = serde_json::to_string_pretty(bundle).expect("bundle serialises");
    write_file(path, text.as_bytes(), true)
}

pub fn read_bundle(path: &Path) -> Result<Bundle, EnrollError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if meta.len() > BUNDLE_MAX_BYTES {
        return Err(EnrollError::Format {
            path: path.to_owned(),
            detail: format!("larger than {BUNDLE_MAX_BYTES} bytes"),
        });
    }
    let text = read_text(path)?;
    let bundle: Bundle = serde_json::from_str(&text).map_err(|e| EnrollError::Format {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if bundle.version != BUNDLE_VERSION {
        return Err(EnrollError::Format {
            path: path.to_owned(),
            detail: format!("bundle version {}", bundle.version),
        });
    }
    Ok(bundle)
}

/// What `join` may override from the bundle.
#[derive(Clone, Debug, Default)]
pub struct JoinOptions {
    pub hub: Option<SocketAddr>,
    pub listen: Option<SocketAddr>,
    pub center_addr: Option<SocketAddr>,
}

/// Attaches a node to its hub: creates the folder from the bundle, or checks that an
/// existing node is the one the bundle was issued for. Returns the node's settings.
pub fn join(dir: &Path, bundle: &Bundle, opts: &JoinOptions) -> Result<NodeSettings, EnrollError> {
    let creds = Credentials::from_pem(&CertPair {
        cert_pem: bundle.cert_pem.clone(),
        key_pem: bundle.key_pem.clone(),
    })?;
    if creds.identity.node_id != bundle.node_id || creds.identity.role != bundle.role {
        return Err(EnrollError::Refused(
            "the bundle's certificate does not match the bundle".into(),
        ));
    }
    let initialised = dir.join(store::DB_FILE).exists();
    let settings = if initialised {
        let store = Store::open(dir)?;
        let s = store.settings().clone();
        if s.node_id != bundle.node_id {
            return Err(EnrollError::Refused(format!(
                "this bundle was issued for node {}, but {} is node {}; a node keeps its id (its changes carry it). \
                 Ask the hub for `yichuang issue --node-id {} …` (the id `yichuang info` prints)",
                bundle.node_id,
                dir.display(),
                s.node_id,
                s.node_id
            )));
        }
        if s.role != bundle.role
            || s.center != bundle.center
            || s.district != bundle.district
            || s.staff != bundle.staff
        {
            return Err(EnrollError::Refused(format!(
                "the bundle is for a {} of center {} (staff {:?}); this node is a {} of center {} (staff {:?})",
                bundle.role, bundle.center, bundle.staff, s.role, s.center, s.staff
            )));
        }
        s
    } else {
        let s = NodeSettings {
            node_id: bundle.node_id,
            name: bundle.name.clone(),
            role: bundle.role,
            district: bundle.district.clone(),
            center: bundle.center.clone(),
            staff: bundle.staff.clone(),
            created_ms: store::now_ms(),
        };
        Store::init(dir, s.clone())?;
        s
    };
    write_file(&dir.join(NODE_KEY_FILE), bundle.key_pem.as_bytes(), true)?;
    write_file(&dir.join(NODE_CERT_FILE), bundle.cert_pem.as_bytes(), false)?;
    write_file(&dir.join(CA_CERT_FILE), bundle.ca_pem.as_bytes(), false)?;
    let mut net = NetConfig::load(dir)?;
    net.hub = opts.hub.or(bundle.hub_addr).or(net.hub);
    net.listen = opts.listen.or(net.listen);
    net.center = opts.center_addr.or(bundle.center_addr).or(net.center);
    net.hub_node_id = Some(bundle.hub_node_id);
    if net.hub.is_none() {
        return Err(EnrollError::Refused(
            "no hub address: the bundle has none (the hub listens on all addresses); pass --hub ADDR".into(),
        ));
    }
    net.save(dir)?;
    Ok(settings)
}

/// Revokes a node by name or id. The running hub sees the registry change within
/// its poll interval and closes the node's connection; new handshakes fail at once.
pub fn revoke(store: &mut Store, key: &str) -> Result<(NodeId, String), EnrollError> {
    if store.settings().role != Role::Hub {
        return Err(EnrollError::NotHub(
            store.dir().to_owned(),
            store.settings().role,
        ));
    }
    let registry = store.registry()?;
    let (id, name) = match registry.find(key) {
        Some((id, r)) => (id, r.name.clone()),
        None => match key.parse::<NodeId>() {
            Ok(id) => (id, String::new()),
            Err(_) => {
                return Err(EnrollError::Refused(format!(
                    "no enrolled node named {key:?}"
                )));
            }
        },
    };
    if id == store.settings().node_id {
        return Err(EnrollError::Refused("the hub cannot revoke itself".into()));
    }
    store.revoke_node(
        id,
        &RevokedRecord {
            name: name.clone(),
            revoked_ms: store::now_ms(),
        },
    )?;
    Ok((id, name))
}
