//! The overview (`/`) answers "is anything broken?": open incidents by urgency, monitors down and
//! for how long, services whose error rate or p95 moved beyond their baseline, new and regressed
//! issues, who is on call now and the latest deploys. The event feed and its charts moved to the
//! Activity page (`/activity`, `activity`).

use askama::Template;
use axum::extract::State;

use crate::alerting::engine;
use crate::api::ProjectView;
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};
use lookout_core::time::now_ms;
use lookout_store::alerting::incidents::{self, ListFilter};
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::errors::{self, IssueFilter};
use lookout_store::uptime as ustore;
use lookout_store::{markers, tenancy, Cursor, Result, Store};

/// How far back "now" reaches for services, and what it is compared with.
const RECENT_MS: i64 = 15 * 60_000;
const BASELINE_MS: i64 = 24 * 3_600_000;

struct IncidentLine {
    id: i64,
    title: String,
    status: String,
    urgency: String,
    opened: When,
}

struct DownLine {
    id: i64,
    name: String,
    since: Option<When>,
    for_how_long: String,
    reason: String,
}

struct ServiceLine {
    name: String,
    what: String,
}

struct IssueLine {
    id: i64,
    title: String,
    kind: String,
    seen: When,
    events: String,
}

struct DeployLine {
    title: String,
    version: Option<String>,
    url: Option<String>,
    at: When,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    title: String,
    ctx: PageCtx,
    project: Option<ProjectView>,
    high: usize,
    low: usize,
    incidents: Vec<IncidentLine>,
    down: Vec<DownLine>,
    services: Vec<ServiceLine>,
    issues: Vec<IssueLine>,
    on_call: Vec<(String, String)>,
    deploys: Vec<DeployLine>,
}

async fn open_incidents(store: &Store, org: i64) -> Result<Vec<IncidentLine>> {
    let rows = incidents::list(
        store,
        org,
        &ListFilter {
            statuses: vec!["triggered".into(), "acknowledged".into()],
            limit: 1000,
            ..Default::default()
        },
    )
    .await?;
    let mut out: Vec<IncidentLine> = rows
        .into_iter()
        .map(|r| IncidentLine {
            id: r.id,
            title: r.title,
            status: r.status,
            urgency: r.urgency,
            opened: When::at(r.created_at),
        })
        .collect();
    // High urgency first, then unacknowledged, then newest.
    out.sort_by_key(|i| (i.urgency != "high", i.status != "triggered", -i.opened.ms));
    Ok(out)
}

async fn monitors_down(store: &Store, org: i64, now: i64) -> Result<Vec<DownLine>> {
    let page = ustore::list_monitors(
        store,
        org,
        &Cursor {
            after: None,
            limit: Some(1000),
        },
    )
    .await?;
    Ok(page
        .items
        .into_iter()
        .filter(|(_, s)| s.health == "down")
        .map(|(m, s)| DownLine {
            id: m.id,
            name: m.name,
            since: When::opt(s.changed_at),
            for_how_long: s
                .changed_at
                .map_or(String::new(), |t| fmt::span((now - t).max(0))),
            reason: s.last_failure.unwrap_or_default(),
        })
        .collect())
}

/// Services whose error rate or p95 of the last 15 minutes moved beyond the day before.
async fn services_moved(store: &Store, projects: &[i64], now: i64) -> Result<Vec<ServiceLine>> {
    let recent = crate::apm::services(store, projects, now - RECENT_MS, now).await?;
    let base = crate::apm::services(
        store,
        projects,
        now - RECENT_MS - BASELINE_MS,
        now - RECENT_MS,
    )
    .await?;
    let mut out = Vec::new();
    for (s, f) in recent {
        // Too few requests say nothing either way.
        if f.count < 10 {
            continue;
        }
        let b = base.iter().find(|(x, _)| x.name == s.name).map(|(_, f)| f);
        let mut what = Vec::new();
        let (err, base_err) = (f.error_rate, b.map_or(0.0, |b| b.error_rate));
        if err >= 0.02 && err >= 2.0 * base_err {
            what.push(format!(
                "errors {} (baseline {})",
                fmt::percent(100.0 * err),
                fmt::percent(100.0 * base_err)
            ));
        }
        if let (Some(p95), Some(bp)) = (f.p95, b.and_then(|b| b.p95)) {
            if p95 >= 1.5 * bp && p95 - bp >= 50.0 {
                what.push(format!(
                    "p95 {} (baseline {})",
                    fmt::duration_ms(p95),
                    fmt::duration_ms(bp)
                ));
            }
        }
        if !what.is_empty() {
            out.push(ServiceLine {
                name: s.name,
                what: what.join(" · "),
            });
        }
    }
    Ok(out)
}

/// Unresolved issues new or regressed in the last day.
async fn new_issues(store: &Store, project: i64, now: i64) -> Result<Vec<IssueLine>> {
    let page = errors::list_issues(
        store,
        project,
        &IssueFilter::default(),
        &Cursor {
            after: None,
            limit: Some(50),
        },
    )
    .await?;
    Ok(page
        .items
        .into_iter()
        .filter(|i| now - i.last_seen < 86_400_000)
        .filter_map(|i| {
            let kind = match i.substatus.as_deref() {
                Some("regressed") => "regressed",
                _ if now - i.first_seen < 86_400_000 => "new",
                _ => return None,
            };
            Some(IssueLine {
                id: i.id,
                title: i.title,
                kind: kind.into(),
                seen: When::at(i.last_seen),
                events: fmt::count(i.count as f64),
            })
        })
        .take(10)
        .collect())
}

/// (schedule, who is on call) for every schedule.
async fn on_call(store: &Store, org: i64, now: i64) -> Result<Vec<(String, String)>> {
    let rows = astore::spec_list(store, SpecTable::Schedules, org).await?;
    let mut conn = store.pool().acquire().await?;
    let mut who = Vec::new();
    for row in rows {
        let user = engine::on_call(&mut conn, row.id, now).await?;
        who.push((row.name, user));
    }
    drop(conn);
    let ids: Vec<i64> = who.iter().filter_map(|w| w.1).collect();
    let names = astore::display_names(store, &ids).await?;
    Ok(who
        .into_iter()
        .map(|(schedule, user)| {
            let name = user.map_or_else(
                || "nobody".to_string(),
                |u| names.get(&u).cloned().unwrap_or(format!("user {u}")),
            );
            (schedule, name)
        })
        .collect())
}

/// `GET /`: what is broken now, who is on it, and what changed.
pub async fn overview(State(state): State<AppState>, Page { ctx, .. }: Page) -> UiResult {
    let store = state.store();
    let now = now_ms();
    let org = tenancy::default_org(store).await?.id;
    let projects = tenancy::project_ids(store).await?;
    let (project, issues, deploys) = match ctx.project_id {
        0 => (None, Vec::new(), Vec::new()),
        id => {
            let marks = markers::list(
                store,
                id,
                &Cursor {
                    after: None,
                    limit: Some(5),
                },
            )
            .await?
            .items;
            (
                Some(ProjectView::new(
                    tenancy::get_project(store, id).await?,
                    state.settings(),
                )),
                new_issues(store, id, now).await?,
                marks
                    .into_iter()
                    .map(|m| DeployLine {
                        title: m.title,
                        version: m.version,
                        url: m.url.filter(|u| crate::ui::safe_link(u)),
                        at: When::at(m.at),
                    })
                    .collect(),
            )
        }
    };
    let incidents = open_incidents(store, org).await?;
    let high = incidents.iter().filter(|i| i.urgency == "high").count();
    Ok(render(&OverviewPage {
        title: "Overview".into(),
        project,
        high,
        low: incidents.len() - high,
        incidents: incidents.into_iter().take(10).collect(),
        down: monitors_down(store, org, now).await?,
        services: services_moved(store, &projects, now).await?,
        issues,
        on_call: on_call(store, org, now).await?,
        deploys,
        ctx,
    }))
}
