//! The Performance section: the services list, a service's page with its golden metrics, and a
//! transaction's page with its sample traces. Every figure comes from `crate::apm`, the code the
//! API uses, over the same rollups.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use crate::apm::{self, Figures};
use crate::charts::{self, Bar, Series};
use crate::state::AppState;
use crate::teams::owned_ui::{self, team_field, TeamField, TeamLists, TeamQuery};
use crate::teams::ownership::team_of_form;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};
use lookout_core::time::now_ms;
use lookout_store::apm::query;
use lookout_store::ownership::TeamChange;

/// The window a page shows: `?range=1h|6h|24h|7d|30d`.
#[derive(Debug, Deserialize, Default)]
pub struct RangeQuery {
    range: Option<String>,
    name: Option<String>,
    /// `mine`: the viewer's teams' services only (the services list).
    team: Option<String>,
}

/// The windows offered, with their length in ms.
pub const RANGES: &[(&str, i64)] = &[
    ("1h", 3_600_000),
    ("6h", 6 * 3_600_000),
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
];

/// The range tabs, the chosen one marked.
pub fn tabs(range: &str) -> Vec<(&'static str, bool)> {
    RANGES.iter().map(|r| (r.0, r.0 == range)).collect()
}

/// `(label, since, until)` of the chosen window (default the last hour).
pub fn window(range: Option<&str>) -> (String, i64, i64) {
    let (label, len) = RANGES
        .iter()
        .find(|(l, _)| Some(*l) == range)
        .copied()
        .unwrap_or(RANGES[0]);
    let until = now_ms();
    (label.to_string(), until - len, until)
}

/// A duration for display, through the shared units (`0.42 ms`, `62.3 ms`, `1.25 s`).
pub fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), fmt::duration_ms)
}

/// A share (0 to 1) for display as a percentage (`0 %`, `0.05 %`, `12.3 %`).
pub fn pct(v: f64) -> String {
    fmt::percent(v * 100.0)
}

/// One row of a figures table.
pub struct Line {
    pub name: String,
    pub href: String,
    pub count: String,
    pub rpm: String,
    pub avg: String,
    pub p50: String,
    pub p95: String,
    pub p99: String,
    pub error_rate: String,
    pub failing: bool,
    pub apdex: String,
    pub total: String,
    /// The owning team's name (services list), or empty.
    pub team: String,
}

fn line(f: &Figures, href: String) -> Line {
    Line {
        name: f.name.clone(),
        href,
        count: fmt::grouped(i64::try_from(f.count).unwrap_or(i64::MAX)),
        rpm: charts::compact(f.rpm),
        avg: ms(f.avg),
        p50: ms(f.p50),
        p95: ms(f.p95),
        p99: ms(f.p99),
        error_rate: pct(f.error_rate),
        failing: f.error_rate >= 0.05,
        apdex: f.apdex.map_or("–".into(), |a| format!("{a:.2}")),
        total: ms(Some(f.total_ms)),
        team: String::new(),
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Template)]
#[template(path = "performance.html")]
struct ListPage {
    title: String,
    ctx: PageCtx,
    range: String,
    ranges: Vec<(&'static str, bool)>,
    services: Vec<Line>,
    owners: TeamLists,
}

/// `GET /performance`.
pub async fn list(
    State(state): State<AppState>,
    Page { ctx, session, .. }: Page,
    Query(q): Query<RangeQuery>,
) -> UiResult {
    let (range, since, until) = window(q.range.as_deref());
    let owners = TeamLists::load(&state, session.user.id, &TeamQuery { team: q.team }).await?;
    let services = apm::services(state.store(), &[ctx.project_id], since, until).await?;
    Ok(render(&ListPage {
        title: "Performance".into(),
        range: range.clone(),
        ranges: tabs(&range),
        services: services
            .iter()
            .filter(|(s, _)| owners.keeps(s.team_id))
            .map(|(s, f)| Line {
                team: owners.name(s.team_id),
                ..line(
                    f,
                    format!("/performance/services/{}?range={range}", enc(&s.name)),
                )
            })
            .collect(),
        owners,
        ctx,
    }))
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    title: String,
    ctx: PageCtx,
    name: String,
    range: String,
    ranges: Vec<(&'static str, bool)>,
    summary: Line,
    apdex_t: String,
    slow_ms: String,
    charts: Vec<String>,
    classes: String,
    breakdown: String,
    slowest: Vec<Line>,
    consuming: Vec<Line>,
    db_total: Vec<Line>,
    db_mean: Vec<Line>,
    externals: Vec<Line>,
    externals_slow: Vec<Line>,
    slow_queries: Vec<(When, String, String, String, String)>,
    instances: Vec<(String, String, String, String)>,
    issues: Vec<(i64, String, String, String)>,
    /// The service's SLOs: (name, objective, attainment, budget left, bad).
    slos: Vec<(String, String, String, String, bool)>,
    /// The owning team select (members and admins change it).
    team_field: TeamField,
    can_edit: bool,
}

/// The SLOs of service `name` with their attainment and error budget left now.
async fn slo_rows(
    state: &AppState,
    name: &str,
) -> lookout_store::Result<Vec<(String, String, String, String, bool)>> {
    use lookout_store::alerting::{self as astore, SpecTable};
    let org = lookout_store::tenancy::default_org(state.store()).await?;
    let projects = lookout_store::tenancy::project_ids(state.store()).await?;
    let mut out = Vec::new();
    for row in astore::spec_list(state.store(), SpecTable::Slos, org.id).await? {
        let Ok(spec) = serde_json::from_value::<crate::reports::slo::SloSpec>(row.spec) else {
            continue;
        };
        if spec.service != name {
            continue;
        }
        let b = crate::reports::services_evaluate(
            state.store(),
            &projects,
            &spec,
            lookout_core::time::now_ms(),
        )
        .await?;
        out.push((
            row.name,
            format!(
                "{} ≥ {} % over {} d",
                crate::reports::objective(&spec),
                spec.target,
                spec.window_days
            ),
            b.attainment.map_or("—".into(), fmt::percent),
            b.budget_remaining
                .map_or("—".into(), |r| fmt::percent(100.0 * r)),
            b.budget_remaining.is_some_and(|r| r < 0.25),
        ));
    }
    Ok(out)
}

/// `GET /performance/services/{name}`.
pub async fn service(
    State(state): State<AppState>,
    Page { ctx, session, .. }: Page,
    Path(name): Path<String>,
    Query(q): Query<RangeQuery>,
) -> UiResult {
    let (range, since, until) = window(q.range.as_deref());
    let can_edit = session.user.role >= lookout_core::Role::Member;
    let Some(o) = apm::overview(state.store(), &[ctx.project_id], &name, since, until).await?
    else {
        return Ok((StatusCode::NOT_FOUND, "no such service").into_response());
    };
    let tx_href = |f: &Figures| {
        format!(
            "/performance/services/{}/transaction?name={}&range={range}",
            enc(&name),
            enc(&f.name)
        )
    };
    let mut slowest = o.transactions.clone();
    slowest.sort_by(|a, b| {
        b.p95
            .partial_cmp(&a.p95)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut consuming = o.transactions.clone();
    consuming.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    let mut db_total = o.databases.clone();
    db_total.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    let mut db_mean = o.databases.clone();
    db_mean.sort_by(|a, b| {
        b.avg
            .partial_cmp(&a.avg)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut ext_slow = o.externals.clone();
    ext_slow.sort_by(|a, b| {
        b.p95
            .partial_cmp(&a.p95)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let series = |title: &str, f: &dyn Fn(&apm::ChartPoint) -> Option<f64>| -> String {
        let points = o
            .chart
            .iter()
            .filter_map(|p| f(p).map(|v| (p.t, v)))
            .collect();
        charts::time_series(
            title,
            &[Series {
                name: title.into(),
                points,
            }],
            since,
            until,
        )
    };
    let charts = vec![
        series("Throughput (requests per minute)", &|p| Some(p.rpm)),
        charts::time_series(
            "Response time (ms)",
            &[
                Series {
                    name: "average".into(),
                    points: o
                        .chart
                        .iter()
                        .filter_map(|p| p.avg.map(|v| (p.t, v)))
                        .collect(),
                },
                Series {
                    name: "p95".into(),
                    points: o
                        .chart
                        .iter()
                        .filter_map(|p| p.p95.map(|v| (p.t, v)))
                        .collect(),
                },
            ],
            since,
            until,
        ),
        series("Error rate (%)", &|p| Some(p.error_rate * 100.0)),
    ];
    let classes = charts::bar_chart(
        "Requests by HTTP status class",
        &o.status_classes
            .iter()
            .map(|(k, v)| Bar {
                label: k.clone(),
                value: *v as f64,
            })
            .collect::<Vec<_>>(),
    );
    let breakdown = charts::bar_chart(
        "Time spent (ms)",
        &[
            Bar {
                label: "own code".into(),
                value: o.breakdown.own_ms,
            },
            Bar {
                label: "databases".into(),
                value: o.breakdown.db_ms,
            },
            Bar {
                label: "external calls".into(),
                value: o.breakdown.external_ms,
            },
        ],
    );
    // Database and external rows link nowhere.
    let plain = |list: &[Figures]| {
        list.iter()
            .take(10)
            .map(|f| line(f, String::new()))
            .collect()
    };
    let slos = slo_rows(&state, &name).await?;
    let team_field = team_field(&state, &owned_ui::selected(o.team_id), false).await?;
    Ok(render(&ServicePage {
        slos,
        team_field,
        can_edit,
        title: format!("{name} · Performance"),
        summary: line(&o.summary, String::new()),
        apdex_t: ms(Some(o.apdex_t_ms)),
        slow_ms: ms(Some(o.slow_query_ms)),
        charts,
        classes,
        breakdown,
        slowest: slowest
            .iter()
            .take(10)
            .map(|f| line(f, tx_href(f)))
            .collect(),
        consuming: consuming
            .iter()
            .take(10)
            .map(|f| line(f, tx_href(f)))
            .collect(),
        db_total: plain(&db_total),
        db_mean: plain(&db_mean),
        externals: plain(&o.externals),
        externals_slow: plain(&ext_slow),
        slow_queries: o
            .slow_queries
            .iter()
            .map(|q| {
                (
                    When::at(q.at),
                    ms(Some(q.duration_ms)),
                    q.db_system.clone().unwrap_or_default(),
                    q.statement.clone(),
                    q.trace_id.clone(),
                )
            })
            .collect(),
        instances: o
            .instances
            .iter()
            .map(|i| {
                (
                    if i.instance.is_empty() {
                        "(not reported)".into()
                    } else {
                        i.instance.clone()
                    },
                    fmt::grouped(i.count),
                    pct(if i.count > 0 {
                        i.errors as f64 / i.count as f64
                    } else {
                        0.0
                    }),
                    ms(Some(i.avg_ms)),
                )
            })
            .collect(),
        issues: o
            .issues
            .iter()
            .map(|i| {
                (
                    i.id,
                    i.title.clone(),
                    i.culprit.clone(),
                    fmt::grouped(i.count),
                )
            })
            .collect(),
        name,
        ranges: tabs(&range),
        range,
        ctx,
    }))
}

#[derive(Template)]
#[template(path = "transaction.html")]
struct TransactionPage {
    title: String,
    ctx: PageCtx,
    service: String,
    name: String,
    name_q: String,
    range: String,
    ranges: Vec<(&'static str, bool)>,
    summary: Line,
    charts: Vec<String>,
    samples: Vec<(When, String, String, bool, String)>,
}

/// `GET /performance/services/{service}/transaction?name=…`.
pub async fn transaction(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(service): Path<String>,
    Query(q): Query<RangeQuery>,
) -> UiResult {
    let Some(name) = q.name.clone().filter(|n| !n.is_empty()) else {
        return Ok((StatusCode::BAD_REQUEST, "name: required").into_response());
    };
    let (range, since, until) = window(q.range.as_deref());
    let projects = [ctx.project_id];
    let t = query::service(state.store(), &projects, &service)
        .await?
        .map(|s| s.apdex_t_ms);
    let f = query::Filter {
        projects: &projects,
        service: Some(&service),
        category: Some("request"),
        operation: Some(&name),
    };
    let whole = query::fold(state.store(), &f, since, until, |_| Some(()))
        .await?
        .into_values()
        .next()
        .unwrap_or_default();
    let step = query::chart_step(since, until);
    let points = query::series(state.store(), &f, since, until, step).await?;
    let samples = query::search(
        state.store(),
        &query::SpanSearch {
            projects: &projects,
            service: Some(&service),
            operation: Some(&name),
            category: Some("request"),
            since,
            until,
            limit: 20,
            slowest_first: true,
            ..query::SpanSearch::default()
        },
    )
    .await?;
    let summary = Figures::of(&name, &whole, (until - since) as f64 / 60_000.0, t);
    let charts = vec![
        charts::time_series(
            "Response time (ms)",
            &[
                Series {
                    name: "p50".into(),
                    points: points
                        .iter()
                        .filter_map(|(t, r)| r.quantile(0.5).map(|v| (*t, v)))
                        .collect(),
                },
                Series {
                    name: "p95".into(),
                    points: points
                        .iter()
                        .filter_map(|(t, r)| r.quantile(0.95).map(|v| (*t, v)))
                        .collect(),
                },
                Series {
                    name: "p99".into(),
                    points: points
                        .iter()
                        .filter_map(|(t, r)| r.quantile(0.99).map(|v| (*t, v)))
                        .collect(),
                },
            ],
            since,
            until,
        ),
        charts::time_series(
            "Throughput (requests per minute)",
            &[Series {
                name: "rpm".into(),
                points: points
                    .iter()
                    .map(|(t, r)| (*t, r.count() as f64 / (step as f64 / 60_000.0)))
                    .collect(),
            }],
            since,
            until,
        ),
    ];
    Ok(render(&TransactionPage {
        title: format!("{name} · {service}"),
        summary: line(&summary, String::new()),
        charts,
        samples: samples
            .iter()
            .map(|s| {
                (
                    When::at(s.start_ns / 1_000_000),
                    ms(Some(s.duration_ns as f64 / 1e6)),
                    s.http_status.map(|c| c.to_string()).unwrap_or_default(),
                    s.error,
                    s.trace_id.clone(),
                )
            })
            .collect(),
        service,
        name_q: enc(&name),
        name,
        ranges: tabs(&range),
        range,
        ctx,
    }))
}

/// `POST /performance/services/{name}/team`: sets or clears the team that owns the service
/// (in the project shown), as `PUT /api/v1/apm/services/{name}` with `team_id` does.
pub async fn set_team(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(name): Path<String>,
    Form(f): Form<crate::teams::owned_ui::TeamForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let team = team_of_form(&state, Some(&f.team)).await?;
    let project = form.layout(&state).await?.project_id;
    if !query::set_service_settings(
        state.store(),
        &[project],
        &name,
        None,
        None,
        TeamChange::Set(team),
    )
    .await?
    {
        return Err(UiError::NotFound);
    }
    tracing::info!(service = %name, team = ?team, "APM service owner changed from the UI.");
    Ok(Redirect::to(&format!("/performance/services/{}", enc(&name))).into_response())
}
