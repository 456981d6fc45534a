//! Which projects a request is about: `?project=` by id or slug, shared by every capability whose
//! lists span projects (load runs, series, APM, databases, NRQL).

use lookout_store::{tenancy, Cursor};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Every project (teams have a handful; one page of 1000 holds them).
pub(crate) async fn all_projects(state: &AppState) -> ApiResult<Vec<tenancy::Project>> {
    let all = Cursor {
        after: None,
        limit: Some(1000),
    };
    Ok(tenancy::list_projects(state.store(), &all).await?.items)
}

/// A project named by id or slug; without one, the first project.
pub(crate) async fn project_of(state: &AppState, wanted: Option<&str>) -> ApiResult<i64> {
    let projects = all_projects(state).await?;
    match wanted.map(str::trim).filter(|w| !w.is_empty()) {
        None => projects
            .first()
            .map(|p| p.id)
            .ok_or_else(|| ApiError::Validation("project: no project exists".into())),
        Some(w) => projects
            .iter()
            .find(|p| p.slug == w || p.id.to_string() == w)
            .map(|p| p.id)
            .ok_or_else(|| ApiError::Validation(format!("project: no project {w:?}"))),
    }
}

/// `?project=` (id or slug; all projects when absent).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectFilter {
    /// Project id or slug.
    pub project: Option<String>,
}

/// The project named (id or slug), or every project.
pub(crate) async fn projects_for(state: &AppState, project: Option<&str>) -> ApiResult<Vec<i64>> {
    Ok(match project {
        Some(p) => vec![project_of(state, Some(p)).await?],
        None => all_projects(state).await?.iter().map(|p| p.id).collect(),
    })
}
