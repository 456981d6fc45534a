//! Projects with their DSN keys: the default project made on first start, creation (with a
//! key and `project.created`), changes, and the lookups the ingest endpoints authenticate with.
//! DSN public keys are stored as they are: Sentry SDKs send them in every request and the UI
//! must show them, which is why Sentry calls them public.

use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::events;
use crate::page::{Cursor, Page};
use crate::{Result, Store, StoreError};
use lookout_core::secret;
use lookout_core::time::now_ms;

use super::{default_org, slugify};

/// A project: one application or service whose errors, checks and traces Lookout keeps.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    /// Numeric id (the last path segment of its DSN, as in Sentry).
    pub id: i64,
    /// Owning organization.
    pub org_id: i64,
    /// URL-safe name, unique in the organization.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The SDK platform it reports from (`python`, `node`, …), if known.
    pub platform: Option<String>,
    /// The newest active DSN public key (32 hex characters), if any.
    pub public_key: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Error events older than this many days are deleted.
    pub retention_days: i64,
    /// At most this many error events are kept; the oldest go first.
    pub max_events: i64,
    /// Events accepted per minute before ingest answers 429; `None`: no limit.
    pub rate_limit_per_minute: Option<i64>,
    /// The owning team, if any.
    pub team_id: Option<i64>,
}

/// Changes to a project; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    /// New display name.
    pub name: Option<String>,
    /// New retention in days.
    pub retention_days: Option<i64>,
    /// New event cap.
    pub max_events: Option<i64>,
    /// New rate limit: `Some(None)` turns it off.
    pub rate_limit_per_minute: Option<Option<i64>>,
    /// New owning team: `Some(None)` leaves it unowned.
    pub team_id: Option<Option<i64>>,
}

/// The default project, created with its DSN key on first start. Returns it and whether it is new.
pub async fn ensure_default_project(store: &Store) -> Result<(Project, bool)> {
    let org = default_org(store).await?;
    if let Some(p) = list_projects(
        store,
        &Cursor {
            after: None,
            limit: Some(1),
        },
    )
    .await?
    .items
    .into_iter()
    .next()
    {
        return Ok((p, false));
    }
    match create_project(store, org.id, "Default", None, None).await {
        Ok(p) => Ok((p, true)),
        // Another replica created it at the same moment.
        Err(StoreError::Conflict(_)) => {
            let p = list_projects(
                store,
                &Cursor {
                    after: None,
                    limit: Some(1),
                },
            )
            .await?;
            p.items
                .into_iter()
                .next()
                .map(|p| (p, false))
                .ok_or(StoreError::NotFound)
        }
        Err(e) => Err(e),
    }
}

/// Creates a project with one DSN key and publishes `project.created`, all in one transaction.
pub async fn create_project(
    store: &Store,
    org_id: i64,
    name: &str,
    slug: Option<&str>,
    platform: Option<&str>,
) -> Result<Project> {
    create_project_owned(store, org_id, name, slug, platform, None).await
}

/// [`create_project`] owned by `team` from the start.
pub async fn create_project_owned(
    store: &Store,
    org_id: i64,
    name: &str,
    slug: Option<&str>,
    platform: Option<&str>,
    team: Option<i64>,
) -> Result<Project> {
    let slug = slug.map(str::to_string).unwrap_or_else(|| slugify(name));
    let now = now_ms();
    let key = secret::new_dsn_key();
    let mut tx = store.begin_write().await?;
    let id = sqlx::query(
        "INSERT INTO projects (org_id, slug, name, platform, created_at, team_id)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(org_id)
    .bind(&slug)
    .bind(name)
    .bind(platform)
    .bind(now)
    .bind(team)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a project with this slug"));
    let id: i64 = match id {
        Ok(r) => r.try_get("id")?,
        Err(e) => return Err(crate::team_gone(store, tx, e, team).await),
    };
    sqlx::query(
        "INSERT INTO project_keys (project_id, public_key, label, created_at) VALUES ($1, $2, 'Default', $3)",
    )
    .bind(id)
    .bind(&key)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let event = events::publish(
        "project.created",
        Some(id),
        Some(id.to_string()),
        &json!({ "name": name, "slug": slug }),
    );
    events::publish_in_tx(store, &mut tx, &[event]).await?;
    crate::commit_audited(tx).await?;
    Ok(Project {
        id,
        org_id,
        slug,
        name: name.to_string(),
        platform: platform.map(str::to_string),
        public_key: Some(key),
        created_at: now,
        retention_days: 90,
        max_events: 1_000_000,
        rate_limit_per_minute: None,
        team_id: team,
    })
}

const PROJECT_COLUMNS: &str = "p.id, p.org_id, p.slug, p.name, p.platform, p.created_at,
    p.retention_days, p.max_events, p.rate_limit_per_minute, p.team_id,
    (SELECT k.public_key FROM project_keys k WHERE k.project_id = p.id AND k.revoked_at IS NULL
     ORDER BY k.id DESC LIMIT 1) AS public_key";

fn project_from_row(r: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        platform: r.try_get("platform")?,
        public_key: r.try_get("public_key")?,
        created_at: r.try_get("created_at")?,
        retention_days: r.try_get("retention_days")?,
        max_events: r.try_get("max_events")?,
        rate_limit_per_minute: r.try_get("rate_limit_per_minute")?,
        team_id: r.try_get("team_id")?,
    })
}

/// Applies changes to a project and returns it.
pub async fn update_project(store: &Store, id: i64, c: &ProjectChanges) -> Result<Project> {
    let mut tx = store.begin_write().await?;
    // One statement with fields left `None` keeping their stored value: reading the project
    // first and writing its team back would fail on a team deleted in between.
    let updated = sqlx::query(
        "UPDATE projects SET name = COALESCE($1, name),
             retention_days = COALESCE($2, retention_days), max_events = COALESCE($3, max_events),
             rate_limit_per_minute = CASE WHEN $4 = 1 THEN $5 ELSE rate_limit_per_minute END,
             team_id = CASE WHEN $6 = 1 THEN $7 ELSE team_id END
         WHERE id = $8",
    )
    .bind(c.name.clone())
    .bind(c.retention_days)
    .bind(c.max_events)
    .bind(i64::from(c.rate_limit_per_minute.is_some()))
    .bind(c.rate_limit_per_minute.flatten())
    .bind(i64::from(c.team_id.is_some()))
    .bind(c.team_id.flatten())
    .bind(id)
    .execute(&mut *tx)
    .await;
    let n = match updated {
        Ok(r) => r.rows_affected(),
        Err(e) => return Err(crate::team_gone(store, tx, e.into(), c.team_id.flatten()).await),
    };
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    get_project(store, id).await
}

/// Projects in id order.
pub async fn list_projects(store: &Store, cursor: &Cursor) -> Result<Page<Project>> {
    let limit = cursor.limit();
    let rows = sqlx::query(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id > $1 ORDER BY p.id LIMIT $2"
    ))
    .bind(cursor.after_i64()?.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    Page::try_from_rows(&rows, limit, project_from_row, |p| p.id.to_string())
}

/// The ids of every project.
pub async fn project_ids(store: &Store) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar("SELECT id FROM projects ORDER BY id")
        .fetch_all(store.pool())
        .await?)
}

/// The lowest project id with this slug in any organization (slugs are unique per
/// organization only), if any: how a config file names a project without listing them all.
pub async fn project_id_by_slug(store: &Store, slug: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1 ORDER BY id LIMIT 1")
            .bind(slug)
            .fetch_optional(store.pool())
            .await?,
    )
}

/// One project by id.
pub async fn get_project(store: &Store, id: i64) -> Result<Project> {
    let row = sqlx::query(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    project_from_row(&row)
}

/// The project an active DSN public key belongs to (the ingest endpoints' authentication).
pub async fn project_for_key(store: &Store, public_key: &str) -> Result<Option<i64>> {
    Ok(ingest_settings_for_key(store, public_key)
        .await?
        .map(|(id, _)| id))
}

/// The project of an active DSN key and its ingest rate limit (events per minute), in one query.
pub async fn ingest_settings_for_key(
    store: &Store,
    public_key: &str,
) -> Result<Option<(i64, Option<i64>)>> {
    let row = sqlx::query(
        "SELECT k.project_id, p.rate_limit_per_minute FROM project_keys k JOIN projects p ON p.id = k.project_id
         WHERE k.public_key = $1 AND k.revoked_at IS NULL",
    )
    .bind(public_key)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("project_id")?,
            r.try_get("rate_limit_per_minute")?,
        ))
    })
    .transpose()
}
