//! Scrape jobs and the state of their targets.
//!
//! A job's configuration is kept as JSON with its credentials sealed by the caller; `managed_by`
//! says whether the config file (`config`) or the API and UI (`api`) owns it, so reconciling
//! the file never touches a job made through the API. A target's state (health, last scrape,
//! duration, error, samples) is written by the replica scraping it, in the same guarded batch as
//! the scrape's samples ([`target_state`]), so a replica that lost its lease cannot overwrite
//! the new holder's state.

use sqlx::Row;

use crate::writer::Write;
use crate::{Result, Store, StoreError};

/// One stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Row id.
    pub id: i64,
    /// The job name (`job` label), unique.
    pub name: String,
    /// The project its samples go into.
    pub project_id: i64,
    /// The configuration as JSON, credentials sealed.
    pub spec: String,
    /// `config` or `api`.
    pub managed_by: String,
    /// Last change, ms.
    pub updated_at: i64,
}

const JOB_COLS: &str = "id, name, project_id, spec, managed_by, updated_at";

fn job_of(r: &sqlx::any::AnyRow) -> Result<JobRow> {
    Ok(JobRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        project_id: r.try_get("project_id")?,
        spec: r.try_get("spec")?,
        managed_by: r.try_get("managed_by")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Every job, by name.
pub async fn jobs(store: &Store) -> Result<Vec<JobRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLS} FROM prom_scrape_jobs ORDER BY name"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(job_of).collect()
}

/// The job named `name`.
pub async fn job(store: &Store, name: &str) -> Result<Option<JobRow>> {
    let row = sqlx::query(&format!(
        "SELECT {JOB_COLS} FROM prom_scrape_jobs WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(job_of).transpose()
}

/// Creates or replaces job `name` owned by `managed_by`, with its audit entry; a job of that
/// name owned by the other side is a [`StoreError::Conflict`]. Returns whether it was created.
pub async fn put_job(
    store: &Store,
    name: &str,
    project_id: i64,
    spec: &str,
    managed_by: &str,
    now: i64,
) -> Result<bool> {
    let _gate = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    let existing =
        sqlx::query("SELECT managed_by, spec, project_id FROM prom_scrape_jobs WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    let created = match existing {
        Some(r) => {
            let owner: String = r.try_get("managed_by")?;
            if owner != managed_by {
                return Err(StoreError::Conflict(format!(
                    "job {name:?} is managed by {owner}"
                )));
            }
            let (old, old_project): (String, i64) = (r.try_get("spec")?, r.try_get("project_id")?);
            if old == spec && old_project == project_id {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE prom_scrape_jobs SET spec = $1, project_id = $2, updated_at = $3 WHERE name = $4",
            )
            .bind(spec)
            .bind(project_id)
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            false
        }
        None => {
            sqlx::query(
                "INSERT INTO prom_scrape_jobs (name, project_id, spec, managed_by, updated_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(name)
            .bind(project_id)
            .bind(spec)
            .bind(managed_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            true
        }
    };
    crate::commit_audited(tx).await?;
    Ok(created)
}

/// Deletes job `name` if `managed_by` owns it; false when there was none.
pub async fn delete_job(store: &Store, name: &str, managed_by: &str) -> Result<bool> {
    let _gate = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("DELETE FROM prom_scrape_jobs WHERE name = $1 AND managed_by = $2")
        .bind(name)
        .bind(managed_by)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    crate::commit_audited(tx).await?;
    Ok(n > 0)
}

/// A target's state as its last scrape left it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    /// Its job.
    pub job: String,
    /// The URL scraped (no credentials in it).
    pub url: String,
    /// Its target labels as JSON (`job`, `instance`, …).
    pub labels: String,
    /// `up` or `down`.
    pub health: String,
    /// When the last scrape started, ms.
    pub last_scrape_ms: i64,
    /// How long it took, ms.
    pub duration_ms: i64,
    /// Why it failed, or empty.
    pub last_error: String,
    /// Samples it scraped.
    pub samples: i64,
}

/// Every target's state, by job and URL.
pub async fn targets(store: &Store) -> Result<Vec<TargetRow>> {
    let rows = sqlx::query(
        "SELECT job, url, labels, health, last_scrape_ms, duration_ms, last_error, samples
         FROM prom_scrape_targets ORDER BY job, url",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TargetRow {
                job: r.try_get("job")?,
                url: r.try_get("url")?,
                labels: r.try_get("labels")?,
                health: r.try_get("health")?,
                last_scrape_ms: r.try_get("last_scrape_ms")?,
                duration_ms: r.try_get("duration_ms")?,
                last_error: r.try_get("last_error")?,
                samples: r.try_get("samples")?,
            })
        })
        .collect()
}

/// The write recording `t`'s state (put in the scrape's guarded batch).
pub fn target_state(t: &TargetRow) -> Write {
    Write::Exec {
        sql: "INSERT INTO prom_scrape_targets
                (job, url, labels, health, last_scrape_ms, duration_ms, last_error, samples)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
              ON CONFLICT (job, url) DO UPDATE SET labels = excluded.labels,
                health = excluded.health, last_scrape_ms = excluded.last_scrape_ms,
                duration_ms = excluded.duration_ms, last_error = excluded.last_error,
                samples = excluded.samples",
        args: vec![
            t.job.clone().into(),
            t.url.clone().into(),
            t.labels.clone().into(),
            t.health.clone().into(),
            t.last_scrape_ms.into(),
            t.duration_ms.into(),
            t.last_error.clone().into(),
            t.samples.into(),
        ],
    }
}

/// The write forgetting a target that is no longer discovered.
pub fn target_gone(job: &str, url: &str) -> Write {
    Write::Exec {
        sql: "DELETE FROM prom_scrape_targets WHERE job = $1 AND url = $2",
        args: vec![job.to_string().into(), url.to_string().into()],
    }
}

/// Forgets the targets of jobs that no longer exist.
pub async fn forget_orphan_targets(store: &Store) -> Result<u64> {
    let _gate = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "DELETE FROM prom_scrape_targets WHERE job NOT IN (SELECT name FROM prom_scrape_jobs)",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}
