//! The SQLite and PostgreSQL migrations must build the same schema: the same tables, the same
//! columns in each, and the same named indexes over the same columns. Each backend has its own
//! migration files (their dialects differ), so nothing else keeps them in step; a column added
//! to one file only would surface as a query that works on one backend and fails on the other.

use std::collections::BTreeMap;

use lookout_store::{Backend, Store};
use sqlx::Row;

// The shared support module also defines `both!`, which this one-test suite does not use.
#[allow(unused_macros)]
mod support;
use support::fixture;

/// Table → its columns (sorted), and index → (table, its columns in order).
#[derive(Debug, PartialEq)]
struct Schema {
    tables: BTreeMap<String, Vec<String>>,
    indexes: BTreeMap<String, (String, Vec<String>)>,
}

/// Migration bookkeeping, whose shape is the migrator's business on each backend.
const BOOKKEEPING: &[&str] = &["schema_migrations"];

/// Each backend's own text index over issue titles (migration 0031), kept apart from the
/// comparison: an FTS5 virtual table and its shadow tables (`issues_fts_data`, …) on SQLite, a
/// table with a pg_trgm index on PostgreSQL. The store's search picks the one of its backend.
const SEARCH_INDEX: &str = "issues_fts";

async fn sqlite_schema(store: &Store) -> Schema {
    let pool = store.pool();
    let mut tables = BTreeMap::new();
    for r in sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let t: String = r.try_get("name").unwrap();
        let mut cols: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info($1)")
            .bind(&t)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|c| c.try_get("name").unwrap())
            .collect();
        cols.sort();
        tables.insert(t, cols);
    }
    let mut indexes = BTreeMap::new();
    // Indexes created by CREATE INDEX (those behind PRIMARY KEY and UNIQUE have no SQL).
    for r in sqlx::query(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let name: String = r.try_get("name").unwrap();
        let cols = sqlx::query("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
            .bind(&name)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|c| c.try_get::<String, _>("name").unwrap_or_default())
            .collect();
        indexes.insert(name, (r.try_get("tbl_name").unwrap(), cols));
    }
    Schema { tables, indexes }
}

async fn postgres_schema(store: &Store) -> Schema {
    let pool = store.pool();
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT c.table_name::text AS t, c.column_name::text AS col
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        tables
            .entry(r.try_get("t").unwrap())
            .or_default()
            .push(r.try_get("col").unwrap());
    }
    for cols in tables.values_mut() {
        cols.sort();
    }
    let mut indexes = BTreeMap::new();
    // Indexes created by CREATE INDEX: not the ones backing a primary key or unique constraint.
    for r in sqlx::query(
        "SELECT i.relname::text AS idx, t.relname::text AS tbl,
                (SELECT string_agg(a.attname::text, ',' ORDER BY k.n)
                   FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS cols
         FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace ns ON ns.oid = t.relnamespace
         LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid
         WHERE ns.nspname = current_schema() AND c.oid IS NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let cols: Option<String> = r.try_get("cols").unwrap();
        indexes.insert(
            r.try_get("idx").unwrap(),
            (
                r.try_get("tbl").unwrap(),
                cols.unwrap_or_default()
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
        );
    }
    Schema { tables, indexes }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let sqlite = fixture(Backend::Sqlite).await;
    let postgres = fixture(Backend::Postgres).await;
    let mut a = sqlite_schema(&sqlite.store).await;
    let mut b = postgres_schema(&postgres.store).await;
    for t in BOOKKEEPING {
        a.tables.remove(*t);
        b.tables.remove(*t);
    }
    for s in [&mut a, &mut b] {
        s.tables.retain(|t, _| !t.starts_with(SEARCH_INDEX));
        s.indexes.retain(|_, (t, _)| !t.starts_with(SEARCH_INDEX));
    }
    assert!(a.tables.len() > 50, "only {} tables", a.tables.len());
    let mut problems = Vec::new();
    for (t, cols) in &a.tables {
        match b.tables.get(t) {
            None => problems.push(format!("table {t}: only on SQLite")),
            Some(other) if other != cols => {
                problems.push(format!("table {t}: SQLite {cols:?}, PostgreSQL {other:?}"))
            }
            Some(_) => {}
        }
    }
    for t in b.tables.keys().filter(|t| !a.tables.contains_key(*t)) {
        problems.push(format!("table {t}: only on PostgreSQL"));
    }
    for (i, def) in &a.indexes {
        match b.indexes.get(i) {
            None => problems.push(format!("index {i} on {}: only on SQLite", def.0)),
            Some(other) if other != def => {
                problems.push(format!("index {i}: SQLite {def:?}, PostgreSQL {other:?}"))
            }
            Some(_) => {}
        }
    }
    for (i, def) in b
        .indexes
        .iter()
        .filter(|(i, _)| !a.indexes.contains_key(*i))
    {
        problems.push(format!("index {i} on {}: only on PostgreSQL", def.0));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Since high availability (migration 0018), replicas of version N and N+1 run side by side
/// during a rolling upgrade, on the schema of N+1: so a migration may only add (tables, columns
/// with defaults or nullable, indexes). Removing or renaming what version N still reads waits for
/// a later "contract" migration that names itself so (`contract` in its file name) and ships only
/// once no replica of the version that used it can be running (docs/operations.md, "Upgrading").
#[test]
fn migrations_since_high_availability_only_add() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let forbidden = [
        "DROP TABLE",
        "DROP COLUMN",
        "RENAME",
        "ALTER COLUMN",
        "DROP INDEX",
    ];
    let mut offences = Vec::new();
    for backend in ["sqlite", "postgres"] {
        for entry in std::fs::read_dir(root.join(backend)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let number: u32 = name[..4].parse().unwrap();
            if number <= 18 || name.contains("contract") {
                continue;
            }
            let sql = std::fs::read_to_string(&path).unwrap().to_uppercase();
            for line in sql.lines().filter(|l| !l.trim_start().starts_with("--")) {
                if line.contains("ADD COLUMN")
                    && line.contains("NOT NULL")
                    && !line.contains("DEFAULT")
                {
                    offences.push(format!(
                        "{backend}/{name}: a NOT NULL column without a default ({line})"
                    ));
                }
                for f in forbidden.iter().filter(|f| line.contains(**f)) {
                    offences.push(format!("{backend}/{name}: {f} ({line})"));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "migrations since 0018 must only add, so versions N and N+1 can run together: {offences:#?}"
    );
}
