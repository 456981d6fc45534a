//! Alerting and on-call storage: the configuration objects (channels, schedules and their
//! overrides, escalation policies, alert policies; integrations and runbooks in their own files,
//! re-exported here); incidents and
//! their timeline in [`incidents`]; the notification outbox in [`outbox`].
//!
//! Schedules, escalation policies and alert policies share one shape — a name and a JSON spec
//! that `lookout-oncall` validates — so they share [`SpecTable`] and one set of functions.

pub mod frequency;
pub mod incident_ops;
pub mod incidents;
mod integrations;
pub mod outbox;
pub mod query_state;
pub mod rules;
mod runbooks;

// Integrations and runbooks live in their own files; their items keep their `alerting::` paths.
pub use integrations::*;
pub use runbooks::*;

use serde::Serialize;
use serde_json::Value as Json;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::ownership::TeamChange;
use crate::row::RowExt;
use crate::{Result, Store, StoreError};
use lookout_core::time::now_ms;

/// Tables holding `(name, spec)` objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecTable {
    /// On-call schedules.
    Schedules,
    /// Escalation policies.
    EscalationPolicies,
    /// Alert policies.
    Policies,
    /// Service-level objectives (see the reports module of the server).
    Slos,
}

impl SpecTable {
    fn table(self) -> &'static str {
        match self {
            SpecTable::Schedules => "oncall_schedules",
            SpecTable::EscalationPolicies => "escalation_policies",
            SpecTable::Policies => "alert_policies",
            SpecTable::Slos => "slos",
        }
    }
}

/// A stored `(name, spec)` object.
#[derive(Debug, Clone, Serialize)]
pub struct SpecRow {
    /// Id.
    pub id: i64,
    /// Organization.
    pub org_id: i64,
    /// Name.
    pub name: String,
    /// The definition, as validated by the API.
    pub spec: Json,
    /// The owning team, if any (see [`crate::ownership`]).
    pub team_id: Option<i64>,
    /// Created, ms.
    pub created_at: i64,
    /// Last changed, ms.
    pub updated_at: i64,
}

fn spec_row(r: &AnyRow) -> Result<SpecRow> {
    Ok(SpecRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        spec: r.json("spec")?,
        team_id: r.try_get("team_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The columns [`spec_row`] reads.
const SPEC_COLS: &str = "id, org_id, name, spec, team_id, created_at, updated_at";

/// Stores a new object.
pub async fn spec_create(
    store: &Store,
    t: SpecTable,
    org_id: i64,
    name: &str,
    spec: &Json,
) -> Result<SpecRow> {
    let now = now_ms();
    let sql = format!(
        "INSERT INTO {} (org_id, name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
         RETURNING {SPEC_COLS}",
        t.table()
    );
    let r = sqlx::query(&sql)
        .bind(org_id)
        .bind(name)
        .bind(spec.to_string())
        .bind(now)
        .fetch_one(store.pool())
        .await?;
    spec_row(&r)
}

/// Replaces an object's name and spec, keeping its owner.
pub async fn spec_update(
    store: &Store,
    t: SpecTable,
    id: i64,
    name: &str,
    spec: &Json,
) -> Result<SpecRow> {
    spec_save(store, t, SpecKey::Id(id), name, spec, TeamChange::Keep).await
}

/// Which object [`spec_save`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKey {
    /// A new one, in this organization.
    New(i64),
    /// The object with this id.
    Id(i64),
}

/// Stores a new object or replaces an object's name and spec, and sets or keeps its owning
/// team in the same statement (so an object is never seen without the owner it was saved with),
/// in one transaction with the request's audit entry.
pub async fn spec_save(
    store: &Store,
    t: SpecTable,
    key: SpecKey,
    name: &str,
    spec: &Json,
    team: TeamChange,
) -> Result<SpecRow> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let r = match key {
        SpecKey::New(org_id) => {
            let sql = format!(
                "INSERT INTO {} (org_id, name, spec, created_at, updated_at, team_id)
                 VALUES ($1, $2, $3, $4, $4, $5) RETURNING {SPEC_COLS}",
                t.table()
            );
            sqlx::query(&sql)
                .bind(org_id)
                .bind(name)
                .bind(spec.to_string())
                .bind(now)
                .bind(team.initial())
                .fetch_optional(&mut *tx)
                .await
        }
        SpecKey::Id(id) => {
            let sql = format!(
                "UPDATE {} SET name = $1, spec = $2, updated_at = $3,
                 team_id = CASE WHEN $4 = 1 THEN $5 ELSE team_id END WHERE id = $6
                 RETURNING {SPEC_COLS}",
                t.table()
            );
            sqlx::query(&sql)
                .bind(name)
                .bind(spec.to_string())
                .bind(now)
                .bind(team.flag())
                .bind(team.value())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
        }
    };
    let r = match r {
        Ok(r) => r.ok_or(StoreError::NotFound)?,
        Err(e) => return Err(crate::team_gone(store, tx, e.into(), team.value()).await),
    };
    let row = spec_row(&r)?;
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(row)
}

/// One object.
pub async fn spec_get_in(conn: &mut sqlx::AnyConnection, t: SpecTable, id: i64) -> Result<SpecRow> {
    let sql = format!("SELECT {SPEC_COLS} FROM {} WHERE id = $1", t.table());
    let r = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    spec_row(&r)
}

/// [`spec_get_in`] on a pooled connection.
pub async fn spec_get(store: &Store, t: SpecTable, id: i64) -> Result<SpecRow> {
    spec_get_in(&mut *store.pool().acquire().await?, t, id).await
}

/// Every object of an organization, by id. (Teams have tens of these, not thousands.)
pub async fn spec_list(store: &Store, t: SpecTable, org_id: i64) -> Result<Vec<SpecRow>> {
    let sql = format!(
        "SELECT {SPEC_COLS} FROM {} WHERE org_id = $1
         ORDER BY id",
        t.table()
    );
    let rows = sqlx::query(&sql)
        .bind(org_id)
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(spec_row).collect()
}

/// Deletes an object.
pub async fn spec_delete(store: &Store, t: SpecTable, id: i64) -> Result<()> {
    crate::delete_by_id(store, t.table(), id).await
}

/// A notification channel: a team destination, or (with `user_id`) a user's contact method.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelRow {
    /// Id.
    pub id: i64,
    /// Organization.
    pub org_id: i64,
    /// Name.
    pub name: String,
    /// `webhook`, `slack`, `discord`, `mattermost`, `email`, `ntfy`, `pagerduty`.
    pub kind: String,
    /// Type-specific settings; secrets in it are sealed.
    pub config: Json,
    /// The user whose contact method this is.
    pub user_id: Option<i64>,
    /// Urgencies it is used for (`high`, `low`).
    pub urgencies: Vec<String>,
    /// Off: pages queued for it are skipped instead of sent.
    pub enabled: bool,
    /// Created, ms.
    pub created_at: i64,
    /// Changed, ms.
    pub updated_at: i64,
}

fn channel_row(r: &AnyRow) -> Result<ChannelRow> {
    let urgencies: String = r.try_get("urgencies")?;
    Ok(ChannelRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        config: r.json("config")?,
        user_id: r.try_get("user_id")?,
        urgencies: urgencies
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const CHANNEL_COLS: &str =
    "id, org_id, name, kind, config, user_id, urgencies, enabled, created_at, updated_at";

/// A channel's editable fields.
#[derive(Debug, Clone)]
pub struct ChannelInput {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: String,
    /// Settings, secrets already sealed.
    pub config: Json,
    /// Owner, for a contact method.
    pub user_id: Option<i64>,
    /// Urgencies.
    pub urgencies: Vec<String>,
    /// Whether it delivers.
    pub enabled: bool,
}

/// Stores a channel.
pub async fn channel_create(store: &Store, org_id: i64, c: &ChannelInput) -> Result<ChannelRow> {
    let mut tx = store.begin_write().await?;
    let now = now_ms();
    let r = sqlx::query(&format!(
        "INSERT INTO alert_channels (org_id, name, kind, config, user_id, urgencies, enabled,
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         RETURNING {CHANNEL_COLS}"
    ))
    .bind(org_id)
    .bind(&c.name)
    .bind(&c.kind)
    .bind(c.config.to_string())
    .bind(c.user_id)
    .bind(c.urgencies.join(","))
    .bind(i64::from(c.enabled))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let row = channel_row(&r)?;
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces a channel's fields.
pub async fn channel_update(store: &Store, id: i64, c: &ChannelInput) -> Result<ChannelRow> {
    let mut tx = store.begin_write().await?;
    let r = sqlx::query(&format!(
        "UPDATE alert_channels SET name = $1, kind = $2, config = $3, user_id = $4,
         urgencies = $5, enabled = $6, updated_at = $7 WHERE id = $8 RETURNING {CHANNEL_COLS}"
    ))
    .bind(&c.name)
    .bind(&c.kind)
    .bind(c.config.to_string())
    .bind(c.user_id)
    .bind(c.urgencies.join(","))
    .bind(i64::from(c.enabled))
    .bind(now_ms())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let row = channel_row(&r)?;
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(row)
}

/// Switches a channel on or off, keeping the rest of it.
pub async fn channel_set_enabled(store: &Store, id: i64, enabled: bool) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("UPDATE alert_channels SET enabled = $1, updated_at = $2 WHERE id = $3")
        .bind(i64::from(enabled))
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// One channel.
pub async fn channel_get(store: &Store, id: i64) -> Result<ChannelRow> {
    let r = sqlx::query(&format!(
        "SELECT {CHANNEL_COLS} FROM alert_channels WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    channel_row(&r)
}

/// An organization's channels, or one user's contact methods.
pub async fn channel_list_in(
    conn: &mut sqlx::AnyConnection,
    org_id: i64,
    user_id: Option<i64>,
) -> Result<Vec<ChannelRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {CHANNEL_COLS} FROM alert_channels WHERE org_id = $1
         AND ($2 IS NULL OR user_id = $2) ORDER BY id"
    ))
    .bind(org_id)
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(channel_row).collect()
}

/// [`channel_list_in`] on a pooled connection.
pub async fn channel_list(
    store: &Store,
    org_id: i64,
    user_id: Option<i64>,
) -> Result<Vec<ChannelRow>> {
    channel_list_in(&mut *store.pool().acquire().await?, org_id, user_id).await
}

/// Deletes a channel (its queued notifications go with it).
pub async fn channel_delete(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "alert_channels", id).await
}

/// A schedule override as stored.
#[derive(Debug, Clone, Serialize)]
pub struct OverrideRow {
    /// Id.
    pub id: i64,
    /// Schedule.
    pub schedule_id: i64,
    /// Who is on call.
    pub user_id: i64,
    /// From, ms.
    pub starts_at: i64,
    /// Until, ms.
    pub ends_at: i64,
}

fn override_row(r: &AnyRow) -> Result<OverrideRow> {
    Ok(OverrideRow {
        id: r.try_get("id")?,
        schedule_id: r.try_get("schedule_id")?,
        user_id: r.try_get("user_id")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
    })
}

/// Adds an override.
pub async fn override_create(
    store: &Store,
    schedule_id: i64,
    user_id: i64,
    starts_at: i64,
    ends_at: i64,
) -> Result<OverrideRow> {
    let mut tx = store.begin_write().await?;
    let r = sqlx::query(
        "INSERT INTO schedule_overrides (schedule_id, user_id, starts_at, ends_at, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id, schedule_id, user_id, starts_at, ends_at",
    )
    .bind(schedule_id)
    .bind(user_id)
    .bind(starts_at)
    .bind(ends_at)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await?;
    crate::commit_audited(tx).await?;
    override_row(&r)
}

/// Stores a schedule — a new one (`id` none) or the new name and spec of `id` — and adds
/// `overrides` (`(user, start, end)`, ms) to it, in one transaction: a refused or failed
/// override leaves no half-saved schedule behind.
pub async fn schedule_save(
    store: &Store,
    org_id: i64,
    id: Option<i64>,
    name: &str,
    spec: &Json,
    overrides: &[(i64, i64, i64)],
    team: TeamChange,
) -> Result<SpecRow> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let r = match id {
        None => {
            sqlx::query(&format!(
                "INSERT INTO oncall_schedules (org_id, name, spec, created_at, updated_at, team_id)
             VALUES ($1, $2, $3, $4, $4, $5) RETURNING {SPEC_COLS}"
            ))
            .bind(org_id)
            .bind(name)
            .bind(spec.to_string())
            .bind(now)
            .bind(team.initial())
            .fetch_optional(&mut *tx)
            .await
        }
        Some(id) => {
            sqlx::query(&format!(
                "UPDATE oncall_schedules SET name = $1, spec = $2, updated_at = $3,
             team_id = CASE WHEN $5 = 1 THEN $6 ELSE team_id END WHERE id = $4
             RETURNING {SPEC_COLS}"
            ))
            .bind(name)
            .bind(spec.to_string())
            .bind(now)
            .bind(id)
            .bind(team.flag())
            .bind(team.value())
            .fetch_optional(&mut *tx)
            .await
        }
    };
    let r = match r {
        Ok(r) => r.ok_or(StoreError::NotFound)?,
        Err(e) => return Err(crate::team_gone(store, tx, e.into(), team.value()).await),
    };
    let row = spec_row(&r)?;
    for (user, start, end) in overrides {
        sqlx::query(
            "INSERT INTO schedule_overrides (schedule_id, user_id, starts_at, ends_at, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(row.id)
        .bind(user)
        .bind(start)
        .bind(end)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(row)
}

/// Overrides of a schedule that end after `since` and start before `until`, oldest first.
pub async fn overrides_between_in(
    conn: &mut sqlx::AnyConnection,
    schedule_id: i64,
    since: i64,
    until: i64,
) -> Result<Vec<OverrideRow>> {
    let rows = sqlx::query(
        "SELECT id, schedule_id, user_id, starts_at, ends_at FROM schedule_overrides
         WHERE schedule_id = $1 AND ends_at > $2 AND starts_at < $3 ORDER BY id",
    )
    .bind(schedule_id)
    .bind(since)
    .bind(until)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(override_row).collect()
}

/// [`overrides_between_in`] on a pooled connection.
pub async fn overrides_between(
    store: &Store,
    schedule_id: i64,
    since: i64,
    until: i64,
) -> Result<Vec<OverrideRow>> {
    overrides_between_in(
        &mut *store.pool().acquire().await?,
        schedule_id,
        since,
        until,
    )
    .await
}

/// Deletes an override of a schedule.
pub async fn override_delete(store: &Store, schedule_id: i64, id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("DELETE FROM schedule_overrides WHERE id = $1 AND schedule_id = $2")
        .bind(id)
        .bind(schedule_id)
        .execute(&mut *tx)
        .await?;
    crate::found(n.rows_affected())?;
    crate::commit_audited(tx).await
}

/// Sets a user's display name.
pub async fn set_user_name(store: &Store, user_id: i64, name: Option<&str>) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    crate::found(n.rows_affected())?;
    crate::commit_audited(tx).await
}

/// What people are called on pages: each user's name, else their email, by id (users that do
/// not exist are left out).
pub async fn display_names(
    store: &Store,
    ids: &[i64],
) -> Result<std::collections::BTreeMap<i64, String>> {
    Ok(user_names(store, ids)
        .await?
        .into_iter()
        .map(|(id, name, email)| (id, name.unwrap_or(email)))
        .collect())
}

/// `(id, name, email)` of the given users (unknown ids are left out).
pub async fn user_names(store: &Store, ids: &[i64]) -> Result<Vec<(i64, Option<String>, String)>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = sqlx::query("SELECT id, name, email FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?
        {
            out.push((r.try_get("id")?, r.try_get("name")?, r.try_get("email")?));
        }
    }
    Ok(out)
}
