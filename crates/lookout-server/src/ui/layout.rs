//! The layout every page shares: the navigation, the project switcher and the signed-in user
//! (`PageCtx`, loaded by `page_ctx`), and `render`, which turns a template into a response.
//! Capability pages depend on this module; it depends on none of them.

use askama::Template;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};

use crate::auth::{cookie, PROJECT_COOKIE};
use crate::state::AppState;
use crate::ui::error::UiError;
use crate::ui::{ui_error, SECTIONS};
use lookout_store::tenancy::{self, Session};
use lookout_store::Cursor;

/// A navigation entry as rendered.
pub struct NavItem {
    pub(crate) href: &'static str,
    pub(crate) label: &'static str,
    pub(crate) current: bool,
}

/// A project in the switcher.
pub struct ProjectOption {
    pub(crate) id: i64,
    pub(crate) name: String,
}

/// What the layout (`base.html`) needs on every page.
pub struct PageCtx {
    pub(crate) path: String,
    pub(crate) projects: Vec<ProjectOption>,
    pub(crate) project_id: i64,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) csrf: String,
    pub(crate) nav: Vec<NavItem>,
}

/// Loads the layout context: the user, the projects, and the selected project.
pub(crate) async fn page_ctx(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    path: &str,
) -> Result<PageCtx, UiError> {
    let projects = tenancy::list_projects(
        state.store(),
        &Cursor {
            after: None,
            limit: Some(1000),
        },
    )
    .await?
    .items;
    let wanted = cookie(headers, PROJECT_COOKIE).and_then(|v| v.parse::<i64>().ok());
    let project_id = wanted
        .filter(|id| projects.iter().any(|p| p.id == *id))
        .or_else(|| projects.first().map(|p| p.id))
        .unwrap_or(0);
    Ok(PageCtx {
        path: path.to_string(),
        project_id,
        projects: projects
            .into_iter()
            .map(|p| ProjectOption {
                id: p.id,
                name: p.name,
            })
            .collect(),
        email: session.user.email.clone(),
        role: session.user.role.to_string(),
        csrf: session.csrf_token.clone(),
        nav: SECTIONS
            .iter()
            .map(|s| NavItem {
                href: s.href,
                label: s.label,
                current: s.href == path,
            })
            .collect(),
    })
}

pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ui_error(e),
    }
}
