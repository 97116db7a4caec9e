//! The simulated network: links between nodes with latency, loss, duplication,
//! reordering and partitions; one connection per link carrying two real sync sessions
//! whose frames are numbered like a stream's bytes; delivery, timers and reconnects,
//! driven under the fake clock until the district is idle.

use yichuang_shared::wire::decode_frame;
use yichuang_sync::{Session, SessionConfig, SessionEvent};

use super::*;

/// What a link does to frames, in per mille.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub loss_pm: u32,
    pub dup_pm: u32,
    pub reorder_pm: u32,
}

#[derive(Debug)]
pub(super) struct Conn {
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
    pub(super) conn: Option<Conn>,
    pub(super) reconnect_at: Option<i64>,
}

#[derive(Debug)]
pub(super) struct Frame {
    link: usize,
    conn: u64,
    number: u64,
    to_side: usize,
    bytes: Vec<u8>,
}

impl Sim {
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
    pub(super) fn notify_node(&mut self, node: usize) {
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

    pub(super) fn teardown(&mut self, link: usize, why: &str) {
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

    pub(super) fn partition(&mut self, link: usize, heal_at: i64) {
        self.links[link].up = false;
        self.teardown(link, "partition");
        // Reconnects happen only while the link is up; the heal re-opens it.
        self.links[link].reconnect_at = Some(heal_at);
        self.pending_heals.push((heal_at, link));
    }
}
