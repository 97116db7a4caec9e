//! The conflict queue and its resolution: a person keeps one value of a field or
//! acknowledges an event that landed where it was not legal.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yichuang_shared::case::{EventKind, FieldConflict, Status};

use super::super::auth::Clerk;
use super::super::error::{ApiJson, ErrorBody};
use super::super::roles::{Allowed, ToResolve};
use super::super::{ApiError, AppState};
use super::cases::CaseDetail;
use super::{CaseKey, change_case};
use crate::store::{Store, StoreError};

/// Conflicted cases the queue shows at once.
pub const CONFLICT_QUEUE_MAX: usize = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// A conflicting field's path, with the `value` to keep …
    pub field: Option<String>,
    pub value: Option<String>,
    /// … or the number of the listed value to keep (1 = first, in the order
    /// `/api/conflicts` lists them), which works for masked values too.
    pub pick: Option<usize>,
    /// Or: the id of a conflicting event to acknowledge.
    pub event_id: Option<String>,
}

/// Resolves a conflict: keeps one value of a field, or acknowledges a conflicting event.
#[utoipa::path(post, path = "/api/cases/{case}/resolve", tag = "conflicts", request_body = ResolveBody,
    params(("case" = String, Path, description = "Case number or document id")),
    security(("bearer" = [])),
    responses((status = 200, body = CaseDetail), (status = 401, body = ErrorBody),
        (status = 403, description = "Resolving needs the supervisor role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "No such conflict on the case", body = ErrorBody),
        (status = 422, description = "Neither or both of field and event_id", body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    Allowed(user, _): Allowed<ToResolve>,
    CaseKey(key): CaseKey,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Json<CaseDetail>, ApiError> {
    enum Pick {
        Field(String, String),
        Numbered(String, usize),
        Event(String),
    }
    let pick = match (body.field, body.value, body.pick, body.event_id) {
        (Some(f), Some(v), None, None) => Pick::Field(f, v),
        (Some(f), None, Some(n), None) => Pick::Numbered(f, n),
        (Some(_), None, None, None) => {
            return Err(ApiError::invalid("value", "give the value to keep"));
        }
        (None, None, None, Some(e)) => Pick::Event(e),
        _ => {
            return Err(ApiError::invalid(
                "field",
                "give either field and value, or event_id",
            ));
        }
    };
    change_case(&state, key, move |s, key| {
        Ok(match pick {
            Pick::Field(f, v) => s.case_resolve_field(key, &user.name, &f, &v)?,
            Pick::Numbered(f, n) => {
                let value = listed_value(s, key, &f, n)?;
                s.case_resolve_field(key, &user.name, &f, &value)?
            }
            Pick::Event(e) => s.case_acknowledge(key, &user.name, &e)?,
        })
    })
    .await
}

/// The `n`-th (1-based) concurrent value of a conflicting field, unmasked: it is
/// written back, never shown.
fn listed_value(s: &mut Store, key: &str, field: &str, n: usize) -> Result<String, ApiError> {
    let doc_id = s.resolve_case(key)?;
    let mut case = yichuang_shared::case::CaseDoc::from_automerge(s.load_doc(&doc_id)?)
        .map_err(StoreError::from)?;
    let conflict = case
        .field_conflicts()
        .into_iter()
        .find(|c| c.path == field)
        .ok_or_else(|| {
            ApiError::conflict(format!("field {field:?} has no conflict to resolve")).field("field")
        })?;
    n.checked_sub(1)
        .and_then(|i| conflict.values.get(i))
        .map(|v| v.value.clone())
        .ok_or_else(|| {
            ApiError::invalid(
                "pick",
                format!("pick a value from 1 to {}", conflict.values.len()),
            )
        })
}

/// A case in the conflict queue: every value of each conflicting field with who
/// wrote it and on which node, and every event that landed where it was not legal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictItem {
    pub case_no: String,
    pub item_name: String,
    pub applicant_name: String,
    pub status_label: String,
    #[schema(value_type = [Object])]
    pub field_conflicts: Vec<FieldConflict>,
    #[schema(value_type = [Object])]
    pub event_conflicts: Vec<EventConflictView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventConflictView {
    pub event_id: String,
    pub kind: String,
    pub kind_label: String,
    pub clerk: String,
    pub node: String,
    pub wall_ms: i64,
    pub reason: String,
}

/// Reads the conflict queue on the store thread.
pub fn conflict_queue(s: &mut Store) -> Result<Vec<ConflictItem>, ApiError> {
    let keys = s.conflicted_cases(CONFLICT_QUEUE_MAX)?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let view = s.case_view(&key, false, "")?;
        let event_conflicts = view
            .event_conflicts
            .iter()
            .map(|c| {
                let ev = view.events.iter().find(|e| e.id == c.event_id);
                let kind_label = ev
                    .and_then(|e| e.kind.parse::<EventKind>().ok())
                    .map(|k| k.label_zh().to_owned())
                    .unwrap_or_default();
                EventConflictView {
                    event_id: c.event_id.clone(),
                    kind: ev.map(|e| e.kind.clone()).unwrap_or_default(),
                    kind_label,
                    clerk: ev.map(|e| e.clerk.clone()).unwrap_or_default(),
                    node: ev.map(|e| e.node.clone()).unwrap_or_default(),
                    wall_ms: ev.map(|e| e.wall_ms).unwrap_or_default(),
                    reason: format!(
                        "在{}状态下不可{}",
                        c.status_at.map(Status::label_zh).unwrap_or("未知"),
                        c.kind.label_zh()
                    ),
                }
            })
            .collect();
        out.push(ConflictItem {
            case_no: view.case_no.clone(),
            item_name: view.item_name.clone(),
            applicant_name: view.applicant.name.clone(),
            status_label: view.status_label.clone(),
            field_conflicts: view.field_conflicts.clone(),
            event_conflicts,
        });
    }
    Ok(out)
}

/// The conflict queue: cases whose copies disagree, for a person to resolve.
#[utoipa::path(get, path = "/api/conflicts", tag = "conflicts", security(("bearer" = [])),
    responses((status = 200, body = [ConflictItem]), (status = 401, body = ErrorBody)))]
pub async fn conflicts(
    State(state): State<AppState>,
    _clerk: Clerk,
) -> Result<Json<Vec<ConflictItem>>, ApiError> {
    Ok(Json(state.store.call(conflict_queue).await??))
}
