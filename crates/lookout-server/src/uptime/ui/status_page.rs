//! Public status pages, no login: `/status/{slug}` (HTML), `/status/{slug}.json` and
//! `/status/{slug}/feed.atom`. One assembly of the data feeds all three, so they never disagree.

use askama::Template;
use atom_syndication::{Content, Entry, Feed, FixedDateTime, Link, Person, Text};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::extract::iso;
use crate::state::AppState;
use crate::uptime::view::status_of;
use crate::uptime::view::{incident_view, IncidentView};
use crate::uptime::Windows;
use lookout_core::time::now_ms;
use lookout_store::uptime::{self as ustore, pages, results};
use lookout_store::StoreError;
use lookout_uptime::schedule::{Recurrence, Window};

const DAY: i64 = 86_400_000;

/// One day of a monitor's 90-day bar.
#[derive(Debug, Serialize)]
pub struct DayBar {
    /// The UTC date.
    pub date: String,
    /// Uptime that day, percent (null: no checks).
    pub uptime: Option<f64>,
    /// Failing checks.
    pub down: i64,
}

/// A monitor on a public page.
#[derive(Debug, Serialize)]
pub struct PublicMonitor {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `up`, `down`, `pending`, `paused` or `maintenance`.
    pub status: String,
    /// Uptime over 90 days, percent.
    pub uptime_90d: Option<f64>,
    /// 90 daily bars, oldest first.
    pub days: Vec<DayBar>,
    /// Average response time per hour over the last 24 h: `[ms since epoch, ms]`.
    pub response_time_ms: Vec<(i64, f64)>,
}

/// A maintenance notice.
#[derive(Debug, Serialize)]
pub struct Notice {
    /// Title.
    pub title: String,
    /// Details.
    pub description: String,
    /// Open now.
    pub active: bool,
    /// Next opening, RFC 3339.
    pub next_start: Option<String>,
    /// When a one-off window ended, RFC 3339, for a day after (ended early or on time):
    /// readers see the maintenance is over rather than the notice vanishing.
    pub ended_at: Option<String>,
}

/// Everything a public page shows.
#[derive(Debug, Serialize)]
pub struct PublicPage {
    /// Slug.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// `operational`, `degraded` (some monitors down), `outage` (all down) or `maintenance`.
    pub status: String,
    /// Monitors.
    pub monitors: Vec<PublicMonitor>,
    /// Incidents, newest first.
    pub incidents: Vec<IncidentView>,
    /// Maintenance windows covering the page's monitors: active, upcoming, or ended within a day.
    pub maintenance: Vec<Notice>,
    /// When this was assembled, RFC 3339.
    pub generated_at: String,
}

async fn assemble(
    state: &AppState,
    slug: &str,
) -> Result<(pages::StatusPageRow, PublicPage), StoreError> {
    let page = pages::page_by_slug(state.store(), slug).await?;
    let store = state.store();
    let now = now_ms();
    let windows = Windows::load(store).await;
    let mut monitors = Vec::new();
    for (row, st) in ustore::monitors_by_ids(store, &page.monitor_ids).await? {
        let today = now - now.rem_euclid(DAY);
        let since = today - 89 * DAY;
        let daily = results::buckets(store, row.id, "d", since).await?;
        let days = (0..90)
            .map(|i| {
                let day = since + i * DAY;
                let b = daily.iter().find(|b| b.bucket == day);
                DayBar {
                    date: iso(day).get(..10).unwrap_or_default().to_string(),
                    uptime: b
                        .filter(|b| b.up + b.down > 0)
                        .map(|b| 100.0 * b.up as f64 / (b.up + b.down) as f64),
                    down: b.map_or(0, |b| b.down),
                }
            })
            .collect();
        let hourly = results::buckets(store, row.id, "h", now - DAY).await?;
        monitors.push(PublicMonitor {
            id: row.id,
            status: status_of(&row, &st, &windows, now),
            name: row.name,
            uptime_90d: results::uptime_since(store, row.id, now - 90 * DAY).await?,
            days,
            response_time_ms: hourly
                .iter()
                .filter_map(|b| Some((b.bucket, b.latency_avg_us? as f64 / 1000.0)))
                .collect(),
        });
    }
    let mut maintenance = Vec::new();
    for w in pages::list_maintenance(store).await? {
        if !w.monitor_ids.iter().any(|id| page.monitor_ids.contains(id)) {
            continue;
        }
        let rec: Option<Recurrence> = w
            .recurrence
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok());
        let Ok(win) = Window::new(w.starts_at, w.ends_at, rec.as_ref()) else {
            continue;
        };
        let active = win.is_open(now);
        let next = win.next_start(now);
        let ended = w
            .ends_at
            .filter(|e| rec.is_none() && !active && *e <= now && now - e < DAY);
        if active || next.is_some() || ended.is_some() {
            maintenance.push(Notice {
                title: w.title,
                description: w.description,
                active,
                next_start: next.map(iso),
                ended_at: ended.map(iso),
            });
        }
    }
    let down = monitors.iter().filter(|m| m.status == "down").count();
    let status = if monitors.iter().any(|m| m.status == "maintenance") && down == 0 {
        "maintenance"
    } else if down == 0 {
        "operational"
    } else if down == monitors.len() {
        "outage"
    } else {
        "degraded"
    };
    let incidents = pages::incidents(store, page.id, 50)
        .await?
        .into_iter()
        .map(incident_view)
        .collect();
    let public = PublicPage {
        slug: page.slug.clone(),
        title: page.title.clone(),
        description: page.description.clone(),
        logo_url: page.logo_url.clone(),
        status: status.into(),
        monitors,
        incidents,
        maintenance,
        generated_at: iso(now),
    };
    Ok((page, public))
}

fn missing() -> Response {
    (StatusCode::NOT_FOUND, "No such status page.").into_response()
}

fn failed(e: &StoreError) -> Response {
    tracing::error!(error = %e, "Status page could not be assembled.");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "Status page unavailable; try again shortly.",
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "status_page.html")]
struct StatusHtml {
    p: PublicPage,
    charts: Vec<String>,
}

impl StatusHtml {
    /// An RFC 3339 time of the page's JSON shape as a relative time with the absolute on hover.
    fn when(&self, at: &str) -> crate::ui::fmt::When {
        crate::ui::fmt::When::at(
            chrono::DateTime::parse_from_rfc3339(at).map_or(0, |t| t.timestamp_millis()),
        )
    }

    /// An uptime percentage as people read it (99.95 %, 100 %).
    fn pct(&self, u: &f64) -> String {
        crate::ui::fmt::percent(*u)
    }
}

/// `/status/{slug}` (HTML) and `/status/{slug}.json`.
pub async fn page(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    let (slug, json) = match slug.strip_suffix(".json") {
        Some(s) => (s.to_string(), true),
        None => (slug, false),
    };
    let p = match assemble(&state, &slug).await {
        Ok((_, p)) => p,
        Err(StoreError::NotFound) => return missing(),
        Err(e) => return failed(&e),
    };
    if json {
        return ([(header::CACHE_CONTROL, "public, max-age=30")], Json(p)).into_response();
    }
    let now = now_ms();
    let charts = p
        .monitors
        .iter()
        .map(|m| {
            crate::charts::time_series(
                &format!("{}: response time (ms), last 24 h", m.name),
                &[crate::charts::Series {
                    name: "average".into(),
                    points: m.response_time_ms.clone(),
                }],
                now - DAY,
                now,
            )
        })
        .collect();
    match (StatusHtml { p, charts }).render() {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=30"),
            ],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Status page template failed.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Status page unavailable.",
            )
                .into_response()
        }
    }
}

fn fixed(ms: i64) -> FixedDateTime {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .fixed_offset()
}

/// `/status/{slug}/feed.atom`: each incident update is an entry.
pub async fn feed(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    let (row, p) = match assemble(&state, &slug).await {
        Ok(x) => x,
        Err(StoreError::NotFound) => return missing(),
        Err(e) => return failed(&e),
    };
    let base = format!("{}/status/{}", state.settings().public_url, row.slug);
    let incidents = match pages::incidents(state.store(), row.id, 50).await {
        Ok(i) => i,
        Err(e) => return failed(&e),
    };
    let mut entries = Vec::new();
    let mut newest = row.updated_at;
    for i in &incidents {
        for u in &i.updates {
            newest = newest.max(u.at);
            let mut content = Content::default();
            content.set_content_type(Some("text".to_string()));
            content.set_value(Some(u.body.clone()));
            let mut e = Entry::default();
            e.set_id(format!("{base}#incident-{}-update-{}", i.id, u.id));
            e.set_title(Text::plain(format!("{} — {}", i.title, u.status)));
            e.set_updated(fixed(u.at));
            e.set_published(Some(fixed(u.at)));
            e.set_content(Some(content));
            let mut link = Link::default();
            link.set_href(format!("{base}#incident-{}", i.id));
            e.set_links(vec![link]);
            entries.push(e);
        }
    }
    let mut feed = Feed::default();
    feed.set_id(base.clone());
    feed.set_title(Text::plain(format!("{} status", p.title)));
    feed.set_updated(fixed(newest));
    let mut author = Person::default();
    author.set_name(p.title.clone());
    feed.set_authors(vec![author]);
    let mut home = Link::default();
    home.set_href(base.clone());
    let mut me = Link::default();
    me.set_href(format!("{base}/feed.atom"));
    me.set_rel("self");
    feed.set_links(vec![home, me]);
    feed.set_entries(entries);
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed.to_string(),
    )
        .into_response()
}
