//! The Activity page (`/activity`): every domain event of the last day as charts by hour and by
//! kind, and the newest events with their payloads — the feed the overview used to show, for
//! whoever wants to see what Lookout itself did.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;

use crate::charts::{self, Bar, Series};
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_core::time::now_ms;
use lookout_store::events;

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    title: String,
    ctx: PageCtx,
    activity_chart: String,
    kinds_chart: String,
    events: Vec<EventRow>,
}

struct EventRow {
    at: When,
    kind: String,
    details: String,
}

/// `GET /activity`: events per hour and by kind over the last day, and the newest 50.
pub async fn activity(State(state): State<AppState>, Page { ctx, .. }: Page) -> UiResult {
    let now = now_ms();
    let hour = 3_600_000;
    let from = (now / hour - 23) * hour;
    let counts = events::counts_by_bucket(state.store(), from, hour).await?;
    let recent = events::read_newest(state.store(), None, 50, None).await?;
    let mut by_kind: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (bucket, kind, n) in counts {
        by_kind.entry(kind).or_default().push((bucket, n as f64));
    }
    let bars: Vec<Bar> = by_kind
        .iter()
        .map(|(k, pts)| Bar {
            label: k.clone(),
            value: pts.iter().map(|p| p.1).sum(),
        })
        .collect();
    let series: Vec<Series> = by_kind
        .into_iter()
        .map(|(name, points)| Series {
            points: charts::zero_filled(&points, from, now, hour),
            name,
        })
        .collect();
    Ok(render(&ActivityPage {
        title: "Activity".into(),
        ctx,
        activity_chart: charts::time_series("Events per hour, last 24 hours", &series, from, now),
        kinds_chart: charts::bar_chart("Events by kind, last 24 hours", &bars),
        events: recent
            .into_iter()
            .map(|e| EventRow {
                at: When::at(e.created_at),
                kind: e.kind,
                details: e.payload.to_string(),
            })
            .collect(),
    }))
}
