//! Versioned schema migrations, applied at start, one set per backend.
//!
//! Written by hand rather than with `sqlx::migrate!` because that macro compiles the whole driver
//! stack a second time; what we need is small: embedded files, a version table, one transaction
//! per migration, and on PostgreSQL an advisory lock so replicas starting together do not race.

use crate::{Backend, Result, Store};
use lookout_core::time::now_ms;

/// One schema change: its version, a name for logs, and its SQL for each backend.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration, oldest first. Append only: an applied migration is never edited.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "errors",
        sqlite: include_str!("../migrations/sqlite/0002_errors.sql"),
        postgres: include_str!("../migrations/postgres/0002_errors.sql"),
    },
    Migration {
        version: 3,
        name: "project_limits",
        sqlite: include_str!("../migrations/sqlite/0003_project_limits.sql"),
        postgres: include_str!("../migrations/postgres/0003_project_limits.sql"),
    },
    Migration {
        version: 4,
        name: "release_health",
        sqlite: include_str!("../migrations/sqlite/0004_release_health.sql"),
        postgres: include_str!("../migrations/postgres/0004_release_health.sql"),
    },
    Migration {
        version: 5,
        name: "uptime",
        sqlite: include_str!("../migrations/sqlite/0005_uptime.sql"),
        postgres: include_str!("../migrations/postgres/0005_uptime.sql"),
    },
    Migration {
        version: 6,
        name: "alerting",
        sqlite: include_str!("../migrations/sqlite/0006_alerting.sql"),
        postgres: include_str!("../migrations/postgres/0006_alerting.sql"),
    },
    Migration {
        version: 7,
        name: "load",
        sqlite: include_str!("../migrations/sqlite/0007_load.sql"),
        postgres: include_str!("../migrations/postgres/0007_load.sql"),
    },
    Migration {
        version: 8,
        name: "regress",
        sqlite: include_str!("../migrations/sqlite/0008_regress.sql"),
        postgres: include_str!("../migrations/postgres/0008_regress.sql"),
    },
    Migration {
        version: 9,
        name: "dbhealth",
        sqlite: include_str!("../migrations/sqlite/0009_dbhealth.sql"),
        postgres: include_str!("../migrations/postgres/0009_dbhealth.sql"),
    },
    Migration {
        version: 10,
        name: "apm",
        sqlite: include_str!("../migrations/sqlite/0010_apm.sql"),
        postgres: include_str!("../migrations/postgres/0010_apm.sql"),
    },
    Migration {
        version: 11,
        name: "apm_blocks",
        sqlite: include_str!("../migrations/sqlite/0011_apm_blocks.sql"),
        postgres: include_str!("../migrations/postgres/0011_apm_blocks.sql"),
    },
    Migration {
        version: 12,
        name: "backups",
        sqlite: include_str!("../migrations/sqlite/0012_backups.sql"),
        postgres: include_str!("../migrations/postgres/0012_backups.sql"),
    },
    Migration {
        version: 13,
        name: "reports",
        sqlite: include_str!("../migrations/sqlite/0013_reports.sql"),
        postgres: include_str!("../migrations/postgres/0013_reports.sql"),
    },
    Migration {
        version: 14,
        name: "query_alerts",
        sqlite: include_str!("../migrations/sqlite/0014_query_alerts.sql"),
        postgres: include_str!("../migrations/postgres/0014_query_alerts.sql"),
    },
    Migration {
        version: 15,
        name: "dashboards",
        sqlite: include_str!("../migrations/sqlite/0015_dashboards.sql"),
        postgres: include_str!("../migrations/postgres/0015_dashboards.sql"),
    },
    Migration {
        version: 16,
        name: "hardening",
        sqlite: include_str!("../migrations/sqlite/0016_hardening.sql"),
        postgres: include_str!("../migrations/postgres/0016_hardening.sql"),
    },
];

/// The schema version this build expects (the newest migration).
pub const SCHEMA_VERSION: i64 = 16;

/// The advisory-lock key that serialises migrations across replicas ("lkmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x6c6b_6d69_6772;

/// Applies every migration newer than the database's version.
pub(crate) async fn apply(store: &Store) -> Result<()> {
    debug_assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(store.pool())
    .await?;
    for m in MIGRATIONS {
        let mut tx = store.begin_write().await?;
        if store.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let done: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        let sql = match store.backend() {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "Applied migration.");
    }
    Ok(())
}

/// The newest applied version, 0 on an empty database.
pub(crate) async fn current_version(store: &Store) -> Result<i64> {
    let v: (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(store.pool())
        .await?;
    Ok(v.0.unwrap_or(0))
}
