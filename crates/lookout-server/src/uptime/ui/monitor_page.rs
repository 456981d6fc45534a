//! The monitor page: what it checks and how often, the up/down beat bar of its last checks
//! (hover for time and reason), how long it has been down and its recent outages, the
//! response-time chart (passing checks only), uptime figures, the certificate, the push URL and
//! a heartbeat's ping log, cron check-ins, state changes, maintenance windows; and the actions:
//! Edit, Clone, Check now, Pause/Resume, Start maintenance, Delete.

use askama::Template;
use axum::extract::{Path, State};
use serde_json::Value;

use super::monitor_locations::{self, LocationsPanel};
use crate::charts;
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};
use crate::uptime::view::{monitor_view, MonitorView};
use crate::uptime::Windows;
use lookout_core::time::now_ms;
use lookout_store::uptime::{self as ustore, pages, results, Change};
use lookout_store::Cursor;
use lookout_uptime::schedule::{Recurrence, Window};
use lookout_uptime::MonitorSpec;

const HOUR: i64 = 3_600_000;

/// Checks shown in the monitor page's beat bar.
pub const BEATS: i64 = 50;

/// One check in a beat bar.
pub struct Beat {
    /// `up`, `down` or `maintenance`.
    pub class: &'static str,
    /// The hover text: time, result and latency or reason.
    pub tip: String,
}

/// Beats for results given newest first, drawn oldest first (left to right, as time runs).
pub fn beats(newest_first: &[results::ResultRow]) -> Vec<Beat> {
    newest_first
        .iter()
        .rev()
        .map(|r| {
            let when = When::at(r.at);
            let at = format!("{} ({})", when.absolute(), when.relative());
            let (class, what) = match (r.maintenance, r.ok) {
                (true, _) => (
                    "maintenance",
                    format!("maintenance, {}", if r.ok { "passed" } else { "failed" }),
                ),
                (false, true) => (
                    "up",
                    match r.latency_us {
                        Some(l) => format!("up, {}", fmt::duration_ms(l as f64 / 1000.0)),
                        None => "up".into(),
                    },
                ),
                (false, false) => (
                    "down",
                    format!("down: {}", r.message.as_deref().unwrap_or("failed")),
                ),
            };
            Beat {
                class,
                tip: format!("{at} · {what}"),
            }
        })
        .collect()
}

/// An outage: from going down to coming back up.
pub struct Outage {
    /// When it went down.
    pub start: When,
    /// How long it lasted (or has lasted, when ongoing).
    pub length: String,
    /// Still down.
    pub ongoing: bool,
    /// Why it went down.
    pub reason: String,
}

/// Outages from health changes given newest first; newest outage first.
fn outages(newest_first: &[Change], now: i64) -> Vec<Outage> {
    let mut out = Vec::new();
    let mut open: Option<&Change> = None;
    for c in newest_first.iter().rev() {
        if c.to == "down" && open.is_none() {
            open = Some(c);
        } else if c.from == "down" && c.to != "down" {
            if let Some(start) = open.take() {
                out.push(Outage {
                    start: When::at(start.at),
                    length: fmt::span(c.at - start.at),
                    ongoing: false,
                    reason: start.reason.clone(),
                });
            }
        }
    }
    if let Some(start) = open {
        out.push(Outage {
            start: When::at(start.at),
            length: fmt::span(now - start.at),
            ongoing: true,
            reason: start.reason.clone(),
        });
    }
    out.reverse();
    out
}

/// How long an ended one-off window stays listed: long enough to see that maintenance ended
/// (early, from **End maintenance now**, or on time) and when.
const ENDED_SHOWN_MS: i64 = 24 * HOUR;

/// A maintenance window covering this monitor, as the page lists it.
pub struct WindowLine {
    /// Id (the **End maintenance now** form names it).
    pub id: i64,
    /// Title.
    pub title: String,
    /// `active`, `upcoming` or `ended`.
    pub state: &'static str,
    /// When it ends (active), next starts (upcoming) or ended.
    pub at: Option<When>,
    /// Other monitors the window covers: ending it ends it for them too.
    pub others: usize,
}

fn window_lines(rows: Vec<pages::MaintenanceRow>, id: i64, now: i64) -> Vec<WindowLine> {
    rows.into_iter()
        .filter(|r| r.monitor_ids.contains(&id))
        .filter_map(|r| {
            let rec: Option<Recurrence> = r
                .recurrence
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok());
            let w = Window::new(r.starts_at, r.ends_at, rec.as_ref()).ok()?;
            let (state, at) = if let Some(until) = w.open_until(now) {
                ("active", When::opt(Some(until)))
            } else if let Some(next) = w.next_start(now) {
                ("upcoming", Some(When::at(next)))
            } else {
                // Only a one-off window that ended lately is still worth a line.
                let end = r
                    .ends_at
                    .filter(|e| rec.is_none() && now - e < ENDED_SHOWN_MS)?;
                ("ended", Some(When::at(end)))
            };
            Some(WindowLine {
                id: r.id,
                others: r.monitor_ids.iter().filter(|m| **m != id).count(),
                title: r.title,
                state,
                at,
            })
        })
        .collect()
}

#[derive(Template)]
#[template(path = "monitor.html")]
struct MonitorPage {
    title: String,
    ctx: PageCtx,
    v: MonitorView,
    kind: String,
    target: String,
    every: String,
    conditions: Vec<String>,
    chart: String,
    beats: Vec<Beat>,
    down_for: Option<String>,
    outages: Vec<Outage>,
    uptime: [(&'static str, String); 4],
    last_latency: Option<String>,
    last_check: Option<When>,
    last_failure_at: Option<When>,
    last_ping: Option<When>,
    pings: Vec<(When, String, String)>,
    changes: Vec<(When, Change)>,
    checkins: Vec<(When, String, String)>,
    windows: Vec<WindowLine>,
    /// A listed window is open now (the page explains what ending it does).
    maintenance_now: bool,
    paused: bool,
    can_edit: bool,
    /// Each location's state, latency and uptime, for a monitor checked from locations.
    locations: Option<LocationsPanel>,
}

fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "–".into(), fmt::percent)
}

/// `GET /uptime/monitors/{id}`.
pub async fn monitor(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(id): Path<i64>,
) -> UiResult {
    let store = state.store();
    let (row, st) = ustore::get_monitor(store, id).await?;
    let spec: Option<MonitorSpec> = serde_json::from_str(&row.spec).ok();
    let windows = Windows::load(store).await;
    let paused = row.paused;
    let kind = row.kind.clone();
    let created_at = row.created_at;
    let now = now_ms();
    let down_for = (st.health == "down")
        .then_some(st.changed_at)
        .flatten()
        .map(|at| fmt::span(now - at));
    let last_ping = When::opt(st.last_ping_at);
    let last_check = When::opt(st.last_check_at);
    let last_failure_at = When::opt(st.last_failure_at);
    let last_latency = st
        .last_latency_us
        .filter(|_| st.last_ok == Some(true))
        .map(|u| fmt::duration_ms(u as f64 / 1000.0));
    let v = monitor_view(store, state.settings(), &windows, row, st).await?;
    // Minutes over the last hour while the monitor is younger than six hours (a day's chart
    // would be one point), hourly averages and p95 over a day after that.
    let (width, bucket_ms, from) = if now - created_at < 6 * HOUR {
        ("m", 60_000, now - HOUR)
    } else {
        ("h", HOUR, now - 24 * HOUR)
    };
    let buckets = results::buckets(store, id, width, from).await?;
    let series = |name: &str, f: &dyn Fn(&results::Bucket) -> Option<i64>| charts::Series {
        name: name.into(),
        points: buckets
            .iter()
            .filter_map(|b| Some((b.bucket, f(b)? as f64 / 1000.0)))
            .collect(),
    };
    let chart = charts::time_series(
        "Response time of passing checks (ms)",
        &[
            series("average", &|b| b.latency_avg_us),
            series("p95", &|b| b.latency_p95_us),
        ],
        from,
        now,
    );
    let locations =
        monitor_locations::panel(store, &v, &buckets, v.uptime.day, bucket_ms, from, now).await?;
    let recent = results::list_results(
        store,
        id,
        &Cursor {
            after: None,
            limit: Some(BEATS),
        },
    )
    .await?
    .items;
    let all_changes = ustore::changes(store, id, 100).await?;
    let outages = outages(&all_changes, now).into_iter().take(10).collect();
    let changes = all_changes
        .into_iter()
        .take(20)
        .map(|c| (When::at(c.at), c))
        .collect();
    let checkins = if kind == "cron" {
        ustore::cron::recent(store, id, 20)
            .await?
            .into_iter()
            .map(|c| {
                (
                    When::at(c.started_at),
                    c.status,
                    c.duration_ms
                        .map(|d| fmt::duration_ms(d as f64))
                        .unwrap_or_default(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let pings = if kind == "heartbeat" {
        ustore::pings(store, id, 20)
            .await?
            .into_iter()
            .map(|p| {
                (
                    When::at(p.at),
                    p.source.unwrap_or_else(|| "–".into()),
                    p.method,
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let windows = window_lines(pages::list_maintenance(store).await?, id, now);
    let maintenance_now = windows.iter().any(|w| w.state == "active");
    let every = match (&spec, kind.as_str()) {
        (Some(s), "cron") if s.schedule.is_some() => {
            format!("cron {}", s.schedule.clone().unwrap_or_default())
        }
        (Some(s), _) => fmt::every(i64::from(s.interval_seconds)),
        (None, _) => String::new(),
    };
    let u = &v.uptime;
    let uptime = [
        ("24 hours", pct(u.day)),
        ("7 days", pct(u.week)),
        ("30 days", pct(u.month)),
        ("90 days", pct(u.quarter)),
    ];
    Ok(render(&MonitorPage {
        title: v
            .spec
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("Monitor")
            .to_string(),
        can_edit: v.managed_by.is_none() && ctx.role != "viewer",
        ctx,
        target: super::monitors::target_of(&v),
        conditions: spec.as_ref().map(|s| s.conditions()).unwrap_or_default(),
        every,
        kind,
        beats: beats(&recent),
        down_for,
        outages,
        uptime,
        last_latency,
        last_check,
        last_failure_at,
        last_ping,
        pings,
        v,
        chart,
        changes,
        checkins,
        windows,
        maintenance_now,
        paused,
        locations,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at: i64, from: &str, to: &str) -> Change {
        Change {
            at,
            from: from.into(),
            to: to.into(),
            reason: format!("{from}→{to}"),
            alerted: true,
        }
    }

    #[test]
    fn outages_run_from_down_to_up_and_the_last_may_be_ongoing() {
        let newest_first = vec![
            change(900_000, "up", "down"),
            change(600_000, "down", "up"),
            change(0, "pending", "down"),
        ];
        let o = outages(&newest_first, 930_000);
        assert_eq!(o.len(), 2);
        assert!(o[0].ongoing);
        assert_eq!(o[0].length, "30 s");
        assert_eq!(o[1].length, "10 min");
        assert!(!o[1].ongoing);
    }

    #[test]
    fn beats_run_oldest_first_and_say_why_a_check_failed() {
        let r = |at, ok, message: Option<&str>| results::ResultRow {
            at,
            ok,
            maintenance: false,
            latency_us: Some(12_000),
            message: message.map(str::to_string),
        };
        let b = beats(&[
            r(2, false, Some("cannot connect to x:1: connection refused")),
            r(1, true, None),
        ]);
        assert_eq!(b[0].class, "up");
        assert!(b[0].tip.contains("up, 12"), "{}", b[0].tip);
        assert_eq!(b[1].class, "down");
        assert!(b[1]
            .tip
            .ends_with("down: cannot connect to x:1: connection refused"));
    }
}
