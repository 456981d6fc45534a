//! Lookout watching itself: the Operations page and API (replicas, the work they hold, consumer
//! lag, the outbox, readiness) and the cluster's figures on `/metrics`.
//!
//! Everything is read from the database on request (the page, the API, each scrape), not kept
//! in memory: every replica then shows the same installation-wide picture, and a series exists
//! only while its replica or consumer is in the tables, so `/metrics` stays bounded however many
//! replicas have come and gone.

pub mod api;
pub mod heartbeat;
pub mod ui;
pub mod view;

use std::fmt::Write as _;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The Operations API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(api::get))
}

/// The Operations page.
pub fn pages() -> Router<AppState> {
    Router::new().route("/operations", get(ui::page))
}

/// How long a scrape waits for the database: `/metrics` must answer through an outage, when
/// these figures matter most (the in-memory ones still tell what happened).
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(1_000);

/// The cluster's figures in Prometheus text, appended to the recorder's on each scrape. Written
/// here rather than through the recorder because the recorder keeps every labelled series it
/// ever saw: a replica that left would be reported forever with its last heartbeat age.
pub async fn metrics_text(state: &AppState) -> String {
    // `/metrics` needs no token: without a cache, anyone could make every request run the
    // operations queries. One reading serves every scrape for a second, and concurrent scrapes
    // wait for the one reading in flight instead of starting their own.
    let mut cached = state.scrape_cache().lock().await;
    if let Some((at, text)) = cached.as_ref() {
        if at.elapsed() < std::time::Duration::from_secs(1) {
            return text.clone();
        }
    }
    let text = read_metrics_text(state).await;
    *cached = Some((std::time::Instant::now(), text.clone()));
    text
}

/// The cluster's figures as read now (see [`metrics_text`]).
async fn read_metrics_text(state: &AppState) -> String {
    let mut out = String::new();
    let offset = state.cluster().map_or(0, |c| -c.offset_ms());
    gauge(
        &mut out,
        "lookout_clock_offset_ms",
        "How far this replica's clock is from the database's, ms (positive: it runs fast).",
        &[(None, offset as f64)],
    );
    let read =
        tokio::time::timeout(SCRAPE_TIMEOUT, view::read(state.store(), state.cluster())).await;
    let v = match read {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "Could not read the cluster for /metrics.");
            return out;
        }
        Err(_) => return out,
    };
    gauge(
        &mut out,
        "lookout_replicas_live",
        "Replicas whose heartbeat is within the live window.",
        &[(None, v.replicas_live as f64)],
    );
    let ages: Vec<_> = v
        .replicas
        .iter()
        .map(|r| {
            (
                Some(("replica", r.name.as_str())),
                r.heartbeat_age_ms as f64 / 1000.0,
            )
        })
        .collect();
    gauge(
        &mut out,
        "lookout_replica_heartbeat_age_seconds",
        "Age of each known replica's last heartbeat (a replica is lost past 5 s).",
        &ages,
    );
    let lags: Vec<_> = v
        .consumers
        .iter()
        .map(|c| (Some(("consumer", c.consumer.as_str())), c.lag as f64))
        .collect();
    gauge(
        &mut out,
        "lookout_consumer_lag_events",
        "Items in a consumer's stream it has not processed yet.",
        &lags,
    );
    gauge(
        &mut out,
        "lookout_outbox_pending",
        "Notifications in the alerting outbox due now and not yet delivered.",
        &[(None, v.outbox.pending as f64)],
    );
    gauge(
        &mut out,
        "lookout_outbox_scheduled",
        "Notifications in the alerting outbox waiting for a later time (a notification rule's delay, a retry).",
        &[(None, v.outbox.scheduled as f64)],
    );
    out
}

/// Appends one gauge family; label values are escaped as the text format requires.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(Option<(&str, &str)>, f64)]) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (label, value) in samples {
        match label {
            Some((k, v)) => {
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = writeln!(out, "{name}{{{k}=\"{v}\"}} {value}");
            }
            None => {
                let _ = writeln!(out, "{name} {value}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_empty_families_left_out() {
        let mut out = String::new();
        gauge(
            &mut out,
            "x",
            "X.",
            &[(Some(("replica", "a\"b\\c\nd")), 1.5)],
        );
        gauge(&mut out, "y", "Y.", &[]);
        assert_eq!(
            out,
            "# HELP x X.\n# TYPE x gauge\nx{replica=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }
}
