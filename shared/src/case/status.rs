//! The case lifecycle: event kinds, statuses, the transition table, and the
//! deterministic fold that turns a set of events into a status and a conflict list.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;

/// What happened to a case. Names follow the provincial exchange records (申办, 受理 …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// 申办: the application, always the first event.
    Submitted,
    /// 受理.
    Accepted,
    /// 不予受理.
    Rejected,
    /// 补正告知: material is missing; the clock pauses.
    SupplementRequested,
    /// 补正受理: the missing material arrived.
    SupplementReceived,
    /// 承办.
    Forwarded,
    /// 审核.
    Reviewed,
    /// 退回: a reviewer sends the case back to be handled again.
    Returned,
    /// 批准.
    Approved,
    /// 不予许可.
    Denied,
    /// 特别程序启动: hearing, inspection, expert review …; the clock pauses.
    Suspended,
    /// 特别程序结束.
    Resumed,
    /// 延期: an authorised extension of the limit.
    Extended,
    /// 办结.
    Completed,
    /// 出件/送达.
    Delivered,
    /// 撤销申请.
    Cancelled,
    /// 异常终止.
    Terminated,
    /// The case moves to another center or to the district back office.
    Transferred,
    /// The case is given to a field staff member (their laptop then holds it).
    Assigned,
    /// 好差评.
    Evaluated,
    /// 差评整改: the follow-up a bad review (不满意, 非常不满意) requires.
    EvaluationFollowedUp,
    /// The applicant came to the counter (counts toward 最多跑一次).
    Visited,
    /// A clerk revealed the full ID number: an audit record.
    IdRevealed,
    /// A clerk acknowledged an event conflict, which is then no longer listed.
    ConflictAcknowledged,
    /// A node received an event stamped in its future: the receipt, recorded so every
    /// node can judge the writer's clock the same way (see `case::clock`).
    ClockSkewNoted,
}

impl EventKind {
    pub const ALL: [EventKind; 25] = [
        EventKind::Submitted,
        EventKind::Accepted,
        EventKind::Rejected,
        EventKind::SupplementRequested,
        EventKind::SupplementReceived,
        EventKind::Forwarded,
        EventKind::Reviewed,
        EventKind::Returned,
        EventKind::Approved,
        EventKind::Denied,
        EventKind::Suspended,
        EventKind::Resumed,
        EventKind::Extended,
        EventKind::Completed,
        EventKind::Delivered,
        EventKind::Cancelled,
        EventKind::Terminated,
        EventKind::Transferred,
        EventKind::Assigned,
        EventKind::Evaluated,
        EventKind::EvaluationFollowedUp,
        EventKind::Visited,
        EventKind::IdRevealed,
        EventKind::ConflictAcknowledged,
        EventKind::ClockSkewNoted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Accepted => "accepted",
            EventKind::Rejected => "rejected",
            EventKind::SupplementRequested => "supplement_requested",
            EventKind::SupplementReceived => "supplement_received",
            EventKind::Forwarded => "forwarded",
            EventKind::Reviewed => "reviewed",
            EventKind::Returned => "returned",
            EventKind::Approved => "approved",
            EventKind::Denied => "denied",
            EventKind::Suspended => "suspended",
            EventKind::Resumed => "resumed",
            EventKind::Extended => "extended",
            EventKind::Completed => "completed",
            EventKind::Delivered => "delivered",
            EventKind::Cancelled => "cancelled",
            EventKind::Terminated => "terminated",
            EventKind::Transferred => "transferred",
            EventKind::Assigned => "assigned",
            EventKind::Evaluated => "evaluated",
            EventKind::EvaluationFollowedUp => "evaluation_followed_up",
            EventKind::Visited => "visited",
            EventKind::IdRevealed => "id_revealed",
            EventKind::ConflictAcknowledged => "conflict_acknowledged",
            EventKind::ClockSkewNoted => "clock_skew_noted",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            EventKind::Submitted => "申办",
            EventKind::Accepted => "受理",
            EventKind::Rejected => "不予受理",
            EventKind::SupplementRequested => "补正告知",
            EventKind::SupplementReceived => "补正受理",
            EventKind::Forwarded => "承办",
            EventKind::Reviewed => "审核",
            EventKind::Returned => "退回",
            EventKind::Approved => "批准",
            EventKind::Denied => "不予许可",
            EventKind::Suspended => "特别程序启动",
            EventKind::Resumed => "特别程序结束",
            EventKind::Extended => "延期",
            EventKind::Completed => "办结",
            EventKind::Delivered => "出件送达",
            EventKind::Cancelled => "撤销申请",
            EventKind::Terminated => "异常终止",
            EventKind::Transferred => "转办",
            EventKind::Assigned => "指派",
            EventKind::Evaluated => "好差评",
            EventKind::EvaluationFollowedUp => "差评整改",
            EventKind::Visited => "到场",
            EventKind::IdRevealed => "查看完整证件号",
            EventKind::ConflictAcknowledged => "确认冲突",
            EventKind::ClockSkewNoted => "时钟偏差记录",
        }
    }

    /// Kinds a clerk requests as the next step of a case (the rest are records
    /// made by other commands: creation, audit, acknowledgement).
    pub fn is_step(self) -> bool {
        !matches!(
            self,
            EventKind::Submitted
                | EventKind::IdRevealed
                | EventKind::ConflictAcknowledged
                | EventKind::ClockSkewNoted
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown event kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Where a case stands; always derived, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Submitted,
    Accepted,
    Supplementing,
    Handling,
    Reviewed,
    Approved,
    Denied,
    Suspended,
    Completed,
    Delivered,
    Rejected,
    Cancelled,
    Terminated,
}

impl Status {
    pub const ALL: [Status; 13] = [
        Status::Submitted,
        Status::Accepted,
        Status::Supplementing,
        Status::Handling,
        Status::Reviewed,
        Status::Approved,
        Status::Denied,
        Status::Suspended,
        Status::Completed,
        Status::Delivered,
        Status::Rejected,
        Status::Cancelled,
        Status::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::Accepted => "accepted",
            Status::Supplementing => "supplementing",
            Status::Handling => "handling",
            Status::Reviewed => "reviewed",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Suspended => "suspended",
            Status::Completed => "completed",
            Status::Delivered => "delivered",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
            Status::Terminated => "terminated",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Status::Submitted => "待受理",
            Status::Accepted => "已受理",
            Status::Supplementing => "补正中",
            Status::Handling => "承办中",
            Status::Reviewed => "已审核",
            Status::Approved => "已批准",
            Status::Denied => "不予许可",
            Status::Suspended => "特别程序中",
            Status::Completed => "已办结",
            Status::Delivered => "已送达",
            Status::Rejected => "不予受理",
            Status::Cancelled => "已撤销",
            Status::Terminated => "异常终止",
        }
    }

    /// A case in a final status takes no more lifecycle steps.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Delivered | Status::Rejected | Status::Cancelled | Status::Terminated
        )
    }

    /// A case that is open: not completed, not ended.
    pub fn is_open(self) -> bool {
        !self.is_final() && self != Status::Completed
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// What an event does from a status: move to another, keep it, or return to the
/// status the case had before a pause (补正 or 特别程序).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    To(Status),
    Stay,
    Back,
}

/// The transition table. `None` means the event is illegal in that status.
/// `None` as the current status means the case has no events yet.
pub fn transition(from: Option<Status>, kind: EventKind) -> Option<Transition> {
    use EventKind as K;
    use Status as S;
    use Transition::{Back, Stay, To};
    let Some(from) = from else {
        return (kind == K::Submitted).then_some(To(S::Submitted));
    };
    let in_progress = matches!(from, S::Accepted | S::Handling | S::Reviewed);
    let open = from.is_open();
    match kind {
        K::Submitted => None,
        K::Accepted => (from == S::Submitted).then_some(To(S::Accepted)),
        K::Rejected => matches!(from, S::Submitted | S::Supplementing).then_some(To(S::Rejected)),
        K::SupplementRequested => {
            (from == S::Submitted || in_progress).then_some(To(S::Supplementing))
        }
        K::SupplementReceived => (from == S::Supplementing).then_some(Back),
        K::Forwarded => (from == S::Accepted).then_some(To(S::Handling)),
        K::Reviewed => (from == S::Handling).then_some(To(S::Reviewed)),
        K::Returned => matches!(from, S::Handling | S::Reviewed).then_some(To(S::Accepted)),
        K::Approved => in_progress.then_some(To(S::Approved)),
        K::Denied => in_progress.then_some(To(S::Denied)),
        K::Suspended => in_progress.then_some(To(S::Suspended)),
        K::Resumed => (from == S::Suspended).then_some(Back),
        K::Extended => {
            (in_progress || matches!(from, S::Supplementing | S::Suspended)).then_some(Stay)
        }
        // An instant item (即办件) is completed straight from accepted.
        K::Completed => {
            matches!(from, S::Accepted | S::Approved | S::Denied).then_some(To(S::Completed))
        }
        K::Delivered => (from == S::Completed).then_some(To(S::Delivered)),
        K::Cancelled => {
            (open && !matches!(from, S::Approved | S::Denied)).then_some(To(S::Cancelled))
        }
        K::Terminated => open.then_some(To(S::Terminated)),
        K::Transferred | K::Assigned => open.then_some(Stay),
        K::Evaluated | K::EvaluationFollowedUp => (from != S::Submitted).then_some(Stay),
        K::Visited | K::IdRevealed | K::ConflictAcknowledged | K::ClockSkewNoted => Some(Stay),
    }
}

/// The kinds a clerk may request next from `status`.
pub fn legal_steps(status: Option<Status>) -> Vec<EventKind> {
    EventKind::ALL
        .into_iter()
        .filter(|k| k.is_step() && transition(status, *k).is_some())
        .collect()
}

/// The order of events in the fold: (hybrid logical clock, node id, event id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventOrder {
    pub hlc: Hlc,
    pub node: String,
    pub id: String,
}

/// The fold's view of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldEvent {
    pub order: EventOrder,
    pub kind: EventKind,
    /// For `ConflictAcknowledged`: the id of the event whose conflict is acknowledged.
    pub acknowledges: Option<String>,
    /// A key that may take effect once per case: a second applied event with the same
    /// key is a conflict (one evaluation per service occurrence, one extension).
    pub once_key: Option<String>,
}

/// An event that was illegal where it landed in the merged order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventConflict {
    pub event_id: String,
    pub kind: EventKind,
    /// The status the case had when the event landed.
    pub status_at: Option<Status>,
    pub acknowledged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded {
    pub status: Option<Status>,
    /// Events that were illegal where they landed, in fold order.
    pub conflicts: Vec<EventConflict>,
    /// Ids of the events that took effect, in fold order.
    pub applied: Vec<String>,
    /// The status after each event of `applied`, so rules can tell which step
    /// accepted the case.
    pub statuses: Vec<Status>,
}

/// Folds events in (hlc, node, id) order through the transition table. Illegal
/// events are kept and listed, never dropped and never fatal.
pub fn fold(events: &[FoldEvent]) -> Folded {
    let mut sorted: Vec<&FoldEvent> = events.iter().collect();
    sorted.sort_by(|a, b| a.order.cmp(&b.order));
    // Duplicate ids can only come from a forged or corrupted document; the first wins.
    sorted.dedup_by(|b, a| a.order.id == b.order.id);
    let acknowledged: std::collections::HashSet<&str> = sorted
        .iter()
        .filter(|e| e.kind == EventKind::ConflictAcknowledged)
        .filter_map(|e| e.acknowledges.as_deref())
        .collect();
    let mut status = None;
    // Statuses to return to after a pause; a pause cannot nest, so one slot would
    // do for legal orders, but a stack keeps illegal merged orders well defined.
    let mut before_pause: Vec<Status> = Vec::new();
    let mut conflicts = Vec::new();
    let mut applied = Vec::new();
    let mut statuses = Vec::new();
    let mut once_keys: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for event in sorted {
        let repeated = event
            .once_key
            .as_deref()
            .is_some_and(|key| once_keys.contains(key));
        let step = if repeated {
            None
        } else {
            transition(status, event.kind)
        };
        match step {
            Some(Transition::To(next)) => {
                if matches!(next, Status::Supplementing | Status::Suspended)
                    && let Some(s) = status
                {
                    before_pause.push(s);
                }
                status = Some(next);
            }
            Some(Transition::Stay) => {}
            Some(Transition::Back) => {
                let back = before_pause.pop().unwrap_or(Status::Accepted);
                // Material received for a case never accepted means it is now accepted.
                status = Some(if back == Status::Submitted {
                    Status::Accepted
                } else {
                    back
                });
            }
            None => {
                conflicts.push(EventConflict {
                    event_id: event.order.id.clone(),
                    kind: event.kind,
                    status_at: status,
                    acknowledged: acknowledged.contains(event.order.id.as_str()),
                });
                continue;
            }
        }
        if let Some(key) = event.once_key.as_deref() {
            once_keys.insert(key);
        }
        applied.push(event.order.id.clone());
        // Invariant: every legal transition leaves a status, so `status` is Some here.
        statuses.push(status.unwrap_or(Status::Submitted));
    }
    Folded {
        status,
        conflicts,
        applied,
        statuses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(hlc: u64, node: &str, id: &str, kind: EventKind) -> FoldEvent {
        FoldEvent {
            order: EventOrder {
                hlc: Hlc(hlc),
                node: node.into(),
                id: id.into(),
            },
            kind,
            acknowledges: None,
            once_key: None,
        }
    }

    /// Checks that a sequence of kinds, applied in order, ends in `expected` with
    /// the listed kinds rejected as conflicts.
    fn check(kinds: &[EventKind], expected: Status, conflicting: &[EventKind]) {
        let events: Vec<FoldEvent> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| ev(i as u64 + 1, "n", &format!("e{i:02}"), *k))
            .collect();
        let folded = fold(&events);
        assert_eq!(folded.status, Some(expected), "{kinds:?}");
        let got: Vec<EventKind> = folded.conflicts.iter().map(|c| c.kind).collect();
        assert_eq!(got, conflicting, "{kinds:?}");
    }

    #[test]
    fn lifecycles() {
        use EventKind::*;
        check(&[Submitted], Status::Submitted, &[]);
        check(
            &[
                Submitted, Accepted, Forwarded, Reviewed, Approved, Completed, Delivered,
            ],
            Status::Delivered,
            &[],
        );
        // Instant item: accepted and completed at the counter.
        check(&[Submitted, Accepted, Completed], Status::Completed, &[]);
        check(&[Submitted, Rejected], Status::Rejected, &[]);
        // 补正 returns to where the case was.
        check(
            &[
                Submitted,
                Accepted,
                Forwarded,
                SupplementRequested,
                SupplementReceived,
            ],
            Status::Handling,
            &[],
        );
        check(
            &[Submitted, SupplementRequested, SupplementReceived],
            Status::Accepted,
            &[],
        );
        check(
            &[
                Submitted, Accepted, Forwarded, Reviewed, Suspended, Extended, Resumed,
            ],
            Status::Reviewed,
            &[],
        );
        check(
            &[Submitted, Accepted, Forwarded, Reviewed, Returned],
            Status::Accepted,
            &[],
        );
        check(
            &[Submitted, Accepted, Denied, Completed, Delivered, Evaluated],
            Status::Delivered,
            &[],
        );
        check(
            &[Submitted, Accepted, Transferred, Assigned, Cancelled],
            Status::Cancelled,
            &[],
        );
        check(&[Submitted, Accepted, Terminated], Status::Terminated, &[]);
        // Illegal steps are listed and leave the status alone.
        check(&[Submitted, Approved], Status::Submitted, &[Approved]);
        check(
            &[Submitted, Accepted, Cancelled, Approved, Completed],
            Status::Cancelled,
            &[Approved, Completed],
        );
        check(&[Submitted, Submitted], Status::Submitted, &[Submitted]);
        check(
            &[Submitted, Resumed, Evaluated],
            Status::Submitted,
            &[Resumed, Evaluated],
        );
    }

    #[test]
    fn legal_steps_follow_the_table() {
        assert_eq!(legal_steps(None), Vec::<EventKind>::new());
        let from_submitted = legal_steps(Some(Status::Submitted));
        assert!(from_submitted.contains(&EventKind::Accepted));
        assert!(!from_submitted.contains(&EventKind::Approved));
        for k in legal_steps(Some(Status::Cancelled)) {
            assert!(
                matches!(
                    k,
                    EventKind::Visited | EventKind::Evaluated | EventKind::EvaluationFollowedUp
                ),
                "{k:?} from cancelled"
            );
        }
    }

    #[test]
    fn acknowledged_conflicts_are_marked() {
        use EventKind::*;
        let mut events = vec![ev(1, "a", "e1", Submitted), ev(2, "a", "e2", Approved)];
        assert!(!fold(&events).conflicts[0].acknowledged);
        let mut ack = ev(3, "a", "e3", ConflictAcknowledged);
        ack.acknowledges = Some("e2".into());
        events.push(ack);
        assert!(fold(&events).conflicts[0].acknowledged);
    }

    #[test]
    fn once_keys_take_effect_once() {
        use EventKind::*;
        let keyed = |hlc, id: &str, kind, key: &str| FoldEvent {
            once_key: Some(key.into()),
            ..ev(hlc, "a", id, kind)
        };
        let events = vec![
            ev(1, "a", "e1", Submitted),
            ev(2, "a", "e2", Accepted),
            keyed(3, "e3", Evaluated, "evaluated:e2"),
            // A second evaluation of the same occurrence, merged from another node.
            keyed(4, "e4", Evaluated, "evaluated:e2"),
            keyed(5, "e5", Evaluated, "evaluated:e9"),
        ];
        let folded = fold(&events);
        assert_eq!(folded.applied, ["e1", "e2", "e3", "e5"]);
        assert_eq!(
            folded
                .conflicts
                .iter()
                .map(|c| c.event_id.as_str())
                .collect::<Vec<_>>(),
            ["e4"]
        );
        assert_eq!(
            folded.statuses,
            [
                Status::Submitted,
                Status::Accepted,
                Status::Accepted,
                Status::Accepted
            ]
        );
    }

    #[test]
    fn kinds_and_statuses_round_trip_text() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
    }
}
