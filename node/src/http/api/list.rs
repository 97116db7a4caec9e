//! Case lists: filters by status, item, deadline and sync state, and search.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yichuang_shared::case::Status;

use super::super::auth::Clerk;
use super::super::error::{ApiQuery, ErrorBody};
use super::super::{ApiError, AppState};
use super::{SEARCH_MAX_CHARS, check_len};
use crate::store::dashboard::{DUE_LIST_MAX, DeadlineRow};
use crate::store::{CaseFilter, CaseRow, Due, Store};

/// Default page of a case list: what fits on a clerk's screen.
pub const LIST_LIMIT_DEFAULT: usize = 100;

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
