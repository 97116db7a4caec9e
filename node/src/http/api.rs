//! The JSON API handlers: cases (list, search, detail, register, advance, edit,
//! resolve), the conflict queue, the catalog, sync status and the dashboard.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yichuang_shared::case::{ApplicantKind, CaseView, EventKind, FieldConflict, Party, Status};
use yichuang_shared::catalog::CatalogItem;
use yichuang_shared::validate;

use super::auth::Clerk;
use super::error::{ApiJson, ApiQuery, ErrorBody};
use super::roles::{Action, Allowed, ToResolve, require};
use super::{ApiError, AppState};
use crate::store::dashboard::{DUE_LIST_MAX, Dashboard, DeadlineRow};
use crate::store::{CaseFilter, CaseRow, CreateCase, Due, Store, StoreError, SyncStatus, now_ms};

/// Default page of a case list: what fits on a clerk's screen.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// Longest case key in a path: a case number is ~25 characters, a document id 33.
const CASE_KEY_MAX_CHARS: usize = 64;
/// Longest search text; a search is a name, a number or part of an item name.
const SEARCH_MAX_CHARS: usize = 100;
/// Most field edits in one request; a form has about a dozen fields.
const EDITS_MAX: usize = 32;
/// Conflicted cases the queue shows at once.
pub const CONFLICT_QUEUE_MAX: usize = 200;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub ok: bool,
    pub node: String,
    #[schema(value_type = String)]
    pub role: yichuang_shared::ids::Role,
    pub center: String,
    pub version: String,
}

/// Liveness; the only call that needs no session.
#[utoipa::path(get, path = "/api/health", tag = "node",
    responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        ok: true,
        node: state.node.name.clone(),
        role: state.node.role,
        center: state.node.center.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    /// Part of an item's code or name.
    pub q: Option<String>,
}

/// The district's service items, filtered by part of a code or name.
#[utoipa::path(get, path = "/api/catalog", tag = "catalog", params(CatalogQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Catalog items", body = [Object]), (status = 401, body = ErrorBody)))]
pub async fn catalog(
    State(state): State<AppState>,
    _clerk: Clerk,
    ApiQuery(query): ApiQuery<CatalogQuery>,
) -> Result<Json<Vec<CatalogItem>>, ApiError> {
    let q = query.q.unwrap_or_default();
    check_len("q", &q, SEARCH_MAX_CHARS)?;
    let items = state
        .store
        .call(move |s| -> Result<Vec<CatalogItem>, StoreError> {
            let q = q.trim();
            Ok(s.catalog()?
                .values()
                .filter(|i| q.is_empty() || i.code.contains(q) || i.name.contains(q))
                .cloned()
                .collect())
        })
        .await??;
    Ok(Json(items))
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// The case a path names (case number or document id); a key no case can have is a
/// 404 before anything else is read.
#[derive(Debug)]
pub struct CaseKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CaseKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(key) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::not_found(e.body_text()))?;
        if key.is_empty() || key.chars().count() > CASE_KEY_MAX_CHARS {
            return Err(ApiError::not_found(format!("no case {key:?} on this node")));
        }
        Ok(CaseKey(key))
    }
}

/// Runs `f` on one case on the store thread and answers the case's detail as it
/// stands afterwards: the one lookup every case handler shares.
async fn with_case(
    state: &AppState,
    key: String,
    f: impl FnOnce(&mut Store, &str) -> Result<CaseView, ApiError> + Send + 'static,
) -> Result<CaseDetail, ApiError> {
    state
        .store
        .call(move |s| -> Result<CaseDetail, ApiError> {
            let view = f(s, &key)?;
            case_detail(s, &key, view)
        })
        .await?
}

/// [`with_case`] for a change: also wakes the sync banner, which now counts it.
async fn change_case(
    state: &AppState,
    key: String,
    f: impl FnOnce(&mut Store, &str) -> Result<CaseView, ApiError> + Send + 'static,
) -> Result<Json<CaseDetail>, ApiError> {
    let detail = with_case(state, key, f).await?;
    state.refresh_sync();
    Ok(Json(detail))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OverdueFilter {
    /// Past the promised deadline.
    Overdue,
    /// Less than one working day left.
    Near,
    /// Either.
    Any,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    /// A case-number prefix, an applicant's exact name, or an item's code or part of its name.
    pub q: Option<String>,
    /// Only this status (submitted, accepted, handling, completed …).
    pub status: Option<String>,
    /// Only this item code.
    pub item: Option<String>,
    /// Only open cases past (or near) their promised deadline.
    #[param(inline)]
    pub overdue: Option<OverdueFilter>,
    /// Only cases with changes the district hub does not have yet.
    pub unsynced: Option<bool>,
    /// At most this many rows (1–1000, default 100).
    pub limit: Option<usize>,
}

/// One row of a case list. The applicant's ID is always masked here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseListItem {
    pub case_no: String,
    pub doc_id: String,
    pub status: String,
    pub status_label: String,
    pub item_code: String,
    pub item_name: String,
    pub department: String,
    pub home_center: String,
    pub current_center: String,
    pub applicant_name: String,
    /// First 6 and last 4 characters only.
    pub applicant_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub conflicts: i64,
    /// Every change of the case has reached the district hub.
    pub at_hub: bool,
    /// The promised deadline, when the overdue filter computed it.
    pub deadline_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseList {
    pub cases: Vec<CaseListItem>,
    pub count: usize,
}

pub fn list_item(
    row: CaseRow,
    unsynced: &BTreeSet<String>,
    deadline_ms: Option<i64>,
) -> CaseListItem {
    let status_label = row
        .status
        .parse::<Status>()
        .map(|s| s.label_zh().to_owned())
        .unwrap_or_default();
    CaseListItem {
        at_hub: !unsynced.contains(&row.case_no),
        case_no: row.case_no,
        doc_id: row.doc_id,
        status: row.status,
        status_label,
        item_code: row.item_code,
        item_name: row.item_name,
        department: row.department,
        home_center: row.home_center,
        current_center: row.current_center,
        applicant_name: row.applicant_name,
        applicant_id: row.applicant_id,
        created_ms: row.created_ms,
        updated_ms: row.updated_ms,
        conflicts: row.conflicts,
        deadline_ms,
    }
}

/// Lists cases on the store thread; shared by the API and the pages.
pub fn query_cases(s: &mut Store, query: &CaseQuery) -> Result<Vec<CaseListItem>, ApiError> {
    let limit = query
        .limit
        .unwrap_or(LIST_LIMIT_DEFAULT)
        .clamp(1, crate::store::LIST_LIMIT_MAX);
    let status = query.status.clone().filter(|s| !s.is_empty());
    if let Some(st) = &status
        && st.parse::<Status>().is_err()
    {
        return Err(ApiError::invalid(
            "status",
            format!(
                "unknown status {st:?}; one of {}",
                Status::ALL.map(Status::as_str).join(", ")
            ),
        ));
    }
    let q = query.q.clone().filter(|q| !q.trim().is_empty());
    let item = query.item.clone().filter(|i| !i.is_empty());
    let unsynced: BTreeSet<String> = s.sync_status()?.unsynced_case_nos.into_iter().collect();
    let matches = |r: &CaseRow| {
        status.as_deref().is_none_or(|st| r.status == st)
            && item.as_deref().is_none_or(|i| r.item_code == i)
    };
    if query.unsynced == Some(true) {
        // The status lists these newest first; each is one index lookup.
        let mut out = Vec::new();
        for no in s.sync_status()?.unsynced_case_nos {
            let found = s.list_cases(&CaseFilter {
                status: None,
                search: Some(no.clone()),
                limit: 1,
            })?;
            if let Some(row) = found.into_iter().find(|r| r.case_no == no)
                && matches(&row)
                && q.as_deref()
                    .is_none_or(|t| row.case_no.starts_with(t) || row.applicant_name == t)
            {
                out.push(list_item(row, &unsynced, None));
            }
            if out.len() >= limit {
                break;
            }
        }
        return Ok(out);
    }
    if let Some(which) = query.overdue {
        let mut rows: Vec<DeadlineRow> = Vec::new();
        if which != OverdueFilter::Near {
            rows.extend(s.due_rows(Due::Overdue, DUE_LIST_MAX)?);
        }
        if which != OverdueFilter::Overdue {
            rows.extend(s.due_rows(Due::NearOverdue, DUE_LIST_MAX)?);
        }
        let searched: Option<BTreeSet<String>> = match &q {
            Some(text) => Some(
                s.list_cases(&CaseFilter {
                    status: None,
                    search: Some(text.clone()),
                    limit: crate::store::LIST_LIMIT_MAX,
                })?
                .into_iter()
                .map(|r| r.doc_id)
                .collect(),
            ),
            None => None,
        };
        return Ok(rows
            .into_iter()
            .filter(|d| match which {
                OverdueFilter::Overdue => d.overdue,
                OverdueFilter::Near => d.near_overdue,
                OverdueFilter::Any => d.overdue || d.near_overdue,
            })
            .filter(|d| matches(&d.case))
            .filter(|d| {
                searched
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&d.case.doc_id))
            })
            .take(limit)
            .map(|d| list_item(d.case, &unsynced, Some(d.deadline_ms)))
            .collect());
    }
    // An item filter alone is a search by its code; with a text search it narrows it.
    let search = q.clone().or_else(|| item.clone());
    let rows = s.list_cases(&CaseFilter {
        status: status.clone(),
        search,
        limit: if item.is_some() && q.is_some() {
            crate::store::LIST_LIMIT_MAX
        } else {
            limit
        },
    })?;
    Ok(rows
        .into_iter()
        .filter(matches)
        .take(limit)
        .map(|r| list_item(r, &unsynced, None))
        .collect())
}

/// Lists and searches cases, newest first.
#[utoipa::path(get, path = "/api/cases", tag = "cases", params(CaseQuery),
    security(("bearer" = [])),
    responses((status = 200, body = CaseList), (status = 401, body = ErrorBody),
        (status = 422, description = "Unknown status or bad parameter", body = ErrorBody)))]
pub async fn list_cases(
    State(state): State<AppState>,
    _clerk: Clerk,
    ApiQuery(query): ApiQuery<CaseQuery>,
) -> Result<Json<CaseList>, ApiError> {
    check_len(
        "q",
        query.q.as_deref().unwrap_or_default(),
        SEARCH_MAX_CHARS,
    )?;
    let cases = state.store.call(move |s| query_cases(s, &query)).await??;
    Ok(Json(CaseList {
        count: cases.len(),
        cases,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyBody {
    pub name: String,
    /// 18-character resident ID (GB 11643) for a natural person, else the unified
    /// social credit code (GB 32100).
    pub id_no: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicantBody {
    /// natural_person (default), enterprise_legal_person, public_institution, …
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    pub id_no: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCaseBody {
    /// The item's 31-character implementation code.
    pub item_code: String,
    pub applicant: ApplicantBody,
    #[serde(default)]
    pub agent: Option<PartyBody>,
    /// Codes of the materials received at the counter.
    #[serde(default)]
    pub materials_received: Vec<String>,
    /// window (default), post or locker; must be one the item offers.
    #[serde(default)]
    pub delivery: Option<String>,
    /// Where the result is posted; required when `delivery` is post.
    #[serde(default)]
    pub delivery_address: String,
}

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

fn party_check(prefix: &str, kind: ApplicantKind, p: &PartyBody) -> Result<(), ApiError> {
    if p.name.trim().is_empty() {
        return Err(ApiError::invalid(
            &format!("{prefix}.name"),
            "the name must not be empty",
        ));
    }
    let id = match kind {
        ApplicantKind::NaturalPerson => validate::check_resident_id(&p.id_no),
        _ => validate::check_credit_code(&p.id_no),
    };
    id.map_err(|e| ApiError::invalid(&format!("{prefix}.id_no"), e.to_string()))?;
    if !p.phone.is_empty() {
        validate::check_phone(&p.phone)
            .map_err(|e| ApiError::invalid(&format!("{prefix}.phone"), e.to_string()))?;
    }
    Ok(())
}

/// Checks a registration and turns it into the store's request.
pub fn create_request(body: CreateCaseBody, clerk: &str) -> Result<CreateCase, ApiError> {
    if body.item_code.trim().is_empty() {
        return Err(ApiError::invalid("item_code", "choose a service item"));
    }
    let kind = match body.applicant.kind.as_deref() {
        None | Some("") => ApplicantKind::NaturalPerson,
        Some(k) => ApplicantKind::parse(k).ok_or_else(|| {
            ApiError::invalid("applicant.kind", format!("unknown applicant kind {k:?}"))
        })?,
    };
    let applicant = PartyBody {
        name: body.applicant.name,
        id_no: body.applicant.id_no,
        phone: body.applicant.phone,
        address: body.applicant.address,
    };
    party_check("applicant", kind, &applicant)?;
    if let Some(agent) = &body.agent {
        party_check("agent", ApplicantKind::NaturalPerson, agent)?;
    }
    if let Some(d) = &body.delivery
        && !yichuang_shared::case::DELIVERY_METHODS.contains(&d.as_str())
    {
        return Err(ApiError::invalid(
            "delivery",
            format!(
                "unknown delivery {d:?}; one of {}",
                yichuang_shared::case::DELIVERY_METHODS.join(", ")
            ),
        ));
    }
    let party = |p: PartyBody| Party {
        name: p.name.trim().to_owned(),
        id_no: p.id_no,
        phone: p.phone,
        address: p.address,
    };
    Ok(CreateCase {
        item: body.item_code,
        applicant_kind: kind,
        applicant: party(applicant),
        agent: body.agent.map(party),
        materials_received: body.materials_received,
        delivery_method: body.delivery,
        delivery_address: body.delivery_address,
        clerk: clerk.to_owned(),
    })
}

/// Checks materials and delivery against the catalog item, naming the field.
fn check_against_item(s: &mut Store, req: &CreateCase) -> Result<(), ApiError> {
    let catalog = s.catalog()?;
    let Some(item) = catalog.get(&req.item) else {
        return Err(ApiError::invalid(
            "item_code",
            format!("unknown item code {:?}", req.item),
        ));
    };
    for code in &req.materials_received {
        if !item.materials.iter().any(|m| &m.code == code) {
            return Err(ApiError::invalid(
                "materials_received",
                format!("item {} has no material {code:?}", item.code),
            ));
        }
    }
    if let Some(d) = &req.delivery_method
        && !item.delivery.contains(d)
    {
        return Err(ApiError::invalid(
            "delivery",
            format!(
                "this item is not delivered by {d:?}; it offers {}",
                item.delivery.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Registers a case; answers once it is durable.
#[utoipa::path(post, path = "/api/cases", tag = "cases", request_body = CreateCaseBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered and durable", body = CaseDetail),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or invalid; unknown item", body = ErrorBody),
    ))]
pub async fn create_case(
    State(state): State<AppState>,
    Clerk(user): Clerk,
    ApiJson(body): ApiJson<CreateCaseBody>,
) -> Result<(StatusCode, Json<CaseDetail>), ApiError> {
    require(&user, Action::Register)?;
    let req = create_request(body, &user.name)?;
    let detail = state
        .store
        .call(move |s| -> Result<CaseDetail, ApiError> {
            check_against_item(s, &req)?;
            let created = s.create_case(&req)?;
            case_detail(s, created.doc_id.as_str(), created.case)
        })
        .await??;
    tracing::info!(case = %detail.case_no, "case registered over http");
    state.refresh_sync();
    Ok((StatusCode::CREATED, Json(detail)))
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

/// The node's sync status: online or not, what has not reached the hub, peers' health.
#[utoipa::path(get, path = "/api/sync", tag = "node", security(("bearer" = [])),
    responses((status = 200, description = "Sync status", body = Object), (status = 401, body = ErrorBody)))]
pub async fn sync_status(
    State(state): State<AppState>,
    _clerk: Clerk,
) -> Result<Json<SyncStatus>, ApiError> {
    Ok(Json(state.sync_status().await?))
}

/// The hall at a glance: counts by center, item, department and status, daily
/// volume, overdue and nearly overdue cases.
#[utoipa::path(get, path = "/api/dashboard", tag = "node", security(("bearer" = [])),
    responses((status = 200, description = "Dashboard figures", body = Object), (status = 401, body = ErrorBody)))]
pub async fn dashboard(
    State(state): State<AppState>,
    _clerk: Clerk,
) -> Result<Json<Dashboard>, ApiError> {
    Ok(Json(state.store.call(|s| s.dashboard(now_ms())).await??))
}
