//! `GET /api/v1/operations`: the Operations page as JSON, for scripts and other dashboards.

use axum::extract::State;
use axum::Json;

use crate::api::schemas_cluster::OperationsView;
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::state::AppState;

/// Replicas, leases, consumer lag, the outbox and this replica's readiness (admin).
#[utoipa::path(get, path = "/api/v1/operations", tag = "operations",
    responses((status = 200, body = OperationsView)))]
pub async fn get(State(state): State<AppState>, _who: Admin) -> ApiResult<Json<OperationsView>> {
    Ok(Json(
        super::view::read(state.store(), state.cluster()).await?,
    ))
}
