//! Change points of series: recomputed whenever points arrive, inside the transaction that adds
//! them, stored, and announced as `regression.detected` domain events.
//!
//! Recomputation is incremental, as in Otava: the regimes before the second-to-last stored change
//! point are settled, so only the points from there on are analysed again. A change point that a
//! later analysis moves by a few points keeps its identity (no second event).

use serde::Serialize;
use serde_json::json;
use sqlx::{Any, Row, Transaction};

use crate::events;
use crate::row::RowExt;
use crate::series::Direction;
use crate::{Result, Store, StoreError};
use lookout_core::time::now_ms;
use lookout_regress::{detect, Options, RECENT_POINTS};

/// The most points analysed at once (the newest); a full recompute of a longer series looks at
/// these only.
const MAX_ANALYSED: i64 = 20_000;
/// A re-detected change point within this many positions of a stored one of the same kind is
/// the same change.
const SAME_CHANGE: i64 = 3;

/// A stored change point.
#[derive(Debug, Clone, Serialize)]
pub struct ChangePointRow {
    pub id: i64,
    pub series_id: i64,
    /// The first point of the new regime.
    pub point_id: i64,
    pub at: i64,
    pub commit: Option<String>,
    /// Index of that point in the series, oldest first.
    pub position: i64,
    /// Median before and after.
    pub before: f64,
    pub after: f64,
    pub change_percent: Option<f64>,
    pub p_value: f64,
    /// `regression` or `improvement`.
    pub kind: String,
    pub detected_at: i64,
}

/// A change point with its series, for lists across series.
#[derive(Debug, Clone, Serialize)]
pub struct RecentChange {
    #[serde(flatten)]
    pub change: ChangePointRow,
    pub project_id: i64,
    pub series: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub unit: String,
}

const COLUMNS: &str =
    "c.id, c.series_id, c.point_id, c.at, c.commit_sha, c.position, c.before_value,
    c.after_value, c.change_percent, c.p_value, c.kind, c.detected_at";

fn row_of(r: &sqlx::any::AnyRow) -> Result<ChangePointRow> {
    Ok(ChangePointRow {
        id: r.try_get("id")?,
        series_id: r.try_get("series_id")?,
        point_id: r.try_get("point_id")?,
        at: r.try_get("at")?,
        commit: r.try_get("commit_sha")?,
        position: r.try_get("position")?,
        before: r.try_get("before_value")?,
        after: r.try_get("after_value")?,
        change_percent: r.try_get("change_percent")?,
        p_value: r.try_get("p_value")?,
        kind: r.try_get("kind")?,
        detected_at: r.try_get("detected_at")?,
    })
}

/// The regression the newest points of a series of `points` points form, if they form one: its
/// last change point made it worse and began within the newest [`RECENT_POINTS`].
pub fn fresh_regression(cps: &[ChangePointRow], points: i64) -> Option<&ChangePointRow> {
    cps.last()
        .filter(|c| c.kind == "regression" && is_recent(c.position, points))
}

fn is_recent(position: i64, points: i64) -> bool {
    position + RECENT_POINTS as i64 >= points
}

struct Stored {
    position: i64,
    point_id: i64,
    kind: String,
    notified: bool,
}

/// Re-analyses a series after points were added to it in `tx`; publishes `regression.detected`
/// for a new regression among its newest points. Returns the series' change points.
pub async fn recompute_in(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    series_id: i64,
) -> Result<Vec<ChangePointRow>> {
    // Concurrent pushes to one series take turns on PostgreSQL (SQLite has one writer anyway),
    // so two analyses never rewrite the same rows at once.
    let lock = crate::dialect::for_update(store.backend());
    let s = sqlx::query(&format!(
        "SELECT project_id, name, tags, unit, direction FROM series WHERE id = $1{lock}"
    ))
    .bind(series_id)
    .fetch_one(&mut **tx)
    .await?;
    let project_id: i64 = s.try_get("project_id")?;
    let name: String = s.try_get("name")?;
    let tags: String = s.try_get("tags")?;
    let unit: String = s.try_get("unit")?;
    let direction: String = s.try_get("direction")?;
    let lower_is_better = direction == Direction::LowerIsBetter.as_str();

    let stored: Vec<Stored> = sqlx::query(
        "SELECT position, point_id, kind, notified FROM change_points WHERE series_id = $1 ORDER BY position",
    )
    .bind(series_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(Stored {
            position: r.try_get("position")?,
            point_id: r.try_get("point_id")?,
            kind: r.try_get("kind")?,
            notified: r.flag("notified")?,
        })
    })
    .collect::<Result<_>>()?;
    let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM series_points WHERE series_id = $1")
        .bind(series_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;

    // Settled: everything before the second-to-last change point, if that point is still where
    // it was (a back-dated point shifts positions; then everything is analysed again).
    let mut start = if stored.len() >= 2 {
        stored[stored.len() - 2].position
    } else {
        0
    };
    if start > 0 {
        let id_there: Option<i64> = sqlx::query(
            "SELECT id FROM series_points WHERE series_id = $1 ORDER BY at, id LIMIT 1 OFFSET $2",
        )
        .bind(series_id)
        .bind(start)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()?;
        if id_there != Some(stored[stored.len() - 2].point_id) {
            start = 0;
        }
    }
    start = start.max(total - MAX_ANALYSED).max(0);

    let points = sqlx::query(
        "SELECT id, at, value, commit_sha FROM series_points WHERE series_id = $1
         ORDER BY at, id LIMIT $2 OFFSET $3",
    )
    .bind(series_id)
    .bind(MAX_ANALYSED)
    .bind(start)
    .fetch_all(&mut **tx)
    .await?;
    let values: Vec<f64> = points
        .iter()
        .map(|r| r.try_get("value"))
        .collect::<std::result::Result<_, _>>()?;
    let found = detect(&values, &Options::default());

    let replaced: Vec<&Stored> = stored.iter().filter(|c| c.position >= start).collect();
    sqlx::query("DELETE FROM change_points WHERE series_id = $1 AND position >= $2")
        .bind(series_id)
        .bind(start)
        .execute(&mut **tx)
        .await?;
    let now = now_ms();
    let mut publish = Vec::new();
    for cp in &found {
        let row = &points[cp.index];
        let position = start + cp.index as i64;
        let kind = if cp.is_regression(lower_is_better) {
            "regression"
        } else {
            "improvement"
        };
        let known = replaced
            .iter()
            .find(|o| o.kind == kind && (o.position - position).abs() <= SAME_CHANGE);
        let current = is_recent(position, total);
        let notify = kind == "regression" && known.is_none_or(|o| !o.notified) && current;
        let point_id: i64 = row.try_get("id")?;
        let at: i64 = row.try_get("at")?;
        let commit: Option<String> = row.try_get("commit_sha")?;
        let id: i64 = sqlx::query(
            "INSERT INTO change_points (series_id, point_id, at, commit_sha, position, before_value, after_value,
                 change_percent, p_value, kind, notified, detected_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(series_id)
        .bind(point_id)
        .bind(at)
        .bind(commit.clone())
        .bind(position)
        .bind(cp.before)
        .bind(cp.after)
        .bind(cp.change_percent)
        .bind(cp.p_value)
        .bind(kind)
        .bind(i64::from(notify || known.is_some_and(|o| o.notified)))
        .bind(now)
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        if notify {
            let tags: serde_json::Value =
                serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            publish.push(events::publish(
                "regression.detected",
                Some(project_id),
                Some(series_id.to_string()),
                &json!({"series_id": series_id, "series": name, "tags": tags, "unit": unit,
                        "change_point_id": id, "commit": commit, "at": at,
                        "before": cp.before, "after": cp.after,
                        "change_percent": cp.change_percent, "p_value": cp.p_value}),
            ));
        }
    }
    if !publish.is_empty() {
        events::publish_in_tx(store, tx, &publish).await?;
    }
    for_series_on(&mut **tx, series_id).await
}

async fn for_series_on<'e>(
    e: impl sqlx::Executor<'e, Database = Any>,
    series_id: i64,
) -> Result<Vec<ChangePointRow>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM change_points c WHERE c.series_id = $1 ORDER BY c.position"
    ))
    .bind(series_id)
    .fetch_all(e)
    .await?
    .iter()
    .map(row_of)
    .collect()
}

/// A series' change points, oldest first.
pub async fn for_series(store: &Store, series_id: i64) -> Result<Vec<ChangePointRow>> {
    for_series_on(store.pool(), series_id).await
}

/// Change points across the projects' series, newest first; only one kind when given.
pub async fn recent(
    store: &Store,
    project_ids: &[i64],
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<RecentChange>> {
    let mut out = Vec::new();
    for &pid in project_ids {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, s.project_id, s.name, s.tags, s.unit FROM change_points c
             JOIN series s ON s.id = c.series_id
             WHERE s.project_id = $1 AND ($2 IS NULL OR c.kind = $2)
             ORDER BY c.at DESC, c.id DESC LIMIT $3"
        ))
        .bind(pid)
        .bind(kind.map(str::to_string))
        .bind(limit)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            out.push(RecentChange {
                change: row_of(r)?,
                project_id: r.try_get("project_id")?,
                series: r.try_get("name")?,
                tags: r.json("tags")?,
                unit: r.try_get("unit")?,
            });
        }
    }
    out.sort_by(|a, b| {
        b.change
            .at
            .cmp(&a.change.at)
            .then(b.change.id.cmp(&a.change.id))
    });
    out.truncate(limit.max(0) as usize);
    Ok(out)
}
