//! Alerting and on-call storage: the configuration objects (channels, schedules and their
//! overrides, escalation policies, alert policies, integrations, runbooks) here; incidents and
//! their timeline in [`incidents`]; the notification outbox in [`outbox`].
//!
//! Schedules, escalation policies and alert policies share one shape — a name and a JSON spec
//! that `lookout-oncall` validates — so they share [`SpecTable`] and one set of functions.

pub mod frequency;
pub mod incident_ops;
pub mod incidents;
pub mod outbox;
pub mod query_state;
pub mod rules;

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
                .await?
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
                .await?
        }
    }
    .ok_or(StoreError::NotFound)?;
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
    let r = sqlx::query(
        "INSERT INTO schedule_overrides (schedule_id, user_id, starts_at, ends_at, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id, schedule_id, user_id, starts_at, ends_at",
    )
    .bind(schedule_id)
    .bind(user_id)
    .bind(starts_at)
    .bind(ends_at)
    .bind(now_ms())
    .fetch_one(store.pool())
    .await?;
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
            .fetch_one(&mut *tx)
            .await?
        }
        Some(id) => sqlx::query(&format!(
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
        .await?
        .ok_or(StoreError::NotFound)?,
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
    let n = sqlx::query("DELETE FROM schedule_overrides WHERE id = $1 AND schedule_id = $2")
        .bind(id)
        .bind(schedule_id)
        .execute(store.pool())
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// An inbound integration.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationRow {
    /// Id.
    pub id: i64,
    /// Organization.
    pub org_id: i64,
    /// Name.
    pub name: String,
    /// `pagerduty`, `alertmanager`, `grafana`, `webhook`.
    pub kind: String,
    /// The routing key, sealed.
    pub key_sealed: String,
    /// Escalation policy, runbook, service, urgency, mapping.
    pub spec: Json,
    /// Created, ms.
    pub created_at: i64,
}

const INTEGRATION_COLS: &str = "id, org_id, name, kind, key_sealed, spec, created_at";

fn integration_row(r: &AnyRow) -> Result<IntegrationRow> {
    Ok(IntegrationRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        key_sealed: r.try_get("key_sealed")?,
        spec: r.json("spec")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Stores an integration whose key hashes to `key_hash`.
pub async fn integration_create(
    store: &Store,
    org_id: i64,
    name: &str,
    kind: &str,
    key_hash: &str,
    key_sealed: &str,
    spec: &Json,
) -> Result<IntegrationRow> {
    let now = now_ms();
    let r = sqlx::query(&format!(
        "INSERT INTO integrations (org_id, name, kind, key_hash, key_sealed, spec, created_at,
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {INTEGRATION_COLS}"
    ))
    .bind(org_id)
    .bind(name)
    .bind(kind)
    .bind(key_hash)
    .bind(key_sealed)
    .bind(spec.to_string())
    .bind(now)
    .fetch_one(store.pool())
    .await
    .map_err(StoreError::conflict_as("integration key"))?;
    integration_row(&r)
}

/// Changes an integration's name and spec (the key stays).
pub async fn integration_update(
    store: &Store,
    id: i64,
    name: &str,
    spec: &Json,
) -> Result<IntegrationRow> {
    let r = sqlx::query(&format!(
        "UPDATE integrations SET name = $1, spec = $2, updated_at = $3 WHERE id = $4
         RETURNING {INTEGRATION_COLS}"
    ))
    .bind(name)
    .bind(spec.to_string())
    .bind(now_ms())
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    integration_row(&r)
}

/// One integration.
pub async fn integration_get(store: &Store, id: i64) -> Result<IntegrationRow> {
    let r = sqlx::query(&format!(
        "SELECT {INTEGRATION_COLS} FROM integrations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    integration_row(&r)
}

/// The integration whose key hashes to `key_hash`.
pub async fn integration_by_key(store: &Store, key_hash: &str) -> Result<Option<IntegrationRow>> {
    let r = sqlx::query(&format!(
        "SELECT {INTEGRATION_COLS} FROM integrations WHERE key_hash = $1"
    ))
    .bind(key_hash)
    .fetch_optional(store.pool())
    .await?;
    r.as_ref().map(integration_row).transpose()
}

/// An organization's integrations.
pub async fn integration_list(store: &Store, org_id: i64) -> Result<Vec<IntegrationRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {INTEGRATION_COLS} FROM integrations WHERE org_id = $1 ORDER BY id"
    ))
    .bind(org_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(integration_row).collect()
}

/// Deletes an integration.
pub async fn integration_delete(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "integrations", id).await
}

/// A runbook with its newest version's body.
#[derive(Debug, Clone, Serialize)]
pub struct RunbookRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// A link, for runbooks kept elsewhere.
    pub url: Option<String>,
    /// Newest version number (1, 2, …).
    pub version: i64,
    /// That version's Markdown.
    pub body: String,
    /// Changed, ms.
    pub updated_at: i64,
}

/// Stores a runbook, or a new version of runbook `id`.
pub async fn runbook_save(
    store: &Store,
    org_id: i64,
    id: Option<i64>,
    name: &str,
    url: Option<&str>,
    body: &str,
    author: &str,
) -> Result<RunbookRow> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let (id, version): (i64, i64) = match id {
        None => {
            let r = sqlx::query(
                "INSERT INTO runbooks (org_id, name, url, version, created_at, updated_at)
                 VALUES ($1, $2, $3, 1, $4, $4) RETURNING id",
            )
            .bind(org_id)
            .bind(name)
            .bind(url)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            (r.try_get("id")?, 1)
        }
        Some(id) => {
            let r = sqlx::query(
                "UPDATE runbooks SET name = $1, url = $2, version = version + 1, updated_at = $3
                 WHERE id = $4 RETURNING version",
            )
            .bind(name)
            .bind(url)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            (id, r.try_get("version")?)
        }
    };
    sqlx::query(
        "INSERT INTO runbook_versions (runbook_id, version, body, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(version)
    .bind(body)
    .bind(author)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RunbookRow {
        id,
        name: name.into(),
        url: url.map(String::from),
        version,
        body: body.into(),
        updated_at: now,
    })
}

/// A runbook at its newest version, or at `version`.
pub async fn runbook_get_in(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    version: Option<i64>,
) -> Result<RunbookRow> {
    let r = sqlx::query(
        "SELECT r.id, r.name, r.url, v.version, v.body, v.created_at FROM runbooks r
         JOIN runbook_versions v ON v.runbook_id = r.id
         WHERE r.id = $1 AND v.version = COALESCE($2, r.version)",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(RunbookRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        version: r.try_get("version")?,
        body: r.try_get("body")?,
        updated_at: r.try_get("created_at")?,
    })
}

/// [`runbook_get_in`] on a pooled connection.
pub async fn runbook_get(store: &Store, id: i64, version: Option<i64>) -> Result<RunbookRow> {
    runbook_get_in(&mut *store.pool().acquire().await?, id, version).await
}

/// An organization's runbooks at their newest versions.
pub async fn runbook_list(store: &Store, org_id: i64) -> Result<Vec<RunbookRow>> {
    let rows = sqlx::query(
        "SELECT r.id, r.name, r.url, v.version, v.body, v.created_at FROM runbooks r
         JOIN runbook_versions v ON v.runbook_id = r.id AND v.version = r.version
         WHERE r.org_id = $1 ORDER BY r.id",
    )
    .bind(org_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RunbookRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                url: r.try_get("url")?,
                version: r.try_get("version")?,
                body: r.try_get("body")?,
                updated_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// What refers to runbook `id`: the names of the alert policies and integrations of its
/// organization whose spec names it (the runbook they attach to new incidents).
pub async fn runbook_users(store: &Store, id: i64) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (table, what) in [
        ("alert_policies", "alert policy"),
        ("integrations", "integration"),
    ] {
        let rows = sqlx::query(&format!(
            "SELECT t.name, t.spec FROM {table} t JOIN runbooks r ON r.org_id = t.org_id
             WHERE r.id = $1 ORDER BY t.id"
        ))
        .bind(id)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            let spec: Json = r.json("spec")?;
            if spec.get("runbook_id").and_then(Json::as_i64) == Some(id) {
                let name: String = r.try_get("name")?;
                out.push(format!("{what} \"{name}\""));
            }
        }
    }
    Ok(out)
}

/// Deletes a runbook and its versions (incidents that showed it keep their timeline; their
/// page no longer shows its text).
pub async fn runbook_delete(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "runbooks", id).await
}

/// Sets a user's display name.
pub async fn set_user_name(store: &Store, user_id: i64, name: Option<&str>) -> Result<()> {
    let n = sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(user_id)
        .execute(store.pool())
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
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
