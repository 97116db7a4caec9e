//! The node's durable store: one SQLite file in WAL mode holding every Automerge
//! change, per-document snapshots, the case index, and the node's settings.
//!
//! Architecture invariant: a write is acknowledged only after its transaction has
//! committed with `synchronous=FULL`; nothing is held only in memory. The store is
//! synchronous and blocking: async code calls it from a blocking thread.

mod actor;
pub mod backup;
mod cases;
pub mod dashboard;
pub mod docs;
pub mod nodes;
mod remote;
mod rules;
pub mod schema;
pub mod status;
pub mod sync;
mod tx;
pub mod users;

use std::path::{Path, PathBuf};

use automerge::ActorId;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use yichuang_shared::case::CaseError;
use yichuang_shared::catalog::{self, CatalogError, CatalogFile, District};
use yichuang_shared::ids::{NodeId, RefDoc, Role};

pub use actor::{GROUP_MAX, StoreHandle};
pub use cases::{
    CaseFilter, CaseRow, CreateCase, Created, LIST_LIMIT_MAX, fmt_time as cases_fmt_time,
};
pub use docs::DocCache;
pub use remote::Applied;
pub use rules::{Due, DueCase, ItemRules, RulesContext};
pub use status::{LivePeer, PeerHealth, SyncStatus};
use tx::Tx;
pub use users::{User, UserRole};

/// The database file inside a node's data folder.
pub const DB_FILE: &str = "yichuang.db";
/// How long a writer waits for another process (the CLI beside `serve`) to commit.
/// Case writes take milliseconds; SQLite's busy wait is not fair, so a loaded node
/// may make a CLI writer wait several rounds. Fifteen seconds means something is stuck.
const BUSY_TIMEOUT_MS: u64 = 15_000;

/// The district this build was made for, and its catalog. A node is seeded from them.
pub const DISTRICT_JSON: &str = include_str!("../../../fixtures/district.json");
pub const CATALOG_JSON: &str = include_str!("../../../fixtures/catalog.json");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} is not a Yichuang data folder (no {DB_FILE}); run `yichuang init` first")]
    NotInitialized(PathBuf),
    #[error("{0} already holds a Yichuang node; refusing to initialise it again")]
    AlreadyInitialized(PathBuf),
    #[error(
        "the data file was written by a newer Yichuang (schema {found}, this program knows up to {supported}); upgrade the program, the file is untouched"
    )]
    NewerSchema { found: u32, supported: u32 },
    #[error(
        "the disk is full: nothing from this operation was saved, and everything saved before is intact; free some space and retry"
    )]
    DiskFull,
    #[error(
        "the data folder is read-only: nothing was written; check the folder's permissions or the disk"
    )]
    ReadOnly,
    #[error(
        "the data file is busy (another process holds a write lock for over {BUSY_TIMEOUT_MS} ms)"
    )]
    Busy,
    #[error("no case {0:?} on this node")]
    UnknownCase(String),
    #[error("unknown item code {0:?}; `yichuang catalog list` shows the district's items")]
    UnknownItem(String),
    #[error("unknown district {0:?}: this build carries district {1}")]
    UnknownDistrict(String, String),
    #[error("unknown center {0:?} in district {1}")]
    UnknownCenter(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("only the hub may write reference documents; this node is a {role}")]
    NotHub { role: Role },
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Case(Box<CaseError>),
    #[error(transparent)]
    Catalog(Box<CatalogError>),
    #[error("automerge: {0}")]
    Automerge(Box<automerge::AutomergeError>),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("sqlite: {0}")]
    Sqlite(Box<rusqlite::Error>),
    #[error("the store has shut down")]
    Closed,
    #[error("saving failed, nothing from this operation was kept: {0}")]
    CommitFailed(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(ErrorCode::ReadOnly)
            | Some(ErrorCode::CannotOpen)
            | Some(ErrorCode::PermissionDenied) => StoreError::ReadOnly,
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreError::Busy,
            _ => StoreError::Sqlite(Box::new(e)),
        }
    }
}

impl From<CaseError> for StoreError {
    fn from(e: CaseError) -> Self {
        StoreError::Case(Box::new(e))
    }
}

impl From<CatalogError> for StoreError {
    fn from(e: CatalogError) -> Self {
        StoreError::Catalog(Box::new(e))
    }
}

impl From<automerge::AutomergeError> for StoreError {
    fn from(e: automerge::AutomergeError) -> Self {
        StoreError::Automerge(Box::new(e))
    }
}

/// Who this node is. Written once by `init`; kept in the database so a data
/// folder is one file to back up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSettings {
    pub node_id: NodeId,
    pub name: String,
    pub role: Role,
    pub district: String,
    /// The center this node belongs to: its own for a center, its staff member's for a
    /// laptop, the hub's code for the hub.
    pub center: String,
    /// The field staff member a laptop serves; empty for other roles.
    pub staff: String,
    pub created_ms: i64,
}

impl NodeSettings {
    /// The tag a node puts before its case-number sequence so numbers made by several
    /// nodes of one center never collide.
    pub fn case_tag(&self) -> String {
        match self.role {
            Role::Center => String::new(),
            Role::Hub => "H".into(),
            Role::Laptop => format!("L{}-", &self.node_id.to_string()[..4]),
        }
    }
}

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Most documents kept loaded at once; the rest are read from disk on demand.
    pub cache_docs_max: usize,
    /// A cap on the file's pages (SQLite `max_page_count`), for operators who want
    /// a hard size limit and for tests of a full disk.
    pub max_page_count: Option<u32>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        // A clerk works on a handful of cases at a time; the hub serves bursts. 512
        // documents of ~10 KiB each keep the cache near 5 MiB.
        StoreConfig {
            cache_docs_max: 512,
            max_page_count: None,
        }
    }
}

/// A node's store, owning one SQLite connection.
pub struct Store {
    conn: Connection,
    dir: PathBuf,
    settings: NodeSettings,
    actor: ActorId,
    cache: DocCache,
    catalog: Option<(
        i64,
        std::collections::BTreeMap<String, catalog::CatalogItem>,
    )>,
    /// Inside [`Store::group`]: operations use savepoints and the group commits once.
    in_group: bool,
    /// Catalog limits and calendar, rebuilt when their documents change.
    rules: Option<std::sync::Arc<RulesContext>>,
    /// The node registry as last read, with the `ref-nodes` sequence it was read at.
    /// Behind a cell because the sync engine asks about authors through `&self`.
    registry_memo: std::cell::RefCell<Option<(i64, std::sync::Arc<nodes::Registry>)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("node", &self.settings.node_id)
            .finish()
    }
}

/// This node's clock; see [`crate::clock`].
pub fn now_ms() -> i64 {
    crate::clock::now_ms()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // Invariant: the OS random source is available on every platform we run on; without
    // it no id could be made safely, so stopping is right.
    getrandom::fill(&mut b).expect("os random source");
    b
}

pub fn district() -> District {
    // Invariant: the fixture is compiled in and checked by tests.
    serde_json::from_str(DISTRICT_JSON).expect("embedded district fixture is valid")
}

pub fn catalog_file() -> CatalogFile {
    // Invariant: the fixture is compiled in and checked by tests.
    serde_json::from_str(CATALOG_JSON).expect("embedded catalog fixture is valid")
}

fn open_connection(path: &Path, config: &StoreConfig) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    // WAL lets the CLI read while `serve` writes; FULL makes every commit durable
    // before it returns, which is what "acknowledged" means here.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!(
            "could not switch the data file to WAL (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if let Some(pages) = config.max_page_count {
        conn.pragma_update(None, "max_page_count", pages)?;
    }
    Ok(conn)
}

impl Store {
    /// Creates a node's data folder and seeds it: settings, the reference documents,
    /// a fresh feed epoch.
    pub fn init(dir: &Path, settings: NodeSettings) -> Result<Store, StoreError> {
        let district = district();
        if settings.district != district.code {
            return Err(StoreError::UnknownDistrict(
                settings.district.clone(),
                district.code,
            ));
        }
        if settings.role != Role::Hub && district.center(&settings.center).is_none() {
            return Err(StoreError::UnknownCenter(
                settings.center.clone(),
                district.code,
            ));
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        if path.exists() {
            return Err(StoreError::AlreadyInitialized(dir.to_owned()));
        }
        let config = StoreConfig::default();
        let mut conn = open_connection(&path, &config)?;
        schema::upgrade(&mut conn)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let json =
            serde_json::to_string(&settings).map_err(|e| StoreError::Invalid(e.to_string()))?;
        tx.execute("INSERT INTO meta (key, value) VALUES ('node', ?1)", [json])?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('feed_epoch', ?1)",
            [u64::from_le_bytes(random_bytes::<8>()).to_string()],
        )?;
        tx.commit()?;
        let mut store = Store::from_parts(conn, dir, settings, config);
        store.seed_reference_docs()?;
        Ok(store)
    }

    /// Opens an existing data folder, upgrading an older file.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreConfig::default())
    }

    pub fn open_with(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::NotInitialized(dir.to_owned()));
        }
        let mut conn = open_connection(&path, &config)?;
        schema::upgrade(&mut conn)?;
        let json: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'node'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let json = json.ok_or_else(|| StoreError::Corrupt("node settings are missing".into()))?;
        let settings: NodeSettings = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("node settings: {e}")))?;
        Ok(Store::from_parts(conn, dir, settings, config))
    }

    fn from_parts(
        conn: Connection,
        dir: &Path,
        settings: NodeSettings,
        config: StoreConfig,
    ) -> Store {
        let actor = settings.node_id.actor(random_bytes());
        Store {
            conn,
            dir: dir.to_owned(),
            actor,
            cache: DocCache::new(config.cache_docs_max),
            settings,
            catalog: None,
            in_group: false,
            rules: None,
            registry_memo: std::cell::RefCell::new(None),
        }
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn feed_epoch(&self) -> Result<u64, StoreError> {
        let v: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'feed_epoch'", [], |r| {
                    r.get(0)
                })?;
        v.parse()
            .map_err(|_| StoreError::Corrupt("feed epoch".into()))
    }

    fn seed_reference_docs(&mut self) -> Result<(), StoreError> {
        let mut docs = vec![
            (RefDoc::Catalog, catalog::seed_catalog(&catalog_file())?),
            (RefDoc::Calendar, catalog::seed_calendar()?),
            (RefDoc::Nodes, catalog::seed_nodes()?),
        ];
        let tx = Tx::begin(&self.conn, self.in_group)?;
        for (which, doc) in &mut docs {
            let changes = doc.get_changes(&[]);
            docs::write_changes(
                &tx,
                &which.doc_id(),
                docs::kind_of(*which),
                &changes,
                doc,
                None,
                now_ms(),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The catalog as the reference document holds it now, re-read when it changed.
    pub fn catalog(
        &mut self,
    ) -> Result<&std::collections::BTreeMap<String, catalog::CatalogItem>, StoreError> {
        let id = RefDoc::Catalog.doc_id();
        let last_seq: i64 = self
            .conn
            .query_row(
                "SELECT last_seq FROM docs WHERE doc_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::Corrupt("the catalog document is missing".into()))?;
        if self
            .catalog
            .as_ref()
            .is_none_or(|(seq, _)| *seq != last_seq)
        {
            let doc = self.load_doc(&id)?;
            let items = catalog::read_catalog(&doc)?;
            self.catalog = Some((last_seq, items));
        }
        // Invariant: filled just above.
        Ok(&self.catalog.as_ref().expect("catalog loaded").1)
    }

    /// Runs `f` as one group commit: every write inside it is a savepoint of one
    /// transaction, committed with a single fsync. A write acknowledged inside `f`
    /// is durable only once this returns `Ok`; on failure nothing of the group is kept
    /// and the cache is cleared, since it may hold what the disk does not.
    pub fn group<R>(&mut self, f: impl FnOnce(&mut Store) -> R) -> Result<R, StoreError> {
        debug_assert!(!self.in_group, "groups do not nest");
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.in_group = true;
        let result = f(self);
        self.in_group = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.cache.clear();
            self.catalog = None;
            return Err(e.into());
        }
        Ok(result)
    }

    /// Runs SQLite's own consistency check.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}
