//! A lockstep driver for two sessions joined by a perfect in-memory link: every
//! message of one flight is delivered before the next flight starts, so flights
//! count half round trips. Used by protocol tests and the reconnect benchmark;
//! pure like the rest of the crate (the caller passes `now`).

use std::collections::BTreeMap;

use yichuang_shared::ids::NodeId;
use yichuang_shared::wire::{Message, decode_frame};

use crate::session::{Session, SessionConfig, SessionError, SessionEvent};
use crate::store::{NodeInfo, Store};

/// Flights after which a pair is declared stuck: a reconnect needs a handful, a
/// first sync of thousands of documents a few dozen.
pub const FLIGHTS_MAX: u32 = 1_000;

/// What crossed the link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Flights delivered, the hellos included.
    pub flights: u32,
    pub frames: u64,
    /// Encoded frame bytes, headers included, both directions.
    pub wire_bytes: u64,
    pub frames_by_kind: BTreeMap<&'static str, u64>,
    pub bytes_by_kind: BTreeMap<&'static str, u64>,
}

impl PairStats {
    /// Round trips after the handshake: the hellos take the first flight, and two
    /// further flights make one round trip.
    pub fn round_trips_after_handshake(&self) -> u32 {
        self.flights.saturating_sub(1).div_ceil(2)
    }
}

#[derive(Debug)]
pub struct PairOutcome {
    pub stats: PairStats,
    pub events_a: Vec<SessionEvent>,
    pub events_b: Vec<SessionEvent>,
    pub caught_up: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PairError<E: std::error::Error + 'static> {
    #[error("session: {0}")]
    Session(#[from] SessionError<E>),
    #[error("the pair did not settle within {FLIGHTS_MAX} flights")]
    Stuck,
    #[error("a frame failed to encode or decode: {0}")]
    Frame(String),
}

fn drain(s: &mut Session, stats: &mut PairStats) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while let Some(msg) = s.poll_transmit() {
        let frame = msg.encode_frame().map_err(|e| e.to_string())?;
        stats.frames += 1;
        stats.wire_bytes += frame.len() as u64;
        *stats.frames_by_kind.entry(msg.kind()).or_default() += 1;
        *stats.bytes_by_kind.entry(msg.kind()).or_default() += frame.len() as u64;
        out.push(frame);
    }
    Ok(out)
}

fn deliver<S: Store>(
    s: &mut Session,
    frames: Vec<Vec<u8>>,
    now_ms: i64,
    store: &mut S,
) -> Result<(), PairError<S::Error>> {
    for f in frames {
        let (msg, _): (Message, usize) = decode_frame(&f)
            .map_err(|e| PairError::Frame(e.to_string()))?
            .ok_or_else(|| PairError::Frame("incomplete frame".into()))?;
        s.handle_message(msg, now_ms, store)?;
    }
    Ok(())
}

/// The hub of the two-node setups (tests, the reconnect benchmark).
pub const PAIR_HUB: NodeId = NodeId([0, 0, 0, 0, 0, 0, 0, 1]);
/// The center of the two-node setups, serving center `PAIR_CENTER_CODE`.
pub const PAIR_CENTER: NodeId = NodeId([0, 0, 0, 0, 0, 0, 0, 2]);
pub const PAIR_CENTER_CODE: &str = "001";

/// [`run_pair`] between [`PAIR_HUB`] and [`PAIR_CENTER`].
pub fn run_hub_center<S: Store>(
    hub: &mut S,
    center: &mut S,
    now_ms: i64,
) -> Result<PairOutcome, PairError<S::Error>> {
    run_pair(
        SessionConfig::new(PAIR_HUB, NodeInfo::hub(), PAIR_CENTER),
        hub,
        SessionConfig::new(PAIR_CENTER, NodeInfo::center(PAIR_CENTER_CODE), PAIR_HUB),
        center,
        now_ms,
    )
}

/// Connects `a` and `b`, runs flights until neither has anything to send, and
/// reports what it cost. Timers are not advanced: the clock stands at `now_ms`.
pub fn run_pair<S: Store>(
    config_a: SessionConfig,
    store_a: &mut S,
    config_b: SessionConfig,
    store_b: &mut S,
    now_ms: i64,
) -> Result<PairOutcome, PairError<S::Error>> {
    let mut stats = PairStats::default();
    let mut a = Session::new(config_a, now_ms);
    let mut b = Session::new(config_b, now_ms);
    a.start(now_ms, store_a)?;
    b.start(now_ms, store_b)?;
    let mut to_b = drain(&mut a, &mut stats).map_err(PairError::Frame)?;
    let mut to_a = drain(&mut b, &mut stats).map_err(PairError::Frame)?;
    while !(to_a.is_empty() && to_b.is_empty()) {
        stats.flights += 1;
        if stats.flights > FLIGHTS_MAX {
            return Err(PairError::Stuck);
        }
        deliver(&mut b, std::mem::take(&mut to_b), now_ms, store_b)?;
        deliver(&mut a, std::mem::take(&mut to_a), now_ms, store_a)?;
        to_b = drain(&mut a, &mut stats).map_err(PairError::Frame)?;
        to_a = drain(&mut b, &mut stats).map_err(PairError::Frame)?;
    }
    let events_a: Vec<SessionEvent> = std::iter::from_fn(|| a.poll_event()).collect();
    let events_b: Vec<SessionEvent> = std::iter::from_fn(|| b.poll_event()).collect();
    Ok(PairOutcome {
        caught_up: a.is_caught_up() && b.is_caught_up(),
        stats,
        events_a,
        events_b,
    })
}

#[cfg(test)]
mod tests {
    use yichuang_shared::case::EventKind;
    use yichuang_shared::ids::NodeId;

    use super::*;
    use crate::fixture::{Clerk, registry, seeded_store};
    use crate::mem::MemStore;
    use crate::store::NodeInfo;

    const HUB: NodeId = NodeId([1; 8]);
    const CA: NodeId = NodeId([2; 8]);

    fn world() -> (MemStore, MemStore) {
        let reg = registry(&[(HUB, NodeInfo::hub()), (CA, NodeInfo::center("001"))]);
        (seeded_store(11, reg.clone()), seeded_store(22, reg))
    }

    fn connect(hub: &mut MemStore, center: &mut MemStore, now: i64) -> PairOutcome {
        run_pair(
            SessionConfig::new(HUB, NodeInfo::hub(), CA),
            hub,
            SessionConfig::new(CA, NodeInfo::center("001"), HUB),
            center,
            now,
        )
        .unwrap()
    }

    #[test]
    fn first_contact_then_cheap_reconnect() {
        let (mut hub, mut center) = world();
        let mut hc = Clerk::new(HUB, 1, "hub");
        let mut cc = Clerk::new(CA, 1, "center");
        let (a1, _) = cc.create_case(&mut center, [1; 16], "001", 1_000).unwrap();
        let (a2, _) = hc.create_case(&mut hub, [2; 16], "001", 1_000).unwrap();
        let (b1, _) = hc.create_case(&mut hub, [3; 16], "002", 1_000).unwrap();
        let out = connect(&mut hub, &mut center, 2_000);
        assert!(out.caught_up, "{out:?}");
        assert_eq!(hub.heads(&a1), center.heads(&a1));
        assert_eq!(hub.heads(&a2), center.heads(&a2));
        assert!(
            center.heads(&b1).is_none(),
            "a case of center B must not reach A"
        );
        // Apart: one change on each side, then a reconnect costs the feed only.
        cc.event(&mut center, &a2, EventKind::Accepted, &[], 3_000)
            .unwrap();
        hc.event(&mut hub, &a1, EventKind::Accepted, &[], 3_000)
            .unwrap();
        hc.event(&mut hub, &b1, EventKind::Accepted, &[], 3_000)
            .unwrap();
        let out = connect(&mut hub, &mut center, 4_000);
        assert!(out.caught_up);
        assert!(
            out.stats.round_trips_after_handshake() <= 3,
            "{:?}",
            out.stats
        );
        assert!(
            !out.stats.frames_by_kind.contains_key("reconcile"),
            "{:?}",
            out.stats
        );
        assert_eq!(hub.heads(&a1), center.heads(&a1));
        assert_eq!(hub.heads(&a2), center.heads(&a2));
        assert!(center.heads(&b1).is_none());
    }

    #[test]
    fn transfer_moves_a_case_between_scopes() {
        let (mut hub, mut center) = world();
        let mut hc = Clerk::new(HUB, 1, "hub");
        let (b1, _) = hc.create_case(&mut hub, [3; 16], "002", 1_000).unwrap();
        hc.event(&mut hub, &b1, EventKind::Accepted, &[], 1_100)
            .unwrap();
        connect(&mut hub, &mut center, 2_000);
        assert!(center.heads(&b1).is_none());
        hc.event(
            &mut hub,
            &b1,
            EventKind::Transferred,
            &[("to_center", "001")],
            3_000,
        )
        .unwrap();
        let out = connect(&mut hub, &mut center, 4_000);
        assert!(out.caught_up);
        assert_eq!(
            center.heads(&b1),
            hub.heads(&b1),
            "the whole history follows the transfer in"
        );
        assert_eq!(center.pending_count(), 0);
    }

    #[test]
    fn forged_changes_are_refused_and_reported() {
        let (mut hub, mut center) = world();
        let mut cc = Clerk::new(CA, 1, "center");
        // Center A writes a case homed at B and edits the catalog: both refused at the hub.
        let (forged, _) = cc.create_case(&mut center, [9; 16], "002", 1_000).unwrap();
        let catalog = yichuang_shared::ids::RefDoc::Catalog.doc_id();
        cc.edit_reference(&mut center, &catalog, "items", "x", "y", 1_000)
            .unwrap();
        let (good, _) = cc.create_case(&mut center, [8; 16], "001", 1_000).unwrap();
        let out = connect(&mut hub, &mut center, 2_000);
        assert!(hub.heads(&forged).is_none());
        assert_eq!(
            hub.heads(&good),
            center.heads(&good),
            "the session carries on"
        );
        assert_eq!(
            hub.rejections().len(),
            2,
            "{:?}\n{:?}\n{:?}",
            hub.rejections(),
            out.events_a,
            out.stats
        );
        let reported = out
            .events_b
            .iter()
            .filter(|e| matches!(e, SessionEvent::PeerRejectedOurs { .. }))
            .count();
        assert!(reported >= 2, "{:?}", out.events_b);
    }
}

#[cfg(test)]
mod bad_input {
    use yichuang_shared::ids::NodeId;
    use yichuang_shared::wire::{Changes, ErrorCode, Message, WireError};

    use crate::fixture::{registry, seeded_store};
    use crate::session::{Session, SessionConfig, SessionError};
    use crate::store::NodeInfo;

    const HUB: NodeId = NodeId([1; 8]);
    const CA: NodeId = NodeId([2; 8]);
    const STRANGER: NodeId = NodeId([9; 8]);

    fn hello_of(s: &mut Session) -> Message {
        s.poll_transmit().expect("a hello")
    }

    #[test]
    fn an_unknown_peer_is_refused_with_a_reason() {
        let reg = registry(&[(HUB, NodeInfo::hub())]);
        let mut hub = seeded_store(1, reg.clone());
        let mut stranger = seeded_store(2, reg);
        let mut a = Session::new(SessionConfig::new(HUB, NodeInfo::hub(), STRANGER), 0);
        let mut b = Session::new(
            SessionConfig::new(STRANGER, NodeInfo::center("001"), HUB),
            0,
        );
        a.start(0, &mut hub).unwrap();
        b.start(0, &mut stranger).unwrap();
        let hello = hello_of(&mut b);
        let _ = hello_of(&mut a);
        let err = a.handle_message(hello, 0, &mut hub).unwrap_err();
        assert!(matches!(err, SessionError::UnknownPeer(_)), "{err}");
        assert!(matches!(
            a.poll_transmit(),
            Some(Message::Error {
                code: ErrorCode::UnknownPeer,
                ..
            })
        ));
        assert!(a.is_closed());
    }

    #[test]
    fn garbage_and_gaps_end_the_session_not_the_node() {
        let reg = registry(&[(HUB, NodeInfo::hub()), (CA, NodeInfo::center("001"))]);
        let mut hub = seeded_store(1, reg.clone());
        let mut center = seeded_store(2, reg);
        let mut a = Session::new(SessionConfig::new(HUB, NodeInfo::hub(), CA), 0);
        let mut b = Session::new(SessionConfig::new(CA, NodeInfo::center("001"), HUB), 0);
        a.start(0, &mut hub).unwrap();
        b.start(0, &mut center).unwrap();
        let hello = hello_of(&mut b);
        a.handle_message(hello, 0, &mut hub).unwrap();
        // A feed batch that skips ahead of the checkpoint is a protocol violation.
        let gap = Message::Changes(Changes {
            from_seq: 1_000,
            up_to_seq: 1_001,
            caught_up: false,
            entries: Vec::new(),
        });
        let err = a.handle_message(gap, 0, &mut hub).unwrap_err();
        assert!(matches!(err, SessionError::Protocol(_)), "{err}");
        assert!(a.is_closed());
        // A frame from another protocol version ends the session with a version error.
        let err: SessionError<std::convert::Infallible> =
            b.handle_bad_frame(&WireError::Version(9));
        assert!(matches!(err, SessionError::Protocol(_)));
        let last = std::iter::from_fn(|| b.poll_transmit()).last();
        assert!(
            matches!(
                last,
                Some(Message::Error {
                    code: ErrorCode::Version,
                    ..
                })
            ),
            "{last:?}"
        );
        // Messages after the end are ignored, never a panic.
        assert!(
            b.handle_message(Message::Departed(Vec::new()), 0, &mut center)
                .is_ok()
        );
    }
}
