//! The Databases section: every checked database with its latest check, and a database's page
//! with its findings (index advice and operations), its statements by total time with the trend
//! of their mean time between snapshots, and its verification results.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;

use crate::charts;
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_store::dbhealth as dstore;
use lookout_store::StoreError;

/// A database as a list row.
pub struct TargetLine {
    pub id: i64,
    pub name: String,
    pub database: String,
    pub checked: Option<When>,
    pub state: String,
    pub bad: bool,
    pub critical: usize,
    pub warning: usize,
    pub failed: usize,
}

#[derive(Template)]
#[template(path = "databases.html")]
struct ListPage {
    title: String,
    ctx: PageCtx,
    targets: Vec<TargetLine>,
}

/// `GET /databases`.
pub async fn list(State(state): State<AppState>, Page { ctx, .. }: Page) -> UiResult {
    let targets = dstore::list(state.store(), &[ctx.project_id]).await?;
    let mut lines = Vec::new();
    for t in &targets {
        let last = dstore::checks(state.store(), t.id, 1, true)
            .await?
            .into_iter()
            .next();
        let counts = crate::dbhealth::Counts::of(last.as_ref().and_then(|c| c.report.as_ref()));
        let (checked, st, bad) = match &last {
            None => (None, "not checked yet".to_string(), false),
            Some(c) if !c.ok => (
                Some(When::at(c.started_at)),
                format!("check failed: {}", c.error.clone().unwrap_or_default()),
                true,
            ),
            Some(c) => (Some(When::at(c.started_at)), "checked".to_string(), false),
        };
        lines.push(TargetLine {
            id: t.id,
            name: t.name.clone(),
            database: crate::dbhealth::database_of(state.sealer(), t).unwrap_or_default(),
            checked,
            state: st,
            bad,
            critical: counts.critical,
            warning: counts.warning,
            failed: counts.verifications_failed,
        });
    }
    Ok(render(&ListPage {
        title: "Databases".into(),
        ctx,
        targets: lines,
    }))
}

/// A finding as shown.
pub struct FindingLine {
    pub severity: String,
    pub kind: String,
    pub object: String,
    pub detail: String,
}

/// A statement as shown.
pub struct QueryLine {
    pub query: String,
    pub calls: i64,
    pub total: String,
    pub mean: String,
    pub trend: String,
    pub worse: bool,
    pub spark: String,
    /// "service: transaction (calls)" from APM, or empty.
    pub callers: String,
}

#[derive(Template)]
#[template(path = "database.html")]
struct TargetPage {
    title: String,
    ctx: PageCtx,
    name: String,
    database: String,
    checked: Option<When>,
    error: String,
    version: String,
    advice: Vec<FindingLine>,
    operations: Vec<FindingLine>,
    queries: Vec<QueryLine>,
    verifications: Vec<(bool, String, String)>,
}

/// Index advice kinds; the rest are operations.
const ADVICE: &[&str] = &[
    "unused_index",
    "duplicate_index",
    "invalid_index",
    "missing_index",
    "table_bloat",
    "index_bloat",
];

/// `GET /databases/{id}`.
pub async fn target(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(id): Path<i64>,
) -> UiResult {
    let t = match dstore::get(state.store(), id).await {
        Err(StoreError::NotFound) => {
            return Ok((StatusCode::NOT_FOUND, "no such database").into_response())
        }
        t => t?,
    };
    let last = dstore::checks(state.store(), id, 1, true)
        .await?
        .into_iter()
        .next();
    // A page without trends still shows the findings.
    let trends: Vec<Value> = crate::dbhealth::view::trends(&state, id, 7)
        .await
        .unwrap_or_default();
    let report = last
        .as_ref()
        .and_then(|c| c.report.clone())
        .unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let (mut advice, mut operations) = (Vec::new(), Vec::new());
    for f in report["findings"].as_array().into_iter().flatten() {
        let line = FindingLine {
            severity: text(f, "severity"),
            kind: text(f, "kind"),
            object: text(f, "object"),
            detail: text(f, "detail"),
        };
        if ADVICE.contains(&line.kind.as_str()) {
            advice.push(line);
        } else {
            operations.push(line);
        }
    }
    let queries = trends
        .iter()
        .take(25)
        .map(|q| {
            let means: Vec<f64> = q["intervals"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["mean_ms"].as_f64())
                .collect();
            let trend = q["trend_percent"].as_f64();
            QueryLine {
                query: lookout_dbhealth::stats::one_line(
                    q["query"].as_str().unwrap_or_default(),
                    160,
                ),
                calls: q["calls"].as_i64().unwrap_or(0),
                total: crate::ui::fmt::duration_ms(q["total_ms"].as_f64().unwrap_or(0.0)),
                mean: crate::ui::fmt::duration_ms(q["mean_ms"].as_f64().unwrap_or(0.0)),
                trend: trend.map_or_else(|| "–".into(), |t| format!("{t:+.0}%")),
                worse: trend.is_some_and(|t| t >= 20.0),
                spark: charts::sparkline(&means, "mean ms per interval between checks"),
                callers: q["callers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(3)
                    .map(|c| {
                        format!(
                            "{}: {} ({} calls)",
                            c["service"].as_str().unwrap_or_default(),
                            c["transaction"].as_str().unwrap_or_default(),
                            c["calls"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })
        .collect();
    let verifications = report["verifications"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["passed"] == true, text(v, "name"), text(v, "detail")))
        .collect();
    Ok(render(&TargetPage {
        title: format!("Database {}", t.name),
        ctx,
        name: t.name.clone(),
        database: crate::dbhealth::database_of(state.sealer(), &t).unwrap_or_default(),
        checked: last.as_ref().map(|c| When::at(c.started_at)),
        error: last
            .as_ref()
            .and_then(|c| c.error.clone())
            .unwrap_or_default(),
        version: text(&report, "server_version"),
        advice,
        operations,
        queries,
        verifications,
    }))
}
