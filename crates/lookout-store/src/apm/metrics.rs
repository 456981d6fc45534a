//! Metric series and their per-minute values. Cumulative points become deltas against the state
//! stored on the series, inside the transaction that stores them, so a point exported twice (or
//! by two replicas at once) is counted once.

use lookout_apm::metric::{delta, CumulativeState, Point, Reading};
use lookout_apm::sketch::Sketch;
use lookout_core::time::now_ms;
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::{Backend, Result, Store};

/// Stores `points` for `project_id` in one transaction; returns how many were skipped as
/// already counted (re-exported cumulative points).
pub async fn ingest(store: &Store, project_id: i64, points: &[Point]) -> Result<usize> {
    let mut tx = store.begin_write().await?;
    let mut skipped = 0;
    for p in points {
        let (series_id, state) = series(store.backend(), &mut tx, project_id, p).await?;
        let (reading, new_state) = if p.cumulative {
            delta(state.as_ref(), p)
        } else {
            (Some(p.reading.clone()), CumulativeState::default())
        };
        if p.cumulative {
            sqlx::query("UPDATE apm_metric_series SET state = $1, last_seen = $2 WHERE id = $3")
                .bind(serde_json::to_string(&new_state).unwrap_or_default())
                .bind(now_ms())
                .bind(series_id)
                .execute(&mut *tx)
                .await?;
        }
        match reading {
            Some(r) => {
                add_point(
                    &mut tx,
                    series_id,
                    p.time_ns / 1_000_000 / 60_000 * 60_000,
                    &r,
                )
                .await?
            }
            None => skipped += 1,
        }
    }
    tx.commit().await?;
    Ok(skipped)
}

/// The series of `p` (created on first sight) and its cumulative state, locked for this
/// transaction on PostgreSQL.
async fn series(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    p: &Point,
) -> Result<(i64, Option<CumulativeState>)> {
    let bounds = match &p.reading {
        Reading::Histogram { bounds, .. } => {
            Some(serde_json::to_string(bounds).unwrap_or_default())
        }
        _ => None,
    };
    sqlx::query(
        "INSERT INTO apm_metric_series (project_id, name, service, attributes, kind, unit, bounds, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (project_id, name, service, attributes) DO NOTHING",
    )
    .bind(project_id)
    .bind(&p.name)
    .bind(&p.service)
    .bind(&p.attributes)
    .bind(p.kind.as_str())
    .bind(&p.unit)
    .bind(bounds)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    let lock = crate::dialect::for_update(backend);
    let row = sqlx::query(&format!(
        "SELECT id, state FROM apm_metric_series WHERE project_id = $1 AND name = $2 AND service = $3 AND attributes = $4{lock}"
    ))
    .bind(project_id)
    .bind(&p.name)
    .bind(&p.service)
    .bind(&p.attributes)
    .fetch_one(&mut **tx)
    .await?;
    let state: Option<String> = row.try_get("state")?;
    Ok((
        row.try_get("id")?,
        state.and_then(|s| serde_json::from_str(&s).ok()),
    ))
}

/// Stored values of one series in one minute.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MinuteValue {
    /// Minute start, ms.
    pub minute: i64,
    /// Points merged into it.
    pub points: i64,
    /// Observations (histograms) or points (gauges, sums).
    pub count: f64,
    /// Sum of deltas (counters), of values (gauges) or of observations (histograms).
    pub sum: f64,
    /// Smallest value or observation.
    pub min: Option<f64>,
    /// Largest value or observation.
    pub max: Option<f64>,
    /// Last value (gauges and up-down counters).
    pub last: Option<f64>,
    /// Bucket counts (histograms).
    pub buckets: Option<Vec<u64>>,
    /// Quantiles as sent (summaries).
    pub quantiles: Option<Vec<(f64, f64)>>,
    /// Distribution (exponential histograms).
    #[serde(skip)]
    pub sketch: Option<Sketch>,
}

async fn add_point(
    tx: &mut Transaction<'static, Any>,
    series_id: i64,
    minute: i64,
    r: &Reading,
) -> Result<()> {
    let old = sqlx::query(
        "SELECT points, count, sum, min, max, last, buckets, sketch, quantiles FROM apm_metric_points
         WHERE series_id = $1 AND minute = $2",
    )
    .bind(series_id)
    .bind(minute)
    .fetch_optional(&mut **tx)
    .await?;
    let mut v = match old {
        Some(row) => read_minute(minute, &row)?,
        None => MinuteValue {
            minute,
            ..MinuteValue::default()
        },
    };
    let extend = |v: &mut MinuteValue, lo: Option<f64>, hi: Option<f64>| {
        if let Some(lo) = lo {
            v.min = Some(v.min.map_or(lo, |m| m.min(lo)));
        }
        if let Some(hi) = hi {
            v.max = Some(v.max.map_or(hi, |m| m.max(hi)));
        }
    };
    v.points += 1;
    match r {
        Reading::Number(x) => {
            v.count += 1.0;
            v.sum += x;
            v.last = Some(*x);
            extend(&mut v, Some(*x), Some(*x));
        }
        Reading::Histogram {
            count,
            sum,
            min,
            max,
            counts,
            ..
        } => {
            v.count += *count as f64;
            v.sum += sum;
            extend(&mut v, *min, *max);
            let b = v.buckets.get_or_insert_with(|| vec![0; counts.len()]);
            if b.len() == counts.len() {
                for (a, c) in b.iter_mut().zip(counts) {
                    *a = a.saturating_add(*c);
                }
            } else {
                *b = counts.clone();
            }
        }
        Reading::Sketch { count, sum, sketch } => {
            v.count += *count as f64;
            v.sum += sum;
            v.sketch.get_or_insert_with(Sketch::new).merge(sketch);
        }
        Reading::Summary {
            count,
            sum,
            quantiles,
        } => {
            v.count = *count as f64;
            v.sum = *sum;
            v.quantiles = Some(quantiles.clone());
        }
    }
    sqlx::query(
        "INSERT INTO apm_metric_points (series_id, minute, points, count, sum, min, max, last, buckets, sketch, quantiles)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (series_id, minute) DO UPDATE SET points = excluded.points, count = excluded.count,
           sum = excluded.sum, min = excluded.min, max = excluded.max, last = excluded.last,
           buckets = excluded.buckets, sketch = excluded.sketch, quantiles = excluded.quantiles",
    )
    .bind(series_id)
    .bind(minute)
    .bind(v.points)
    .bind(v.count)
    .bind(v.sum)
    .bind(v.min)
    .bind(v.max)
    .bind(v.last)
    .bind(v.buckets.as_ref().map(|b| serde_json::to_string(b).unwrap_or_default()))
    .bind(v.sketch.as_ref().map(Sketch::encode))
    .bind(v.quantiles.as_ref().map(|q| serde_json::to_string(q).unwrap_or_default()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reads a stored minute row (the `apm_metric_points` value columns, by name).
pub(crate) fn read_minute(minute: i64, row: &sqlx::any::AnyRow) -> Result<MinuteValue> {
    let buckets: Option<String> = row.try_get("buckets")?;
    let sketch: Option<Vec<u8>> = row.try_get("sketch")?;
    let quantiles: Option<String> = row.try_get("quantiles")?;
    Ok(MinuteValue {
        minute,
        points: row.try_get("points")?,
        count: row.try_get("count")?,
        sum: row.try_get("sum")?,
        min: row.try_get("min")?,
        max: row.try_get("max")?,
        last: row.try_get("last")?,
        buckets: buckets.and_then(|b| serde_json::from_str(&b).ok()),
        sketch: sketch.and_then(|s| Sketch::decode(&s).ok()),
        quantiles: quantiles.and_then(|q| serde_json::from_str(&q).ok()),
    })
}

/// One metric series as listed.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesInfo {
    /// Series id.
    pub id: i64,
    /// Metric name.
    pub name: String,
    /// Service.
    pub service: String,
    /// Attributes (JSON).
    pub attributes: serde_json::Value,
    /// Kind.
    pub kind: String,
    /// Unit.
    pub unit: String,
    /// Histogram bounds.
    pub bounds: Option<Vec<f64>>,
}

/// Series of `project_id` named `name` (all names when `None`), at most 500.
pub async fn list_series(
    store: &Store,
    project_id: i64,
    name: Option<&str>,
) -> Result<Vec<SeriesInfo>> {
    let rows = sqlx::query(&format!(
        "{SERIES_SELECT} WHERE project_id = $1 AND ($2 = '' OR name = $2) ORDER BY name, service, attributes LIMIT 500"
    ))
    .bind(project_id)
    .bind(name.unwrap_or(""))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(series_info).collect()
}

/// Series `id`, if it belongs to one of `projects`.
pub async fn series_in(store: &Store, projects: &[i64], id: i64) -> Result<Option<SeriesInfo>> {
    let row = sqlx::query(&format!("{SERIES_SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    match row {
        Some(r) if projects.contains(&r.try_get("project_id")?) => Ok(Some(series_info(&r)?)),
        _ => Ok(None),
    }
}

const SERIES_SELECT: &str =
    "SELECT id, name, service, attributes, kind, unit, bounds, project_id FROM apm_metric_series";

fn series_info(r: &sqlx::any::AnyRow) -> Result<SeriesInfo> {
    let attrs: String = r.try_get("attributes")?;
    let bounds: Option<String> = r.try_get("bounds")?;
    Ok(SeriesInfo {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        service: r.try_get("service")?,
        attributes: serde_json::from_str(&attrs).unwrap_or_default(),
        kind: r.try_get("kind")?,
        unit: r.try_get("unit")?,
        bounds: bounds.and_then(|b| serde_json::from_str(&b).ok()),
    })
}

/// Minute values of series `id` in `[since, until)` ms.
pub async fn points(store: &Store, id: i64, since: i64, until: i64) -> Result<Vec<MinuteValue>> {
    let rows = sqlx::query(
        "SELECT points, count, sum, min, max, last, buckets, sketch, quantiles, minute FROM apm_metric_points
         WHERE series_id = $1 AND minute >= $2 AND minute < $3 ORDER BY minute",
    )
    .bind(id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| read_minute(r.try_get("minute")?, r))
        .collect()
}
