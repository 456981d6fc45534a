//! Where the store's SQL differs between SQLite and PostgreSQL, in one place.
//!
//! Nearly every statement is shared: `$1` placeholders work on both through sqlx's `Any` driver,
//! times are `i64` milliseconds and booleans `0`/`1` integers on both, and `ON CONFLICT …`,
//! `RETURNING` and `COALESCE` mean the same. What differs is gathered here: placeholders for large
//! multi-row statements, row-lock clauses (SQLite has one writer and no row locks, so they are
//! empty there) and the row-wise maximum.
//!
//! Differences that are whole behaviours rather than SQL fragments stay with their owners:
//! `BEGIN IMMEDIATE` in [`crate::Store::begin_write`], PostgreSQL advisory locks for migrations
//! (`migrate`) and event publishing ([`crate::events`]), and the DDL, which has one directory per
//! backend under `migrations/`.

use crate::Backend;

/// `count` placeholders for values `first + 1 ..= first + count`, comma-separated: `?` on SQLite,
/// `$n` on PostgreSQL.
///
/// SQLite gets anonymous `?`: sqlx maps `$N` by asking SQLite each parameter's name, which SQLite
/// answers by walking its list of named parameters, so binding the 2,000 parameters of a large
/// multi-row statement by name was O(n²) and ran the writer 10x slower (measured).
pub(crate) fn placeholders(backend: Backend, first: usize, count: usize) -> String {
    let mut out = String::with_capacity(count * 4);
    for i in 1..=count {
        if i > 1 {
            out.push_str(", ");
        }
        match backend {
            Backend::Sqlite => out.push('?'),
            Backend::Postgres => {
                out.push('$');
                out.push_str(&(first + i).to_string());
            }
        }
    }
    out
}

/// ` FOR UPDATE` on PostgreSQL, to append to a `SELECT` whose rows the transaction will change
/// (so concurrent writers take turns); nothing on SQLite, whose write transactions are serial.
pub(crate) fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

/// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, for claiming work that another replica may be
/// claiming at the same moment (each takes a different row); nothing on SQLite.
pub(crate) fn for_update_skip_locked(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

/// The function giving the largest of its arguments in one row: SQLite's multi-argument `MAX`,
/// PostgreSQL's `GREATEST` (its `MAX` is the aggregate only).
pub(crate) fn greatest(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "MAX",
        Backend::Postgres => "GREATEST",
    }
}

/// The database's clock in milliseconds since the epoch, as an SQL expression.
///
/// Leases and heartbeats are judged by this one clock rather than by each replica's own, so a
/// replica whose clock runs fast cannot expire everybody else's leases (measured before: a
/// replica 45 s fast took every shard and consumer lease within a second). PostgreSQL's
/// `clock_timestamp()` is the server's wall clock (not the transaction's start); SQLite runs
/// in-process, so its "database clock" is the host's, which every replica on that file shares.
pub(crate) fn now_ms_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Placeholders number on from `first` on PostgreSQL, and are anonymous on SQLite.
    #[test]
    fn placeholders_continue_from_first() {
        assert_eq!(placeholders(Backend::Postgres, 3, 3), "$4, $5, $6");
        assert_eq!(placeholders(Backend::Sqlite, 3, 3), "?, ?, ?");
        assert_eq!(placeholders(Backend::Postgres, 0, 0), "");
    }
}
