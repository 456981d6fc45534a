//! Uploaded source maps in Lookout's own API and UI: the list per project (with delete), and
//! re-processing an issue's events once their maps are there (API and the issue page's button).
//! Uploads arrive through [`super::sentry_api`], from sentry-cli.

use std::sync::OnceLock;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{not_found, page_of, ListParams};
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Page, Signed};
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_store::errors::sourcemaps::{self as store, MapCache, Reprocessed, SourceFileInfo};
use lookout_store::{errors, tenancy, Cursor};

/// An uploaded file as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceFileView {
    /// Numeric id.
    pub id: i64,
    /// The artifact bundle it came in; null for legacy release files.
    pub bundle_id: Option<i64>,
    /// `minified_source`, `source_map` or `source`.
    pub kind: String,
    /// Its URL (`~/static/app.min.js`).
    pub url: String,
    /// Debug id, when `sentry-cli sourcemaps inject` gave it one.
    pub debug_id: Option<String>,
    /// Release, if uploaded with one.
    pub release: Option<String>,
    /// Dist, if any.
    pub dist: Option<String>,
    /// Bytes.
    pub size: i64,
    /// Uploaded, RFC 3339.
    pub created_at: String,
}

impl From<SourceFileInfo> for SourceFileView {
    fn from(f: SourceFileInfo) -> Self {
        SourceFileView {
            id: f.id,
            bundle_id: f.bundle_id,
            kind: f.kind,
            url: f.url,
            debug_id: f.debug_id,
            release: f.release,
            dist: f.dist,
            size: f.size,
            created_at: iso(f.created_at),
        }
    }
}

page_of!(SourceFilePage, SourceFileView);

/// Filters of the source-map list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourceMapParams {
    /// Only files of this release.
    pub release: Option<String>,
}

/// Lists a project's uploaded source maps, minified files and sources, newest first.
#[utoipa::path(get, operation_id = "source_maps_list", path = "/api/v1/projects/{id}/source-maps", tag = "errors",
    params(("id" = i64, Path, description = "Project id"), SourceMapParams, ListParams),
    responses((status = 200, body = SourceFilePage), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(f): ApiQuery<SourceMapParams>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<SourceFilePage>> {
    tenancy::get_project(state.store(), id)
        .await
        .map_err(not_found("project"))?;
    let page = store::list_files(
        state.store(),
        id,
        f.release.as_deref(),
        &Cursor {
            after: q.cursor,
            limit: q.limit,
        },
    )
    .await?;
    Ok(Json(page.map(SourceFileView::from).into()))
}

/// Deletes one uploaded file.
#[utoipa::path(delete, operation_id = "source_maps_delete", path = "/api/v1/projects/{id}/source-maps/{file_id}", tag = "errors",
    params(("id" = i64, Path, description = "Project id"), ("file_id" = i64, Path, description = "File id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Member,
    ApiPath((id, file_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    store::delete_file(state.store(), id, file_id)
        .await
        .map_err(not_found("source map"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// What re-processing did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReprocessView {
    /// Events looked at (the newest 1000 at most).
    pub events: u64,
    /// Events whose frames changed.
    pub updated: u64,
    /// Frames resolved.
    pub frames: u64,
}

impl From<Reprocessed> for ReprocessView {
    fn from(r: Reprocessed) -> Self {
        ReprocessView {
            events: r.events,
            updated: r.updated,
            frames: r.frames,
        }
    }
}

/// Maps decoded for re-processing, apart from the processor's (a burst of re-processing must
/// not evict what ingest uses).
fn reprocess_cache() -> &'static MapCache {
    static C: OnceLock<MapCache> = OnceLock::new();
    C.get_or_init(|| MapCache::new(16 * 1024 * 1024))
}

/// One re-processing at a time in this process (each reads up to 1000 events and decodes maps);
/// another request meanwhile gets 503 with `Retry-After`.
fn reprocess_turn() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    static S: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    S.try_acquire().map_err(|_| {
        ApiError::Unavailable("another re-processing is running; retry shortly".into())
    })
}

/// Re-symbolicates an issue's newest events with the source maps stored now (for events that
/// arrived before their maps were uploaded).
#[utoipa::path(post, operation_id = "issues_reprocess", path = "/api/v1/issues/{id}/reprocess", tag = "errors",
    params(("id" = i64, Path, description = "Issue id")),
    responses((status = 200, body = ReprocessView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn reprocess(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReprocessView>> {
    errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    let _turn = reprocess_turn()?;
    let r = store::reprocess_issue(state.store(), reprocess_cache(), id).await?;
    Ok(Json(r.into()))
}

/// The issue page's "Re-process with source maps" form.
#[derive(Debug, Deserialize)]
pub struct ReprocessForm {
    csrf: String,
}

/// `POST /errors/issues/{id}/reprocess`: back to the issue page.
pub async fn reprocess_form(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<crate::ui::extract::Member>,
    Path(id): Path<i64>,
    Form(f): Form<ReprocessForm>,
) -> UiResult {
    check_csrf(&s, &f.csrf)?;
    errors::get_issue(state.store(), id).await?;
    let _turn = reprocess_turn()
        .map_err(|e| UiError::Refused(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    store::reprocess_issue(state.store(), reprocess_cache(), id).await?;
    Ok(Redirect::to(&format!("/errors/issues/{id}")).into_response())
}

/// One uploaded file as the page shows it.
pub struct FileRow {
    kind: String,
    url: String,
    debug_id: String,
    release: String,
    dist: String,
    size: String,
    uploaded: When,
}

#[derive(Template)]
#[template(path = "source_maps.html")]
struct SourceMapsPage {
    title: String,
    ctx: PageCtx,
    files: Vec<FileRow>,
    release: String,
    next: Option<String>,
}

/// `?release=…&cursor=…`
#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    release: String,
    #[serde(default)]
    cursor: String,
}

fn human_size(n: i64) -> String {
    match n {
        n if n >= 1024 * 1024 => format!("{:.1} MB", n as f64 / 1_048_576.0),
        n if n >= 1024 => format!("{:.1} KB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `GET /errors/source-maps`: the selected project's uploads.
pub async fn page(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Query(q): Query<PageQuery>,
) -> UiResult {
    let release = q.release.trim().to_string();
    let (files, next) = if ctx.project_id == 0 {
        (Vec::new(), None)
    } else {
        let page = store::list_files(
            state.store(),
            ctx.project_id,
            Some(release.as_str()).filter(|r| !r.is_empty()),
            &Cursor {
                after: Some(q.cursor.clone()).filter(|c| c.parse::<i64>().is_ok()),
                limit: Some(100),
            },
        )
        .await?;
        let rows = page
            .items
            .into_iter()
            .map(|f| FileRow {
                kind: f.kind.replace('_', " "),
                url: f.url,
                debug_id: f.debug_id.unwrap_or_default(),
                release: f.release.unwrap_or_default(),
                dist: f.dist.unwrap_or_default(),
                size: human_size(f.size),
                uploaded: When::at(f.created_at),
            })
            .collect();
        (rows, page.next)
    };
    Ok(render(&SourceMapsPage {
        title: "Source maps".into(),
        ctx,
        files,
        release,
        next,
    }))
}
