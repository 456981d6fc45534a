//! Prometheus rule files and the state of their evaluation (tables `prom_rule_files` and
//! `prom_rule_state`, migration 0030).
//!
//! The evaluator writes under a fenced lease: [`guard_in`] is the first statement of each of its
//! transactions, so a replica that lost the lease cannot record samples, alert state or
//! incidents after another replica took the group over.

use sqlx::Row;

use super::{canonical, IngestError, HEAD_SAMPLE};
use crate::{Result, Store, StoreError, Tx};

/// A stored rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFileRow {
    /// Id.
    pub id: i64,
    /// Project.
    pub project_id: i64,
    /// File name, unique per project.
    pub name: String,
    /// `config` when the config file declares it; `None` when uploaded.
    pub managed_by: Option<String>,
    /// The YAML as written.
    pub content: String,
    /// Last change, ms.
    pub updated_at: i64,
}

fn file_row(r: &sqlx::any::AnyRow) -> Result<RuleFileRow> {
    Ok(RuleFileRow {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        managed_by: r.try_get("managed_by")?,
        content: r.try_get("content")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const FILE_COLUMNS: &str = "id, project_id, name, managed_by, content, updated_at";

/// Every rule file of every project (what the evaluator schedules), by project and name.
pub async fn all_files(store: &Store) -> Result<Vec<RuleFileRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {FILE_COLUMNS} FROM prom_rule_files ORDER BY project_id, name"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(file_row).collect()
}

/// A project's rule files, by name.
pub async fn files(store: &Store, project: i64) -> Result<Vec<RuleFileRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {FILE_COLUMNS} FROM prom_rule_files WHERE project_id = $1 ORDER BY name"
    ))
    .bind(project)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(file_row).collect()
}

/// Creates or replaces rule file `name` of `project` (with the request's audit entry).
pub async fn put_file(
    store: &Store,
    project: i64,
    name: &str,
    managed_by: Option<&str>,
    content: &str,
    now: i64,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    put_file_in(&mut tx, project, name, managed_by, content, now).await?;
    crate::commit_audited(tx).await
}

/// [`put_file`] in `tx`.
pub async fn put_file_in(
    tx: &mut Tx,
    project: i64,
    name: &str,
    managed_by: Option<&str>,
    content: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO prom_rule_files (project_id, name, managed_by, content, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_id, name) DO UPDATE SET managed_by = excluded.managed_by,
             content = excluded.content, updated_at = excluded.updated_at",
    )
    .bind(project)
    .bind(name)
    .bind(managed_by)
    .bind(content)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Serialises the writers of `project`'s rule files (limits are checked inside the write): on
/// PostgreSQL the project row stays locked until `tx` ends; SQLite's write transaction is
/// already exclusive.
pub async fn lock_project_in(tx: &mut Tx, project: i64) -> Result<()> {
    sqlx::query("UPDATE projects SET id = id WHERE id = $1")
        .bind(project)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A project's rule files read in `tx`, by name.
pub async fn files_in(tx: &mut Tx, project: i64) -> Result<Vec<RuleFileRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {FILE_COLUMNS} FROM prom_rule_files WHERE project_id = $1 ORDER BY name"
    ))
    .bind(project)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(file_row).collect()
}

/// Whether rule file `name` of `project` is still the version stored at `updated_at`, locking
/// its row until `tx` ends (an UPDATE, so a concurrent edit or delete of the file waits for `tx`
/// and `tx` waits for it): the evaluator's fenced write stores nothing for a file that changed
/// or was deleted while it evaluated.
pub async fn file_unchanged_in(
    tx: &mut Tx,
    project: i64,
    name: &str,
    updated_at: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE prom_rule_files SET updated_at = updated_at
         WHERE project_id = $1 AND name = $2 AND updated_at = $3",
    )
    .bind(project)
    .bind(name)
    .bind(updated_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Deletes the state of the groups of file `name` not in `keep`, in `tx` (after the file row
/// was written in it, so no evaluation of the old version can store state afterwards), and
/// returns what it deleted.
pub async fn delete_states_except_in(
    tx: &mut Tx,
    project: i64,
    name: &str,
    keep: &[String],
) -> Result<Vec<GroupStateRow>> {
    let rows = sqlx::query(
        "SELECT project_id, file, group_name, evaluated_at, state FROM prom_rule_state
         WHERE project_id = $1 AND file = $2",
    )
    .bind(project)
    .bind(name)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::new();
    for r in rows.iter().map(state_row) {
        let r = r?;
        if keep.contains(&r.group_name) {
            continue;
        }
        sqlx::query(
            "DELETE FROM prom_rule_state WHERE project_id = $1 AND file = $2 AND group_name = $3",
        )
        .bind(project)
        .bind(name)
        .bind(&r.group_name)
        .execute(&mut **tx)
        .await?;
        out.push(r);
    }
    Ok(out)
}

/// Deletes rule file `name` of `project` and its groups' state; NotFound if there is none.
pub async fn delete_file(store: &Store, project: i64, name: &str) -> Result<()> {
    let mut tx = store.begin_write().await?;
    delete_file_in(&mut tx, project, name).await?;
    crate::commit_audited(tx).await
}

/// [`delete_file`] in `tx`, for a caller that resolves the file's incidents with it (it commits
/// with the request's audit entry, `audit::record_pending_in`). Returns the deleted groups'
/// state, read after the file row was deleted in `tx` (so an evaluation that raced the delete
/// either committed before and is included, or finds the file gone and stores nothing).
pub async fn delete_file_in(tx: &mut Tx, project: i64, name: &str) -> Result<Vec<GroupStateRow>> {
    let n = sqlx::query("DELETE FROM prom_rule_files WHERE project_id = $1 AND name = $2")
        .bind(project)
        .bind(name)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    crate::found(n)?;
    delete_states_except_in(tx, project, name, &[]).await
}

/// One group's stored evaluation state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStateRow {
    /// Project.
    pub project_id: i64,
    /// Rule file name.
    pub file: String,
    /// Group name.
    pub group_name: String,
    /// The evaluation timestamp of the last evaluation, ms.
    pub evaluated_at: i64,
    /// The evaluator's JSON.
    pub state: String,
}

fn state_row(r: &sqlx::any::AnyRow) -> Result<GroupStateRow> {
    Ok(GroupStateRow {
        project_id: r.try_get("project_id")?,
        file: r.try_get("file")?,
        group_name: r.try_get("group_name")?,
        evaluated_at: r.try_get("evaluated_at")?,
        state: r.try_get("state")?,
    })
}

/// The state of every group of `project`.
pub async fn states(store: &Store, project: i64) -> Result<Vec<GroupStateRow>> {
    let rows = sqlx::query(
        "SELECT project_id, file, group_name, evaluated_at, state FROM prom_rule_state
         WHERE project_id = $1",
    )
    .bind(project)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(state_row).collect()
}

/// The state of one group, if it was ever evaluated.
pub async fn state(
    store: &Store,
    project: i64,
    file: &str,
    group: &str,
) -> Result<Option<GroupStateRow>> {
    let row = sqlx::query(
        "SELECT project_id, file, group_name, evaluated_at, state FROM prom_rule_state
         WHERE project_id = $1 AND file = $2 AND group_name = $3",
    )
    .bind(project)
    .bind(file)
    .bind(group)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(state_row).transpose()
}

/// Stores a group's state in `tx`.
pub async fn save_state_in(tx: &mut Tx, row: &GroupStateRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO prom_rule_state (project_id, file, group_name, evaluated_at, state)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_id, file, group_name) DO UPDATE SET
             evaluated_at = excluded.evaluated_at, state = excluded.state",
    )
    .bind(row.project_id)
    .bind(&row.file)
    .bind(&row.group_name)
    .bind(row.evaluated_at)
    .bind(&row.state)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The lease check of a fenced transaction (see [`crate::cluster::guard`]): records batch `seq`
/// under token `fence` of lease `name`, or fails with [`StoreError::Fenced`]. An UPDATE, so on
/// PostgreSQL the lease row stays locked until the transaction commits.
pub async fn guard_in(tx: &mut Tx, name: &str, fence: i64, seq: i64) -> Result<()> {
    let n = sqlx::query(crate::cluster::GUARD_SQL)
        .bind(name)
        .bind(fence)
        .bind(seq)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n != 1 {
        return Err(StoreError::Fenced);
    }
    Ok(())
}

/// The ids of these series of `project` (sorted label sets, `__name__` included), creating
/// those that do not exist yet; refused past `max_series` series in the project. Creating a
/// series is idempotent and harmless outside the fenced transaction: a series without samples
/// answers no query.
pub async fn series_ids(
    store: &Store,
    max_series: i64,
    project: i64,
    labels: &[Vec<(String, String)>],
) -> std::result::Result<Vec<i64>, IngestError> {
    let batch = lookout_protocol::remote_write::Batch {
        series: labels
            .iter()
            .map(|l| lookout_protocol::remote_write::Series {
                labels: l.clone(),
                samples: Vec::new(),
            })
            .collect(),
        ..Default::default()
    };
    let cache = store.prom_cache();
    let mut ids = Vec::with_capacity(labels.len());
    let mut missing = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let text = canonical(l);
        let (hash, key) = super::hashes(&text);
        match cache.get((project, key)) {
            Some(id) => ids.push(id),
            None => {
                ids.push(0);
                missing.push((i, text, hash, key));
            }
        }
    }
    if !missing.is_empty() {
        super::create_series(store, project, &batch, &mut ids, &missing, max_series).await?;
    }
    Ok(ids)
}

/// Inserts samples `(series id, time ms, value)` of `project` into the head in `tx`.
pub async fn insert_samples_in(
    tx: &mut Tx,
    project: i64,
    samples: &[(i64, i64, f64)],
    now: i64,
) -> Result<()> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut data = Vec::with_capacity(samples.len() * HEAD_SAMPLE);
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    for &(id, t, v) in samples {
        data.extend_from_slice(&id.to_le_bytes());
        data.extend_from_slice(&t.to_le_bytes());
        data.extend_from_slice(&v.to_bits().to_le_bytes());
        min_t = min_t.min(t);
        max_t = max_t.max(t);
    }
    sqlx::query(
        "INSERT INTO prom_head (project_id, min_t, max_t, samples, data, received_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(project)
    .bind(min_t)
    .bind(max_t)
    .bind(samples.len() as i64)
    .bind(data)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
