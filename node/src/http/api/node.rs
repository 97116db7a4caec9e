//! The node itself: liveness, sync status and the hall's dashboard.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::super::auth::Clerk;
use super::super::error::ErrorBody;
use super::super::{ApiError, AppState};
use crate::store::dashboard::Dashboard;
use crate::store::{SyncStatus, now_ms};

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
