//! Index advice from the catalog: unused indexes (since the statistics were reset; unique and
//! constraint indexes excluded), duplicate and overlapping indexes (a leading prefix of another
//! on the same table, same method, expressions and predicate), invalid indexes (a failed
//! `CREATE INDEX CONCURRENTLY`), and tables read by many sequential scans over many rows
//! (missing-index candidates, with the columns the slow queries filter on).

use sqlx::{PgConnection, Row};

use crate::finding::{Finding, Severity};
use crate::stats::SlowQuery;
use crate::Options;

fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Unused indexes: no more than `unused_max_scans` scans since the statistics were reset.
pub async fn unused(conn: &mut PgConnection, opt: &Options) -> sqlx::Result<Vec<Finding>> {
    let reset: Option<String> = sqlx::query(
        "SELECT stats_reset::text AS stats_reset FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_optional(&mut *conn)
    .await?
    .and_then(|r| r.try_get("stats_reset").ok());
    let since = reset.map_or_else(
        || "since the server started".to_string(),
        |r| format!("since {r}"),
    );
    let rows = sqlx::query(
        "SELECT s.schemaname, s.relname, s.indexrelname, s.idx_scan, pg_relation_size(s.indexrelid) AS size
         FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
         WHERE NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion AND i.indisvalid
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
           AND s.idx_scan <= $1
         ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelname LIMIT 5000",
    )
    .bind(opt.unused_max_scans)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let (schema, table, index): (String, String, String) =
                (r.try_get("schemaname")?, r.try_get("relname")?, r.try_get("indexrelname")?);
            let scans: i64 = r.try_get("idx_scan")?;
            let bytes: i64 = r.try_get("size")?;
            Ok(Finding::new(
                "unused_index",
                Severity::Warning,
                format!("{schema}.{index}"),
                format!(
                    "{index} on {schema}.{table} was scanned {scans} times {since}; it costs {} and slows every write (a replica's reads do not count here)",
                    size(bytes)
                ),
            )
            .with("scans", scans)
            .with("size_bytes", bytes)
            .with("table", format!("{schema}.{table}")))
        })
        .collect()
}

struct Ix {
    schema: String,
    table: String,
    name: String,
    table_oid: u32,
    unique: bool,
    valid: bool,
    keys: Vec<String>,
    classes: Vec<String>,
    method: String,
    predicate: Option<String>,
    exprs: Option<String>,
    scans: i64,
    def: String,
}

/// Duplicate and overlapping indexes: one whose key columns are a leading prefix of another's.
pub async fn duplicates(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    let rows = sqlx::query(
        "SELECT n.nspname, t.relname, ic.relname AS index, i.indrelid::oid::int8 AS table_oid,
                i.indisunique OR i.indisprimary AS uniq, i.indisvalid, i.indkey::text AS keys,
                i.indclass::text AS classes, i.indnkeyatts::int4 AS nkeys, am.amname,
                pg_get_expr(i.indpred, i.indrelid) AS pred, pg_get_expr(i.indexprs, i.indrelid) AS exprs,
                COALESCE(s.idx_scan, 0) AS scans, pg_get_indexdef(i.indexrelid) AS def
         FROM pg_index i
         JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         JOIN pg_am am ON am.oid = ic.relam
         LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
         ORDER BY n.nspname, t.relname, ic.relname LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut all = Vec::new();
    for r in &rows {
        let nkeys: i32 = r.try_get("nkeys")?;
        let split = |s: String| -> Vec<String> {
            s.split_whitespace()
                .take(nkeys.max(0) as usize)
                .map(str::to_string)
                .collect()
        };
        all.push(Ix {
            schema: r.try_get("nspname")?,
            table: r.try_get("relname")?,
            name: r.try_get("index")?,
            table_oid: r.try_get::<i64, _>("table_oid")? as u32,
            unique: r.try_get("uniq")?,
            valid: r.try_get("indisvalid")?,
            keys: split(r.try_get("keys")?),
            classes: split(r.try_get("classes")?),
            method: r.try_get("amname")?,
            predicate: r.try_get("pred")?,
            exprs: r.try_get("exprs")?,
            scans: r.try_get("scans")?,
            def: r.try_get("def")?,
        });
    }
    let mut out = Vec::new();
    for a in all.iter().filter(|a| !a.unique && a.valid) {
        let covering = all.iter().find(|b| {
            b.name != a.name
                && b.valid
                && b.table_oid == a.table_oid
                && b.method == a.method
                && b.predicate == a.predicate
                && b.exprs == a.exprs
                && b.keys.len() >= a.keys.len()
                && b.keys[..a.keys.len()] == a.keys[..]
                && b.classes[..a.keys.len()] == a.classes[..]
                // Of two identical plain indexes, report one (the later name).
                && !(b.keys.len() == a.keys.len() && !b.unique && b.name > a.name)
        });
        if let Some(b) = covering {
            let what = if b.keys.len() == a.keys.len() {
                "duplicates"
            } else {
                "is a leading prefix of"
            };
            out.push(
                Finding::new(
                    "duplicate_index",
                    Severity::Warning,
                    format!("{}.{}", a.schema, a.name),
                    format!(
                        "{} on {}.{} {what} {} ({}); dropping it saves its writes (scans: {} {}, {} {})",
                        a.name, a.schema, a.table, b.name, b.def, a.name, a.scans, b.name, b.scans
                    ),
                )
                .with("covered_by", format!("{}.{}", b.schema, b.name))
                .with("scans", a.scans),
            );
        }
    }
    Ok(out)
}

/// Invalid indexes, and whether a `CREATE INDEX CONCURRENTLY` is still building one.
pub async fn invalid(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    let rows = sqlx::query(
        "SELECT n.nspname, t.relname AS table_name, ic.relname AS index_name,
                pg_get_indexdef(i.indexrelid) AS def,
                EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid) AS building
         FROM pg_index i
         JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE NOT i.indisvalid ORDER BY 1, 2, 3 LIMIT 5000",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let (schema, table, index, def): (String, String, String, String) =
(
                r.try_get("nspname")?,
                r.try_get("table_name")?,
                r.try_get("index_name")?,
                r.try_get("def")?,
            );
            let building: bool = r.try_get("building")?;
            Ok(if building {
                Finding::new(
                    "invalid_index",
                    Severity::Info,
                    format!("{schema}.{index}"),
                    format!("{index} on {schema}.{table} is being built (CREATE INDEX CONCURRENTLY in progress)"),
                )
            } else {
                Finding::new(
                    "invalid_index",
                    Severity::Critical,
                    format!("{schema}.{index}"),
                    format!(
                        "{index} on {schema}.{table} is invalid (a failed CREATE INDEX CONCURRENTLY?): queries cannot use it but writes still maintain it; DROP INDEX CONCURRENTLY {schema}.{index}, then recreate: {def}"
                    ),
                )
            })
        })
        .collect()
}

/// Tables read by sequential scans over many rows; the columns slow queries filter on, when the
/// statement statistics name them.
pub async fn missing(
    conn: &mut PgConnection,
    opt: &Options,
    slow: &[SlowQuery],
) -> sqlx::Result<Vec<Finding>> {
    let rows = sqlx::query(
        "SELECT s.schemaname, s.relname, s.seq_scan, s.seq_tup_read, COALESCE(s.idx_scan, 0) AS idx_scan,
                GREATEST(c.reltuples, 0)::int8 AS live, s.relid::oid::int8 AS table_oid
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.seq_scan >= $2 AND c.reltuples >= $1
           AND s.seq_tup_read / s.seq_scan >= $1 / 2
           AND 100.0 * COALESCE(s.idx_scan, 0) / (s.seq_scan + COALESCE(s.idx_scan, 0)) < 95
         ORDER BY s.seq_tup_read DESC LIMIT 5000",
    )
    .bind(opt.missing_min_rows)
    // Index builds, ANALYZE and the odd report scan too; a missing index shows as many scans.
    .bind(opt.missing_min_scans)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let (schema, table): (String, String) = (r.try_get("schemaname")?, r.try_get("relname")?);
        let seq: i64 = r.try_get("seq_scan")?;
        let read: i64 = r.try_get("seq_tup_read")?;
        let idx: i64 = r.try_get("idx_scan")?;
        let live: i64 = r.try_get("live")?;
        let oid: i64 = r.try_get("table_oid")?;
        let columns = filtered_columns(conn, oid, &table, slow).await?;
        let advice = if columns.is_empty() {
            "index the columns its queries filter on (pg_stat_statements would name them)"
                .to_string()
        } else {
            format!(
                "its slow queries filter on {} with no index leading on them: CREATE INDEX CONCURRENTLY ON {schema}.{table} ({})",
                columns.join(", "),
                columns[0]
            )
        };
        out.push(
            Finding::new(
                "missing_index",
                Severity::Warning,
                format!("{schema}.{table}"),
                format!(
                    "{schema}.{table} ({live} rows) was read by {seq} sequential scans ({read} rows) against {idx} index scans; {advice}"
                ),
            )
            .with("seq_scan", seq)
            .with("seq_tup_read", read)
            .with("idx_scan", idx)
            .with("columns", columns),
        );
    }
    Ok(out)
}

/// The `attname` column of each row of `sql`, run for the table `oid`.
async fn names(conn: &mut PgConnection, sql: &str, oid: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query(sql)
        .bind(oid)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get("attname"))
        .collect()
}

/// Columns of `table` that single-table slow queries compare in their WHERE clause and that no
/// index leads on.
async fn filtered_columns(
    conn: &mut PgConnection,
    oid: i64,
    table: &str,
    slow: &[SlowQuery],
) -> sqlx::Result<Vec<String>> {
    let cols = names(
        conn,
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped",
        oid,
    )
    .await?;
    let leading = names(
        conn,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = $1::int8::oid AND i.indisvalid",
        oid,
    )
    .await?;
    let mut out = Vec::new();
    for q in slow {
        for c in crate::stats::where_columns(&q.query, table) {
            if cols.contains(&c) && !leading.contains(&c) && !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}
