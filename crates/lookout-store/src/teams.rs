//! Teams: named groups of users, written `#slug` (as in Sentry) in ownership rules and issue
//! searches. A team can be linked to an escalation policy, which pages it for issues it owns.
//! Also the per-user calendar feed token of the on-call iCalendar feed.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::page::{Cursor, Page};
use crate::{Result, Store, StoreError};
use lookout_core::secret::{hash_token, random_hex};
use lookout_core::time::now_ms;

/// A team.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Team {
    /// Numeric id.
    pub id: i64,
    /// Unique per organization; lower-case letters, digits and dashes.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The escalation policy that pages the team for issues it owns.
    pub escalation_policy_id: Option<i64>,
    /// How many users belong to it.
    pub member_count: i64,
    /// Created, ms.
    pub created_at: i64,
}

/// A member of a team as lists show them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Member {
    /// User id.
    pub id: i64,
    /// Login email.
    pub email: String,
    /// Display name, if set.
    pub name: Option<String>,
}

const TEAM_COLUMNS: &str = "t.id, t.slug, t.name, t.escalation_policy_id, t.created_at,
    (SELECT COUNT(*) FROM team_members m WHERE m.team_id = t.id) AS member_count";

fn team_from_row(r: &AnyRow) -> Result<Team> {
    Ok(Team {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        escalation_policy_id: r.try_get("escalation_policy_id")?,
        member_count: r.try_get("member_count")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Creates a team, linked to an escalation policy or not, in one statement; a taken slug is
/// [`StoreError::Conflict`].
pub async fn create(
    store: &Store,
    org_id: i64,
    slug: &str,
    name: &str,
    escalation_policy_id: Option<i64>,
) -> Result<Team> {
    let mut tx = store.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO teams (org_id, slug, name, escalation_policy_id, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(org_id)
    .bind(slug)
    .bind(name)
    .bind(escalation_policy_id)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a team with this slug"))?
    .try_get("id")?;
    crate::commit_audited(tx).await?;
    get(store, id).await
}

/// What an update changes (`None`: left as is).
#[derive(Debug, Clone, Default)]
pub struct TeamChanges {
    /// New slug.
    pub slug: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New escalation policy: `Some(None)` unlinks it.
    pub escalation_policy_id: Option<Option<i64>>,
}

/// Applies changes to a team in one statement (fields left `None` keep their stored value, so
/// two concurrent updates of different fields both land) and returns it.
pub async fn update(store: &Store, id: i64, c: &TeamChanges) -> Result<Team> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE teams SET slug = COALESCE($1, slug), name = COALESCE($2, name),
             escalation_policy_id = CASE WHEN $3 = 1 THEN $4 ELSE escalation_policy_id END
         WHERE id = $5",
    )
    .bind(c.slug.clone())
    .bind(c.name.clone())
    .bind(i64::from(c.escalation_policy_id.is_some()))
    .bind(c.escalation_policy_id.flatten())
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a team with this slug"))?
    .rows_affected();
    // Before the commit: a missing team or membership is a 404 with no audit entry.
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    get(store, id).await
}

/// Deletes a team (its issues become unassigned, its memberships go).
pub async fn delete(store: &Store, id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("DELETE FROM teams WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // Before the commit: a missing team or membership is a 404 with no audit entry.
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    Ok(())
}

/// One team by id.
pub async fn get(store: &Store, id: i64) -> Result<Team> {
    let row = sqlx::query(&format!(
        "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    team_from_row(&row)
}

/// One team by slug, if it exists.
pub async fn by_slug(store: &Store, org_id: i64, slug: &str) -> Result<Option<Team>> {
    sqlx::query(&format!(
        "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.org_id = $1 AND t.slug = $2"
    ))
    .bind(org_id)
    .bind(slug.to_ascii_lowercase())
    .fetch_optional(store.pool())
    .await?
    .map(|r| team_from_row(&r))
    .transpose()
}

/// Teams in id order.
pub async fn list(store: &Store, org_id: i64, cursor: &Cursor) -> Result<Page<Team>> {
    let limit = cursor.limit();
    let rows = sqlx::query(&format!(
        "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.org_id = $1 AND t.id > $2 ORDER BY t.id LIMIT $3"
    ))
    .bind(org_id)
    .bind(cursor.after_i64()?.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    Page::try_from_rows(&rows, limit, team_from_row, |t| t.id.to_string())
}

/// Every team, by slug (for pickers; at most 1000).
pub async fn all(store: &Store, org_id: i64) -> Result<Vec<Team>> {
    let rows = sqlx::query(&format!(
        "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.org_id = $1 ORDER BY t.slug LIMIT 1000"
    ))
    .bind(org_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(team_from_row).collect()
}

/// The teams a user belongs to, by slug.
pub async fn of_user(store: &Store, user_id: i64) -> Result<Vec<Team>> {
    let rows = sqlx::query(&format!(
        "SELECT {TEAM_COLUMNS} FROM teams t JOIN team_members tm ON tm.team_id = t.id
         WHERE tm.user_id = $1 ORDER BY t.slug"
    ))
    .bind(user_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(team_from_row).collect()
}

/// A team's members, by email.
pub async fn members(store: &Store, team_id: i64) -> Result<Vec<Member>> {
    members_where(store, team_id, "").await
}

async fn members_where(store: &Store, team_id: i64, filter: &str) -> Result<Vec<Member>> {
    let rows = sqlx::query(&format!(
        "SELECT u.id, u.email, u.name FROM team_members tm JOIN users u ON u.id = tm.user_id
         WHERE tm.team_id = $1 {filter} ORDER BY u.email"
    ))
    .bind(team_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
            })
        })
        .collect()
}

/// A team's members who have joined (status `active`): whom a `#team` mention emails; an
/// invited user who never accepted must not get mail through a team.
pub async fn active_members(store: &Store, team_id: i64) -> Result<Vec<Member>> {
    members_where(store, team_id, "AND u.status = 'active'").await
}

/// Adds a user to a team (already a member: nothing changes). Unknown team or user: NotFound.
pub async fn add_member(store: &Store, team_id: i64, user_id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    for (table, id) in [("teams", team_id), ("users", user_id)] {
        sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
    }
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    crate::commit_audited(tx).await?;
    Ok(())
}

/// Removes a user from a team; NotFound when they were not a member.
pub async fn remove_member(store: &Store, team_id: i64, user_id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // Before the commit: a missing team or membership is a 404 with no audit entry.
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    Ok(())
}

/// One change [`sync_membership_in`] made (or could not make).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Joined the team (id, slug).
    Joined(i64, String),
    /// Left the team (id, slug).
    Left(i64, String),
    /// No team has this slug.
    Missing(String),
}

/// Adds the user to the teams in `join` and takes them out of those in `leave` (by slug), in
/// the caller's transaction. Only memberships the sync made (`source = 'sso'`) are taken away:
/// one added by an admin stays. Answers what changed (a membership already as asked is not a
/// change) and the slugs that name no team.
pub async fn sync_membership_in(
    tx: &mut crate::Tx,
    org_id: i64,
    user_id: i64,
    join: &[String],
    leave: &[String],
) -> Result<Vec<MembershipChange>> {
    let mut changes = Vec::new();
    let now = now_ms();
    for (slug, joining) in join
        .iter()
        .map(|s| (s, true))
        .chain(leave.iter().map(|s| (s, false)))
    {
        let team: Option<i64> = sqlx::query("SELECT id FROM teams WHERE org_id = $1 AND slug = $2")
            .bind(org_id)
            .bind(slug)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("id"))
            .transpose()?;
        let Some(team) = team else {
            changes.push(MembershipChange::Missing(slug.clone()));
            continue;
        };
        let q = if joining {
            sqlx::query(
                "INSERT INTO team_members (team_id, user_id, created_at, source)
                 VALUES ($1, $2, $3, 'sso') ON CONFLICT DO NOTHING",
            )
            .bind(team)
            .bind(user_id)
            .bind(now)
        } else {
            sqlx::query(
                "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2 AND source = 'sso'",
            )
            .bind(team)
            .bind(user_id)
        };
        if q.execute(&mut **tx).await?.rows_affected() > 0 {
            changes.push(if joining {
                MembershipChange::Joined(team, slug.clone())
            } else {
                MembershipChange::Left(team, slug.clone())
            });
        }
    }
    Ok(changes)
}

/// Makes a new calendar feed token for a user, replacing (revoking) any earlier one. Returns the
/// secret: only its hash is kept, so it is shown once.
pub async fn rotate_feed_token(store: &Store, user_id: i64) -> Result<String> {
    let secret = random_hex(24);
    let mut tx = store.begin_write().await?;
    sqlx::query("DELETE FROM calendar_feed_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO calendar_feed_tokens (user_id, token_hash, created_at) VALUES ($1, $2, $3)",
    )
    .bind(user_id)
    .bind(hash_token(&secret))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    crate::commit_audited(tx).await?;
    Ok(secret)
}

/// Revokes a user's calendar feed token (calendar apps then get 401).
pub async fn revoke_feed_token(store: &Store, user_id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query("DELETE FROM calendar_feed_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    crate::commit_audited(tx).await?;
    Ok(())
}

/// When the user's feed token was made, if they have one.
pub async fn feed_token_created(store: &Store, user_id: i64) -> Result<Option<i64>> {
    Ok(
        sqlx::query("SELECT created_at FROM calendar_feed_tokens WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(store.pool())
            .await?
            .map(|r| r.try_get("created_at"))
            .transpose()?,
    )
}

/// The user a feed token belongs to, if it is live.
pub async fn user_for_feed_token(store: &Store, secret: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query("SELECT user_id FROM calendar_feed_tokens WHERE token_hash = $1")
            .bind(hash_token(secret))
            .fetch_optional(store.pool())
            .await?
            .map(|r| r.try_get("user_id"))
            .transpose()?,
    )
}
