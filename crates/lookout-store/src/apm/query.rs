//! Reads over the APM rollups and raw spans. Every figure (services list, service page,
//! transactions API, NRQL later) goes through [`fold`], which reads day rows for whole days,
//! hour rows for whole hours and minute rows for the rest: one source, so two pages never
//! disagree, and a 7-day query reads a few thousand rows instead of millions. Raw span and log
//! reads are in [`super::spans`] and [`super::raw`], re-exported here so every APM read has one path.

use std::collections::BTreeMap;

use lookout_apm::rollup::Red;
use serde::Serialize;
use sqlx::Row;

use crate::ownership::TeamChange;
use crate::row::RowExt;
use crate::{Result, Store};

pub use super::raw::{
    logs, service_issues, statement_callers, Caller, LogQuery, LogRow, ServiceIssue,
};
pub use super::spans::{
    instances, scan_each, search, trace, trace_capped, Instance, SpanRow, SpanSearch, TraceSpans,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// The (tier, from, to) ranges that cover `[since, until)` with the fewest rows. `since` is
/// taken down and `until` up to whole minutes (the finest rollup) — and to whole hours for
/// windows of a day or more, as New Relic snaps long metric queries to their rollup grain: a
/// 1-day query then reads hour rows only (a minute-precise one read 5 times as many rows, 171 ms
/// against 25 for 200 transactions in bench/nrql.sh), a 7-day query day and hour rows.
pub fn plan(since: i64, until: i64) -> Vec<(i64, i64, i64)> {
    if until <= since {
        return Vec::new();
    }
    let grain = if until - since >= DAY { HOUR } else { MINUTE };
    let since = since.div_euclid(grain) * grain;
    let until = (until + grain - 1).div_euclid(grain) * grain;
    let mut out = Vec::new();
    let ceil = |t: i64, w: i64| (t + w - 1).div_euclid(w) * w;
    let floor = |t: i64, w: i64| t.div_euclid(w) * w;
    let hours = |a: i64, b: i64, out: &mut Vec<(i64, i64, i64)>| {
        let (h0, h1) = (ceil(a, HOUR), floor(b, HOUR));
        if h1 > h0 && b - a > 3 * HOUR {
            if h0 > a {
                out.push((0, a, h0));
            }
            out.push((1, h0, h1));
            if b > h1 {
                out.push((0, h1, b));
            }
        } else if b > a {
            out.push((0, a, b));
        }
    };
    let (d0, d1) = (ceil(since, DAY), floor(until, DAY));
    if d1 > d0 && until - since > 2 * DAY {
        hours(since, d0, &mut out);
        out.push((2, d0, d1));
        hours(d1, until, &mut out);
    } else {
        hours(since, until, &mut out);
    }
    out
}

/// Which rollup rows to read.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Projects to read.
    pub projects: &'a [i64],
    /// One service, or all.
    pub service: Option<&'a str>,
    /// One category (`request`, `db`, `external`; [`super::rollup::SERVICE_CATEGORY`] for
    /// each service's requests summed), or all (of spans: the service rows left out).
    pub category: Option<&'a str>,
    /// One operation, or all.
    pub operation: Option<&'a str>,
}

/// One stored rollup row, as [`fold`] hands it to the grouping function.
pub struct Cell<'a> {
    /// Bucket start, ms.
    pub bucket: i64,
    /// Service.
    pub service: &'a str,
    /// Category.
    pub category: &'a str,
    /// Operation.
    pub operation: &'a str,
    /// HTTP status class.
    pub status_class: &'a str,
    /// Whether the row's spans failed.
    pub error: bool,
}

/// Merges the rollup rows matching `f` in `[since, until)` into one [`Red`] per group that
/// `group` names (return `None` to skip a row).
pub async fn fold<K: Ord>(
    store: &Store,
    f: &Filter<'_>,
    since: i64,
    until: i64,
    group: impl Fn(&Cell<'_>) -> Option<K>,
) -> Result<BTreeMap<K, Red>> {
    fold_ranges(store, f, &plan(since, until), group).await
}

/// Like [`fold`] for a chart: rows of the one tier whose width is `step` (see [`chart_step`]),
/// grouped by bucket, so every point of the series covers the same width.
pub async fn series(
    store: &Store,
    f: &Filter<'_>,
    since: i64,
    until: i64,
    step: i64,
) -> Result<BTreeMap<i64, Red>> {
    let tier = match step {
        MINUTE => 0,
        HOUR => 1,
        _ => 2,
    };
    let from = since.div_euclid(step) * step;
    fold_ranges(store, f, &[(tier, from, until)], |c| Some(c.bucket)).await
}

/// Merges the rollup rows of `ranges` (tier, from, to) that match `f`, grouped by `group`.
pub async fn fold_ranges<K: Ord>(
    store: &Store,
    f: &Filter<'_>,
    ranges: &[(i64, i64, i64)],
    group: impl Fn(&Cell<'_>) -> Option<K>,
) -> Result<BTreeMap<K, Red>> {
    let mut out: BTreeMap<K, Red> = BTreeMap::new();
    for &project in f.projects {
        for &(tier, from, to) in ranges {
            // Only the filters given appear in the SQL, so SQLite can use the primary key
            // (project, tier, service, bucket) when a service is named.
            let mut sql = String::from(
                "SELECT bucket, service, category, operation, status_class, error, count, errors, sum_ms, min_ms, max_ms, sketch
                 FROM apm_rollups WHERE project_id = $1 AND tier = $2 AND bucket >= $3 AND bucket < $4",
            );
            let mut args: Vec<&str> = Vec::new();
            for (column, value) in [
                ("service", f.service),
                ("category", f.category),
                ("operation", f.operation),
            ] {
                if let Some(v) = value {
                    args.push(v);
                    sql.push_str(&format!(" AND {column} = ${}", 4 + args.len()));
                }
            }
            if f.category.is_none() {
                // The service rows repeat the request rows' spans: every category but theirs.
                sql.push_str(&format!(
                    " AND category <> '{}'",
                    super::rollup::SERVICE_CATEGORY
                ));
            }
            let mut q = sqlx::query(&sql)
                .bind(project)
                .bind(tier)
                .bind(from)
                .bind(to);
            for a in args {
                q = q.bind(a);
            }
            let rows = q.fetch_all(store.pool()).await?;
            for r in &rows {
                let service: &str = r.try_get("service")?;
                let category: &str = r.try_get("category")?;
                let operation: &str = r.try_get("operation")?;
                let status_class: &str = r.try_get("status_class")?;
                let error = r.flag("error")?;
                let cell = Cell {
                    error,
                    bucket: r.try_get("bucket")?,
                    service,
                    category,
                    operation,
                    status_class,
                };
                let Some(k) = group(&cell) else { continue };
                let sketch: &[u8] = r.try_get("sketch")?;
                let red = out.entry(k).or_default();
                if let Err(e) = red.add_row(
                    error,
                    r.try_get("count")?,
                    r.try_get("errors")?,
                    r.try_get("sum_ms")?,
                    r.try_get("min_ms")?,
                    r.try_get("max_ms")?,
                    sketch,
                ) {
                    tracing::warn!(error = %e, service, operation, "Skipped a rollup row with a corrupt sketch.");
                }
            }
        }
    }
    Ok(out)
}

/// The width of the buckets a chart over `[since, until)` uses: a minute up to 6 hours, an hour
/// up to 8 days, a day beyond.
pub fn chart_step(since: i64, until: i64) -> i64 {
    match until - since {
        d if d <= 6 * HOUR => MINUTE,
        d if d <= 8 * DAY => HOUR,
        _ => DAY,
    }
}

/// Sets a service's Apdex target and slow-query threshold (ms) in every project of `projects`
/// that has it, in one transaction with the request's audit entry; false when none has.
pub async fn set_service_settings(
    store: &Store,
    projects: &[i64],
    service: &str,
    apdex_t_ms: Option<f64>,
    slow_query_ms: Option<f64>,
    team: TeamChange,
) -> Result<bool> {
    let mut n = 0;
    let mut tx = store.begin_write().await?;
    for &p in projects {
        let updated = sqlx::query(
            "UPDATE apm_services SET apdex_t_ms = COALESCE($1, apdex_t_ms), slow_query_ms = COALESCE($2, slow_query_ms),
                team_id = CASE WHEN $5 = 1 THEN $6 ELSE team_id END
             WHERE project_id = $3 AND name = $4",
        )
        .bind(apdex_t_ms)
        .bind(slow_query_ms)
        .bind(p)
        .bind(service)
        .bind(team.flag())
        .bind(team.value())
        .execute(&mut *tx)
        .await;
        n += match updated {
            Ok(r) => r.rows_affected(),
            Err(e) => return Err(crate::team_gone(store, tx, e.into(), team.value()).await),
        };
    }
    if n > 0 {
        crate::commit_audited(tx).await?;
    }
    Ok(n > 0)
}

/// A service as the services list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Project.
    pub project_id: i64,
    /// `service.name`.
    pub name: String,
    /// Apdex target, ms.
    pub apdex_t_ms: f64,
    /// Database calls from this duration on are slow, ms.
    pub slow_query_ms: f64,
    /// Last span seen, ms.
    pub last_seen: i64,
    /// The owning team, if any.
    pub team_id: Option<i64>,
}

/// Services of `projects` seen since `since` (ms).
pub async fn services(store: &Store, projects: &[i64], since: i64) -> Result<Vec<Service>> {
    let mut out = Vec::new();
    for &p in projects {
        for r in sqlx::query(
            "SELECT name, apdex_t_ms, slow_query_ms, last_seen, team_id FROM apm_services WHERE project_id = $1 AND last_seen >= $2 ORDER BY name",
        )
        .bind(p)
        .bind(since)
        .fetch_all(store.pool())
        .await?
        {
            out.push(Service {
                project_id: p,
                name: r.try_get("name")?,
                apdex_t_ms: r.try_get("apdex_t_ms")?,
                slow_query_ms: r.try_get("slow_query_ms")?,
                last_seen: r.try_get("last_seen")?,
                team_id: r.try_get("team_id")?,
            });
        }
    }
    Ok(out)
}

/// The service called `name` in `projects` (the first project that has it), whenever it was
/// last seen.
pub async fn service(store: &Store, projects: &[i64], name: &str) -> Result<Option<Service>> {
    for &p in projects {
        let row = sqlx::query(
            "SELECT apdex_t_ms, slow_query_ms, last_seen, team_id FROM apm_services WHERE project_id = $1 AND name = $2",
        )
        .bind(p)
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
        if let Some(r) = row {
            return Ok(Some(Service {
                project_id: p,
                name: name.to_string(),
                apdex_t_ms: r.try_get("apdex_t_ms")?,
                slow_query_ms: r.try_get("slow_query_ms")?,
                last_seen: r.try_get("last_seen")?,
                team_id: r.try_get("team_id")?,
            }));
        }
    }
    Ok(None)
}

/// One service-map edge.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// Calling service.
    pub source: String,
    /// Called service, database system or host.
    pub target: String,
    /// `service`, `db` or `external`.
    pub target_kind: String,
    /// Calls.
    pub count: i64,
    /// Failed calls.
    pub errors: i64,
    /// Mean call duration, ms.
    pub avg_ms: f64,
}

/// Service-map edges of `projects` in `[since, until)` ms (hour rows for whole hours).
pub async fn edges(store: &Store, projects: &[i64], since: i64, until: i64) -> Result<Vec<Edge>> {
    let mut acc: BTreeMap<(String, String, String), (i64, i64, f64)> = BTreeMap::new();
    for &p in projects {
        for (tier, from, to) in plan(since, until) {
            // Edges have no day tier; a day range reads its hours.
            let tier = tier.min(1);
            for r in sqlx::query(
                "SELECT source, target, target_kind, count, errors, sum_ms FROM apm_edges
                 WHERE project_id = $1 AND tier = $2 AND bucket >= $3 AND bucket < $4",
            )
            .bind(p)
            .bind(tier)
            .bind(from)
            .bind(to)
            .fetch_all(store.pool())
            .await?
            {
                let e = acc
                    .entry((
                        r.try_get("source")?,
                        r.try_get("target")?,
                        r.try_get("target_kind")?,
                    ))
                    .or_default();
                e.0 += r.try_get::<i64, _>("count")?;
                e.1 += r.try_get::<i64, _>("errors")?;
                e.2 += r.try_get::<f64, _>("sum_ms")?;
            }
        }
    }
    Ok(acc
        .into_iter()
        .map(
            |((source, target, target_kind), (count, errors, sum))| Edge {
                source,
                target,
                target_kind,
                count,
                errors,
                avg_ms: if count > 0 { sum / count as f64 } else { 0.0 },
            },
        )
        .collect())
}

/// Deletes raw spans and logs older than `before_ms`, minute rollups older than
/// `minutes_before_ms`, and the rollup parts already folded; returns the rows removed. Hour and
/// day rollups are kept.
pub async fn purge(store: &Store, before_ms: i64, minutes_before_ms: i64) -> Result<u64> {
    let mut n = 0;
    for (table, key, time) in [
        ("apm_span_blocks", "id", "last_ns"),
        ("apm_logs", "seq", "time_ns"),
    ] {
        n += purge_oldest(store, table, key, time, before_ms.saturating_mul(1_000_000)).await?;
    }
    for (sql, at) in [
        (
            // A day of index is dropped once every block it can point to is gone.
            "DELETE FROM apm_trace_index WHERE day < $1",
            before_ms.div_euclid(DAY) - 1,
        ),
        (
            "DELETE FROM apm_statement_calls WHERE bucket < $1",
            minutes_before_ms,
        ),
        (
            "DELETE FROM apm_rollups WHERE tier = 0 AND bucket < $1",
            minutes_before_ms,
        ),
        (
            "DELETE FROM apm_edges WHERE tier = 0 AND bucket < $1",
            minutes_before_ms,
        ),
        (
            "DELETE FROM apm_metric_points WHERE minute < $1",
            minutes_before_ms,
        ),
    ] {
        n += sqlx::query(sql)
            .bind(at)
            .execute(store.pool())
            .await?
            .rows_affected();
    }
    n += sqlx::query(
        "DELETE FROM apm_parts WHERE seq <= (SELECT position FROM event_cursors WHERE consumer = $1)",
    )
    .bind(super::rollup::CURSOR)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(n)
}

/// Deletes the rows of `table` whose `time` is before `cutoff`, walking the table from its
/// oldest rows (by `seq`, the order they arrived in) in chunks and stopping at the first chunk
/// with nothing to delete — so it reads the old end of the table, not all of it, and needs no
/// index on the time column (which would cost every insert).
async fn purge_oldest(
    store: &Store,
    table: &'static str,
    seq: &'static str,
    time: &'static str,
    cutoff: i64,
) -> Result<u64> {
    let mut n = 0;
    let mut after = 0i64;
    loop {
        let last: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT MAX({seq}) FROM (SELECT {seq} FROM {table} WHERE {seq} > $1 ORDER BY {seq} LIMIT 5000) AS chunk"
        ))
        .bind(after)
        .fetch_one(store.pool())
        .await?;
        let Some(last) = last else { break };
        let deleted = sqlx::query(&format!(
            "DELETE FROM {table} WHERE {seq} > $1 AND {seq} <= $2 AND {time} < $3"
        ))
        .bind(after)
        .bind(last)
        .bind(cutoff)
        .execute(store.pool())
        .await?
        .rows_affected();
        if deleted == 0 {
            break;
        }
        n += deleted;
        after = last;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_reads_days_hours_and_minutes() {
        let now = 10 * DAY + 5 * HOUR + 17 * MINUTE + 30_000;
        let p = plan(now - 7 * DAY, now);
        let tiers: Vec<i64> = p.iter().map(|r| r.0).collect();
        assert_eq!(
            tiers,
            vec![1, 2, 1],
            "a week snaps to hours: no minute rows"
        );
        // Contiguous and covering.
        for w in p.windows(2) {
            assert_eq!(w[0].2, w[1].1);
        }
        assert_eq!(p[0].1, (now - 7 * DAY) / HOUR * HOUR);
        assert_eq!(p.last().unwrap().2, (now + HOUR - 1) / HOUR * HOUR);
        let tiers: Vec<i64> = plan(now - 20 * HOUR, now).iter().map(|r| r.0).collect();
        assert_eq!(tiers, vec![0, 1, 0], "under a day keeps minute edges");
        assert_eq!(
            plan(now - HOUR, now),
            vec![(0, now / MINUTE * MINUTE - HOUR, (now / MINUTE + 1) * MINUTE)]
        );
        assert!(plan(now, now - 1).is_empty());
    }
}
