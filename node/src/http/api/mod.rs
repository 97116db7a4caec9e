//! The JSON API handlers, one file per resource: `cases` (a case's detail, steps and
//! edits), `list` (lists and searches), `register`, `conflicts` (the queue and its
//! resolution), `catalog`, and `node` (health, sync status, the dashboard). What
//! every case handler shares lives here: the case key from the path and the lookup.

pub mod cases;
pub mod catalog;
pub mod conflicts;
pub mod list;
pub mod node;
pub mod register;

use axum::Json;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use yichuang_shared::case::CaseView;

pub use cases::{CaseDetail, case_detail};
pub use conflicts::{ConflictItem, conflict_queue};
pub use list::{CaseQuery, LIST_LIMIT_DEFAULT, OverdueFilter, query_cases};

use super::{ApiError, AppState};
use crate::store::Store;

/// Longest case key in a path: a case number is ~25 characters, a document id 33.
const CASE_KEY_MAX_CHARS: usize = 64;
/// Longest search text; a search is a name, a number or part of an item name.
const SEARCH_MAX_CHARS: usize = 100;

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
