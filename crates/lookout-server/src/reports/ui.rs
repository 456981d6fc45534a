//! The Reports pages: the list of kept reports (scheduled and on demand) with the schedule in
//! force, a report for any period made on the spot (`/reports/view?kind=weekly&end=…`), and a
//! kept report (`/reports/{id}`). A report page is the standalone printable document that
//! emails carry, with links relative to this server.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::reports::{render as rrender, Kind, Report, Settings};
use crate::state::AppState;
use crate::ui::layout::{page_ctx, render, PageCtx};
use crate::ui::{not_found_page, ui_error, UiSession};
use lookout_store::tenancy;

/// A kept report in the list.
pub struct Line {
    pub id: i64,
    pub title: &'static str,
    pub period: String,
    pub how: &'static str,
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ListPage {
    title: String,
    ctx: PageCtx,
    schedule: String,
    channels: usize,
    lines: Vec<Line>,
}

/// `GET /reports`.
pub async fn list(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
) -> Response {
    let ctx = match page_ctx(&state, &s, &headers, "/reports").await {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let org = match tenancy::default_org(state.store()).await {
        Ok(o) => o,
        Err(e) => return ui_error(e),
    };
    let settings = match Settings::load(state.store(), org.id).await {
        Ok(s) => s,
        Err(e) => return ui_error(e),
    };
    let rows = match lookout_store::reports::list(state.store(), org.id, None, 100).await {
        Ok(r) => r,
        Err(e) => return ui_error(e),
    };
    let kinds: Vec<&str> = [
        (settings.daily, "daily"),
        (settings.weekly, "weekly on {w}"),
        (settings.monthly, "monthly on day {d}"),
    ]
    .into_iter()
    .filter_map(|(on, k)| on.then_some(k))
    .collect();
    let schedule = if kinds.is_empty() {
        "Off.".to_string()
    } else {
        format!(
            "{} at {} ({}).",
            kinds.join(", "),
            settings.time_of_day,
            settings.timezone
        )
        .replace("{w}", &settings.weekly_day)
        .replace("{d}", &settings.monthly_day.to_string())
    };
    let lines = rows
        .iter()
        .map(|r| Line {
            id: r.id,
            title: Kind::parse(&r.kind).map_or("Report", Kind::title),
            period: format!(
                "{} – {}",
                lookout_core::time::iso(r.period_start),
                lookout_core::time::iso(r.period_end)
            ),
            how: if r.scheduled {
                "scheduled"
            } else {
                "on demand"
            },
        })
        .collect();
    render(&ListPage {
        title: "Reports".into(),
        ctx,
        schedule,
        channels: settings.channel_ids.len(),
        lines,
    })
}

/// `?kind=&end=`.
#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    pub kind: String,
    pub end: Option<String>,
}

/// `GET /reports/view?kind=weekly&end=<RFC 3339>`: a report made now, not kept.
pub async fn view(
    State(state): State<AppState>,
    UiSession(_s): UiSession,
    Query(q): Query<ViewQuery>,
) -> Response {
    let Some(kind) = Kind::parse(&q.kind) else {
        return not_found_page();
    };
    let given = q.end.as_deref().filter(|e| !e.is_empty());
    let Ok(end) = crate::reports::service::end_of(given, lookout_core::time::now_ms()) else {
        return not_found_page();
    };
    match crate::reports::service::generate(&state, kind, end).await {
        Ok(r) => Html(rrender::html(&r, "", Some("/reports"))).into_response(),
        Err(e) => ui_error(e),
    }
}

/// `GET /reports/{id}`: a kept report.
pub async fn kept(
    State(state): State<AppState>,
    UiSession(_s): UiSession,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return not_found_page();
    };
    let body = match lookout_store::reports::get(state.store(), id).await {
        Ok((_, b)) => b,
        Err(lookout_store::StoreError::NotFound) => return not_found_page(),
        Err(e) => return ui_error(e),
    };
    match serde_json::from_value::<Report>(body) {
        Ok(r) => Html(rrender::html(&r, "", Some("/reports"))).into_response(),
        Err(e) => ui_error(e),
    }
}
