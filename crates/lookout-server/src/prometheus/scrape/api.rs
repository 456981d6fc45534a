//! `/api/v1/prometheus/scrape-configs` (any role reads, credentials masked for everyone;
//! admins write) and `/api/v1/prometheus/targets` (any role): the jobs and the state of their
//! targets, through the same service as the config file and the Targets page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::config::JobConfig;
use super::service::{self, PutError};
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath};
use crate::state::AppState;
use lookout_store::prom::scrape as sstore;

/// A job as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// The job's name.
    pub job_name: String,
    /// The project written into.
    pub project_id: i64,
    /// `config` (the config file) or `api`.
    pub managed_by: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// The configuration, credentials masked (the keys of a `scrape_configs` entry).
    #[schema(value_type = Object)]
    pub config: JobConfig,
}

fn view(row: &sstore::JobRow) -> ApiResult<JobView> {
    let cfg: JobConfig = serde_json::from_str(&row.spec)
        .map_err(|e| ApiError::Internal(format!("stored scrape job {}: {e}", row.name)))?;
    Ok(JobView {
        job_name: row.name.clone(),
        project_id: row.project_id,
        managed_by: row.managed_by.clone(),
        updated_at: iso(row.updated_at),
        config: cfg.masked(),
    })
}

/// Every scrape job (any role; credentials masked).
#[utoipa::path(get, operation_id = "scrape_configs_list", path = "/api/v1/prometheus/scrape-configs", tag = "query",
    responses((status = 200, body = [JobView]), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, _who: Principal) -> ApiResult<Json<Value>> {
    let rows = sstore::jobs(state.store()).await?;
    let views = rows.iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!(views)))
}

/// Creates or replaces a job (admin). Masked credentials (`********`) keep the stored ones,
/// unless the targets changed: then they must be given again.
#[utoipa::path(put, operation_id = "scrape_configs_put", path = "/api/v1/prometheus/scrape-configs/{name}", tag = "query",
    params(("name" = String, Path, description = "Job name")), request_body = Object,
    responses((status = 200, body = JobView), (status = 201, body = JobView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(mut body): ApiJson<JobConfig>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.job_name.is_empty() {
        body.job_name.clone_from(&name);
    }
    if body.job_name.trim() != name.trim() {
        return Err(ApiError::Validation(
            "job_name: differs from the name in the path".into(),
        ));
    }
    let created = match service::put(state.store(), state.sealer(), body).await {
        Ok(c) => c,
        Err(PutError::Invalid(e)) => return Err(ApiError::Validation(e.to_string())),
        Err(PutError::Conflict(m)) => return Err(ApiError::Conflict(m)),
        Err(PutError::Store(e)) => return Err(e.into()),
    };
    let row = sstore::job(state.store(), name.trim())
        .await?
        .ok_or(ApiError::NotFound("scrape job"))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(view(&row)?))))
}

/// Deletes a job made through the API (admin); the config file's jobs are changed there (409).
#[utoipa::path(delete, operation_id = "scrape_configs_delete", path = "/api/v1/prometheus/scrape-configs/{name}", tag = "query",
    params(("name" = String, Path, description = "Job name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    match sstore::job(state.store(), &name).await? {
        None => Err(ApiError::NotFound("scrape job")),
        Some(r) if r.managed_by != service::FROM_API => Err(ApiError::Conflict(format!(
            "job {name:?} comes from the config file; remove it there"
        ))),
        Some(_) => {
            sstore::delete_job(state.store(), &name, service::FROM_API).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// A target as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    /// Its job.
    pub job: String,
    /// The URL scraped.
    pub url: String,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `up` or `down`.
    pub health: String,
    /// When the last scrape started (RFC 3339).
    pub last_scrape: String,
    /// How long it took.
    pub last_scrape_duration_seconds: f64,
    /// Why it failed, or empty.
    pub last_error: String,
    /// Samples it wrote.
    pub samples: i64,
}

/// Every target's state (any role).
#[utoipa::path(get, operation_id = "scrape_targets_list", path = "/api/v1/prometheus/targets", tag = "query",
    responses((status = 200, body = [TargetView]), (status = 401, body = ErrorBody)))]
pub async fn targets(State(state): State<AppState>, _who: Principal) -> ApiResult<Json<Value>> {
    let jobs: std::collections::HashSet<String> = sstore::jobs(state.store())
        .await?
        .into_iter()
        .map(|j| j.name)
        .collect();
    let out: Vec<TargetView> = sstore::targets(state.store())
        .await?
        .into_iter()
        .filter(|t| jobs.contains(&t.job))
        .map(|t| TargetView {
            labels: serde_json::from_str::<Vec<(String, String)>>(&t.labels)
                .map(|l| l.into_iter().collect())
                .unwrap_or_default(),
            job: t.job,
            url: t.url,
            health: t.health,
            last_scrape: iso(t.last_scrape_ms),
            last_scrape_duration_seconds: t.duration_ms as f64 / 1000.0,
            last_error: t.last_error,
            samples: t.samples,
        })
        .collect();
    Ok(Json(json!(out)))
}
