//! The rollup consumer: follows `apm_spans` by `seq` and folds every span into minute, hour and
//! day RED rows, service-map edges and the services list, in the transaction that advances its
//! cursor — so each span counts exactly once, whatever crashes, and before any sampling or
//! retention touches the raw spans.

use std::collections::HashMap;
use std::time::Duration;

use lookout_apm::rollup::{bucket, Agg, TIERS};
use lookout_apm::sketch::Sketch;
use lookout_core::time::now_ms;
use sqlx::{Any, Row, Transaction};

use crate::{cursor, Result, Store};

/// The consumer's cursor name.
pub const CURSOR: &str = "apm.rollups";

/// Default Apdex target of a newly seen service, ms (New Relic's and SigNoz's default).
pub const DEFAULT_APDEX_T_MS: f64 = 500.0;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    project: i64,
    tier: i64,
    service: String,
    bucket: i64,
    category: String,
    operation: String,
    status_class: String,
    error: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EdgeKey {
    project: i64,
    tier: i64,
    bucket: i64,
    source: String,
    target: String,
    kind: &'static str,
}

#[derive(Debug, Default)]
struct EdgeAgg {
    count: i64,
    errors: i64,
    sum_ms: f64,
}

/// One span as the consumer reads it.
struct Row_ {
    seq: i64,
    project: i64,
    trace_id: String,
    span_id: String,
    parent: Option<String>,
    service: String,
    start_ms: i64,
    duration_ms: f64,
    error: bool,
    category: String,
    operation: String,
    status_class: String,
    db_system: Option<String>,
    peer: Option<String>,
}

/// Which partner of a cross-service call to look for in earlier batches.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    /// The parent of a server span.
    Parent,
    /// The server spans a client span caused.
    Children,
}

/// Folds spans into rollups; one replica at a time holds the cursor.
pub struct RollupProcessor {
    store: Store,
    owner: String,
    batch: i64,
}

impl RollupProcessor {
    /// A processor identified as `owner` (unique per replica).
    pub fn new(store: Store, owner: &str) -> Self {
        RollupProcessor {
            store,
            owner: owner.to_string(),
            batch: 20_000,
        }
    }

    /// Folds the next batch if this replica holds the cursor; returns how many spans it read.
    pub async fn poll_once(&self) -> Result<usize> {
        let Some(position) = cursor::lease(&self.store, CURSOR, &self.owner, 10_000).await? else {
            return Ok(0);
        };
        let rows = sqlx::query(
            "SELECT seq, project_id, trace_id, span_id, parent_span_id, service, start_ns, duration_ns,
                    error, category, operation, status_class, db_system, peer
             FROM apm_spans WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(position)
        .bind(self.batch)
        .fetch_all(self.store.pool())
        .await?;
        let Some(last) = rows.last().map(|r| r.try_get::<i64, _>(0)).transpose()? else {
            return Ok(0);
        };
        let mut spans = Vec::with_capacity(rows.len());
        for r in &rows {
            spans.push(Row_ {
                seq: r.try_get(0)?,
                project: r.try_get(1)?,
                trace_id: r.try_get(2)?,
                span_id: r.try_get(3)?,
                parent: r.try_get(4)?,
                service: r.try_get(5)?,
                start_ms: r.try_get::<i64, _>(6)? / 1_000_000,
                duration_ms: r.try_get::<i64, _>(7)? as f64 / 1e6,
                error: r.try_get::<i64, _>(8)? != 0,
                category: r.try_get(9)?,
                operation: r.try_get(10)?,
                status_class: r.try_get(11)?,
                db_system: r.try_get(12)?,
                peer: r.try_get(13)?,
            });
        }
        drop(rows);
        let started = std::time::Instant::now();
        let mut cells: HashMap<Key, Agg> = HashMap::new();
        let mut edges: HashMap<EdgeKey, EdgeAgg> = HashMap::new();
        let mut services: HashMap<(i64, String), i64> = HashMap::new();
        // A call between services is one client span and the server span it caused, which may
        // arrive in either order, in one batch or two. The edge is counted by whichever of the
        // pair has the higher seq, so exactly once: a server span looks for its parent among
        // spans before it, a client span for its remote children among spans before it.
        let first_seq = spans.first().map_or(0, |s| s.seq);
        let by_id: HashMap<(&str, &str), (&str, i64)> = spans
            .iter()
            .map(|s| {
                (
                    (s.trace_id.as_str(), s.span_id.as_str()),
                    (s.service.as_str(), s.seq),
                )
            })
            .collect();
        let mut children: HashMap<(&str, &str), Vec<(&str, i64)>> = HashMap::new();
        for s in spans.iter().filter(|s| s.category == "request") {
            if let Some(p) = &s.parent {
                children
                    .entry((s.trace_id.as_str(), p.as_str()))
                    .or_default()
                    .push((s.service.as_str(), s.seq));
            }
        }
        let mut lookups: Vec<(usize, Lookup)> = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            let seen = services
                .entry((s.project, s.service.clone()))
                .or_insert(s.start_ms);
            *seen = (*seen).max(s.start_ms);
            if s.category == "internal" {
                continue;
            }
            for (tier, width) in TIERS {
                cells
                    .entry(Key {
                        project: s.project,
                        tier,
                        service: s.service.clone(),
                        bucket: bucket(s.start_ms, width),
                        category: s.category.clone(),
                        operation: s.operation.clone(),
                        status_class: s.status_class.clone(),
                        error: s.error,
                    })
                    .or_default()
                    .add(s.duration_ms, s.error);
            }
            match s.category.as_str() {
                "db" => {
                    let target = s.db_system.clone().unwrap_or_else(|| "database".into());
                    add_edge(&mut edges, s, s.service.clone(), target, "db");
                }
                "external" => {
                    let target = s.peer.clone().unwrap_or_else(|| s.operation.clone());
                    add_edge(&mut edges, s, s.service.clone(), target, "external");
                    for &(callee, seq) in children
                        .get(&(s.trace_id.as_str(), s.span_id.as_str()))
                        .into_iter()
                        .flatten()
                    {
                        if seq < s.seq && callee != s.service {
                            add_edge(
                                &mut edges,
                                s,
                                s.service.clone(),
                                callee.to_string(),
                                "service",
                            );
                        }
                    }
                    lookups.push((i, Lookup::Children));
                }
                _ => {
                    if let Some(parent) = &s.parent {
                        match by_id.get(&(s.trace_id.as_str(), parent.as_str())) {
                            Some(&(caller, seq)) if seq < s.seq && caller != s.service => {
                                add_edge(
                                    &mut edges,
                                    s,
                                    caller.to_string(),
                                    s.service.clone(),
                                    "service",
                                );
                            }
                            Some(_) => {}
                            None => lookups.push((i, Lookup::Parent)),
                        }
                    }
                }
            }
        }
        let mut tx = self.store.begin_write().await?;
        // Partners in earlier batches.
        for (i, lookup) in lookups {
            let s = &spans[i];
            let sql = match lookup {
                Lookup::Parent => "SELECT service FROM apm_spans WHERE trace_id = $1 AND span_id = $2 AND seq < $3",
                Lookup::Children => "SELECT service FROM apm_spans WHERE trace_id = $1 AND parent_span_id = $2 AND seq < $3 AND category = 'request'",
            };
            let key = match lookup {
                Lookup::Parent => s.parent.as_deref().unwrap_or_default(),
                Lookup::Children => s.span_id.as_str(),
            };
            let partners: Vec<String> = sqlx::query_scalar(sql)
                .bind(&s.trace_id)
                .bind(key)
                .bind(first_seq)
                .fetch_all(&mut *tx)
                .await?;
            for other in partners.into_iter().filter(|o| *o != s.service) {
                match lookup {
                    Lookup::Parent => add_edge(&mut edges, s, other, s.service.clone(), "service"),
                    Lookup::Children => {
                        add_edge(&mut edges, s, s.service.clone(), other, "service")
                    }
                }
            }
        }
        let n_cells = cells.len();
        for (k, agg) in cells {
            merge_cell(&mut tx, &k, agg).await?;
        }
        for (k, e) in edges {
            sqlx::query(
                "INSERT INTO apm_edges (project_id, tier, bucket, source, target, target_kind, count, errors, sum_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (project_id, tier, bucket, source, target, target_kind) DO UPDATE SET
                   count = apm_edges.count + excluded.count, errors = apm_edges.errors + excluded.errors,
                   sum_ms = apm_edges.sum_ms + excluded.sum_ms",
            )
            .bind(k.project)
            .bind(k.tier)
            .bind(k.bucket)
            .bind(k.source)
            .bind(k.target)
            .bind(k.kind)
            .bind(e.count)
            .bind(e.errors)
            .bind(e.sum_ms)
            .execute(&mut *tx)
            .await?;
        }
        let now = now_ms();
        for ((project, name), seen) in services {
            sqlx::query(
                "INSERT INTO apm_services (project_id, name, apdex_t_ms, first_seen, last_seen)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (project_id, name) DO UPDATE SET last_seen = excluded.last_seen
                 WHERE apm_services.last_seen < excluded.last_seen",
            )
            .bind(project)
            .bind(name)
            .bind(DEFAULT_APDEX_T_MS)
            .bind(seen.min(now))
            .execute(&mut *tx)
            .await?;
        }
        if cursor::advance(&mut tx, CURSOR, &self.owner, position, last).await? {
            tx.commit().await?;
            metrics::counter!("lookout_apm_rolled_spans_total").increment(spans.len() as u64);
            metrics::histogram!("lookout_apm_rollup_batch_seconds")
                .record(started.elapsed().as_secs_f64());
            tracing::debug!(spans = spans.len(), cells = n_cells, "Spans rolled up.");
            Ok(spans.len())
        } else {
            tx.rollback().await?;
            Ok(0)
        }
    }

    /// Folds until `stop` resolves, polling every `idle` when there is nothing new.
    pub async fn run(self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let wait = match self.poll_once().await {
                Ok(0) => idle,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "APM rollup failed; retrying.");
                    idle
                }
            };
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn add_edge(
    edges: &mut HashMap<EdgeKey, EdgeAgg>,
    s: &Row_,
    source: String,
    target: String,
    kind: &'static str,
) {
    // Edges keep minute and hour tiers: the map is read over hours, rarely over months.
    for (tier, width) in &TIERS[..2] {
        let e = edges
            .entry(EdgeKey {
                project: s.project,
                tier: *tier,
                bucket: bucket(s.start_ms, *width),
                source: source.clone(),
                target: target.clone(),
                kind,
            })
            .or_default();
        e.count += 1;
        e.errors += i64::from(s.error);
        e.sum_ms += s.duration_ms;
    }
}

/// Merges `agg` into its stored row (read, merge the sketch, write back). Only the cursor's
/// holder writes rollups, so the read-modify-write cannot race.
async fn merge_cell(tx: &mut Transaction<'static, Any>, k: &Key, mut agg: Agg) -> Result<()> {
    let old = sqlx::query(
        "SELECT count, errors, sum_ms, min_ms, max_ms, sketch FROM apm_rollups
         WHERE project_id = $1 AND tier = $2 AND service = $3 AND bucket = $4 AND category = $5
           AND operation = $6 AND status_class = $7 AND error = $8",
    )
    .bind(k.project)
    .bind(k.tier)
    .bind(&k.service)
    .bind(k.bucket)
    .bind(&k.category)
    .bind(&k.operation)
    .bind(&k.status_class)
    .bind(i64::from(k.error))
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = old {
        let sketch: Vec<u8> = r.try_get(5)?;
        agg.merge(&Agg {
            count: r.try_get::<i64, _>(0)?.max(0) as u64,
            errors: r.try_get::<i64, _>(1)?.max(0) as u64,
            sum: r.try_get(2)?,
            min: r.try_get(3)?,
            max: r.try_get(4)?,
            sketch: Sketch::decode(&sketch).unwrap_or_default(),
        });
    }
    sqlx::query(
        "INSERT INTO apm_rollups (project_id, tier, service, bucket, category, operation, status_class, error,
                                  count, errors, sum_ms, min_ms, max_ms, sketch)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (project_id, tier, service, bucket, category, operation, status_class, error) DO UPDATE SET
           count = excluded.count, errors = excluded.errors, sum_ms = excluded.sum_ms,
           min_ms = excluded.min_ms, max_ms = excluded.max_ms, sketch = excluded.sketch",
    )
    .bind(k.project)
    .bind(k.tier)
    .bind(&k.service)
    .bind(k.bucket)
    .bind(&k.category)
    .bind(&k.operation)
    .bind(&k.status_class)
    .bind(i64::from(k.error))
    .bind(agg.count as i64)
    .bind(agg.errors as i64)
    .bind(agg.sum)
    .bind(agg.min)
    .bind(agg.max)
    .bind(agg.sketch.encode())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
