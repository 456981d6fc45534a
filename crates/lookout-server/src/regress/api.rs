//! `/api/v1/series` and `/api/v1/regressions`: baseline series (benchmark pushes, importers,
//! load-test runs), their points and change points, and recent regressions and improvements
//! across series.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::api::scope::{project_of, projects_for};
use crate::api::ListParams;
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_core::time::{iso, now_ms};
use lookout_regress::import::Measure;
use lookout_store::regress::{self, ChangePointRow};
use lookout_store::series::{self, Direction, NewPoint, SeriesKey, SeriesRow};

/// Most points one push may carry.
const MAX_POINTS: usize = 10_000;

/// A measure from an importer as a point to store.
pub fn point_of(m: Measure, at: i64, commit: Option<&str>) -> NewPoint {
    NewPoint {
        key: SeriesKey {
            name: m.name,
            tags: m.tags,
            unit: m.unit,
            direction: if m.lower_is_better {
                Direction::LowerIsBetter
            } else {
                Direction::HigherIsBetter
            },
        },
        at,
        value: m.value,
        commit: commit.map(str::to_string),
        version: None,
        build: None,
        source: String::new(),
    }
}

/// A change point as the API shows it.
pub fn change_view(c: &ChangePointRow) -> Value {
    json!({
        "id": c.id,
        "series_id": c.series_id,
        "point_id": c.point_id,
        "index": c.position,
        "at": iso(c.at),
        "commit": c.commit,
        "before": c.before,
        "after": c.after,
        "change": c.after - c.before,
        "change_percent": c.change_percent,
        "p_value": c.p_value,
        "direction": c.kind,
        "detected_at": iso(c.detected_at),
    })
}

/// The series with its change points and the regression its newest points form, if any (what
/// `lookout regress check` fails on).
fn state_view(s: &SeriesRow, cps: &[ChangePointRow]) -> Value {
    let regression = regress::fresh_regression(cps, s.points);
    json!({
        "series": s,
        "change_points": cps.iter().map(change_view).collect::<Vec<_>>(),
        "regression": regression.map(change_view),
    })
}

/// `?project=&name=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesFilter {
    /// Project id or slug (all projects when absent).
    pub project: Option<String>,
    /// Only series with this name (any tags).
    pub name: Option<String>,
}

/// Baseline series with their newest point.
#[utoipa::path(get, operation_id = "series_list", path = "/api/v1/series", tag = "regress", params(SeriesFilter, ListParams),
    responses((status = 200, body = crate::api::schemas_ops::SeriesList)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(f): ApiQuery<SeriesFilter>,
    ApiQuery(page): ApiQuery<ListParams>,
) -> ApiResult<Json<Value>> {
    let ids = projects_for(&state, f.project.as_deref()).await?;
    let rows = series::list(state.store(), &ids, f.name.as_deref(), &page.cursor()).await?;
    Ok(Json(json!({"items": rows.items, "next": rows.next})))
}

async fn series_or_404(state: &AppState, id: i64) -> ApiResult<SeriesRow> {
    series::get(state.store(), id)
        .await?
        .ok_or(ApiError::NotFound("series"))
}

async fn series_with_changes(
    state: &AppState,
    id: i64,
) -> ApiResult<(SeriesRow, Vec<ChangePointRow>)> {
    let s = series_or_404(state, id).await?;
    Ok((s, regress::for_series(state.store(), id).await?))
}

/// One series with its change points and current regression.
#[utoipa::path(get, operation_id = "series_get_one", path = "/api/v1/series/{series}", tag = "regress",
    params(("series" = i64, Path, description = "Series id")),
    responses((status = 200, body = crate::api::schemas_ops::SeriesState), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let (s, cps) = series_with_changes(&state, id).await?;
    Ok(Json(state_view(&s, &cps)))
}

/// `?limit=` (default 1000).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PointsQuery {
    /// The newest this many points.
    pub limit: Option<i64>,
}

/// A series' points, oldest first.
#[utoipa::path(get, path = "/api/v1/series/{series}/points", tag = "regress",
    params(("series" = i64, Path, description = "Series id"), PointsQuery),
    responses((status = 200, body = crate::api::schemas_ops::PointList), (status = 404, body = ErrorBody)))]
pub async fn points(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PointsQuery>,
) -> ApiResult<Json<Value>> {
    series_or_404(&state, id).await?;
    let rows = series::points(state.store(), id, q.limit.unwrap_or(1000).clamp(1, 100_000)).await?;
    Ok(Json(json!({"items": rows})))
}

/// A series' change points, oldest first.
#[utoipa::path(get, path = "/api/v1/series/{series}/change-points", tag = "regress",
    params(("series" = i64, Path, description = "Series id")),
    responses((status = 200, body = crate::api::schemas_ops::ChangePointList), (status = 404, body = ErrorBody)))]
pub async fn change_points(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let (_, cps) = series_with_changes(&state, id).await?;
    Ok(Json(
        json!({"items": cps.iter().map(change_view).collect::<Vec<_>>()}),
    ))
}

/// One point of a push.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushPoint {
    pub value: f64,
    /// Epoch milliseconds or RFC 3339 (default: now).
    #[serde(default)]
    pub at: Option<Value>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub build: Option<String>,
}

/// The body of `POST /api/v1/series/{name}/points`: a list under `points`, or one point's fields
/// at the top level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub unit: Option<String>,
    /// `lower_is_better` (default) or `higher_is_better`.
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub points: Vec<PushPoint>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub at: Option<Value>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub build: Option<String>,
    /// Where the points came from (`push`, `criterion`, `hyperfine`…; default `push`).
    #[serde(default)]
    pub source: Option<String>,
}

fn at_of(v: Option<&Value>, place: &str) -> ApiResult<i64> {
    match v {
        None | Some(Value::Null) => Ok(now_ms()),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|ms| *ms >= 0)
            .ok_or_else(|| ApiError::Validation(format!("{place}: epoch milliseconds expected"))),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| ApiError::Validation(format!("{place}: {s:?} is not RFC 3339: {e}"))),
        Some(_) => Err(ApiError::Validation(format!(
            "{place}: epoch milliseconds or an RFC 3339 string expected"
        ))),
    }
}

fn short_text(v: &Option<String>, place: &str) -> ApiResult<()> {
    match v {
        Some(s) if s.len() > 200 || s.chars().any(char::is_control) => Err(ApiError::Validation(
            format!("{place}: at most 200 characters, no control characters"),
        )),
        _ => Ok(()),
    }
}

fn validate_key(name: &str, push: &Push) -> ApiResult<SeriesKey> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::Validation(
            "series name: 1-200 characters, no control characters".into(),
        ));
    }
    if push.tags.len() > 20 {
        return Err(ApiError::Validation("tags: at most 20".into()));
    }
    for (k, v) in &push.tags {
        if k.is_empty() {
            return Err(ApiError::Validation("tags: a tag needs a name".into()));
        }
        short_text(&Some(k.clone()), "tags")?;
        short_text(&Some(v.clone()), &format!("tags.{k}"))?;
    }
    short_text(&push.unit, "unit")?;
    let direction = match push.direction.as_deref() {
        None | Some("lower_is_better") => Direction::LowerIsBetter,
        Some("higher_is_better") => Direction::HigherIsBetter,
        Some(o) => {
            return Err(ApiError::Validation(format!(
                "direction must be lower_is_better or higher_is_better, not {o:?}"
            )))
        }
    };
    Ok(SeriesKey {
        name: name.to_string(),
        tags: push.tags.clone(),
        unit: push.unit.clone().unwrap_or_default(),
        direction,
    })
}

/// Adds points to the series `name` (with `tags`), creating it on first use, and re-analyses it.
/// The answer holds its change points and the regression its newest points form, if any.
#[utoipa::path(post, path = "/api/v1/series/{series}/points", tag = "regress", request_body = Object,
    params(("series" = String, Path, description = "Series name")),
    responses((status = 201, body = crate::api::schemas_ops::SeriesState), (status = 422, body = ErrorBody)))]
pub async fn push(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut push: Push =
        serde_json::from_value(body).map_err(|e| ApiError::Validation(format!("points: {e}")))?;
    let key = validate_key(&name, &push)?;
    if let Some(value) = push.value {
        push.points.push(PushPoint {
            value,
            at: push.at.take(),
            commit: push.commit.take(),
            version: push.version.take(),
            build: push.build.take(),
        });
    }
    if push.points.is_empty() || push.points.len() > MAX_POINTS {
        return Err(ApiError::Validation(format!(
            "points: 1-{MAX_POINTS} points (or a top-level value)"
        )));
    }
    let source = push.source.clone().unwrap_or_else(|| "push".into());
    short_text(&Some(source.clone()), "source")?;
    let mut points = Vec::with_capacity(push.points.len());
    for (i, p) in push.points.iter().enumerate() {
        if !p.value.is_finite() {
            return Err(ApiError::Validation(format!(
                "points[{i}].value must be a finite number"
            )));
        }
        for (field, v) in [
            ("commit", &p.commit),
            ("version", &p.version),
            ("build", &p.build),
        ] {
            short_text(v, &format!("points[{i}].{field}"))?;
        }
        points.push(NewPoint {
            key: key.clone(),
            at: at_of(p.at.as_ref(), &format!("points[{i}].at"))?,
            value: p.value,
            commit: p.commit.clone(),
            version: p.version.clone(),
            build: p.build.clone(),
            source: source.clone(),
        });
    }
    let project_id = project_of(&state, push.project.as_deref()).await?;
    let touched = series::add(state.store(), project_id, &points).await?;
    let (id, cps) = touched
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("no series touched".into()))?;
    let s = series_or_404(&state, id).await?;
    tracing::info!(
        series = id,
        points = points.len(),
        change_points = cps.len(),
        "series points added"
    );
    Ok((StatusCode::CREATED, Json(state_view(&s, &cps))))
}

/// `?project=&direction=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentQuery {
    /// Project id or slug (all projects when absent).
    pub project: Option<String>,
    /// `regression` or `improvement` (both when absent).
    pub direction: Option<String>,
    /// At most this many (default 50, up to 500).
    pub limit: Option<i64>,
}

/// Recent change points across series, newest first.
#[utoipa::path(get, path = "/api/v1/regressions", tag = "regress", params(RecentQuery),
    responses((status = 200, body = crate::api::schemas_ops::RecentChangeList), (status = 422, body = ErrorBody)))]
pub async fn recent(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<RecentQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(d) = q.direction.as_deref() {
        if d != "regression" && d != "improvement" {
            return Err(ApiError::Validation(
                "direction must be regression or improvement".into(),
            ));
        }
    }
    let ids = projects_for(&state, q.project.as_deref()).await?;
    let rows = regress::recent(
        state.store(),
        &ids,
        q.direction.as_deref(),
        q.limit.unwrap_or(50).clamp(1, 500),
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = change_view(&r.change);
            v["project_id"] = r.project_id.into();
            v["series"] = r.series.clone().into();
            v["tags"] = json!(r.tags);
            v["unit"] = r.unit.clone().into();
            v
        })
        .collect();
    Ok(Json(json!({"items": items})))
}
