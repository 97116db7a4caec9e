//! What a case's events establish for deadlines and district metrics: when it was
//! accepted and closed, its pauses and extension, visits, returns, evaluations.
//!
//! Only events that took effect in the fold count, at the time the clock rule trusts.

use serde::{Deserialize, Serialize};

use super::rules::{EvaluationLevel, parse_unit};
use super::status::{EventKind, Status};
use super::timeline::Timeline;
use crate::deadline::{Extension, LimitUnit, Pause, PauseKind};

/// An approved extension and when it was granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionFact {
    pub value: u32,
    pub unit: LimitUnit,
    pub at_ms: i64,
}

/// One evaluation (好差评) and its follow-up; no evaluator identity, by design.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationFact {
    pub event_id: String,
    /// The service step evaluated.
    pub occurrence: String,
    pub level: EvaluationLevel,
    pub channel: String,
    pub at_ms: i64,
    /// When a bad review was followed up; `None` while it waits.
    pub followed_up_ms: Option<i64>,
}

/// The facts of one case. Stored in the node's index (hence `Deserialize`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFacts {
    /// 受理: the step that brought the case to `accepted` the first time (an `accepted`
    /// event, or material received for a case not yet accepted).
    pub accepted_ms: Option<i64>,
    /// 不予受理.
    pub rejected_ms: Option<i64>,
    /// 办结.
    pub completed_ms: Option<i64>,
    pub delivered_ms: Option<i64>,
    /// 撤销申请.
    pub cancelled_ms: Option<i64>,
    /// 异常终止.
    pub terminated_ms: Option<i64>,
    /// 不予许可 before completion.
    pub denied: bool,
    pub pauses: Vec<Pause>,
    pub extensions: Vec<ExtensionFact>,
    /// 补正告知 given.
    pub supplements: u32,
    /// 退回 by a reviewer.
    pub returns: u32,
    /// Times the applicant came in (到现场次数).
    pub visits: u32,
    pub transfers: u32,
    pub evaluations: Vec<EvaluationFact>,
    /// Events whose stamps the clock rule corrected.
    pub skewed_events: u32,
}

impl CaseFacts {
    pub fn from_timeline(timeline: &Timeline) -> CaseFacts {
        let mut facts = CaseFacts::default();
        let mut supplement_open: Option<i64> = None;
        let mut special_open: Option<i64> = None;
        facts.skewed_events = timeline.events.iter().filter(|e| e.skew.is_some()).count() as u32;
        for e in timeline.applied() {
            let Some(kind) = e.kind else { continue };
            let at = e.at_ms;
            if facts.accepted_ms.is_none() && e.status_after == Some(Status::Accepted) {
                facts.accepted_ms = Some(at);
            }
            match kind {
                EventKind::Rejected => first(&mut facts.rejected_ms, at),
                EventKind::Completed => first(&mut facts.completed_ms, at),
                EventKind::Delivered => first(&mut facts.delivered_ms, at),
                EventKind::Cancelled => first(&mut facts.cancelled_ms, at),
                EventKind::Terminated => first(&mut facts.terminated_ms, at),
                EventKind::Denied => facts.denied = true,
                EventKind::SupplementRequested => {
                    facts.supplements += 1;
                    supplement_open = Some(at);
                }
                EventKind::SupplementReceived => {
                    if let Some(from_ms) = supplement_open.take() {
                        facts.pauses.push(Pause {
                            kind: PauseKind::Supplement,
                            from_ms,
                            to_ms: Some(at),
                        });
                    }
                }
                EventKind::Suspended => special_open = Some(at),
                EventKind::Resumed => {
                    if let Some(from_ms) = special_open.take() {
                        facts.pauses.push(Pause {
                            kind: PauseKind::SpecialProcedure,
                            from_ms,
                            to_ms: Some(at),
                        });
                    }
                }
                EventKind::Extended => {
                    let value = e
                        .event
                        .data
                        .get("value")
                        .and_then(|v| v.trim().parse::<u32>().ok());
                    let unit = e
                        .event
                        .data
                        .get("unit")
                        .map_or(Some(LimitUnit::WorkingDays), |u| parse_unit(u));
                    // A forged extension without a readable value extends nothing.
                    if let (Some(value), Some(unit)) = (value, unit) {
                        facts.extensions.push(ExtensionFact {
                            value,
                            unit,
                            at_ms: at,
                        });
                    }
                }
                EventKind::Returned => facts.returns += 1,
                EventKind::Visited => facts.visits += 1,
                EventKind::Transferred => facts.transfers += 1,
                EventKind::Evaluated => {
                    let level = e
                        .event
                        .data
                        .get("level")
                        .and_then(|l| EvaluationLevel::parse(l));
                    if let Some(level) = level {
                        facts.evaluations.push(EvaluationFact {
                            event_id: e.event.id.clone(),
                            occurrence: e.event.data.get("occurrence").cloned().unwrap_or_default(),
                            level,
                            channel: e.event.data.get("channel").cloned().unwrap_or_default(),
                            at_ms: at,
                            followed_up_ms: None,
                        });
                    }
                }
                EventKind::EvaluationFollowedUp => {
                    let target = e.event.data.get("evaluation");
                    if let Some(ev) = facts
                        .evaluations
                        .iter_mut()
                        .find(|ev| Some(&ev.event_id) == target)
                    {
                        ev.followed_up_ms.get_or_insert(at);
                    }
                }
                _ => {}
            }
        }
        // Still paused: the pause runs on.
        for (kind, open) in [
            (PauseKind::Supplement, supplement_open),
            (PauseKind::SpecialProcedure, special_open),
        ] {
            if let Some(from_ms) = open {
                facts.pauses.push(Pause {
                    kind,
                    from_ms,
                    to_ms: None,
                });
            }
        }
        facts
    }

    /// When the clock stopped for good: completion, or the end of a case that will
    /// never be completed.
    pub fn closed_ms(&self) -> Option<i64> {
        [self.completed_ms, self.cancelled_ms, self.terminated_ms]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn extensions(&self) -> Vec<Extension> {
        self.extensions
            .iter()
            .map(|e| Extension {
                value: e.value,
                unit: e.unit,
            })
            .collect()
    }

    /// Bad reviews not yet followed up.
    pub fn bad_reviews_pending(&self) -> usize {
        self.evaluations
            .iter()
            .filter(|e| e.level.is_bad() && e.followed_up_ms.is_none())
            .count()
    }
}

fn first(slot: &mut Option<i64>, at: i64) {
    slot.get_or_insert(at);
}
