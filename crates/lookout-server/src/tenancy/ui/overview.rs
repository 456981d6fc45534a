//! The overview (`/`): the selected project's DSN, activity charts, recent changes and events.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;

use crate::api::{MarkerView, ProjectView};
use crate::charts::{self, Bar, Series};
use crate::extract::iso;
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use lookout_core::time::now_ms;
use lookout_store::tenancy::{self};
use lookout_store::{events, markers, Cursor, StoreError};

use crate::ui::layout::{render, PageCtx};

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    title: String,
    ctx: PageCtx,
    project: Option<ProjectView>,
    activity_chart: String,
    kinds_chart: String,
    markers: Vec<MarkerView>,
    events: Vec<EventRow>,
}

struct EventRow {
    at: String,
    kind: String,
    details: String,
}

/// `GET /`: the selected project's DSN, activity charts, recent changes and events.
pub async fn overview(State(state): State<AppState>, Page { ctx, .. }: Page) -> UiResult {
    let result: Result<_, StoreError> = async {
        let project = match ctx.project_id {
            0 => None,
            id => Some(ProjectView::new(
                tenancy::get_project(state.store(), id).await?,
                state.settings(),
            )),
        };
        let markers = match ctx.project_id {
            0 => Vec::new(),
            id => {
                markers::list(
                    state.store(),
                    id,
                    &Cursor {
                        after: None,
                        limit: Some(10),
                    },
                )
                .await?
                .items
            }
        };
        let now = now_ms();
        let hour = 3_600_000;
        let from = (now / hour - 23) * hour;
        let counts = events::counts_by_bucket(state.store(), from, hour).await?;
        let recent = events::read_newest(state.store(), None, 20, None).await?;
        Ok((project, markers, counts, recent, from, now))
    }
    .await;
    let (project, markers, counts, recent, from, now) = result?;
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
            points: charts::zero_filled(&points, from, now, 3_600_000),
            name,
        })
        .collect();
    Ok(render(&OverviewPage {
        title: "Overview".into(),
        ctx,
        project,
        activity_chart: charts::time_series("Events per hour, last 24 hours", &series, from, now),
        kinds_chart: charts::bar_chart("Events by kind, last 24 hours", &bars),
        markers: markers.into_iter().map(MarkerView::from).collect(),
        events: recent
            .into_iter()
            .map(|e| EventRow {
                at: iso(e.created_at),
                kind: e.kind,
                details: e.payload.to_string(),
            })
            .collect(),
    }))
}
