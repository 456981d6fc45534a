//! The Load tests section: runs reported by `lookout load --report-to` (list, a run's charts of
//! req/s, latency percentiles and errors over time with its thresholds and checks, and two runs
//! side by side).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::charts::{self, Series};
use crate::state::AppState;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::Page;
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};
use lookout_load::Summary;
use lookout_store::load as lstore;
use lookout_store::{Cursor, StoreError};

/// A run as a list row.
pub struct RunLine {
    pub id: i64,
    pub name: String,
    pub started: When,
    pub duration: String,
    pub requests: i64,
    pub rps: String,
    pub p95: String,
    pub errors: String,
    pub passed: bool,
    pub commit: String,
}

fn line(r: &lstore::RunRow) -> RunLine {
    RunLine {
        id: r.id,
        name: r.name.clone(),
        started: When::at(r.started_at),
        duration: fmt::duration_ms(r.duration_ms as f64),
        requests: r.requests,
        rps: fmt::per_second(r.rps),
        p95: ms(r.p95_ms),
        errors: fmt::percent(r.error_rate * 100.0),
        passed: r.passed,
        commit: r.commit.clone().unwrap_or_default(),
    }
}

/// A latency through the shared units (`0.42 ms`, `62.3 ms`, `1.25 s`), not two decimals.
fn ms(v: f64) -> String {
    fmt::duration_ms(v)
}

#[derive(Template)]
#[template(path = "load_runs.html")]
struct RunsPage {
    title: String,
    ctx: PageCtx,
    runs: Vec<RunLine>,
}

/// `GET /load-tests`.
pub async fn list(State(state): State<AppState>, Page { ctx, .. }: Page) -> UiResult {
    let page = lstore::list(
        state.store(),
        &[ctx.project_id],
        &Cursor {
            after: None,
            limit: Some(200),
        },
    )
    .await?;
    Ok(render(&RunsPage {
        title: "Load tests".into(),
        ctx,
        runs: page.items.iter().map(line).collect(),
    }))
}

/// One threshold's verdict as shown.
pub struct ThresholdLine {
    pub metric: String,
    pub expression: String,
    pub observed: String,
    pub passed: bool,
}

/// A scenario's key figures as shown.
pub struct ScenarioLine {
    pub name: String,
    pub executor: String,
    pub requests: u64,
    pub rps: String,
    pub p50: String,
    pub p95: String,
    pub p99: String,
    pub errors: String,
    pub iterations: u64,
    pub dropped: u64,
}

#[derive(Template)]
#[template(path = "load_run.html")]
struct RunPage {
    title: String,
    ctx: PageCtx,
    run: RunLine,
    aborted: String,
    charts: Vec<String>,
    thresholds: Vec<ThresholdLine>,
    checks: Vec<(String, u64, u64)>,
    scenarios: Vec<ScenarioLine>,
    scenario_file: String,
}

/// Charts of one run: req/s, latency percentiles, failures and dropped iterations per second.
fn charts(s: &Summary, start: i64) -> Vec<String> {
    let at = |t: u32| start + i64::from(t) * 1000;
    let pts =
        |f: &dyn Fn(&lookout_load::metrics::SecondStats) -> f64, i: usize| -> Vec<(i64, f64)> {
            s.series
                .iter()
                .map(|p| (at(p.t), p.scenarios.get(i).map_or(0.0, f)))
                .collect()
        };
    let to = s.series.last().map_or(start + 1000, |p| at(p.t));
    let mut rps = vec![Series {
        name: "all".into(),
        points: pts(&|x| x.reqs as f64, 0),
    }];
    if s.scenarios.len() > 1 {
        for (i, sc) in s.scenarios.iter().enumerate() {
            rps.push(Series {
                name: sc.name.clone(),
                points: pts(&|x| x.reqs as f64, i + 1),
            });
        }
    }
    let latency = vec![
        Series {
            name: "p50".into(),
            points: pts(&|x| x.p50_ms, 0),
        },
        Series {
            name: "p95".into(),
            points: pts(&|x| x.p95_ms, 0),
        },
        Series {
            name: "p99".into(),
            points: pts(&|x| x.p99_ms, 0),
        },
    ];
    let errors = vec![
        Series {
            name: "failed requests".into(),
            points: pts(&|x| x.failed as f64, 0),
        },
        Series {
            name: "dropped iterations".into(),
            points: pts(&|x| x.dropped as f64, 0),
        },
    ];
    vec![
        charts::time_series("Requests per second", &rps, start, to),
        charts::time_series("Latency (ms)", &latency, start, to),
        charts::time_series("Failures per second", &errors, start, to),
    ]
}

fn scenario_lines(s: &Summary) -> Vec<ScenarioLine> {
    s.scenarios
        .iter()
        .map(|sc| ScenarioLine {
            name: sc.name.clone(),
            executor: sc.executor.clone(),
            requests: sc.requests,
            rps: fmt::per_second(sc.rps),
            p50: ms(sc.p50_ms),
            p95: ms(sc.p95_ms),
            p99: ms(sc.p99_ms),
            errors: fmt::percent(sc.error_rate * 100.0),
            iterations: sc.iterations,
            dropped: sc.dropped_iterations,
        })
        .collect()
}

/// A run and its summary; a missing run answers 404 "no such load run".
async fn load(state: &AppState, id: i64) -> UiResult<(lstore::RunRow, Summary, Option<String>)> {
    let (row, summary, file) = match lstore::get(state.store(), id).await {
        Err(StoreError::NotFound) => {
            return Err((StatusCode::NOT_FOUND, "no such load run")
                .into_response()
                .into())
        }
        r => r?,
    };
    let summary = serde_json::from_value(summary).map_err(UiError::internal)?;
    Ok((row, summary, file))
}

/// `GET /load-tests/{id}`.
pub async fn run(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(id): Path<i64>,
) -> UiResult {
    let (row, summary, file) = load(&state, id).await?;
    let thresholds = summary
        .thresholds
        .iter()
        .map(|t| ThresholdLine {
            metric: t.metric.clone(),
            expression: t.expression.clone(),
            observed: format!("{}={}", t.aggregation, fmt::number(t.observed)),
            passed: t.passed,
        })
        .collect();
    Ok(render(&RunPage {
        title: format!("Load test {}", row.name),
        ctx,
        aborted: summary.aborted.clone().unwrap_or_default(),
        charts: charts(&summary, row.started_at),
        thresholds,
        checks: summary
            .checks
            .iter()
            .map(|c| (c.name.clone(), c.passes, c.fails))
            .collect(),
        scenarios: scenario_lines(&summary),
        scenario_file: file.unwrap_or_default(),
        run: line(&row),
    }))
}

/// `?a=&b=`.
#[derive(Debug, Deserialize)]
pub struct CompareParams {
    pub a: Option<i64>,
    pub b: Option<i64>,
}

/// One scenario of a comparison: (name, [(figure, a, b, change)]).
type CompareRow = (String, Vec<(String, String, String, String)>);

#[derive(Template)]
#[template(path = "load_compare.html")]
struct ComparePage {
    title: String,
    ctx: PageCtx,
    a: RunLine,
    b: RunLine,
    rows: Vec<CompareRow>,
    charts: Vec<String>,
}

/// `GET /load-tests/compare?a=&b=`.
pub async fn compare(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Query(q): Query<CompareParams>,
) -> UiResult {
    let (Some(a), Some(b)) = (q.a, q.b) else {
        return Ok((StatusCode::BAD_REQUEST, "choose two runs: ?a=ID&b=ID").into_response());
    };
    let (ra, sa, _) = load(&state, a).await?;
    let (rb, sb, _) = load(&state, b).await?;
    let pct = |p: Option<f64>| p.map_or("—".to_string(), |p| format!("{p:+.1}%"));
    let mut rows = Vec::new();
    for c in lookout_load::summary::compare(&sa, &sb) {
        let (Some(x), Some(y), Some(d)) = (c.a, c.b, c.delta) else {
            continue;
        };
        rows.push((
            c.name,
            vec![
                (
                    "req/s".to_string(),
                    fmt::per_second(x.rps),
                    fmt::per_second(y.rps),
                    pct(d.rps_percent),
                ),
                (
                    "p50".to_string(),
                    ms(x.p50_ms),
                    ms(y.p50_ms),
                    pct(d.p50_percent),
                ),
                (
                    "p95".to_string(),
                    ms(x.p95_ms),
                    ms(y.p95_ms),
                    pct(d.p95_percent),
                ),
                (
                    "p99".to_string(),
                    ms(x.p99_ms),
                    ms(y.p99_ms),
                    pct(d.p99_percent),
                ),
                (
                    "errors".to_string(),
                    fmt::percent(x.error_rate * 100.0),
                    fmt::percent(y.error_rate * 100.0),
                    format!("{:+.2} pt", d.error_rate_change * 100.0),
                ),
            ],
        ));
    }
    // Both runs on one time axis from their own starts, so their shapes line up.
    let merged = merge_charts(&sa, &sb, a, b);
    Ok(render(&ComparePage {
        title: format!("Compare load tests {a} and {b}"),
        ctx,
        a: line(&ra),
        b: line(&rb),
        rows,
        charts: merged,
    }))
}

/// Charts with both runs' lines, aligned on seconds since each run's start.
fn merge_charts(sa: &Summary, sb: &Summary, a: i64, b: i64) -> Vec<String> {
    let pts =
        |s: &Summary, f: &dyn Fn(&lookout_load::metrics::SecondStats) -> f64| -> Vec<(i64, f64)> {
            s.series
                .iter()
                .map(|p| (i64::from(p.t) * 1000, p.scenarios.first().map_or(0.0, f)))
                .collect()
        };
    let to = sa.series.len().max(sb.series.len()) as i64 * 1000;
    let two = |title: &str, f: &dyn Fn(&lookout_load::metrics::SecondStats) -> f64| {
        charts::time_series(
            title,
            &[
                Series {
                    name: format!("run {a}"),
                    points: pts(sa, f),
                },
                Series {
                    name: format!("run {b}"),
                    points: pts(sb, f),
                },
            ],
            0,
            to.max(1000),
        )
    };
    vec![
        two("Requests per second", &|x| x.reqs as f64),
        two("p95 latency (ms)", &|x| x.p95_ms),
        two("Failures per second", &|x| x.failed as f64),
    ]
}
