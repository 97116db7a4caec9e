//! Routing: where a case lives (its home center, the center that holds it now) and
//! whose laptop carries it, folded from the transfers and assignments that took
//! effect, and which centers may therefore see and write it.

use serde::Serialize;

use super::*;
use crate::case::rules;
use crate::case::status::EventKind;
use crate::case::timeline::Timeline;

/// Where a case lives: its home center (fixed), the center (or `district`) that
/// holds it now, and the staff member whose laptop carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Routing {
    pub home_center: String,
    pub current_center: String,
    pub assigned_staff: String,
}

impl Routing {
    /// The centers whose scope holds the case: its home center keeps it (it answers
    /// for it to the applicant), and the center it was transferred to holds it while it
    /// works on it. The district back office is the hub's, which sees every case.
    pub fn scope_centers(&self) -> Vec<String> {
        let mut centers = vec![self.home_center.clone()];
        if self.current_center != self.home_center
            && self.current_center != rules::DISTRICT_BACK_OFFICE
        {
            centers.push(self.current_center.clone());
        }
        centers
    }

    /// Whether a center may write the case: the centers in its scope. (The hub may
    /// write any case; a laptop the cases assigned to its staff member.)
    pub fn center_may_write(&self, center: &str) -> bool {
        self.scope_centers().iter().any(|c| c == center)
    }
}

impl CaseDoc {
    /// The case's routing: where it lives now and who carries it.
    pub fn routing(&mut self) -> Routing {
        let timeline = self.timeline();
        self.routing_in(&timeline)
    }

    pub(super) fn routing_in(&self, timeline: &Timeline) -> Routing {
        routing_from(timeline, self.meta_text("home_center"))
    }
}

/// Routing after the events of a timeline that took effect.
pub fn routing_from(timeline: &Timeline, home_center: String) -> Routing {
    let mut routing = Routing {
        current_center: home_center.clone(),
        home_center,
        assigned_staff: String::new(),
    };
    for e in timeline.applied() {
        match e.kind {
            Some(EventKind::Transferred) => {
                routing.current_center = e.event.data.get("to_center").cloned().unwrap_or_default()
            }
            Some(EventKind::Assigned) => {
                routing.assigned_staff = e.event.data.get("staff").cloned().unwrap_or_default()
            }
            _ => {}
        }
    }
    routing
}

/// Routing after the events that took effect: transfers and assignments.
pub fn routing_of(events: &[Event], home_center: String) -> Routing {
    let folded = fold_events(events);
    let applied: std::collections::HashSet<&str> =
        folded.applied.iter().map(String::as_str).collect();
    let mut sorted: Vec<&Event> = events
        .iter()
        .filter(|e| applied.contains(e.id.as_str()))
        .collect();
    sorted.sort_by_key(|e| e.order());
    let mut routing = Routing {
        current_center: home_center.clone(),
        home_center,
        assigned_staff: String::new(),
    };
    for e in sorted {
        match e.kind.as_str() {
            "transferred" => {
                routing.current_center = e.data.get("to_center").cloned().unwrap_or_default()
            }
            "assigned" => routing.assigned_staff = e.data.get("staff").cloned().unwrap_or_default(),
            _ => {}
        }
    }
    routing
}
