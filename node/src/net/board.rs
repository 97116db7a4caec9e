//! The node's live view of its peers: who is connected, since when, what each
//! session reports. Connection tasks write it; `status.json` and the demo read it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use yichuang_shared::ids::{NodeId, Role};

use super::protocol::PeerStats;
use super::tls::NodeIdentity;
use crate::store::now_ms;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerStatus {
    pub node_id: NodeId,
    pub name: String,
    pub role: Role,
    pub center: String,
    pub addr: Option<SocketAddr>,
    pub connected: bool,
    pub last_contact_ms: i64,
    /// Our feed's head minus what the peer acknowledged.
    pub waiting_out: u64,
    /// The peer's head (as last told) minus what we filed.
    pub waiting_in: u64,
    /// How far the peer acknowledged our feed.
    #[serde(default)]
    pub acked_seq: u64,
    /// How far we filed the peer's feed.
    #[serde(default)]
    pub received_seq: u64,
    /// Frames handled from the peer in this node's life.
    #[serde(default)]
    pub frames_received: u64,
    pub changes_sent: u64,
    pub changes_received: u64,
    pub rejected_by_peer: u64,
    pub rejected_from_peer: u64,
    pub caught_up: bool,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Board {
    peers: Mutex<BTreeMap<NodeId, PeerStatus>>,
    /// Open connections by peer, with quinn's stable id to tell a replaced one apart.
    conns: Mutex<HashMap<NodeId, (usize, quinn::Connection)>>,
    dirty: AtomicBool,
    /// Counts changes, so a watcher (the demo, a test) waits for the next one
    /// instead of polling.
    version: tokio::sync::watch::Sender<u64>,
    dial_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a task panicked mid-update of plain counters; they stay usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Board {
    /// Registers a new connection; returns the one it replaces, if any.
    pub fn connected(
        &self,
        who: &NodeIdentity,
        conn: &quinn::Connection,
    ) -> Option<quinn::Connection> {
        let old = lock(&self.conns)
            .insert(who.node_id, (conn.stable_id(), conn.clone()))
            .map(|(_, c)| c);
        let mut peers = lock(&self.peers);
        let entry = peers.entry(who.node_id).or_insert_with(|| PeerStatus {
            node_id: who.node_id,
            name: who.name.clone(),
            role: who.role,
            center: who.center.clone(),
            addr: None,
            connected: false,
            last_contact_ms: 0,
            waiting_out: 0,
            waiting_in: 0,
            acked_seq: 0,
            received_seq: 0,
            frames_received: 0,
            changes_sent: 0,
            changes_received: 0,
            rejected_by_peer: 0,
            rejected_from_peer: 0,
            caught_up: false,
            last_error: None,
        });
        entry.connected = true;
        entry.caught_up = false;
        entry.addr = Some(conn.remote_address());
        entry.last_contact_ms = now_ms();
        *lock(&self.dial_error) = None;
        self.touch();
        old
    }

    pub fn update(&self, id: NodeId, stats: &PeerStats, session_base: &PeerStats) {
        let mut peers = lock(&self.peers);
        if let Some(p) = peers.get_mut(&id) {
            let new_waiting_out = stats.our_head.saturating_sub(stats.acked_by_peer);
            let new_waiting_in = stats.peer_head.saturating_sub(stats.received_seq);
            let changed = p.waiting_out != new_waiting_out
                || p.waiting_in != new_waiting_in
                || p.frames_received != session_base.frames_received + stats.frames_received
                || p.acked_seq != stats.acked_by_peer
                || p.received_seq != stats.received_seq
                || p.rejected_by_peer != session_base.rejected_by_peer + stats.rejected_by_peer
                || p.rejected_from_peer
                    != session_base.rejected_from_peer + stats.rejected_from_peer
                || p.caught_up != stats.caught_up
                || p.changes_sent != session_base.changes_sent + stats.changes_sent
                || p.changes_received != session_base.changes_received + stats.changes_received;
            p.waiting_out = new_waiting_out;
            p.waiting_in = new_waiting_in;
            p.frames_received = session_base.frames_received + stats.frames_received;
            p.acked_seq = stats.acked_by_peer;
            p.received_seq = stats.received_seq;
            p.caught_up = stats.caught_up;
            p.changes_sent = session_base.changes_sent + stats.changes_sent;
            p.changes_received = session_base.changes_received + stats.changes_received;
            p.rejected_by_peer = session_base.rejected_by_peer + stats.rejected_by_peer;
            p.rejected_from_peer = session_base.rejected_from_peer + stats.rejected_from_peer;
            p.last_contact_ms = now_ms();
            if changed {
                self.touch();
            }
        }
    }

    /// Totals so far for a peer, so a new session's counters add to the old ones.
    pub fn totals(&self, id: NodeId) -> PeerStats {
        let peers = lock(&self.peers);
        peers
            .get(&id)
            .map(|p| PeerStats {
                changes_sent: p.changes_sent,
                changes_received: p.changes_received,
                rejected_by_peer: p.rejected_by_peer,
                rejected_from_peer: p.rejected_from_peer,
                frames_received: p.frames_received,
                ..PeerStats::default()
            })
            .unwrap_or_default()
    }

    pub fn disconnected(&self, id: NodeId, conn: &quinn::Connection, reason: Option<String>) {
        let mut conns = lock(&self.conns);
        let current = conns
            .get(&id)
            .is_some_and(|(sid, _)| *sid == conn.stable_id());
        if current {
            conns.remove(&id);
            if let Some(p) = lock(&self.peers).get_mut(&id) {
                p.connected = false;
                p.caught_up = false;
                p.last_error = reason;
            }
            self.touch();
        }
    }

    /// A dial that failed before any session, for status.
    pub fn dial_failed(&self, reason: String) {
        let mut peers = lock(&self.peers);
        for p in peers.values_mut().filter(|p| !p.connected) {
            p.last_error = Some(reason.clone());
        }
        *lock(&self.dial_error) = Some(reason);
        self.touch();
    }

    /// Why the last dial failed, if the last one did.
    pub fn dial_error(&self) -> Option<String> {
        lock(&self.dial_error).clone()
    }

    pub fn close_revoked(&self, revoked: &std::collections::HashSet<NodeId>) -> usize {
        let conns = lock(&self.conns);
        let mut n = 0;
        for (id, (_, conn)) in conns.iter() {
            if revoked.contains(id) {
                super::transport::close(
                    conn,
                    super::transport::CloseCode::Revoked,
                    "this node's certificate has been revoked by the hub",
                );
                n += 1;
            }
        }
        n
    }

    pub fn close_all(&self, code: super::transport::CloseCode, reason: &str) {
        for (_, conn) in lock(&self.conns).values() {
            super::transport::close(conn, code, reason);
        }
    }

    pub fn snapshot(&self) -> Vec<PeerStatus> {
        lock(&self.peers).values().cloned().collect()
    }

    fn touch(&self) {
        self.dirty.store(true, Ordering::Relaxed);
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that wakes at every change of the board.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    pub fn connected_count(&self) -> usize {
        lock(&self.conns).len()
    }
}
