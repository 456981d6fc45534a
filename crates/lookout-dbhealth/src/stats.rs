//! Slow queries from `pg_stat_statements`: the columns differ by version (`total_time` before
//! PostgreSQL 13, `total_exec_time` + `total_plan_time` after; `blk_read_time` renamed
//! `shared_blk_read_time` in 17), so the SELECT is built from the view's actual columns. When the
//! extension is missing, a finding says how to add it.

use serde::Serialize;
use sqlx::{PgConnection, Row};

use crate::finding::{Finding, Severity};
use crate::Options;

/// One normalised statement with its totals since the statistics were reset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowQuery {
    pub queryid: String,
    /// As PostgreSQL normalised it (`$1` for constants).
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub rows: i64,
    /// Blocks read from disk (not from shared buffers).
    pub blocks_read: i64,
    /// Time spent reading and writing blocks (needs `track_io_timing`).
    pub io_ms: f64,
}

/// The statements by total time (up to `limit`), and the `slow_query` findings among them; or the
/// `extension_missing` finding.
pub async fn slow_queries(
    conn: &mut PgConnection,
    opt: &Options,
) -> sqlx::Result<(Vec<SlowQuery>, Vec<Finding>)> {
    let schema: Option<String> = sqlx::query(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_stat_statements'",
    )
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| r.try_get("nspname"))
    .transpose()?;
    let Some(schema) = schema else {
        return Ok((Vec::new(), vec![missing_extension(conn).await?]));
    };
    let cols: Vec<String> = sqlx::query(
        "SELECT column_name::text AS column_name FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = 'pg_stat_statements'",
    )
    .bind(&schema)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("column_name"))
    .collect::<sqlx::Result<_>>()?;
    let has = |c: &str| cols.iter().any(|x| x == c);
    let total = if has("total_exec_time") {
        if has("total_plan_time") {
            "(s.total_exec_time + s.total_plan_time)"
        } else {
            "s.total_exec_time"
        }
    } else {
        "s.total_time"
    };
    let io = if has("shared_blk_read_time") {
        "(s.shared_blk_read_time + s.shared_blk_write_time)"
    } else {
        "(s.blk_read_time + s.blk_write_time)"
    };
    let toplevel = if has("toplevel") {
        "AND s.toplevel"
    } else {
        ""
    };
    let sql = format!(
        "SELECT COALESCE(s.queryid::text, '') AS queryid, s.query, s.calls, {total}::float8 AS total_ms, s.rows,
                s.shared_blks_read, {io}::float8 AS io_ms
         FROM \"{schema}\".pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = current_database() AND s.calls > 0 {toplevel}
           AND s.query !~* '^\\s*(BEGIN|COMMIT|ROLLBACK|SET|SHOW|DEALLOCATE|EXPLAIN|ANALYZE|VACUUM)\\M'
           -- Catalog reads are monitoring (ours among them), not the application's statements.
           AND s.query !~* '(pg_stat_|pg_statio_|pg_catalog\\.|information_schema\\.|\\mpg_(class|index|namespace|attribute|depend|sequences|settings|database|extension|am|constraint)\\M)'
         ORDER BY total_ms DESC LIMIT $1"
    );
    let rows = match sqlx::query(&sql)
        .bind(opt.top_queries)
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) => rows,
        // Created but not preloaded: the view exists and refuses to answer.
        Err(e) if e.to_string().contains("shared_preload_libraries") => {
            return Ok((Vec::new(), vec![missing_extension(conn).await?]));
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for r in &rows {
        let calls: i64 = r.try_get("calls")?;
        let total_ms: f64 = r.try_get("total_ms")?;
        out.push(SlowQuery {
            queryid: r.try_get("queryid")?,
            query: r.try_get("query")?,
            calls,
            total_ms,
            mean_ms: total_ms / calls.max(1) as f64,
            rows: r.try_get("rows")?,
            blocks_read: r.try_get("shared_blks_read")?,
            io_ms: r.try_get("io_ms")?,
        });
    }
    let findings = out
        .iter()
        .filter(|q| q.calls >= opt.slow_calls && q.mean_ms >= opt.slow_ms)
        .map(|q| {
            Finding::new(
                "slow_query",
                if q.mean_ms >= opt.slow_ms * 10.0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                format!("query {}", q.queryid),
                format!(
                    "{:.1} ms on average over {} calls ({:.0} ms in all): {}",
                    q.mean_ms,
                    q.calls,
                    q.total_ms,
                    one_line(&q.query, 300)
                ),
            )
            .with("calls", q.calls)
            .with("mean_ms", q.mean_ms)
            .with("total_ms", q.total_ms)
            .with("query", q.query.clone())
        })
        .collect();
    Ok((out, findings))
}

async fn missing_extension(conn: &mut PgConnection) -> sqlx::Result<Finding> {
    let preload: String =
        sqlx::query("SELECT current_setting('shared_preload_libraries') AS preload")
            .fetch_one(&mut *conn)
            .await?
            .try_get("preload")?;
    let steps = if preload.contains("pg_stat_statements") {
        "run CREATE EXTENSION pg_stat_statements in this database"
    } else {
        "add pg_stat_statements to shared_preload_libraries, restart PostgreSQL, then run CREATE EXTENSION pg_stat_statements in this database"
    };
    Ok(Finding::new(
        "extension_missing",
        Severity::Info,
        "pg_stat_statements",
        format!("Slow queries need pg_stat_statements: {steps}."),
    ))
}

/// `text` on one line, cut at `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let mut s: String = flat.chars().take(max - 1).collect();
        s.push('…');
        s
    } else {
        flat
    }
}

/// Columns a single-table query on `table` compares in its WHERE clause (`status = $1`,
/// `customer_id IN (…)`, `created_at > $2`), in order of appearance. Joins and subqueries are
/// left alone: which table a column belongs to is not known without parsing them.
pub fn where_columns(query: &str, table: &str) -> Vec<String> {
    let lower = query.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    if words.contains(&"join") || words.iter().filter(|w| **w == "select").count() > 1 {
        return Vec::new();
    }
    let from = words.iter().position(|w| *w == "from");
    let Some(from) = from else { return Vec::new() };
    let Some(target) = words.get(from + 1) else {
        return Vec::new();
    };
    let bare = target.trim_matches('"');
    let bare = bare.rsplit('.').next().unwrap_or(bare).trim_matches('"');
    if bare != table.to_lowercase() || words.get(from + 2).is_some_and(|w| w.ends_with(',')) {
        return Vec::new();
    }
    let Some(start) = lower.find(" where ") else {
        return Vec::new();
    };
    let clause = &lower[start + 7..];
    let end = [
        "order by",
        "group by",
        "limit",
        "offset",
        "for update",
        "returning",
    ]
    .iter()
    .filter_map(|k| clause.find(k))
    .min()
    .unwrap_or(clause.len());
    let clause = &clause[..end];
    let mut out: Vec<String> = Vec::new();
    let tokens: Vec<&str> = clause
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        // `col=$1` written without spaces.
        let (name, op) = match t.find(['=', '<', '>', '!']) {
            Some(p) if p > 0 => (&t[..p], Some(&t[p..])),
            _ => (*t, tokens.get(i + 1).copied()),
        };
        let is_op = op.is_some_and(|o| {
            o.starts_with('=')
                || o.starts_with('<')
                || o.starts_with('>')
                || o.starts_with("!=")
                || ["in", "is", "like", "ilike", "between"].contains(&o)
        });
        let name = name.trim_matches('"');
        let name = name.rsplit('.').next().unwrap_or(name);
        let ident = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && !["and", "or", "not", "where"].contains(&name);
        if is_op && ident && !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_columns_of_single_table_queries() {
        assert_eq!(
            where_columns("SELECT * FROM orders WHERE status = $1 AND customer_id IN ($2, $3) ORDER BY id LIMIT $4", "orders"),
            vec!["status", "customer_id"]
        );
        assert_eq!(
            where_columns("select id from public.orders where created_at>$1", "orders"),
            vec!["created_at"]
        );
        assert!(where_columns(
            "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name = $1",
            "orders"
        )
        .is_empty());
        assert!(where_columns("SELECT * FROM items WHERE status = $1", "orders").is_empty());
        assert!(where_columns("SELECT 1", "orders").is_empty());
    }

    #[test]
    fn long_queries_are_cut_on_one_line() {
        assert_eq!(one_line("SELECT *\n  FROM t", 100), "SELECT * FROM t");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
