//! `POST /api/v1/query`: an NRQL query over the projects the caller may read (see
//! [`crate::query::nrql`]). Facets and a time series' `begin_time` are ordinary columns.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::api::scope::projects_for;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::query::nrql::{self, QueryError};
use crate::state::AppState;
use lookout_core::time::now_ms;

/// A query.
#[derive(Debug, Deserialize, ToSchema)]
pub struct QueryRequest {
    /// The NRQL text.
    pub nrql: String,
    /// Project id or slug (default: every project).
    pub project: Option<Value>,
}

/// Runs an NRQL query: `{"columns": [{"name", "type"}], "rows": [[…]], "warnings": […]}`.
/// Within the `query` limits (docs/query.md): `422 limit_exceeded` for a query that needs more
/// memory or answer rows than allowed, `503 unavailable` with `Retry-After` past the timeout
/// or when every query slot is taken.
#[utoipa::path(post, path = "/api/v1/query", tag = "query", request_body = QueryRequest,
    responses((status = 200, body = crate::api::schemas_ops::QueryResult), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "past query.timeout_seconds or query.max_concurrent; retry after Retry-After")))]
pub async fn query(
    State(state): State<AppState>,
    _who: Principal,
    ApiJson(body): ApiJson<QueryRequest>,
) -> ApiResult<Response> {
    if body.nrql.len() > 16_384 {
        return Err(ApiError::Validation(
            "nrql: at most 16384 characters".into(),
        ));
    }
    let project = match &body.project {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(ApiError::Validation("project: an id or a slug".into())),
    };
    let ids = projects_for(&state, project.as_deref()).await?;
    match nrql::run_cached(state.store(), &ids, &body.nrql, now_ms()).await {
        Ok((r, cached)) => {
            let mut res = Json(json!(r)).into_response();
            // Says whether the shared cache answered (only when Redis is configured).
            if crate::shared::get().configured() {
                res.headers_mut().insert(
                    "x-lookout-cache",
                    HeaderValue::from_static(if cached { "hit" } else { "miss" }),
                );
            }
            Ok(res)
        }
        Err(QueryError::Parse(m)) => {
            tracing::info!(reason = %m, "Query refused: it does not parse.");
            Err(ApiError::BadRequest(m))
        }
        Err(QueryError::Invalid(m)) => {
            tracing::info!(reason = %m, "Query refused.");
            Err(ApiError::Validation(m))
        }
        Err(e @ (QueryError::Timeout(_) | QueryError::Busy(_))) => {
            Err(ApiError::Unavailable(e.to_string()))
        }
        Err(QueryError::TooLarge(m)) => Err(ApiError::LimitExceeded(m)),
        Err(QueryError::Store(e)) => Err(e.into()),
    }
}
