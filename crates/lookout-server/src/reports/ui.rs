//! The Reports pages: the list of kept reports (scheduled and on demand) with the schedule in
//! force, a report for any period made on the spot (`/reports/view?kind=weekly&end=…`), and a
//! kept report (`/reports/{id}`). A report page is the standalone printable document that
//! emails carry, with links relative to this server.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use serde::Deserialize;

use crate::reports::{render as rrender, Kind, Report, Settings};
use crate::state::AppState;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::Page;
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};
use crate::ui::UiSession;
use lookout_store::tenancy;

/// A kept report in the list.
pub struct Line {
    pub id: i64,
    pub title: &'static str,
    /// The period in the reports' time zone (`Mon 30 Nov 08:00 – Mon 07 Dec 08:00 CET`), as
    /// the schedule reads, rather than two RFC 3339 strings.
    pub period: String,
    /// When it was made.
    pub made: When,
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
pub async fn list(State(state): State<AppState>, Page { ctx, .. }: Page) -> UiResult {
    let org = tenancy::default_org(state.store()).await?;
    let settings = Settings::load(state.store(), org.id).await?;
    let rows = lookout_store::reports::list(state.store(), org.id, None, 100).await?;
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
    // Settings are validated when saved; an unreadable zone (an older version's) reads in UTC.
    let tz = settings.tz().unwrap_or(chrono_tz::UTC);
    let lines = rows
        .iter()
        .map(|r| Line {
            id: r.id,
            title: Kind::parse(&r.kind).map_or("Report", Kind::title),
            period: format!(
                "{} – {}",
                fmt::in_zone(r.period_start, tz),
                fmt::in_zone(r.period_end, tz)
            ),
            made: When::at(r.created_at),
            how: if r.scheduled {
                "scheduled"
            } else {
                "on demand"
            },
        })
        .collect();
    Ok(render(&ListPage {
        title: "Reports".into(),
        ctx,
        schedule,
        channels: settings.channel_ids.len(),
        lines,
    }))
}

/// `?kind=&end=`.
#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    pub kind: String,
    pub end: Option<String>,
}

/// `GET /reports/view?kind=weekly&end=<RFC 3339>`: a report made now, not kept. An unknown
/// kind or an unreadable end is a page that does not exist (404).
pub async fn view(
    State(state): State<AppState>,
    UiSession(_s): UiSession,
    Query(q): Query<ViewQuery>,
) -> UiResult {
    let kind = Kind::parse(&q.kind).ok_or(UiError::NotFound)?;
    let given = q.end.as_deref().filter(|e| !e.is_empty());
    let end = crate::reports::service::end_of(given, lookout_core::time::now_ms())
        .map_err(|_| UiError::NotFound)?;
    // An end in the future is the reader's mistake: a 400 page saying so (it used to be a 500).
    let r = crate::reports::service::generate(&state, kind, end).await?;
    Ok(Html(rrender::html(&r, "", Some("/reports"))).into_response())
}

/// `GET /reports/{id}`: a kept report.
pub async fn kept(
    State(state): State<AppState>,
    UiSession(_s): UiSession,
    Path(id): Path<String>,
) -> UiResult {
    let id = id.parse::<i64>().map_err(|_| UiError::NotFound)?;
    let (_, body) = lookout_store::reports::get(state.store(), id).await?;
    let r = serde_json::from_value::<Report>(body).map_err(UiError::internal)?;
    Ok(Html(rrender::html(&r, "", Some("/reports"))).into_response())
}
