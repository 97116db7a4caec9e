//! A case's events as the rules read them: in fold order, each with the time the
//! clock rule trusts, whether it took effect, and the status it left.

use automerge::ChangeHash;

use super::clock::{self, CausalGraph, Placed, SkewDirection, SkewedEvent};
use super::status::{self, EventKind, EventOrder, FoldEvent, Folded, Status};
use super::{CaseDoc, CaseError, Event, NewEvent, Stamp};
use crate::hlc::MAX_CLOCK_SKEW_MS;

/// Receipts one arrival may record. A real arrival brings a few events; a forged
/// document with thousands of future stamps must not make the receiver write
/// thousands of events (the first ones are evidence enough).
pub const SKEW_NOTES_MAX: usize = 16;

/// One event, placed and timed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedEvent {
    pub event: Event,
    /// `None` for a kind this version does not know; such events take no part.
    pub kind: Option<EventKind>,
    /// The time the clock rule trusts; equal to the stamp unless the event is skewed.
    pub at_ms: i64,
    pub order: EventOrder,
    pub skew: Option<SkewDirection>,
    /// Whether the event took effect in the fold (legal where it landed).
    pub applied: bool,
    /// The status after the event, for applied events.
    pub status_after: Option<Status>,
}

/// Every event of a case in fold order, and the fold's result.
#[derive(Clone, Debug)]
pub struct Timeline {
    pub events: Vec<TimedEvent>,
    pub folded: Folded,
}

impl Timeline {
    /// Builds the timeline from events and the change that wrote each; `changes` lists
    /// every change of the document as `(hash, dependencies)`.
    pub fn build(
        events: Vec<(Event, Option<ChangeHash>)>,
        changes: &[(ChangeHash, Vec<ChangeHash>)],
        creator: &str,
    ) -> Timeline {
        let (graph, position) = CausalGraph::new(changes);
        let index: std::collections::HashMap<ChangeHash, usize> = changes
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (*h, position[i]))
            .collect();
        let placed: Vec<Placed<'_>> = events
            .iter()
            .map(|(event, hash)| Placed {
                event,
                change: hash.and_then(|h| index.get(&h).copied()),
            })
            .collect();
        let clocks = clock::analyse(&placed, &graph, creator);
        let fold_input: Vec<FoldEvent> = events
            .iter()
            .zip(&clocks)
            .filter_map(|((e, _), c)| {
                let kind = e.kind.parse().ok()?;
                Some(FoldEvent {
                    order: c.order.clone(),
                    kind,
                    acknowledges: e.data.get("event").cloned(),
                    once_key: super::rules::once_key(kind, e),
                })
            })
            .collect();
        let folded = status::fold(&fold_input);
        let applied: std::collections::HashMap<&str, Status> = folded
            .applied
            .iter()
            .zip(&folded.statuses)
            .map(|(id, s)| (id.as_str(), *s))
            .collect();
        let mut timed: Vec<TimedEvent> = events
            .into_iter()
            .zip(clocks)
            .map(|((event, _), c)| {
                let status_after = applied.get(event.id.as_str()).copied();
                TimedEvent {
                    kind: event.kind.parse().ok(),
                    at_ms: c.at_ms,
                    order: c.order,
                    skew: c.skew,
                    applied: status_after.is_some(),
                    status_after,
                    event,
                }
            })
            .collect();
        timed.sort_by(|a, b| a.order.cmp(&b.order));
        // The fold keeps only the first of duplicate ids; so does the timeline.
        timed.dedup_by(|b, a| a.event.id == b.event.id);
        Timeline {
            events: timed,
            folded,
        }
    }

    /// The events that took effect, in fold order.
    pub fn applied(&self) -> impl Iterator<Item = &TimedEvent> {
        self.events.iter().filter(|e| e.applied)
    }

    /// Events whose stamps the clock rule corrected.
    pub fn skewed(&self) -> Vec<SkewedEvent> {
        self.events
            .iter()
            .filter_map(|e| {
                Some(SkewedEvent {
                    event_id: e.event.id.clone(),
                    node: e.event.node.clone(),
                    direction: e.skew?,
                    stamped_ms: e.event.hlc.wall_ms(),
                    effective_ms: e.at_ms,
                })
            })
            .collect()
    }
}

/// The receipts a node should record for events it has just received: every event by
/// another node stamped more than [`MAX_CLOCK_SKEW_MS`] after `now_ms` (the receiver's
/// clock), which this node has not recorded yet. The receipt is the evidence the clock
/// rule needs to judge the writer's clock the same way on every node.
pub fn skew_notes(timeline: &Timeline, own_node: &str, now_ms: i64) -> Vec<NewEvent> {
    let noted: std::collections::HashSet<&str> = timeline
        .events
        .iter()
        .filter(|e| e.kind == Some(EventKind::ClockSkewNoted) && e.event.node == own_node)
        .filter_map(|e| e.event.data.get("event").map(String::as_str))
        .collect();
    timeline
        .events
        .iter()
        .filter(|e| e.event.node != own_node && !noted.contains(e.event.id.as_str()))
        .filter(|e| e.event.hlc.wall_ms() > now_ms.saturating_add(MAX_CLOCK_SKEW_MS))
        .take(SKEW_NOTES_MAX)
        .map(|e| {
            let mut note = NewEvent::default();
            note.data.insert("event".into(), e.event.id.clone());
            note.data
                .insert("stamped_ms".into(), e.event.hlc.wall_ms().to_string());
            note.data.insert("seen_ms".into(), now_ms.to_string());
            note
        })
        .collect()
}

impl CaseDoc {
    /// Records the receipt of an event stamped in this node's future (see [`skew_notes`]).
    pub fn note_clock_skew(&mut self, stamp: &Stamp, note: &NewEvent) -> Result<(), CaseError> {
        self.append_audit(EventKind::ClockSkewNoted, stamp, note)
    }

    /// The events in fold order with their trusted times; see [`super::clock`].
    pub fn timeline(&mut self) -> Timeline {
        let events = self.placed_events();
        let changes: Vec<(ChangeHash, Vec<ChangeHash>)> = self
            .automerge()
            .get_changes_meta(&[])
            .into_iter()
            .map(|m| (m.hash, m.deps))
            .collect();
        let creator = self.meta_text("created_node");
        Timeline::build(events, &changes, &creator)
    }
}
