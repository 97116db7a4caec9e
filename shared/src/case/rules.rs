//! The rules of case work a step must satisfy before it is recorded: transfers,
//! assignments, extensions (延期), postal delivery, evaluations (好差评) and their
//! follow-up. Checked locally when a clerk asks; after a merge, what two nodes did
//! concurrently is judged by the fold (see `once_key`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::status::EventKind;
use super::timeline::Timeline;
use super::{CaseError, DeliveryView, Event, NewEvent, Routing};
use crate::deadline::LimitUnit;

/// The district back office (区级后台) as a transfer target.
pub const DISTRICT_BACK_OFFICE: &str = "district";
/// The most one extension may add, in its unit. Art. 42 allows 10 working days, or 15
/// for joint handling; 60 leaves room for items whose special law allows more, while
/// catching a mistyped "100".
pub const EXTENSION_VALUE_MAX: u32 = 60;
/// How evaluations reach the center (GB/T 39734-2020 lists these channels).
pub const EVALUATION_CHANNELS: &[&str] = &["window", "pad", "online", "app", "sms", "phone"];
/// The only data an evaluation keeps: the evaluator's identity stays out of the shared
/// document, which every node of the district holds.
pub const EVALUATION_KEYS: &[&str] = &["level", "channel", "occurrence"];
/// Postal tracking numbers: EMS uses 13 characters, couriers 10 to 20 digits.
const TRACKING_NO_MIN_CHARS: usize = 8;
const TRACKING_NO_MAX_CHARS: usize = 32;

/// The five levels of GB/T 39734-2020; the last two are bad reviews (差评).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationLevel {
    VerySatisfied,
    Satisfied,
    Basic,
    Dissatisfied,
    VeryDissatisfied,
}

impl EvaluationLevel {
    pub const ALL: [EvaluationLevel; 5] = [
        EvaluationLevel::VerySatisfied,
        EvaluationLevel::Satisfied,
        EvaluationLevel::Basic,
        EvaluationLevel::Dissatisfied,
        EvaluationLevel::VeryDissatisfied,
    ];

    pub fn label_zh(self) -> &'static str {
        match self {
            EvaluationLevel::VerySatisfied => "非常满意",
            EvaluationLevel::Satisfied => "满意",
            EvaluationLevel::Basic => "基本满意",
            EvaluationLevel::Dissatisfied => "不满意",
            EvaluationLevel::VeryDissatisfied => "非常不满意",
        }
    }

    /// Accepts the Chinese label or the English name.
    pub fn parse(text: &str) -> Option<EvaluationLevel> {
        let text = text.trim();
        EvaluationLevel::ALL.into_iter().find(|l| {
            l.label_zh() == text || serde_json::to_value(l).is_ok_and(|v| v.as_str() == Some(text))
        })
    }

    /// 差评: must be followed up.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            EvaluationLevel::Dissatisfied | EvaluationLevel::VeryDissatisfied
        )
    }
}

/// The key that makes an event take effect once per case (see `status::fold`).
pub(super) fn once_key(kind: EventKind, event: &Event) -> Option<String> {
    match kind {
        // An evaluation without an occurrence (forged, or written by hand) is its own
        // occurrence, so it cannot shadow a real one.
        EventKind::Evaluated => {
            let occurrence = event.data.get("occurrence").unwrap_or(&event.id);
            Some(format!("evaluated:{occurrence}"))
        }
        EventKind::EvaluationFollowedUp => {
            let evaluation = event.data.get("evaluation").unwrap_or(&event.id);
            Some(format!("followed_up:{evaluation}"))
        }
        // The statute allows one extension; two concurrent ones are a conflict.
        EventKind::Extended => Some("extended".to_owned()),
        _ => None,
    }
}

/// What a step is checked against.
pub(super) struct StepContext<'a> {
    pub timeline: &'a Timeline,
    pub routing: &'a Routing,
    pub delivery: &'a DeliveryView,
}

fn invalid(field: &str, reason: impl Into<String>) -> CaseError {
    CaseError::InvalidValue {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn required<'d>(
    data: &'d BTreeMap<String, String>,
    key: &str,
    why: &str,
) -> Result<&'d str, CaseError> {
    match data.get(key).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(invalid(key, why)),
    }
}

/// Checks a step against the rules and returns it as it will be stored (defaults
/// filled in, values normalised).
pub(super) fn prepare(
    kind: EventKind,
    ev: &NewEvent,
    ctx: &StepContext<'_>,
) -> Result<NewEvent, CaseError> {
    let mut ev = ev.clone();
    match kind {
        EventKind::Transferred => {
            let to =
                required(&ev.data, "to_center", "a transfer needs a target center")?.to_owned();
            check_center_code(&to)?;
            if to == ctx.routing.current_center {
                return Err(invalid("to_center", format!("the case is already at {to}")));
            }
            ev.data.insert("to_center".into(), to);
        }
        EventKind::Assigned => {
            required(&ev.data, "staff", "an assignment needs a staff id")?;
        }
        EventKind::Extended => prepare_extension(&mut ev, ctx)?,
        EventKind::Delivered => prepare_delivery(&mut ev, ctx)?,
        EventKind::Evaluated => prepare_evaluation(&mut ev, ctx)?,
        EventKind::EvaluationFollowedUp => prepare_follow_up(&ev, ctx)?,
        _ => {}
    }
    Ok(ev)
}

/// A center code (three digits) or the district back office; whether the center exists
/// is the node's to check against the district list.
pub fn check_center_code(code: &str) -> Result<(), CaseError> {
    if code == DISTRICT_BACK_OFFICE || (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(());
    }
    Err(invalid(
        "to_center",
        format!("expected a center code such as 003, or {DISTRICT_BACK_OFFICE}"),
    ))
}

/// A limit unit by name (`working_days` …) or catalog code (0..=3).
pub fn parse_unit(text: &str) -> Option<LimitUnit> {
    let text = text.trim();
    if let Some(unit) = text.parse::<u8>().ok().and_then(LimitUnit::from_code) {
        return Some(unit);
    }
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

fn prepare_extension(ev: &mut NewEvent, ctx: &StepContext<'_>) -> Result<(), CaseError> {
    let value = required(&ev.data, "value", "an extension needs value=N")?;
    let value: u32 = value
        .parse()
        .ok()
        .filter(|v| (1..=EXTENSION_VALUE_MAX).contains(v))
        .ok_or_else(|| {
            invalid(
                "value",
                format!("expected a whole number from 1 to {EXTENSION_VALUE_MAX}"),
            )
        })?;
    let unit = match ev.data.get("unit") {
        None => LimitUnit::WorkingDays,
        Some(text) => parse_unit(text).ok_or_else(|| {
            invalid(
                "unit",
                "expected working_days, calendar_days, months or years",
            )
        })?,
    };
    required(
        &ev.data,
        "approved_by",
        "an extension needs the approving head (approved_by=…)",
    )?;
    if ctx
        .timeline
        .applied()
        .any(|e| e.kind == Some(EventKind::Extended))
    {
        return Err(CaseError::AlreadyRecorded(
            "the case was already extended once".into(),
        ));
    }
    ev.data.insert("value".into(), value.to_string());
    ev.data.insert("unit".into(), unit_name(unit).into());
    Ok(())
}

pub(super) fn unit_name(unit: LimitUnit) -> &'static str {
    match unit {
        LimitUnit::CalendarDays => "calendar_days",
        LimitUnit::WorkingDays => "working_days",
        LimitUnit::Months => "months",
        LimitUnit::Years => "years",
    }
}

fn prepare_delivery(ev: &mut NewEvent, ctx: &StepContext<'_>) -> Result<(), CaseError> {
    if ctx.delivery.method != "post" {
        return Ok(());
    }
    if ctx.delivery.address.trim().is_empty() {
        return Err(invalid(
            "delivery.address",
            "postal delivery needs an address",
        ));
    }
    let given = ev.data.get("tracking_no").map(|t| t.trim().to_owned());
    let tracking = given
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| ctx.delivery.tracking_no.trim().to_owned());
    if tracking.is_empty() {
        return Err(invalid(
            "tracking_no",
            "postal delivery needs a tracking number (tracking_no=…)",
        ));
    }
    check_tracking_no(&tracking)?;
    ev.data.insert("tracking_no".into(), tracking);
    Ok(())
}

/// A postal tracking number: 8 to 32 ASCII letters and digits.
pub fn check_tracking_no(text: &str) -> Result<(), CaseError> {
    let ok = (TRACKING_NO_MIN_CHARS..=TRACKING_NO_MAX_CHARS).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "tracking_no",
            format!(
                "expected {TRACKING_NO_MIN_CHARS} to {TRACKING_NO_MAX_CHARS} letters and digits"
            ),
        ))
    }
}

/// Events that served the applicant and can be evaluated.
fn is_service_occurrence(kind: Option<EventKind>) -> bool {
    matches!(
        kind,
        Some(
            EventKind::Accepted | EventKind::Completed | EventKind::Delivered | EventKind::Rejected
        )
    )
}

fn prepare_evaluation(ev: &mut NewEvent, ctx: &StepContext<'_>) -> Result<(), CaseError> {
    if let Some(key) = ev
        .data
        .keys()
        .find(|k| !EVALUATION_KEYS.contains(&k.as_str()))
    {
        return Err(invalid(
            key,
            format!(
                "an evaluation keeps only {}: the evaluator stays confidential",
                EVALUATION_KEYS.join(", ")
            ),
        ));
    }
    if !ev.note.trim().is_empty() {
        return Err(invalid(
            "note",
            "an evaluation takes no note: the evaluator stays confidential",
        ));
    }
    let level = required(
        &ev.data,
        "level",
        "an evaluation needs level=非常满意|满意|基本满意|不满意|非常不满意",
    )?;
    let level = EvaluationLevel::parse(level).ok_or_else(|| {
        invalid(
            "level",
            "expected 非常满意, 满意, 基本满意, 不满意 or 非常不满意",
        )
    })?;
    let channel = ev
        .data
        .get("channel")
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|| "window".into());
    if !EVALUATION_CHANNELS.contains(&channel.as_str()) {
        return Err(invalid(
            "channel",
            format!("expected one of {}", EVALUATION_CHANNELS.join(", ")),
        ));
    }
    let occurrence = match ev
        .data
        .get("occurrence")
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
    {
        Some(given) => {
            let served = ctx
                .timeline
                .applied()
                .any(|e| e.event.id == given && is_service_occurrence(e.kind));
            if !served {
                return Err(invalid(
                    "occurrence",
                    format!("{given:?} is not a service step of this case"),
                ));
            }
            given.to_owned()
        }
        // The latest service step: the one the applicant just experienced.
        None => ctx
            .timeline
            .applied()
            .filter(|e| is_service_occurrence(e.kind))
            .last()
            .map(|e| e.event.id.clone())
            .ok_or_else(|| invalid("occurrence", "nothing has been served yet to evaluate"))?,
    };
    let repeated = ctx.timeline.applied().any(|e| {
        e.kind == Some(EventKind::Evaluated) && e.event.data.get("occurrence") == Some(&occurrence)
    });
    if repeated {
        return Err(CaseError::AlreadyRecorded(format!(
            "service step {occurrence} was already evaluated"
        )));
    }
    ev.data.insert("level".into(), level.label_zh().into());
    ev.data.insert("channel".into(), channel);
    ev.data.insert("occurrence".into(), occurrence);
    Ok(())
}

fn prepare_follow_up(ev: &NewEvent, ctx: &StepContext<'_>) -> Result<(), CaseError> {
    let target = required(
        &ev.data,
        "evaluation",
        "a follow-up names the evaluation (evaluation=EVENT_ID)",
    )?;
    if ev.note.trim().is_empty() {
        return Err(invalid(
            "note",
            "a follow-up needs a note saying what was done",
        ));
    }
    let evaluation = ctx
        .timeline
        .applied()
        .find(|e| e.kind == Some(EventKind::Evaluated) && e.event.id == target)
        .ok_or_else(|| {
            invalid(
                "evaluation",
                format!("{target:?} is not an evaluation of this case"),
            )
        })?;
    let bad = evaluation
        .event
        .data
        .get("level")
        .and_then(|l| EvaluationLevel::parse(l))
        .is_some_and(EvaluationLevel::is_bad);
    if !bad {
        return Err(invalid(
            "evaluation",
            "only a bad review (不满意, 非常不满意) is followed up",
        ));
    }
    let done = ctx.timeline.applied().any(|e| {
        e.kind == Some(EventKind::EvaluationFollowedUp)
            && e.event.data.get("evaluation").map(String::as_str) == Some(target)
    });
    if done {
        return Err(CaseError::AlreadyRecorded(format!(
            "evaluation {target} was already followed up"
        )));
    }
    Ok(())
}
