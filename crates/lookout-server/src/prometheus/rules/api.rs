//! `/api/v1/prometheus/rules`: a project's rule files — list (any role), upload or replace
//! (member; the body is the rule file's YAML as `promtool` reads it) and delete (member).
//! A file that does not parse is refused with 422 naming every bad group, rule and field.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::service;
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// `?project=` (id or slug; the first project when absent) and `?file=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileParams {
    /// Project id or slug.
    pub project: Option<String>,
    /// The rule file's name (letters, digits, `.`, `_`, `-`, `/`); `rules.yml` when absent.
    pub file: Option<String>,
}

/// `?project=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectParams {
    /// Project id or slug.
    pub project: Option<String>,
}

/// A stored rule file.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleFileView {
    /// Its name.
    pub name: String,
    /// `config` when the config file's `rule_files` declares it (change it there).
    pub managed_by: Option<String>,
    /// The YAML as uploaded.
    pub content: String,
    /// Groups in it.
    pub groups: usize,
    /// Rules in it.
    pub rules: usize,
    /// Last change, RFC 3339.
    pub updated_at: String,
}

fn view(f: lookout_store::prom::rules::RuleFileRow) -> RuleFileView {
    let (groups, rules) = super::parse::parse(&f.content)
        .map(|p| {
            (
                p.groups.len(),
                p.groups.iter().map(|g| g.rules.len()).sum::<usize>(),
            )
        })
        .unwrap_or((0, 0));
    RuleFileView {
        name: f.name,
        managed_by: f.managed_by,
        content: f.content,
        groups,
        rules,
        updated_at: lookout_core::time::iso(f.updated_at),
    }
}

/// The project's rule files.
#[utoipa::path(get, operation_id = "prometheus_rules_list", path = "/api/v1/prometheus/rules", tag = "metrics",
    params(ProjectParams),
    responses((status = 200, body = Vec<RuleFileView>), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<ProjectParams>,
) -> ApiResult<Json<Vec<RuleFileView>>> {
    let project = crate::api::scope::project_of(&state, q.project.as_deref()).await?;
    let files = lookout_store::prom::rules::files(state.store(), project).await?;
    Ok(Json(files.into_iter().map(view).collect()))
}

/// Uploads or replaces a rule file (member). The body is the YAML (`groups:` …); 422 names
/// each problem as `promtool check rules` does.
#[utoipa::path(put, operation_id = "prometheus_rules_put", path = "/api/v1/prometheus/rules", tag = "metrics",
    params(FileParams), request_body(content = String, content_type = "application/yaml"),
    responses((status = 200, body = RuleFileView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    _who: Member,
    ApiQuery(q): ApiQuery<FileParams>,
    body: Bytes,
) -> ApiResult<Json<RuleFileView>> {
    let project = crate::api::scope::project_of(&state, q.project.as_deref()).await?;
    let name = q.file.as_deref().unwrap_or("rules.yml");
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the rule file is not UTF-8 text".into()))?;
    service::save(state.store(), project, name, text).await?;
    tracing::info!(project, file = name, "Rule file saved.");
    let f = service::find(state.store(), project, name)
        .await?
        .ok_or(ApiError::NotFound("rule file"))?;
    Ok(Json(view(f)))
}

/// Deletes a rule file (member); the incidents of its firing alerts are resolved with it.
#[utoipa::path(delete, operation_id = "prometheus_rules_delete", path = "/api/v1/prometheus/rules", tag = "metrics",
    params(FileParams),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Member,
    ApiQuery(q): ApiQuery<FileParams>,
) -> ApiResult<StatusCode> {
    let project = crate::api::scope::project_of(&state, q.project.as_deref()).await?;
    let name = q.file.as_deref().unwrap_or("rules.yml");
    service::delete(state.store(), project, name).await?;
    Ok(StatusCode::NO_CONTENT)
}
