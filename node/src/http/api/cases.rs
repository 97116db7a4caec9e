//! One case: its detail (deadline, whether the hub has it), the audited reveal, its
//! lifecycle steps and field edits.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yichuang_shared::case::{CaseView, EventKind};

use super::super::auth::Clerk;
use super::super::error::{ApiJson, ApiQuery, ErrorBody};
use super::super::roles::{Action, require};
use super::super::{ApiError, AppState};
use super::{CaseKey, change_case, with_case};
use crate::store::Store;

/// Most field edits in one request; a form has about a dozen fields.
const EDITS_MAX: usize = 32;

/// A promised deadline as the detail page shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadlineInfo {
    pub promised_ms: i64,
    pub statutory_ms: i64,
    pub remaining_working_days: i64,
    pub overdue: bool,
    pub near_overdue: bool,
    pub paused: bool,
    pub calendar_version: String,
}

/// A case with where it stands: its full view, whether the hub has it, its deadline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseDetail {
    pub case_no: String,
    pub doc_id: String,
    /// Every change of the case has reached the district hub.
    pub at_hub: bool,
    pub deadline: Option<DeadlineInfo>,
    /// The case: applicant (ID masked unless revealed), materials, events in order,
    /// status, legal next steps, conflicts.
    #[schema(value_type = Object)]
    pub case: CaseView,
}

/// Reads a case's detail on the store thread.
pub fn case_detail(s: &mut Store, key: &str, view: CaseView) -> Result<CaseDetail, ApiError> {
    let doc_id = s.resolve_case(key)?.to_string();
    let status = s.sync_status()?;
    let at_hub = !status.unsynced_case_nos.contains(&view.case_no);
    let deadline = s.deadlines_of(&view)?.known().map(|d| DeadlineInfo {
        promised_ms: d.promised_ms,
        statutory_ms: d.statutory_ms,
        remaining_working_days: d.remaining_working_days,
        overdue: d.overdue,
        near_overdue: d.near_overdue,
        paused: d.paused,
        calendar_version: d.calendar_version.clone(),
    });
    Ok(CaseDetail {
        case_no: view.case_no.clone(),
        doc_id,
        at_hub,
        deadline,
        case: view,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    /// Show the full ID and phone numbers; the reveal is recorded in the case.
    #[serde(default)]
    pub reveal: bool,
}

/// One case with its events, conflicts and legal next steps.
#[utoipa::path(get, path = "/api/cases/{case}", tag = "cases",
    params(("case" = String, Path, description = "Case number or document id"), ShowQuery),
    security(("bearer" = [])),
    responses((status = 200, body = CaseDetail), (status = 401, body = ErrorBody),
        (status = 403, description = "`reveal` needs the supervisor role", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody)))]
pub async fn get_case(
    State(state): State<AppState>,
    Clerk(user): Clerk,
    CaseKey(key): CaseKey,
    ApiQuery(query): ApiQuery<ShowQuery>,
) -> Result<Json<CaseDetail>, ApiError> {
    let reveal = query.reveal;
    if reveal {
        require(&user, Action::Reveal).map_err(|e| e.field("reveal"))?;
    }
    let detail = with_case(&state, key, move |s, key| {
        Ok(s.case_view(key, reveal, &user.name)?)
    })
    .await?;
    if reveal {
        tracing::info!(case = %detail.case_no, "id number revealed (audited)");
        state.refresh_sync();
    }
    Ok(Json(detail))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// accepted, forwarded, reviewed, approved, completed, delivered, …
    pub kind: String,
    #[serde(default)]
    pub note: String,
    /// Extra data, e.g. `to_center` for a transfer, `staff` for an assignment.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// Advances a case by one lifecycle step; only the case's legal next steps are accepted.
#[utoipa::path(post, path = "/api/cases/{case}/events", tag = "cases", request_body = EventBody,
    params(("case" = String, Path, description = "Case number or document id")),
    security(("bearer" = [])),
    responses((status = 200, body = CaseDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not a legal next step in the case's status", body = ErrorBody),
        (status = 422, description = "Unknown event kind or bad data", body = ErrorBody)))]
pub async fn add_event(
    State(state): State<AppState>,
    Clerk(user): Clerk,
    CaseKey(key): CaseKey,
    ApiJson(body): ApiJson<EventBody>,
) -> Result<Json<CaseDetail>, ApiError> {
    require(&user, Action::Advance)?;
    let kind: EventKind =
        body.kind
            .parse()
            .map_err(|e: yichuang_shared::case::status::UnknownKind| {
                ApiError::invalid("kind", e.to_string())
            })?;
    if !kind.is_step() {
        return Err(ApiError::invalid(
            "kind",
            format!("{kind} is recorded by the node itself, not requested"),
        ));
    }
    change_case(&state, key, move |s, key| {
        Ok(s.case_event(key, kind, &user.name, &body.note, body.data)?)
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// Field paths and their new values, e.g. `{"applicant.phone": "13900139000"}`.
    pub set: BTreeMap<String, String>,
}

/// Edits fields of a case, all or none.
#[utoipa::path(patch, path = "/api/cases/{case}", tag = "cases", request_body = EditBody,
    params(("case" = String, Path, description = "Case number or document id")),
    security(("bearer" = [])),
    responses((status = 200, body = CaseDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Unknown field or invalid value", body = ErrorBody)))]
pub async fn edit_case(
    State(state): State<AppState>,
    Clerk(user): Clerk,
    CaseKey(key): CaseKey,
    ApiJson(body): ApiJson<EditBody>,
) -> Result<Json<CaseDetail>, ApiError> {
    require(&user, Action::Edit)?;
    if body.set.is_empty() || body.set.len() > EDITS_MAX {
        return Err(ApiError::invalid(
            "set",
            format!("give 1 to {EDITS_MAX} fields to set"),
        ));
    }
    let sets: Vec<(String, String)> = body.set.into_iter().collect();
    change_case(&state, key, move |s, key| {
        Ok(s.case_edit(key, &user.name, &sets)?)
    })
    .await
}
