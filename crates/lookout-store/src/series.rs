//! Baseline series: a name plus tags, a unit and a direction, with timestamped points carrying
//! optional commit, version and build. Load-test runs add points here; benchmark pushes,
//! importers and regression detection build on the same tables.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::row::RowExt;
use crate::{Cursor, Page, Result, Store, StoreError};
use lookout_core::time::now_ms;

/// Which way is better for a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::LowerIsBetter => "lower_is_better",
            Direction::HigherIsBetter => "higher_is_better",
        }
    }

    fn parse(s: &str) -> Result<Direction> {
        match s {
            "lower_is_better" => Ok(Direction::LowerIsBetter),
            "higher_is_better" => Ok(Direction::HigherIsBetter),
            o => Err(StoreError::Corrupt(format!("series direction {o:?}"))),
        }
    }
}

/// What identifies a series, and how to read it.
#[derive(Debug, Clone)]
pub struct SeriesKey {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub unit: String,
    pub direction: Direction,
}

/// A point to add.
#[derive(Debug, Clone)]
pub struct NewPoint {
    pub key: SeriesKey,
    pub at: i64,
    pub value: f64,
    pub commit: Option<String>,
    pub version: Option<String>,
    pub build: Option<String>,
    pub source: String,
}

/// A stored series with its newest point.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesRow {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub unit: String,
    pub direction: Direction,
    pub points: i64,
    pub last_value: Option<f64>,
    pub last_at: Option<i64>,
}

/// A stored point.
#[derive(Debug, Clone, Serialize)]
pub struct PointRow {
    pub at: i64,
    pub value: f64,
    pub commit: Option<String>,
    pub version: Option<String>,
    pub build: Option<String>,
    pub source: String,
}

/// The series' id, created on first use. Tags are stored as canonical (sorted) JSON, so the same
/// tags always name the same series.
pub async fn upsert_in(
    conn: &mut sqlx::AnyConnection,
    project_id: i64,
    key: &SeriesKey,
) -> Result<i64> {
    let tags = serde_json::to_string(&key.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO series (project_id, name, tags, unit, direction, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (project_id, name, tags) DO NOTHING",
    )
    .bind(project_id)
    .bind(&key.name)
    .bind(&tags)
    .bind(&key.unit)
    .bind(key.direction.as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    let id: i64 =
        sqlx::query("SELECT id FROM series WHERE project_id = $1 AND name = $2 AND tags = $3")
            .bind(project_id)
            .bind(&key.name)
            .bind(&tags)
            .fetch_one(&mut *conn)
            .await?
            .try_get("id")?;
    Ok(id)
}

/// Adds points inside an open transaction; returns the series they went to, each once.
pub async fn add_in(
    conn: &mut sqlx::AnyConnection,
    project_id: i64,
    points: &[NewPoint],
) -> Result<Vec<i64>> {
    // Each distinct series is looked up once: a push of 10,000 points is one series.
    let mut touched: Vec<(&SeriesKey, i64)> = Vec::new();
    for p in points {
        let known = touched
            .iter()
            .find(|(k, _)| k.name == p.key.name && k.tags == p.key.tags)
            .map(|t| t.1);
        let id = match known {
            Some(id) => id,
            None => {
                let id = upsert_in(conn, project_id, &p.key).await?;
                touched.push((&p.key, id));
                id
            }
        };
        sqlx::query(
            "INSERT INTO series_points (series_id, at, value, commit_sha, version, build, source, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(p.at)
        .bind(p.value)
        .bind(p.commit.clone())
        .bind(p.version.clone())
        .bind(p.build.clone())
        .bind(&p.source)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    }
    Ok(touched.into_iter().map(|t| t.1).collect())
}

const SERIES_COLUMNS: &str = "s.id, s.project_id, s.name, s.tags, s.unit, s.direction,
    (SELECT COUNT(*) FROM series_points p WHERE p.series_id = s.id) AS n,
    (SELECT p.value FROM series_points p WHERE p.series_id = s.id ORDER BY p.at DESC, p.id DESC LIMIT 1) AS last_value,
    (SELECT MAX(p.at) FROM series_points p WHERE p.series_id = s.id) AS last_at";

fn series_of(r: &sqlx::any::AnyRow) -> Result<SeriesRow> {
    let direction: String = r.try_get("direction")?;
    Ok(SeriesRow {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        tags: r.json("tags")?,
        unit: r.try_get("unit")?,
        direction: Direction::parse(&direction)?,
        points: r.try_get("n")?,
        last_value: r.try_get("last_value")?,
        last_at: r.try_get("last_at")?,
    })
}

/// Adds points (a push or an import), re-analysing each series they touch; returns those series'
/// ids with their change points.
pub async fn add(
    store: &Store,
    project_id: i64,
    points: &[NewPoint],
) -> Result<Vec<(i64, Vec<crate::regress::ChangePointRow>)>> {
    let mut tx = store.begin_write().await?;
    let touched = add_in(&mut tx, project_id, points).await?;
    let mut out = Vec::new();
    for id in touched {
        out.push((id, crate::regress::recompute_in(store, &mut tx, id).await?));
    }
    tx.commit().await?;
    Ok(out)
}

/// Series of the given projects, by project, name and tags; only those called `name` when
/// given. Keyset pages (the cursor is the last series' id): each row counts its points, so a
/// list of every series grew with every series and point (issue 31: 5,000 series).
pub async fn list(
    store: &Store,
    project_ids: &[i64],
    name: Option<&str>,
    cursor: &Cursor,
) -> Result<Page<SeriesRow>> {
    if project_ids.is_empty() {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    }
    let limit = cursor.limit();
    // The ids are integers the caller resolved, so inlining them is safe and keeps one statement.
    let ids: Vec<String> = project_ids.iter().map(i64::to_string).collect();
    let mut sql = format!(
        "SELECT {SERIES_COLUMNS} FROM series s WHERE s.project_id IN ({})",
        ids.join(", ")
    );
    let mut args: Vec<crate::writer::Value> = Vec::new();
    if let Some(n) = name {
        args.push(n.into());
        sql.push_str(&format!(" AND s.name = ${}", args.len()));
    }
    if let Some(after) = cursor.after_i64()? {
        // A cursor naming no series of these projects (mangled, or its series deleted since)
        // would compare with NULL and end the list early as if it were complete: refuse it.
        let known = sqlx::query(&format!(
            "SELECT 1 AS one FROM series WHERE id = $1 AND project_id IN ({})",
            ids.join(", ")
        ))
        .bind(after)
        .fetch_optional(store.pool())
        .await?;
        if known.is_none() {
            return Err(crate::StoreError::BadCursor(after.to_string()));
        }
        args.push(after.into());
        sql.push_str(&format!(
            " AND (s.project_id, s.name, s.tags) > (SELECT c.project_id, c.name, c.tags FROM series c WHERE c.id = ${})",
            args.len()
        ));
    }
    args.push((limit + 1).into());
    sql.push_str(&format!(
        " ORDER BY s.project_id, s.name, s.tags LIMIT ${}",
        args.len()
    ));
    let mut q = sqlx::query(&sql);
    for a in &args {
        q = crate::writer::bind(q, a);
    }
    let rows = q.fetch_all(store.pool()).await?;
    Page::try_from_rows(&rows, limit, series_of, |s| s.id.to_string())
}

/// One series.
pub async fn get(store: &Store, id: i64) -> Result<Option<SeriesRow>> {
    let row = sqlx::query(&format!(
        "SELECT {SERIES_COLUMNS} FROM series s WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(series_of).transpose()
}

/// A series' points, oldest first (the newest `limit`).
pub async fn points(store: &Store, series_id: i64, limit: i64) -> Result<Vec<PointRow>> {
    let rows = sqlx::query(
        "SELECT at, value, commit_sha, version, build, source FROM series_points
         WHERE series_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(series_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    let mut out: Vec<PointRow> = rows
        .iter()
        .map(|r| {
            Ok(PointRow {
                at: r.try_get("at")?,
                value: r.try_get("value")?,
                commit: r.try_get("commit_sha")?,
                version: r.try_get("version")?,
                build: r.try_get("build")?,
                source: r.try_get("source")?,
            })
        })
        .collect::<Result<_>>()?;
    out.reverse();
    Ok(out)
}
