//! The Regressions section: recent regressions and improvements across series, every series
//! with its newest value and state, and a series page with its chart (change points marked with
//! commit and magnitude) and the distributions before and after a change.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::charts::{self, Mark};
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_regress::detect::{median, rank_sum_p};
use lookout_regress::format_value;
use lookout_store::regress::{self, ChangePointRow};
use lookout_store::series::{self, SeriesRow};

/// A change point as a table row.
#[derive(Clone)]
pub struct ChangeLine {
    pub id: i64,
    pub series_id: i64,
    pub series: String,
    pub regression: bool,
    pub change: String,
    pub before: String,
    pub after: String,
    pub commit: String,
    pub p_value: String,
    pub at: When,
    pub index: i64,
}

fn label(name: &str, tags: &std::collections::BTreeMap<String, String>) -> String {
    lookout_regress::series_label(name, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn change_line(c: &ChangePointRow, series: String, unit: &str) -> ChangeLine {
    ChangeLine {
        id: c.id,
        series_id: c.series_id,
        series,
        regression: c.kind == "regression",
        change: format!(
            "{} ({}{} {unit})",
            c.change_percent
                .map_or_else(|| "n/a".into(), |p| format!("{p:+.1}%")),
            if c.after >= c.before { "+" } else { "" },
            format_value(c.after - c.before)
        ),
        before: format!("{} {unit}", format_value(c.before)),
        after: format!("{} {unit}", format_value(c.after)),
        commit: c.commit.clone().unwrap_or_default(),
        p_value: format!("{:.1e}", c.p_value),
        at: When::at(c.at),
        index: c.position + 1,
    }
}

/// A series as a list row.
pub struct SeriesLine {
    pub id: i64,
    pub label: String,
    pub unit: String,
    pub points: i64,
    pub last: String,
    pub direction: &'static str,
}

#[derive(Template)]
#[template(path = "regressions.html")]
struct ListPage {
    title: String,
    ctx: PageCtx,
    changes: Vec<ChangeLine>,
    series: Vec<SeriesLine>,
    /// The next page of series, if there are more.
    next: Option<String>,
}

/// The series list's page.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    cursor: String,
}

/// Series shown a page.
const SERIES_PAGE: i64 = 100;

/// `GET /regressions`.
pub async fn list(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Query(q): Query<ListQuery>,
) -> UiResult {
    let project = [ctx.project_id];
    // A mangled cursor shows the first page (the API answers 400).
    let after = (!q.cursor.is_empty() && q.cursor.parse::<i64>().is_ok()).then(|| q.cursor.clone());
    let cursor = lookout_store::Cursor {
        after,
        limit: Some(SERIES_PAGE),
    };
    let (recent, page) = tokio::try_join!(
        regress::recent(state.store(), &project, None, 100),
        series::list(state.store(), &project, None, &cursor),
    )?;
    let all = page.items;
    let changes = recent
        .iter()
        .map(|r| change_line(&r.change, label(&r.series, &r.tags), &r.unit))
        .collect();
    let series = all
        .iter()
        .map(|s| SeriesLine {
            id: s.id,
            label: label(&s.name, &s.tags),
            unit: s.unit.clone(),
            points: s.points,
            last: s.last_value.map(format_value).unwrap_or_default(),
            direction: match s.direction {
                series::Direction::LowerIsBetter => "lower is better",
                series::Direction::HigherIsBetter => "higher is better",
            },
        })
        .collect();
    Ok(render(&ListPage {
        title: "Regressions".into(),
        ctx,
        changes,
        series,
        next: page.next,
    }))
}

/// One side of a change, summarised.
pub struct SideStats {
    pub name: String,
    pub n: usize,
    pub median: String,
    pub mean: String,
    pub p10: String,
    pub p90: String,
}

fn side(name: &str, v: &[f64]) -> SideStats {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| s.get(((s.len() - 1) as f64 * p).round() as usize).copied();
    SideStats {
        name: name.into(),
        n: v.len(),
        median: format_value(median(v)),
        mean: format_value(v.iter().sum::<f64>() / v.len() as f64),
        p10: q(0.1).map(format_value).unwrap_or_default(),
        p90: q(0.9).map(format_value).unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "regress_series.html")]
struct SeriesPage {
    title: String,
    ctx: PageCtx,
    label: String,
    unit: String,
    points: i64,
    direction: &'static str,
    current: Option<ChangeLine>,
    chart: String,
    changes: Vec<ChangeLine>,
    selected: Option<ChangeLine>,
    compare: String,
    sides: Vec<SideStats>,
    p_value: String,
}

/// `?cp=` the change point whose before/after distributions to compare (default: the newest).
#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    pub cp: Option<i64>,
}

/// `GET /regressions/series/{id}`.
pub async fn series_page(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(id): Path<i64>,
    Query(q): Query<SeriesQuery>,
) -> UiResult {
    let Some(row): Option<SeriesRow> = series::get(state.store(), id).await? else {
        return Ok((StatusCode::NOT_FOUND, "no such series").into_response());
    };
    let (points, cps) = tokio::try_join!(
        series::points(state.store(), id, 100_000),
        regress::for_series(state.store(), id),
    )?;
    // The points shown may be the newest part of a longer series.
    let offset = row.points - points.len() as i64;
    let local = |pos: i64| (pos - offset).clamp(0, points.len() as i64) as usize;
    let lbl = label(&row.name, &row.tags);
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    let mut bounds: Vec<usize> = vec![0];
    bounds.extend(cps.iter().map(|c| local(c.position)));
    bounds.push(values.len());
    let regimes: Vec<(usize, usize, f64)> = bounds
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| (w[0], w[1], median(&values[w[0]..w[1]])))
        .collect();
    let marks: Vec<Mark> = cps
        .iter()
        .map(|c| Mark {
            index: local(c.position),
            label: format!(
                "{} {}",
                c.commit
                    .as_deref()
                    .map(|s| s.chars().take(8).collect::<String>())
                    .unwrap_or_else(|| format!("#{}", c.position + 1)),
                c.change_percent
                    .map_or_else(String::new, |p| format!("{p:+.1}%"))
            ),
            regression: c.kind == "regression",
        })
        .collect();
    let labelled: Vec<(String, f64)> = points
        .iter()
        .map(|p| {
            (
                format!(
                    "{}{}",
                    When::at(p.at).absolute(),
                    p.commit
                        .as_deref()
                        .map(|c| format!(" · {c}"))
                        .unwrap_or_default()
                ),
                p.value,
            )
        })
        .collect();
    let chart = charts::change_chart(
        &format!("{lbl} ({})", row.unit),
        &labelled,
        &regimes,
        &marks,
    );
    let selected_i = match q.cp {
        Some(cp) => cps.iter().position(|c| c.id == cp),
        None => cps.len().checked_sub(1),
    };
    let (compare, sides, p_value) = match selected_i {
        Some(i) => {
            let a = if i == 0 {
                0
            } else {
                local(cps[i - 1].position)
            };
            let b = local(cps[i].position);
            let c = cps.get(i + 1).map_or(values.len(), |n| local(n.position));
            let (before, after) = (&values[a..b], &values[b..c]);
            (
                charts::distributions(
                    "Points, the 25th-75th percentile box with the median, whiskers at the 5th and 95th",
                    &[("before".into(), before.to_vec()), ("after".into(), after.to_vec())],
                ),
                if before.is_empty() || after.is_empty() {
                    Vec::new()
                } else {
                    vec![side("before", before), side("after", after)]
                },
                format!("{:.1e}", rank_sum_p(before, after)),
            )
        }
        None => (String::new(), Vec::new(), String::new()),
    };
    let lines: Vec<ChangeLine> = cps
        .iter()
        .map(|c| change_line(c, lbl.clone(), &row.unit))
        .collect();
    let current =
        regress::fresh_regression(&cps, row.points).map(|c| change_line(c, lbl.clone(), &row.unit));
    Ok(render(&SeriesPage {
        title: format!("Series {lbl}"),
        ctx,
        label: lbl,
        unit: row.unit.clone(),
        points: row.points,
        direction: match row.direction {
            series::Direction::LowerIsBetter => "lower is better",
            series::Direction::HigherIsBetter => "higher is better",
        },
        current,
        chart,
        selected: selected_i.map(|i| lines[i].clone()),
        changes: lines,
        compare,
        sides,
        p_value,
    }))
}
