//! A deterministic simulation of a district on one thread: a hub, centers and
//! laptops as in-memory stores running the real sync sessions over links with
//! latency, loss, duplication, reordering and partitions, under a fake clock and a
//! seeded random schedule of clerks' work. Driven until idle, never sleeping; a
//! failure names its seed, and `SIM_SEED=<seed>` replays it.

use std::collections::{BTreeMap, HashSet, VecDeque};

use automerge::ChangeHash;
use yichuang_shared::case::status::legal_steps;
use yichuang_shared::case::{CaseDoc, EventKind};
use yichuang_shared::ids::{DocId, NodeId, RefDoc, Role};
use yichuang_shared::wire::decode_frame;
use yichuang_sync::fixture::{Clerk, registry, seeded_store};
use yichuang_sync::mem::MemStore;
use yichuang_sync::{NodeInfo, Scope, Session, SessionConfig, SessionEvent};

/// Steps after which a run is declared stuck. A schedule takes a few thousand.
pub const STEPS_MAX: u64 = 2_000_000;
/// A run is idle when no frame is in flight and no session timer falls within this
/// window: periodic reconciliation (hours away) does not keep it busy.
pub const IDLE_WINDOW_MS: i64 = 120_000;
/// Trace lines kept for a failure report.
pub const TRACE_LINES: usize = 400;

/// SplitMix64: tiny, seedable, good enough to drive schedules.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }

    pub fn per_mille(&mut self, p: u32) -> bool {
        self.below(1000) < u64::from(p)
    }

    pub fn bytes16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        out[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        out
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        let i = self.below(items.len() as u64) as usize;
        items.get(i)
    }
}

/// What a link does to frames, in per mille.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub loss_pm: u32,
    pub dup_pm: u32,
    pub reorder_pm: u32,
}

#[derive(Debug)]
pub struct SimNode {
    pub name: String,
    pub id: NodeId,
    pub info: NodeInfo,
    pub store: MemStore,
    pub clerk: Clerk,
    pub nonce: u32,
    /// Changes acknowledged to a clerk here, which must reach the hub.
    pub acked: Vec<(DocId, ChangeHash)>,
    /// Changes written here that the write rules must refuse.
    pub rogue: Vec<(DocId, ChangeHash)>,
    pub backup: Option<MemStore>,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    sessions: [Session; 2],
    /// Frames sent and received per side, numbered like a stream's bytes: the
    /// transport (QUIC) delivers a stream in order, once, or breaks the connection.
    sent: [u64; 2],
    received: [u64; 2],
}

#[derive(Debug)]
pub struct Link {
    pub ends: [usize; 2],
    pub latency_ms: i64,
    pub faults: Faults,
    pub up: bool,
    conn: Option<Conn>,
    reconnect_at: Option<i64>,
}

#[derive(Debug)]
struct Frame {
    link: usize,
    conn: u64,
    number: u64,
    to_side: usize,
    bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SimStats {
    pub steps: u64,
    pub frames: u64,
    pub wire_bytes: u64,
    pub sessions: u64,
    pub session_errors: u64,
    pub peer_rejections: u64,
    pub ops: u64,
    /// Transfers and assignments that took place, so a run shows it moved cases between scopes.
    pub transfers: u64,
    pub assignments: u64,
    pub restores: u64,
}

#[derive(Debug)]
pub struct Sim {
    pub seed: u64,
    pub now: i64,
    pub rng: Rng,
    pub nodes: Vec<SimNode>,
    pub links: Vec<Link>,
    frames: BTreeMap<(i64, u64), Frame>,
    next_order: u64,
    next_conn: u64,
    pub stats: SimStats,
    trace: VecDeque<String>,
    /// Log every delivered frame (set `SIM_DEBUG=1` when replaying a seed).
    pub debug: bool,
    pending_heals: Vec<(i64, usize)>,
}

/// The staff member of the first laptop of center `c`.
fn staff_of(center: &str) -> String {
    format!("staff-{center}")
}

impl Sim {
    /// A hub, centers `A`, `B`, `C`, laptops of `A` and `B`; every laptop can reach
    /// its center and the hub.
    pub fn district(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let specs: Vec<(&str, NodeInfo)> = vec![
            ("hub", NodeInfo::hub()),
            ("001", NodeInfo::center("001")),
            ("002", NodeInfo::center("002")),
            ("003", NodeInfo::center("003")),
            ("lapA", NodeInfo::laptop("001", &staff_of("001"))),
            ("lapB", NodeInfo::laptop("002", &staff_of("002"))),
        ];
        let ids: Vec<NodeId> = (0..specs.len())
            .map(|i| NodeId([0, 0, 0, 0, 0, 0, 1, i as u8 + 1]))
            .collect();
        let reg = registry(
            &ids.iter()
                .copied()
                .zip(specs.iter().map(|s| s.1.clone()))
                .collect::<Vec<_>>(),
        );
        let nodes = specs
            .into_iter()
            .zip(&ids)
            .map(|((name, info), id)| SimNode {
                name: name.to_owned(),
                id: *id,
                store: seeded_store(rng.next_u64(), reg.clone()),
                clerk: Clerk::new(*id, 1, &format!("clerk-{name}")),
                nonce: 1,
                info,
                acked: Vec::new(),
                rogue: Vec::new(),
                backup: None,
            })
            .collect();
        let pairs = [(0, 1), (0, 2), (0, 3), (1, 4), (2, 5), (0, 4), (0, 5)];
        let links = pairs
            .iter()
            .map(|&(a, b)| Link {
                ends: [a, b],
                latency_ms: rng.range(2, 80),
                faults: Faults::default(),
                up: true,
                conn: None,
                reconnect_at: Some(0),
            })
            .collect();
        Sim {
            seed,
            now: 0,
            rng,
            nodes,
            links,
            frames: BTreeMap::new(),
            next_order: 0,
            next_conn: 0,
            stats: SimStats::default(),
            trace: VecDeque::new(),
            debug: std::env::var("SIM_DEBUG").is_ok(),
            pending_heals: Vec::new(),
        }
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t={} {line}", self.now));
    }

    pub fn trace(&self) -> String {
        self.trace.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Gives every link random faults (used before the partitions heal).
    pub fn randomize_faults(&mut self) {
        for i in 0..self.links.len() {
            let f = Faults {
                loss_pm: *self.rng.pick(&[0, 0, 5, 20, 50]).unwrap_or(&0),
                dup_pm: *self.rng.pick(&[0, 0, 5, 20]).unwrap_or(&0),
                reorder_pm: *self.rng.pick(&[0, 0, 10, 50]).unwrap_or(&0),
            };
            self.links[i].faults = f;
        }
    }

    // ---- the network ----

    fn schedule_frames(&mut self, link: usize, from_side: usize) {
        let Some(conn) = self.links[link].conn.as_mut() else {
            return;
        };
        let conn_id = conn.id;
        let mut out = Vec::new();
        while let Some(msg) = conn.sessions[from_side].poll_transmit() {
            conn.sent[from_side] += 1;
            out.push((conn.sent[from_side], msg));
        }
        let latency = self.links[link].latency_ms;
        let faults = self.links[link].faults;
        for (number, msg) in out {
            let bytes = match msg.encode_frame() {
                Ok(b) => b,
                Err(e) => panic!(
                    "seed {}: a session produced an unencodable {}: {e}",
                    self.seed,
                    msg.kind()
                ),
            };
            self.stats.frames += 1;
            self.stats.wire_bytes += bytes.len() as u64;
            if self.rng.per_mille(faults.loss_pm) {
                continue;
            }
            let copies = if self.rng.per_mille(faults.dup_pm) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let extra = if self.rng.per_mille(faults.reorder_pm) {
                    self.rng.range(1, 200)
                } else {
                    0
                };
                let at = self.now + latency + extra;
                self.next_order += 1;
                self.frames.insert(
                    (at, self.next_order),
                    Frame {
                        link,
                        conn: conn_id,
                        number,
                        to_side: 1 - from_side,
                        bytes: bytes.clone(),
                    },
                );
            }
        }
    }

    fn flush(&mut self, link: usize) {
        for side in 0..2 {
            self.schedule_frames(link, side);
        }
        self.drain_events(link);
    }

    fn drain_events(&mut self, link: usize) {
        let mut notify = Vec::new();
        let mut closed = false;
        let mut log = Vec::new();
        let ends = self.links[link].ends;
        if let Some(conn) = self.links[link].conn.as_mut() {
            for side in 0..2 {
                while let Some(ev) = conn.sessions[side].poll_event() {
                    if matches!(
                        ev,
                        SessionEvent::DocSyncAbandoned { .. }
                            | SessionEvent::Departed { .. }
                            | SessionEvent::Reconciled { .. }
                            | SessionEvent::Rejected { .. }
                    ) {
                        log.push(format!("{} <- {}: {ev:?}", ends[side], ends[1 - side]));
                    }
                    match ev {
                        SessionEvent::Applied { .. } => notify.push(ends[side]),
                        SessionEvent::PeerRejectedOurs { .. } => self.stats.peer_rejections += 1,
                        SessionEvent::Closed { .. } => closed = true,
                        _ => {}
                    }
                }
            }
        }
        for line in log {
            self.log(line);
        }
        if closed {
            self.teardown(link, "closed");
        }
        for node in notify {
            self.notify_node(node);
        }
    }

    /// The node stored new changes: every live session of it pushes them on.
    fn notify_node(&mut self, node: usize) {
        let now = self.now;
        for link in &mut self.links {
            if let Some(conn) = link.conn.as_mut() {
                for side in 0..2 {
                    if link.ends[side] == node {
                        conn.sessions[side].handle_local_change(now);
                    }
                }
            }
        }
    }

    fn teardown(&mut self, link: usize, why: &str) {
        if self.links[link].conn.take().is_some() {
            let [a, b] = self.links[link].ends;
            let line = format!(
                "link {}-{} down: {why}",
                self.nodes[a].name, self.nodes[b].name
            );
            self.log(line);
        }
        let backoff = self.rng.range(100, 3_000);
        self.links[link].reconnect_at = Some(self.now + backoff);
    }

    fn connect(&mut self, link: usize) {
        self.links[link].reconnect_at = None;
        let [a, b] = self.links[link].ends;
        let config =
            |me: &SimNode, peer: &SimNode| SessionConfig::new(me.id, me.info.clone(), peer.id);
        let mut sa = Session::new(config(&self.nodes[a], &self.nodes[b]), self.now);
        let mut sb = Session::new(config(&self.nodes[b], &self.nodes[a]), self.now);
        let now = self.now;
        let ok = sa.start(now, &mut self.nodes[a].store).is_ok()
            && sb.start(now, &mut self.nodes[b].store).is_ok();
        self.next_conn += 1;
        self.stats.sessions += 1;
        self.links[link].conn = Some(Conn {
            id: self.next_conn,
            sessions: [sa, sb],
            sent: [0; 2],
            received: [0; 2],
        });
        let line = format!(
            "link {}-{} connect #{}",
            self.nodes[a].name, self.nodes[b].name, self.next_conn
        );
        self.log(line);
        if ok {
            self.flush(link);
        } else {
            self.teardown(link, "start failed");
        }
    }

    fn deliver(&mut self, frame: Frame) {
        let Frame {
            link,
            conn,
            number,
            to_side,
            bytes,
        } = frame;
        let node = self.links[link].ends[to_side];
        let now = self.now;
        let Some(c) = self.links[link].conn.as_mut() else {
            return;
        };
        if c.id != conn {
            return;
        }
        if number != c.received[to_side] + 1 {
            // A lost, repeated or overtaken frame: a real stream never shows one,
            // its connection fails instead. So does ours; the sessions resume later.
            let expected = c.received[to_side] + 1;
            self.stats.session_errors += 1;
            self.teardown(
                link,
                &format!("stream broke: frame {number} where {expected} was due"),
            );
            return;
        }
        c.received[to_side] = number;
        let result = match decode_frame(&bytes) {
            Ok(Some((msg, _))) => {
                let kind = msg.kind();
                if self.debug {
                    let line = match &msg {
                        yichuang_shared::wire::Message::DocSync(l) => format!(
                            "doc_sync {:?}",
                            l.iter()
                                .map(|e| (e.doc.to_string()[..9].to_owned(), e.message.len()))
                                .collect::<Vec<_>>()
                        ),
                        yichuang_shared::wire::Message::Changes(c) => format!(
                            "changes {}..{} {:?}",
                            c.from_seq,
                            c.up_to_seq,
                            c.entries
                                .iter()
                                .map(|e| e.doc.to_string()[..9].to_owned())
                                .collect::<Vec<_>>()
                        ),
                        other => other.kind().to_owned(),
                    };
                    let from = self.links[link].ends[1 - to_side];
                    self.trace
                        .push_back(format!("t={now} {node} <- {from} #{conn}: {line}"));
                    if self.trace.len() > TRACE_LINES {
                        self.trace.pop_front();
                    }
                }
                let Some(c) = self.links[link].conn.as_mut() else {
                    return;
                };
                let session = &mut c.sessions[to_side];
                let store = &mut self.nodes[node].store;
                session
                    .handle_message(msg, now, store)
                    .map_err(|e| format!("{kind}: {e}"))
            }
            Ok(None) => Err("incomplete frame".to_owned()),
            Err(e) => {
                let Some(c) = self.links[link].conn.as_mut() else {
                    return;
                };
                let session = &mut c.sessions[to_side];
                let _ = session.handle_bad_frame::<std::convert::Infallible>(&e);
                Err(e.to_string())
            }
        };
        self.flush(link);
        if let Err(e) = result {
            self.stats.session_errors += 1;
            let name = self.nodes[node].name.clone();
            self.teardown(link, &format!("{name}: {e}"));
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        let heals: Vec<(i64, usize)> = self
            .pending_heals
            .iter()
            .copied()
            .filter(|(t, _)| *t <= now)
            .collect();
        self.pending_heals.retain(|(t, _)| *t > now);
        for (_, link) in heals {
            self.links[link].up = true;
            self.links[link].reconnect_at = Some(now);
        }
        for link in 0..self.links.len() {
            let mut failed = None;
            let [a, b] = self.links[link].ends;
            if let Some(conn) = self.links[link].conn.as_mut() {
                for side in 0..2 {
                    if conn.sessions[side].poll_timeout().is_some_and(|t| t <= now) {
                        let node = if side == 0 { a } else { b };
                        let store = &mut self.nodes[node].store;
                        if let Err(e) = conn.sessions[side].handle_timeout(now, store) {
                            failed = Some(e.to_string());
                        }
                    }
                }
            } else if self.links[link].up && self.links[link].reconnect_at.is_some_and(|t| t <= now)
            {
                self.connect(link);
                continue;
            }
            self.flush(link);
            if let Some(e) = failed {
                self.stats.session_errors += 1;
                self.teardown(link, &e);
            }
        }
    }

    fn next_timer(&self) -> Option<i64> {
        let mut t: Option<i64> = self.pending_heals.iter().map(|h| h.0).min();
        for link in &self.links {
            let candidates = match &link.conn {
                Some(c) => [c.sessions[0].poll_timeout(), c.sessions[1].poll_timeout()],
                None if link.up => [link.reconnect_at, None],
                None => [None, None],
            };
            for x in candidates.into_iter().flatten() {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        }
        t
    }

    /// Runs the network (no new work) until `until_ms` or until idle, whichever is first.
    /// Returns whether it went idle.
    pub fn run_network(&mut self, until_ms: i64) -> bool {
        loop {
            self.stats.steps += 1;
            assert!(
                self.stats.steps < STEPS_MAX,
                "seed {}: did not settle\n{}",
                self.seed,
                self.trace()
            );
            let next_frame = self.frames.keys().next().map(|k| k.0);
            let next_timer = self.next_timer();
            let next = match (next_frame, next_timer) {
                (Some(f), Some(t)) => f.min(t),
                (Some(f), None) => f,
                (None, Some(t)) => t,
                (None, None) => {
                    self.now = self.now.max(until_ms.min(self.now + IDLE_WINDOW_MS));
                    return true;
                }
            };
            if next_frame.is_none()
                && next > self.now + IDLE_WINDOW_MS
                && self.pending_heals.is_empty()
            {
                self.now = self.now.max(until_ms.min(self.now + IDLE_WINDOW_MS));
                return true;
            }
            if next > until_ms {
                self.now = until_ms;
                return false;
            }
            self.now = self.now.max(next);
            if next_frame == Some(next) {
                let key = *self.frames.keys().next().unwrap_or(&(0, 0));
                if let Some(frame) = self.frames.remove(&key) {
                    self.deliver(frame);
                }
            } else {
                self.fire_timers();
            }
        }
    }

    // ---- the clerks' work ----

    fn after_local_write(&mut self, node: usize, doc: DocId, hashes: Vec<ChangeHash>, rogue: bool) {
        let list = if rogue {
            &mut self.nodes[node].rogue
        } else {
            &mut self.nodes[node].acked
        };
        list.extend(hashes.into_iter().map(|h| (doc.clone(), h)));
        self.notify_node(node);
    }

    /// Cases `node` holds and may write, as it sees them.
    fn writable_cases(&self, node: usize) -> Vec<DocId> {
        let n = &self.nodes[node];
        n.store
            .doc_ids()
            .filter(|d| d.is_case())
            .filter(|d| {
                let Some(r) = n.store.meta(d).and_then(|m| m.routing.clone()) else {
                    return false;
                };
                match n.info.role {
                    Role::Hub => true,
                    Role::Center => {
                        r.home_center == n.info.center || r.current_center == n.info.center
                    }
                    Role::Laptop => r.assigned_staff == n.info.staff,
                }
            })
            .cloned()
            .collect()
    }

    fn status_of(&self, node: usize, doc: &DocId) -> Option<yichuang_shared::case::Status> {
        let d = self.nodes[node].store.doc(doc)?;
        CaseDoc::from_automerge(d).ok()?.fold().status
    }

    /// One random piece of work at a random node.
    pub fn random_op(&mut self) {
        self.stats.ops += 1;
        let now = self.now;
        let roll = self.rng.below(100);
        let node = self.rng.below(self.nodes.len() as u64) as usize;
        match roll {
            0..=14 => {
                // A clerk registers a case at their node's center (the hub picks one).
                let home = match self.nodes[node].info.role {
                    Role::Hub => self
                        .rng
                        .pick(&["001", "002", "003"])
                        .copied()
                        .unwrap_or("001")
                        .to_owned(),
                    _ => self.nodes[node].info.center.clone(),
                };
                let random = self.rng.bytes16();
                let n = &mut self.nodes[node];
                if let Ok((doc, hashes)) = n.clerk.create_case(&mut n.store, random, &home, now) {
                    self.log(format!("{} creates {doc} at {home}", self.nodes[node].name));
                    self.after_local_write(node, doc, hashes, false);
                }
            }
            15..=44 => {
                // A step of the lifecycle on a case the node may write.
                let docs = self.writable_cases(node);
                let Some(doc) = self.rng.pick(&docs).cloned() else {
                    return;
                };
                let steps: Vec<EventKind> = legal_steps(self.status_of(node, &doc))
                    .into_iter()
                    .filter(|k| !matches!(k, EventKind::Transferred | EventKind::Assigned))
                    .collect();
                let Some(kind) = self.rng.pick(&steps).copied() else {
                    return;
                };
                let n = &mut self.nodes[node];
                if let Ok(hashes) = n.clerk.event(&mut n.store, &doc, kind, &[], now) {
                    self.log(format!("{} {kind} {doc}", self.nodes[node].name));
                    self.after_local_write(node, doc, hashes, false);
                }
            }
            45..=59 => {
                // Concurrent edits of one field make conflicts.
                let docs = self.writable_cases(node);
                let Some(doc) = self.rng.pick(&docs).cloned() else {
                    return;
                };
                let phone = format!("139{:08}", self.rng.below(100_000_000));
                let n = &mut self.nodes[node];
                if let Ok(hashes) =
                    n.clerk
                        .set_field(&mut n.store, &doc, "applicant.phone", &phone, now)
                {
                    self.log(format!("{} sets phone of {doc}", self.nodes[node].name));
                    self.after_local_write(node, doc, hashes, false);
                }
            }
            60..=67 => {
                // The hub transfers a case to another center.
                let docs = self.writable_cases(0);
                let Some(doc) = self.rng.pick(&docs).cloned() else {
                    return;
                };
                let to = self
                    .rng
                    .pick(&["001", "002", "003"])
                    .copied()
                    .unwrap_or("001");
                let n = &mut self.nodes[0];
                if let Ok(hashes) = n.clerk.event(
                    &mut n.store,
                    &doc,
                    EventKind::Transferred,
                    &[("to_center", to)],
                    now,
                ) {
                    self.stats.transfers += 1;
                    self.log(format!("hub transfers {doc} to {to}"));
                    self.after_local_write(0, doc, hashes, false);
                }
            }
            68..=75 => {
                // The hub or a center assigns a case to a laptop's staff member.
                let who = if self.rng.per_mille(500) {
                    0
                } else {
                    self.rng.range(1, 4) as usize
                };
                let docs = self.writable_cases(who);
                let Some(doc) = self.rng.pick(&docs).cloned() else {
                    return;
                };
                let staff = staff_of(self.rng.pick(&["001", "002"]).copied().unwrap_or("001"));
                let n = &mut self.nodes[who];
                if let Ok(hashes) = n.clerk.event(
                    &mut n.store,
                    &doc,
                    EventKind::Assigned,
                    &[("staff", &staff)],
                    now,
                ) {
                    self.stats.assignments += 1;
                    self.log(format!("{} assigns {doc} to {staff}", self.nodes[who].name));
                    self.after_local_write(who, doc, hashes, false);
                }
            }
            76..=78 => {
                // The hub edits the enrolled-nodes reference document.
                let key = format!("k{}", self.rng.below(5));
                let value = format!("v{}", self.rng.below(1000));
                let n = &mut self.nodes[0];
                let doc = RefDoc::Nodes.doc_id();
                if let Ok(hashes) =
                    n.clerk
                        .edit_reference(&mut n.store, &doc, "nodes", &key, &value, now)
                {
                    self.log(format!("hub edits {doc}"));
                    self.after_local_write(0, doc, hashes, false);
                }
            }
            79..=80 => {
                // A laptop forges a case for a center it does not belong to.
                let laptop = self.rng.range(4, 6) as usize;
                let home = if self.nodes[laptop].info.center == "001" {
                    "003"
                } else {
                    "001"
                };
                let random = self.rng.bytes16();
                let n = &mut self.nodes[laptop];
                if let Ok((doc, hashes)) = n.clerk.create_case(&mut n.store, random, home, now) {
                    self.log(format!(
                        "{} forges {doc} at {home}",
                        self.nodes[laptop].name
                    ));
                    self.after_local_write(laptop, doc, hashes, true);
                }
            }
            81..=88 => {
                let link = self.rng.below(self.links.len() as u64) as usize;
                let back = self.now + self.rng.range(500, 20_000);
                self.partition(link, back);
            }
            89..=91 => {
                self.nodes[node].backup = Some(self.nodes[node].store.clone());
                self.log(format!("{} backed up", self.nodes[node].name));
            }
            92..=94 => self.restore(node),
            _ => self.restart(node),
        }
    }

    fn partition(&mut self, link: usize, heal_at: i64) {
        self.links[link].up = false;
        self.teardown(link, "partition");
        // Reconnects happen only while the link is up; the heal re-opens it.
        self.links[link].reconnect_at = Some(heal_at);
        self.pending_heals.push((heal_at, link));
    }

    /// The node's process restarts: sessions drop, a new actor.
    pub fn restart(&mut self, node: usize) {
        for link in 0..self.links.len() {
            if self.links[link].ends.contains(&node) {
                self.teardown(link, "restart");
            }
        }
        let n = &mut self.nodes[node];
        n.nonce += 1;
        n.clerk = Clerk::new(n.id, n.nonce, &format!("clerk-{}", n.name));
        let line = format!("{} restarts", self.nodes[node].name);
        self.log(line);
    }

    /// Restores the node from its backup, if every change acknowledged there since
    /// exists on some other node (otherwise a restore would lose it for good, which
    /// is what backups are for and not what this test checks).
    pub fn restore(&mut self, node: usize) {
        let Some(backup) = self.nodes[node].backup.clone() else {
            return;
        };
        let lost: Vec<&(DocId, ChangeHash)> = self.nodes[node]
            .acked
            .iter()
            .filter(|(_, h)| !backup.has_change(h))
            .collect();
        let safe = lost.iter().all(|(_, h)| {
            self.nodes
                .iter()
                .enumerate()
                .any(|(i, n)| i != node && n.store.has_change(h))
        });
        if !safe {
            return;
        }
        let epoch = self.rng.next_u64();
        self.nodes[node].store = MemStore::restored(&backup, epoch);
        self.stats.restores += 1;
        let line = format!("{} restored from backup", self.nodes[node].name);
        self.log(line);
        self.restart(node);
    }
}

impl Sim {
    /// Phase one: `ops` pieces of work with faults and partitions; phase two: every
    /// link healed and clean, run until idle.
    pub fn run_schedule(&mut self, ops: usize) {
        self.randomize_faults();
        for _ in 0..ops {
            let until = self.now + self.rng.range(20, 600);
            self.run_network(until);
            self.random_op();
        }
        self.heal();
        let idle = self.run_network(i64::MAX);
        assert!(idle, "seed {}: never went idle", self.seed);
    }

    /// Ends every partition and fault; links reconnect at once.
    pub fn heal(&mut self) {
        self.log("heal".into());
        self.pending_heals.clear();
        for link in &mut self.links {
            link.faults = Faults::default();
            link.up = true;
            if link.conn.is_none() {
                link.reconnect_at = Some(self.now);
            }
        }
    }

    /// The invariants after the partitions healed.
    pub fn check(&self) -> Result<(), String> {
        let hub = &self.nodes[0].store;
        let rogue: HashSet<ChangeHash> = self
            .nodes
            .iter()
            .flat_map(|n| n.rogue.iter().map(|r| r.1))
            .collect();
        for n in &self.nodes {
            for (doc, h) in &n.acked {
                if !hub.has_change(h) {
                    return Err(format!(
                        "change {h} of {doc}, acknowledged at {}, is not at the hub",
                        n.name
                    ));
                }
            }
            for (doc, h) in &n.rogue {
                if hub.has_change(h) {
                    return Err(format!(
                        "forged change {h} of {doc} from {} reached the hub",
                        n.name
                    ));
                }
            }
            for r in n.store.rejections() {
                if !rogue.contains(&r.change.hash) {
                    return Err(format!(
                        "{} refused a legitimate change of {}: {:?}",
                        n.name, r.doc, r.change
                    ));
                }
            }
            // Pending changes may stay for a document that left the node's scope
            // (never dropped, never completed); in scope, every gap must be filled.
            for doc in n.store.pending_docs() {
                let routing = hub.meta(doc).and_then(|m| m.routing.clone());
                if hub.meta(doc).is_some() && Scope::of(&n.info).includes(doc, routing.as_ref()) {
                    let held = n.store.heads(doc);
                    let parked: Vec<String> = yichuang_sync::Store::pending(&n.store, doc)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|b| automerge::Change::from_bytes(b).ok())
                        .map(|c| {
                            let deps: Vec<String> = c
                                .deps()
                                .iter()
                                .map(|d| {
                                    format!(
                                        "{} here:{} hub:{}",
                                        &d.to_string()[..8],
                                        n.store.has_change(d),
                                        hub.has_change(d)
                                    )
                                })
                                .collect();
                            format!(
                                "{} (hub has it: {}) deps {deps:?}",
                                &c.hash().to_string()[..8],
                                hub.has_change(&c.hash())
                            )
                        })
                        .collect();
                    let held = (held, parked);
                    return Err(format!(
                        "{} still has pending changes of {doc}, which is in its scope (heads {:?}, hub {:?})",
                        n.name,
                        held,
                        hub.heads(doc)
                    ));
                }
            }
        }
        for doc in hub.doc_ids() {
            let routing = hub.meta(doc).and_then(|m| m.routing.clone());
            let hub_heads = hub.heads(doc);
            for n in &self.nodes[1..] {
                if Scope::of(&n.info).includes(doc, routing.as_ref())
                    && n.store.heads(doc) != hub_heads
                {
                    let hashes = |st: &MemStore| -> std::collections::BTreeSet<String> {
                        st.log()
                            .iter()
                            .filter(|c| &c.doc == doc)
                            .map(|c| c.hash.to_string()[..8].to_owned())
                            .collect()
                    };
                    let (h, o) = (hashes(hub), hashes(&n.store));
                    return Err(format!(
                        "{} holds {doc} at other heads than the hub ({routing:?}); only at the hub: {:?}; only there: {:?}",
                        n.name,
                        h.difference(&o).collect::<Vec<_>>(),
                        o.difference(&h).collect::<Vec<_>>()
                    ));
                }
            }
        }
        for n in &self.nodes[1..] {
            for doc in n.store.doc_ids() {
                if !self.may_hold(n, doc) {
                    return Err(format!(
                        "{} holds {doc}, which was never in its scope",
                        n.name
                    ));
                }
            }
        }
        for doc in hub.doc_ids().filter(|d| d.is_case()) {
            let expected = view_of(hub, doc);
            for n in &self.nodes[1..] {
                if n.store.heads(doc).is_some()
                    && n.store.heads(doc) == hub.heads(doc)
                    && view_of(&n.store, doc) != expected
                {
                    return Err(format!(
                        "{} shows {doc} with another status or conflict list",
                        n.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn may_hold(&self, n: &SimNode, doc: &DocId) -> bool {
        if doc.reference().is_some() {
            return true;
        }
        let created_here = n
            .store
            .doc(doc)
            .and_then(|mut d| {
                d.get_changes(&[])
                    .first()
                    .map(|c| NodeId::of_actor(c.actor_id()))
            })
            .flatten()
            == Some(n.id);
        if created_here {
            return true;
        }
        let Some(d) = self.nodes[0].store.doc(doc) else {
            return false;
        };
        let Ok(mut case) = CaseDoc::from_automerge(d) else {
            return false;
        };
        let events = case.events();
        let home = case.routing().home_center;
        match n.info.role {
            Role::Hub => true,
            Role::Center => {
                home == n.info.center
                    || events.iter().any(|e| {
                        e.kind == "transferred" && e.data.get("to_center") == Some(&n.info.center)
                    })
            }
            Role::Laptop => events
                .iter()
                .any(|e| e.kind == "assigned" && e.data.get("staff") == Some(&n.info.staff)),
        }
    }
}

fn view_of(store: &MemStore, doc: &DocId) -> Option<String> {
    let d = store.doc(doc)?;
    let mut case = CaseDoc::from_automerge(d).ok()?;
    let v = case.view(false);
    serde_json::to_string(&(
        v.status,
        v.event_conflicts,
        v.field_conflicts,
        v.current_center,
        v.assigned_staff,
    ))
    .ok()
}

/// Threads the schedules run on: the machine has two cores, shared.
pub const SIM_THREADS_MAX: usize = 2;

fn run_one(seed: u64, ops: usize) -> Result<SimStats, String> {
    let mut sim = Sim::district(seed);
    sim.run_schedule(ops);
    match sim.check() {
        Ok(()) => Ok(sim.stats),
        Err(e) => Err(format!(
            "seed {seed} (replay with SIM_SEED={seed}): {e}\n--- trace ---\n{}",
            sim.trace()
        )),
    }
}

/// Runs `count` random schedules from `base_seed` (or the one in `SIM_SEED`; or
/// `SIM_SCHEDULES` of them) on up to two threads, panicking with the seed and the
/// trace of the first that breaks an invariant.
pub fn run_schedules(count: u64, base_seed: u64, ops: usize) -> SimStats {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let count = std::env::var("SIM_SCHEDULES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(count);
            (0..count).map(|i| base_seed.wrapping_add(i)).collect()
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, SIM_THREADS_MAX);
    let results: Vec<Result<SimStats, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<u64> = seeds.iter().copied().skip(t).step_by(threads).collect();
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for seed in mine {
                        let r = run_one(seed, ops);
                        let failed = r.is_err();
                        out.push(r);
                        if failed {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(_) => vec![Err(
                    "a schedule panicked; its seed is printed above".to_owned()
                )],
            })
            .collect()
    });
    let mut total = SimStats::default();
    for r in results {
        match r {
            Ok(s) => {
                total.steps += s.steps;
                total.frames += s.frames;
                total.wire_bytes += s.wire_bytes;
                total.sessions += s.sessions;
                total.session_errors += s.session_errors;
                total.peer_rejections += s.peer_rejections;
                total.ops += s.ops;
                total.transfers += s.transfers;
                total.assignments += s.assignments;
                total.restores += s.restores;
            }
            Err(e) => panic!("{e}"),
        }
    }
    total
}
