//! Operational checks: long-running queries and idle-in-transaction sessions, connections against
//! `max_connections`, tables overdue for vacuum or analyze, transaction-id wraparound age,
//! sequences near their column's maximum, cache hit ratio, table and index bloat estimates, and
//! replication lag when replicas exist.

use sqlx::{PgConnection, Row};

use crate::finding::{Finding, Severity};
use crate::stats::one_line;
use crate::Options;

/// Queries running longer than `long_running_s`, and sessions idle in a transaction as long.
pub async fn activity(conn: &mut PgConnection, opt: &Options) -> sqlx::Result<Vec<Finding>> {
    let rows = sqlx::query(
        "SELECT pid, state, EXTRACT(EPOCH FROM now() - COALESCE(
                    CASE WHEN state LIKE 'idle in transaction%' THEN state_change END, query_start, xact_start))::float8 AS secs,
                query, COALESCE(usename::text, '') AS usename, COALESCE(application_name, '') AS app,
                COALESCE(wait_event_type, '') AS wait
         FROM pg_stat_activity
         WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
           AND state IS NOT NULL AND state <> 'idle'
         ORDER BY secs DESC LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let pid: i32 = r.try_get("pid")?;
        let state: String = r.try_get("state")?;
        let secs: Option<f64> = r.try_get("secs")?;
        let secs = secs.unwrap_or(0.0);
        if secs < opt.long_running_s {
            continue;
        }
        let query: Option<String> = r.try_get("query")?;
        let user: String = r.try_get("usename")?;
        let app: String = r.try_get("app")?;
        let wait: String = r.try_get("wait")?;
        let (kind, what) = if state.starts_with("idle in transaction") {
            ("idle_in_transaction", "idle in a transaction")
        } else {
            ("long_running_query", "running")
        };
        let waiting = if wait.is_empty() {
            String::new()
        } else {
            format!(", waiting on {wait}")
        };
        out.push(
            Finding::new(
                kind,
                if secs >= opt.long_running_s * 10.0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                format!("pid {pid}"),
                format!(
                    "{what} for {secs:.0} s (user {user}, application {app:?}{waiting}): {}",
                    one_line(query.as_deref().unwrap_or(""), 200)
                ),
            )
            .with("seconds", secs)
            .with("pid", pid),
        );
    }
    Ok(out)
}

/// Connections in use against `max_connections`.
pub async fn connections(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    let r = sqlx::query(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
                current_setting('max_connections')::int8 AS max,
                current_setting('superuser_reserved_connections')::int8 AS reserved",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (used, max, reserved): (i64, i64, i64) = (
        r.try_get("used")?,
        r.try_get("max")?,
        r.try_get("reserved")?,
    );
    let usable = (max - reserved).max(1);
    let share = used as f64 / usable as f64;
    Ok(if share >= 0.8 {
        vec![Finding::new(
            "connections",
            if share >= 0.95 { Severity::Critical } else { Severity::Warning },
            "max_connections",
            format!("{used} of {usable} usable connections in use ({:.0} %); a pooler (PgBouncer) or fewer app workers would leave room", share * 100.0),
        )
        .with("used", used)
        .with("max", usable)]
    } else {
        Vec::new()
    })
}

/// Tables whose dead rows or changes since the last analyze are twice past autovacuum's trigger.
pub async fn vacuum(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    let rows = sqlx::query(
        "SELECT schemaname, relname, n_live_tup, n_dead_tup, n_mod_since_analyze,
                GREATEST(last_vacuum, last_autovacuum)::text AS vacuumed,
                GREATEST(last_analyze, last_autoanalyze)::text AS analyzed,
                COALESCE(now() - GREATEST(last_vacuum, last_autovacuum) > interval '10 minutes', true) AS vacuum_old,
                COALESCE(now() - GREATEST(last_analyze, last_autoanalyze) > interval '10 minutes', true) AS analyze_old,
                current_setting('autovacuum_vacuum_threshold')::float8 AS vacuum_threshold,
                current_setting('autovacuum_vacuum_scale_factor')::float8 AS vacuum_scale,
                current_setting('autovacuum_analyze_threshold')::float8 AS analyze_threshold,
                current_setting('autovacuum_analyze_scale_factor')::float8 AS analyze_scale
         FROM pg_stat_user_tables ORDER BY n_dead_tup DESC LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let (schema, table): (String, String) = (r.try_get("schemaname")?, r.try_get("relname")?);
        let live: i64 = r.try_get("n_live_tup")?;
        let dead: i64 = r.try_get("n_dead_tup")?;
        let modified: i64 = r.try_get("n_mod_since_analyze")?;
        let vacuumed: Option<String> = r.try_get("vacuumed")?;
        let analyzed: Option<String> = r.try_get("analyzed")?;
        // Overdue means autovacuum had time to act (its naptime is a minute) and did not.
        let (vacuum_old, analyze_old): (bool, bool) =
            (r.try_get("vacuum_old")?, r.try_get("analyze_old")?);
        let (vt, vs, at, as_): (f64, f64, f64, f64) = (
            r.try_get("vacuum_threshold")?,
            r.try_get("vacuum_scale")?,
            r.try_get("analyze_threshold")?,
            r.try_get("analyze_scale")?,
        );
        let vacuum_at = vt + vs * live as f64;
        let analyze_at = at + as_ * live as f64;
        if vacuum_old && dead >= 1000 && dead as f64 > 2.0 * vacuum_at {
            out.push(
                Finding::new(
                    "vacuum_overdue",
                    Severity::Warning,
                    format!("{schema}.{table}"),
                    format!(
                        "{dead} dead rows against {live} live (autovacuum starts at {vacuum_at:.0}); last vacuumed {}",
                        vacuumed.as_deref().unwrap_or("never")
                    ),
                )
                .with("dead_rows", dead)
                .with("live_rows", live),
            );
        }
        if analyze_old && modified >= 1000 && modified as f64 > 2.0 * analyze_at {
            out.push(
                Finding::new(
                    "analyze_overdue",
                    Severity::Info,
                    format!("{schema}.{table}"),
                    format!(
                        "{modified} rows changed since the last analyze (autoanalyze starts at {analyze_at:.0}); last analyzed {}; the planner's statistics are stale",
                        analyzed.as_deref().unwrap_or("never")
                    ),
                )
                .with("modified_rows", modified),
            );
        }
    }
    Ok(out)
}

/// Transaction ids left before wraparound, per database.
pub async fn wraparound(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    let rows = sqlx::query(
        "SELECT datname::text AS datname, age(datfrozenxid)::int8 AS age,
                current_setting('autovacuum_freeze_max_age')::int8 AS freeze_max_age
         FROM pg_database WHERE datallowconn ORDER BY age DESC LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let (db, age, freeze): (String, i64, i64) = (
            r.try_get("datname")?,
            r.try_get("age")?,
            r.try_get("freeze_max_age")?,
        );
        let left = (1_i64 << 31) - age;
        let severity = if left < 10_000_000 {
            Severity::Critical
        } else if age > freeze {
            Severity::Warning
        } else {
            continue;
        };
        out.push(
            Finding::new(
                "wraparound",
                severity,
                db.clone(),
                format!(
                    "{db} is {age} transactions past its oldest unfrozen row ({left} left before wraparound; autovacuum_freeze_max_age {freeze}): run VACUUM (FREEZE) on its oldest tables"
                ),
            )
            .with("age", age)
            .with("left", left),
        );
    }
    Ok(out)
}

/// Sequences owned by a column that are past 90 % of the column type's maximum.
pub async fn sequences(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    let rows = sqlx::query(
        "SELECT sn.nspname AS seq_schema, s.relname AS seq_name, tn.nspname AS table_schema,
                t.relname AS table_name, a.attname, format_type(a.atttypid, a.atttypmod) AS col_type,
                ps.last_value, ps.max_value
         FROM pg_depend d
         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_namespace sn ON sn.oid = s.relnamespace
         JOIN pg_class t ON t.oid = d.refobjid
         JOIN pg_namespace tn ON tn.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
         JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
           AND d.deptype IN ('a', 'i') AND ps.last_value IS NOT NULL
         ORDER BY ps.last_value::float8 / ps.max_value::float8 DESC LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let (ss, seq, ts, table, col, ty): (String, String, String, String, String, String) = (
            r.try_get("seq_schema")?,
            r.try_get("seq_name")?,
            r.try_get("table_schema")?,
            r.try_get("table_name")?,
            r.try_get("attname")?,
            r.try_get("col_type")?,
        );
        let last: i64 = r.try_get("last_value")?;
        let seq_max: i64 = r.try_get("max_value")?;
        let col_max = match ty.as_str() {
            "smallint" => i64::from(i16::MAX),
            "integer" => i64::from(i32::MAX),
            _ => i64::MAX,
        };
        let max = col_max.min(seq_max);
        let used = last as f64 / max as f64;
        if used >= 0.9 {
            out.push(
                Finding::new(
                    "sequence_overflow",
                    if used >= 0.98 { Severity::Critical } else { Severity::Warning },
                    format!("{ss}.{seq}"),
                    format!(
                        "{ss}.{seq} feeds {ts}.{table}.{col} ({ty}) and is at {last} of {max} ({:.1} %): ALTER the column to bigint before inserts fail",
                        used * 100.0
                    ),
                )
                .with("last_value", last)
                .with("max_value", max),
            );
        }
    }
    Ok(out)
}

/// Share of table and index blocks found in shared buffers, once enough were read to judge.
pub async fn cache_hits(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    let r = sqlx::query(
        "SELECT COALESCE(sum(heap_blks_hit), 0)::float8 AS table_hit,
                COALESCE(sum(heap_blks_read), 0)::float8 AS table_read,
                (SELECT COALESCE(sum(idx_blks_hit), 0)::float8 FROM pg_statio_user_indexes) AS index_hit,
                (SELECT COALESCE(sum(idx_blks_read), 0)::float8 FROM pg_statio_user_indexes) AS index_read
         FROM pg_statio_user_tables",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (th, tr, ih, ir): (f64, f64, f64, f64) = (
        r.try_get("table_hit")?,
        r.try_get("table_read")?,
        r.try_get("index_hit")?,
        r.try_get("index_read")?,
    );
    let mut out = Vec::new();
    for (what, hit, read) in [("table", th, tr), ("index", ih, ir)] {
        let ratio = hit / (hit + read).max(1.0);
        if hit + read >= 10_000.0 && ratio < 0.99 {
            out.push(
                Finding::new(
                    "cache_hit_ratio",
                    Severity::Warning,
                    format!("{what} blocks"),
                    format!(
                        "{:.2} % of {what} blocks came from shared buffers ({read:.0} read from disk); below 99 % the working set does not fit: raise shared_buffers or add memory",
                        ratio * 100.0
                    ),
                )
                .with("ratio", ratio),
            );
        }
    }
    Ok(out)
}

/// Estimated bloat: pages a table or b-tree index has beyond what its rows need (from the
/// planner's statistics; run ANALYZE first for a fair estimate).
pub async fn bloat(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    // Tables: row width from pg_stats plus the 24-byte tuple header and 4-byte line pointer;
    // pages of 8 kB less the 24-byte page header, at the table's fillfactor.
    let tables = sqlx::query(
        "SELECT n.nspname, c.relname, c.relpages::int8 AS relpages, c.reltuples::float8 AS reltuples,
                COALESCE((SELECT sum(s.avg_width) FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname), 0)::float8 AS width,
                current_setting('block_size')::float8 AS block_size
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
           AND c.relpages >= 128 AND c.reltuples > 0
         ORDER BY c.relpages DESC LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in &tables {
        let (schema, table): (String, String) = (r.try_get("nspname")?, r.try_get("relname")?);
        let pages: i64 = r.try_get("relpages")?;
        let tuples: f64 = r.try_get("reltuples")?;
        let width: f64 = r.try_get("width")?;
        let block: f64 = r.try_get("block_size")?;
        if width <= 0.0 {
            continue; // never analyzed: no estimate
        }
        let per_page = ((block - 24.0) / (24.0 + 4.0 + width.ceil()))
            .floor()
            .max(1.0);
        let needed = (tuples / per_page).ceil();
        push_bloat(
            &mut out,
            "table_bloat",
            &schema,
            &table,
            pages as f64,
            needed,
            block,
        );
    }
    // B-tree indexes: key width from pg_stats plus the 8-byte index tuple header and 4-byte line
    // pointer, pages less header and special space, at 90 % fill.
    let indexes = sqlx::query(
        "SELECT n.nspname, ic.relname, ic.relpages::int8 AS relpages, ic.reltuples::float8 AS reltuples,
                COALESCE((SELECT sum(s.avg_width) FROM pg_attribute a JOIN pg_stats s
                          ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname
                          WHERE a.attrelid = t.oid AND a.attnum = ANY (i.indkey)), 0)::float8 AS width,
                current_setting('block_size')::float8 AS block_size
         FROM pg_index i
         JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
           AND i.indexprs IS NULL AND ic.relpages >= 128 AND ic.reltuples > 0
         ORDER BY ic.relpages DESC LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in &indexes {
        let (schema, index): (String, String) = (r.try_get("nspname")?, r.try_get("relname")?);
        let pages: i64 = r.try_get("relpages")?;
        let tuples: f64 = r.try_get("reltuples")?;
        let width: f64 = r.try_get("width")?;
        let block: f64 = r.try_get("block_size")?;
        if width <= 0.0 {
            continue;
        }
        let per_page = ((block - 24.0 - 16.0) * 0.9 / (8.0 + 4.0 + (width / 8.0).ceil() * 8.0))
            .floor()
            .max(1.0);
        let needed = (tuples / per_page).ceil() + 1.0;
        push_bloat(
            &mut out,
            "index_bloat",
            &schema,
            &index,
            pages as f64,
            needed,
            block,
        );
    }
    Ok(out)
}

fn push_bloat(
    out: &mut Vec<Finding>,
    kind: &'static str,
    schema: &str,
    name: &str,
    pages: f64,
    needed: f64,
    block: f64,
) {
    let extra = ((pages - needed) * block).max(0.0);
    // Worth a finding: at least half wasted and at least 8 MB of it.
    if pages >= 2.0 * needed && extra >= 8.0 * 1024.0 * 1024.0 {
        out.push(
            Finding::new(
                kind,
                Severity::Info,
                format!("{schema}.{name}"),
                format!(
                    "about {:.0} MB of {:.0} MB is free space (estimated from the statistics): VACUUM FULL, pg_repack or REINDEX CONCURRENTLY would return it",
                    extra / 1048576.0,
                    pages * block / 1048576.0
                ),
            )
            .with("wasted_bytes", extra as i64),
        );
    }
}

/// Replicas' lag, seen from the primary; or this replica's own replay delay.
pub async fn replication(conn: &mut PgConnection, opt: &Options) -> sqlx::Result<Vec<Finding>> {
    let replica: bool = sqlx::query("SELECT pg_is_in_recovery() AS replica")
        .fetch_one(&mut *conn)
        .await?
        .try_get("replica")?;
    let mut out = Vec::new();
    if replica {
        let r = sqlx::query(
            "SELECT COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)::float8 AS lag",
        )
        .fetch_one(&mut *conn)
        .await?;
        let lag: f64 = r.try_get("lag")?;
        if lag > opt.replication_lag_s {
            out.push(Finding::new(
                "replication_lag",
                Severity::Warning,
                "this replica",
                format!("the last replayed transaction is {lag:.0} s old (no writes on the primary also look like this)"),
            ).with("seconds", lag));
        }
        return Ok(out);
    }
    let rows = sqlx::query(
        "SELECT COALESCE(application_name, '') AS app, COALESCE(client_addr::text, 'local') AS addr,
                COALESCE(state, '') AS state,
                COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 AS secs,
                COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8 AS bytes
         FROM pg_stat_replication ORDER BY replay_lag DESC NULLS LAST LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        let (app, addr, state): (String, String, String) =
            (r.try_get("app")?, r.try_get("addr")?, r.try_get("state")?);
        let (secs, bytes): (f64, f64) = (r.try_get("secs")?, r.try_get("bytes")?);
        if secs > opt.replication_lag_s || bytes > 1024.0 * 1024.0 * 1024.0 {
            out.push(
                Finding::new(
                    "replication_lag",
                    Severity::Warning,
                    format!("{app}@{addr}"),
                    format!(
                        "replica {app} ({addr}, {state}) replays {secs:.0} s / {:.0} MB behind",
                        bytes / 1048576.0
                    ),
                )
                .with("seconds", secs)
                .with("bytes", bytes),
            );
        }
    }
    Ok(out)
}
