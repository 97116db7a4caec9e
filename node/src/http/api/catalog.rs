//! The district's service-item catalog.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use yichuang_shared::catalog::CatalogItem;

use super::super::auth::Clerk;
use super::super::error::{ApiQuery, ErrorBody};
use super::super::{ApiError, AppState};
use super::{SEARCH_MAX_CHARS, check_len};
use crate::store::StoreError;

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
