//! The node's sync status as the clerks' banner, the dashboard and `/metrics` show
//! it: is the hub reachable, what has not reached it yet, and each peer's health.
//!
//! Architecture invariant: this is the only place the web side reads the sync
//! tables (`peers`, `pending`, `rejections`, `changes.from_peer`). When the sync
//! engine changes them, this file alone adapts.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ObjType, ROOT, ReadDoc, Value};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use yichuang_shared::ids::{RefDoc, Role};

use super::docs::fresh_doc;
use super::{Store, StoreError, now_ms};

/// A peer heard from within this window counts as connected. The transport's
/// keep-alive and acknowledgements touch `last_contact_ms` every few seconds while a
/// session is up, so 30 s tolerates a slow batch without flapping the banner.
pub const CONNECTED_WINDOW_MS: i64 = 30_000;
/// Most case numbers the status lists as "not yet at the hub"; the count is exact,
/// the list is what a clerk can act on in one screen.
pub const UNSYNCED_CASES_LISTED_MAX: usize = 500;

/// One peer's health, from the hub's (or any node's) point of view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerHealth {
    /// The peer's node id, as the sync engine keys it.
    pub peer: String,
    /// The name the district's node registry gives it, when known.
    pub name: String,
    /// `hub`, `center`, `laptop`, or empty when the registry does not list it.
    pub role: String,
    pub center: String,
    pub connected: bool,
    pub last_contact_ms: i64,
    /// How far the peer acknowledged our change feed.
    pub acked_seq: i64,
    /// How far we filed the peer's feed.
    pub received_seq: i64,
    /// Our changes after what the peer acknowledged.
    pub unacked_changes: i64,
    /// When the oldest of those was stored here.
    pub oldest_unacked_ms: Option<i64>,
    /// Changes from this peer that we refused.
    pub rejected: i64,
}

/// What the sync banner shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    pub role: Role,
    /// The hub itself: everything it holds is "at the hub".
    pub is_hub: bool,
    /// A hub peer was heard from within [`CONNECTED_WINDOW_MS`] (the hub: any peer).
    pub connected: bool,
    /// Last contact with the hub (the hub: with any peer); 0 = never.
    pub last_contact_ms: i64,
    /// The newest change sequence number on this node.
    pub head_seq: i64,
    /// How far the hub acknowledged this node's feed.
    pub hub_acked_seq: i64,
    /// Case changes stored here that the hub has not acknowledged.
    pub unsynced_changes: i64,
    /// Cases those changes belong to.
    pub unsynced_cases: i64,
    /// Their case numbers, newest first, at most [`UNSYNCED_CASES_LISTED_MAX`].
    pub unsynced_case_nos: Vec<String>,
    /// When the oldest unsynced change was stored here.
    pub oldest_unsynced_ms: Option<i64>,
    /// Received changes waiting for their dependencies.
    pub pending_changes: i64,
    /// Changes this node refused.
    pub rejections: i64,
    pub peers: Vec<PeerHealth>,
    /// When this status was read.
    pub now_ms: i64,
}

#[derive(Clone, Debug, Default)]
struct Registered {
    name: String,
    role: String,
    center: String,
}

struct PeerRow {
    peer: String,
    sent_seq: i64,
    received_seq: i64,
    last_contact_ms: i64,
}

impl Store {
    /// The nodes the district's registry lists, by node id. Entries are JSON objects
    /// written by the hub's enrollment; unreadable ones are skipped, not fatal, so a
    /// newer registry format never takes the banner down.
    fn registered_nodes(&mut self) -> Result<BTreeMap<String, Registered>, StoreError> {
        let doc = fresh_doc(&self.conn, &mut self.cache, &RefDoc::Nodes.doc_id())?;
        let mut out = BTreeMap::new();
        let Some((Value::Object(ObjType::Map), nodes)) = doc.get(ROOT, "nodes")? else {
            return Ok(out);
        };
        for key in doc.keys(&nodes).collect::<Vec<_>>() {
            if let Ok(Some((Value::Scalar(s), _))) = doc.get(&nodes, key.as_str())
                && let Some(text) = s.as_str()
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
            {
                let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                out.insert(
                    key.clone(),
                    Registered {
                        name: field("name"),
                        role: field("role"),
                        center: field("center"),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The node's sync status. Which peers are "the hub": those the registry lists
    /// with role hub, and those it does not list at all (the hub issues every other
    /// node's enrollment, so an unlisted peer can only be the hub itself).
    pub fn sync_status(&mut self) -> Result<SyncStatus, StoreError> {
        let now = now_ms();
        let registry = self.registered_nodes()?;
        let rows: Vec<PeerRow> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT peer, sent_seq, received_seq, last_contact_ms FROM peers ORDER BY peer",
            )?;
            stmt.query_map([], |r| {
                Ok(PeerRow {
                    peer: r.get(0)?,
                    sent_seq: r.get(1)?,
                    received_seq: r.get(2)?,
                    last_contact_ms: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?
        };
        let head_seq: i64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                    r.get(0)
                })?;
        let mut peers = Vec::with_capacity(rows.len());
        for row in &rows {
            let reg = registry.get(&row.peer).cloned().unwrap_or_default();
            let (unacked, oldest): (i64, Option<i64>) = self.conn.query_row(
                "SELECT COUNT(*), MIN(at_ms) FROM changes WHERE seq > ?1 AND doc_id LIKE 'c%'
                     AND (from_peer IS NULL OR from_peer <> ?2)",
                params![row.sent_seq, row.peer],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let rejected: i64 = self.conn.query_row(
                "SELECT COUNT(*) FROM rejections WHERE from_peer = ?1",
                [&row.peer],
                |r| r.get(0),
            )?;
            peers.push(PeerHealth {
                peer: row.peer.clone(),
                name: reg.name,
                role: reg.role,
                center: reg.center,
                connected: now - row.last_contact_ms <= CONNECTED_WINDOW_MS,
                last_contact_ms: row.last_contact_ms,
                acked_seq: row.sent_seq,
                received_seq: row.received_seq,
                unacked_changes: unacked,
                oldest_unacked_ms: oldest,
                rejected,
            });
        }
        let is_hub = self.settings.role == Role::Hub;
        let hubs: Vec<&PeerHealth> = peers
            .iter()
            .filter(|p| is_hub || p.role.is_empty() || p.role == Role::Hub.as_str())
            .collect();
        let last_contact_ms = hubs.iter().map(|p| p.last_contact_ms).max().unwrap_or(0);
        let connected = hubs.iter().any(|p| p.connected);
        let hub_ids: BTreeSet<&str> = hubs.iter().map(|p| p.peer.as_str()).collect();
        let hub_acked_seq = if is_hub {
            head_seq
        } else {
            hubs.iter().map(|p| p.acked_seq).max().unwrap_or(0)
        };
        let hub_ids_json = serde_json::to_string(&hub_ids)
            .map_err(|e| StoreError::Invalid(format!("peer list: {e}")))?;
        // Changes the hub sent us are at the hub already, whatever it acknowledged.
        let unsynced_where = "FROM changes WHERE seq > ?1 AND doc_id LIKE 'c%'
             AND (from_peer IS NULL OR from_peer NOT IN (SELECT value FROM json_each(?2)))";
        let (unsynced_changes, unsynced_cases, oldest_unsynced_ms): (i64, i64, Option<i64>) =
            self.conn.query_row(
                &format!("SELECT COUNT(*), COUNT(DISTINCT doc_id), MIN(at_ms) {unsynced_where}"),
                params![hub_acked_seq, hub_ids_json],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        let unsynced_case_nos: Vec<String> = {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT i.case_no FROM case_index i JOIN (SELECT doc_id, MAX(seq) AS last
                     {unsynced_where} GROUP BY doc_id) u ON u.doc_id = i.doc_id
                 ORDER BY u.last DESC LIMIT ?3"
            ))?;
            stmt.query_map(
                params![
                    hub_acked_seq,
                    hub_ids_json,
                    UNSYNCED_CASES_LISTED_MAX as i64
                ],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?
        };
        let pending_changes: i64 =
            self.conn
                .query_row("SELECT COUNT(*) FROM pending", [], |r| r.get(0))?;
        let rejections: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM rejections", [], |r| r.get(0))?;
        Ok(SyncStatus {
            role: self.settings.role,
            is_hub,
            connected,
            last_contact_ms,
            head_seq,
            hub_acked_seq,
            unsynced_changes,
            unsynced_cases,
            unsynced_case_nos,
            oldest_unsynced_ms,
            pending_changes,
            rejections,
            peers,
            now_ms: now,
        })
    }

    /// Bytes and changes this node received from peers, for `/metrics`.
    pub fn received_totals(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(bytes)), 0) FROM changes WHERE from_peer IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Bytes and changes of this node's feed that peers acknowledged (each change
    /// counted once, up to the furthest acknowledgement), for `/metrics`.
    pub fn acked_totals(&self) -> Result<(i64, i64), StoreError> {
        let furthest: Option<i64> = self
            .conn
            .query_row("SELECT MAX(sent_seq) FROM peers", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(bytes)), 0) FROM changes WHERE seq <= ?1 AND from_peer IS NULL",
            [furthest.unwrap_or(0)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }
}

/// What the transport knows about a peer right now (the `serve` process's live board).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePeer {
    pub peer: String,
    pub name: String,
    pub role: String,
    pub center: String,
    pub connected: bool,
    pub last_contact_ms: i64,
}

impl SyncStatus {
    /// Overlays the transport's live view: a peer with an open session is connected
    /// even when no checkpoint moved lately, and the live names and roles fill what
    /// the registry does not say.
    pub fn with_live(mut self, live: &[LivePeer]) -> SyncStatus {
        for l in live {
            match self.peers.iter_mut().find(|p| p.peer == l.peer) {
                Some(p) => {
                    p.connected = l.connected;
                    p.last_contact_ms = p.last_contact_ms.max(l.last_contact_ms);
                    for (mine, theirs) in [
                        (&mut p.name, &l.name),
                        (&mut p.role, &l.role),
                        (&mut p.center, &l.center),
                    ] {
                        if mine.is_empty() {
                            mine.clone_from(theirs);
                        }
                    }
                }
                None => self.peers.push(PeerHealth {
                    peer: l.peer.clone(),
                    name: l.name.clone(),
                    role: l.role.clone(),
                    center: l.center.clone(),
                    connected: l.connected,
                    last_contact_ms: l.last_contact_ms,
                    acked_seq: 0,
                    received_seq: 0,
                    unacked_changes: 0,
                    oldest_unacked_ms: None,
                    rejected: 0,
                }),
            }
        }
        let hubs = self
            .peers
            .iter()
            .filter(|p| self.is_hub || p.role.is_empty() || p.role == Role::Hub.as_str());
        self.connected = hubs.clone().any(|p| p.connected);
        self.last_contact_ms = hubs.map(|p| p.last_contact_ms).max().unwrap_or(0);
        self
    }
}
