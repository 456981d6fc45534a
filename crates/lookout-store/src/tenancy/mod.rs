//! Who owns what and who may do what: organizations, users and UI sessions here; projects with
//! their DSN keys in `projects.rs`, API tokens in `tokens.rs` (both re-exported).
//!
//! Secrets are never stored in the clear: passwords as argon2id, session ids and API tokens as
//! SHA-256 (they are random, so that suffices). DSN public keys are stored as they are: Sentry
//! SDKs send them in every request and the UI must show them, which is why Sentry calls them public.

use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::events;
use crate::page::{Cursor, Page};
use crate::{Result, Store, StoreError};
use lookout_core::secret::{self, hash_password, hash_token, verify_password};
use lookout_core::time::now_ms;
use lookout_core::Role;

mod projects;
mod tokens;

// Projects and API tokens live in their own files; their items keep their `tenancy::` paths.
pub use projects::*;
pub use tokens::*;

/// An organization: the owner of projects.
#[derive(Debug, Clone, Serialize)]
pub struct Organization {
    /// Numeric id.
    pub id: i64,
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// A user who logs into the UI.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Numeric id.
    pub id: i64,
    /// Login name.
    pub email: String,
    /// Display name, if set.
    pub name: Option<String>,
    /// What the user may do.
    pub role: Role,
    /// Invited and not yet joined: no password, cannot sign in until the invitation is accepted.
    pub invited: bool,
    /// Created, ms since the epoch.
    pub created_at: i64,
}

impl User {
    /// `invited` or `active`.
    pub fn status(&self) -> &'static str {
        if self.invited {
            "invited"
        } else {
            "active"
        }
    }
}

pub(crate) fn role_of(r: &AnyRow, col: &str) -> Result<Role> {
    let s: String = Row::try_get(r, col)?;
    s.parse()
        .map_err(|e: lookout_core::role::UnknownRole| StoreError::Corrupt(e.to_string()))
}

pub use lookout_core::slug::slugify;

// ---------------------------------------------------------------- organizations

/// The default organization, created on first start.
///
/// Read first and written only when missing: almost every request asks for it, and an
/// `INSERT … ON CONFLICT` each time made read-only pages take SQLite's write lock.
pub async fn default_org(store: &Store) -> Result<Organization> {
    let read = || async {
        let row = sqlx::query("SELECT id, slug, name FROM organizations WHERE slug = 'default'")
            .fetch_optional(store.pool())
            .await?;
        row.map(|r| {
            Ok::<_, StoreError>(Organization {
                id: r.try_get("id")?,
                slug: r.try_get("slug")?,
                name: r.try_get("name")?,
            })
        })
        .transpose()
    };
    if let Some(org) = read().await? {
        return Ok(org);
    }
    sqlx::query(
        "INSERT INTO organizations (slug, name, created_at) VALUES ('default', 'Default', $1)
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(now_ms())
    .execute(store.pool())
    .await?;
    read().await?.ok_or(StoreError::NotFound)
}

// ---------------------------------------------------------------- users and sessions

pub(crate) const USER_COLUMNS: &str = "id, email, name, role, status, created_at";

pub(crate) fn user_from_row(r: &AnyRow) -> Result<User> {
    let status: String = r.try_get("status")?;
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: role_of(r, "role")?,
        invited: status == "invited",
        created_at: r.try_get("created_at")?,
    })
}

/// The active (joined, not invited) user with this email, any case: whom `@ada@example.com`
/// in a comment names.
pub async fn active_user_by_email(store: &Store, email: &str) -> Result<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE LOWER(email) = $1 AND status = 'active'"
    ))
    .bind(email.to_lowercase())
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Active users whose display name (lowercased, as written or without spaces) or email local
/// part is `name` (lowercase): whom `@ada` names. At most two, which is enough to tell one
/// from ambiguous; any number of users is searched (the SQL does it, not a page of users).
pub async fn active_users_named(store: &Store, name: &str) -> Result<Vec<User>> {
    let name = name.to_lowercase();
    let local = format!(
        "{}@%",
        name.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE status = 'active'
           AND (LOWER(name) = $1 OR LOWER(REPLACE(name, ' ', '')) = $1
                OR LOWER(email) LIKE $2 ESCAPE '\\')
         ORDER BY id LIMIT 2"
    ))
    .bind(&name)
    .bind(local)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(user_from_row).collect()
}

/// Creates a user with an argon2id password hash and publishes `user.created`.
pub async fn create_user(store: &Store, email: &str, password: &str, role: Role) -> Result<User> {
    insert_user(store, email, password, role, false)
        .await?
        .ok_or_else(|| StoreError::Corrupt("user creation was refused".into()))
}

/// Creates the first administrator, only if no user was ever created (the `/setup` form);
/// `None` if the installation is set up already. The check and the insert are one transaction,
/// so two setup forms posted at once make one admin.
pub async fn create_first_admin(
    store: &Store,
    email: &str,
    password: &str,
) -> Result<Option<User>> {
    insert_user(store, email, password, Role::Admin, true).await
}

async fn insert_user(
    store: &Store,
    email: &str,
    password: &str,
    role: Role,
    first_only: bool,
) -> Result<Option<User>> {
    let email = email.trim().to_lowercase();
    let hash = hash_password(password).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let marked = sqlx::query(
        "INSERT INTO instance_flags (name, set_at) VALUES ('set_up', $1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if first_only && marked == 0 {
        return Ok(None);
    }
    let id: i64 = sqlx::query(
        "INSERT INTO users (email, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&email)
    .bind(&hash)
    .bind(role.as_str())
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a user with this email"))?
    .try_get("id")?;
    let event = events::publish(
        "user.created",
        None,
        Some(id.to_string()),
        &json!({ "email": email, "role": role }),
    );
    events::publish_in_tx(store, &mut tx, &[event]).await?;
    crate::commit_audited(tx).await?;
    Ok(Some(User {
        id,
        email,
        name: None,
        role,
        invited: false,
        created_at: now,
    }))
}

/// Whether the first user was ever created: once it was, the first-admin form stays closed,
/// even if every user is later deleted.
pub async fn is_set_up(store: &Store) -> Result<bool> {
    instance_flag(store, "set_up").await
}

/// Whether the installation-wide flag `name` is set (see `instance_flags`).
pub async fn instance_flag(store: &Store, name: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM instance_flags WHERE name = $1")
            .bind(name)
            .fetch_optional(store.pool())
            .await?
            .is_some(),
    )
}

/// Sets the installation-wide flag `name` (once; later calls keep the first time).
pub async fn set_instance_flag(store: &Store, name: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO instance_flags (name, set_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now_ms())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// How many users exist (0 means the UI offers first-admin setup).
pub async fn user_count(store: &Store) -> Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(store.pool())
        .await?
        .try_get("n")?)
}

/// Users in id order.
pub async fn list_users(store: &Store, cursor: &Cursor) -> Result<Page<User>> {
    let limit = cursor.limit();
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(cursor.after_i64()?.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    Page::try_from_rows(&rows, limit, user_from_row, |u| u.id.to_string())
}

/// One user by id.
pub async fn get_user(store: &Store, id: i64) -> Result<User> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
    user_from_row(&row)
}

/// What [`delete_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDeletion {
    /// The user, their sessions and tokens are gone.
    Deleted,
    /// Refused: the user is the last administrator, and nobody could manage users after.
    LastAdmin,
}

/// Deletes a user with their sessions and tokens, unless they are the last administrator.
///
/// The count and the delete are one write transaction; on PostgreSQL the admin rows are locked
/// first, so two admins deleting each other at once cannot both succeed (SQLite's write
/// transactions are serial already).
pub async fn delete_user(store: &Store, id: i64) -> Result<UserDeletion> {
    let lock = crate::dialect::for_update(store.backend());
    let mut tx = store.begin_write().await?;
    let admins = sqlx::query(&format!("SELECT id FROM users WHERE role = 'admin'{lock}"))
        .fetch_all(&mut *tx)
        .await?;
    let row = sqlx::query("SELECT role FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    if role_of(&row, "role")? == Role::Admin && admins.len() <= 1 {
        return Ok(UserDeletion::LastAdmin);
    }
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    crate::commit_audited(tx).await?;
    Ok(UserDeletion::Deleted)
}

/// The user with this email and password, if both match.
pub async fn verify_login(store: &Store, email: &str, password: &str) -> Result<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1 AND status = 'active'"
    ))
    .bind(email.trim().to_lowercase())
    .fetch_optional(store.pool())
    .await?;
    // Hash anyway on an unknown email, so it takes as long as a wrong password.
    let hash: String = match &row {
        Some(r) => r.try_get("password_hash")?,
        None => DUMMY_HASH.to_string(),
    };
    let _turn = argon2_turn().await;
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match row {
        Some(r) if ok => Ok(Some(user_from_row(&r)?)),
        _ => Ok(None),
    }
}

/// A turn at argon2id, which takes ~19 MiB and tens of milliseconds of CPU: at most two hashes or
/// verifications run at once in the process (each off the async workers), so a burst of sign-ins,
/// password changes or invitations accepted cannot stall every other request or hold a thread
/// and 19 MiB per request.
pub(crate) async fn argon2_turn() -> tokio::sync::SemaphorePermit<'static> {
    static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    // The semaphore is never closed, so acquiring cannot fail.
    HASHING
        .acquire()
        .await
        .unwrap_or_else(|_| unreachable!("the argon2 semaphore is never closed"))
}

/// An argon2id hash of a random password, verified against on unknown emails.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2VqkU+9tVQAT2Q8kJHl3zVf9w7yPcN6X7p9cYqUQ0Aw";

/// A logged-in session: the user and the CSRF token its forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who is logged in.
    pub user: User,
    /// The token forms and non-GET API calls from the UI must echo.
    pub csrf_token: String,
}

/// Starts a session; returns its id (for the cookie; only its hash is stored) and the session.
pub async fn create_session(store: &Store, user: &User, ttl_ms: i64) -> Result<(String, Session)> {
    let id = secret::random_hex(32);
    let csrf = secret::random_hex(16);
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash_token(&id))
    .bind(user.id)
    .bind(&csrf)
    .bind(now)
    .bind(now + ttl_ms)
    .execute(store.pool())
    .await?;
    Ok((
        id,
        Session {
            user: user.clone(),
            csrf_token: csrf,
        },
    ))
}

/// The live session with this cookie value, if any.
pub async fn session(store: &Store, id: &str) -> Result<Option<Session>> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.name, u.role, u.status, u.created_at, s.csrf_token FROM sessions s
         JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2",
    )
    .bind(hash_token(id))
    .bind(now_ms())
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(Session {
            user: user_from_row(&r)?,
            csrf_token: r.try_get("csrf_token")?,
        })
    })
    .transpose()
}

/// Ends a session (logout).
pub async fn delete_session(store: &Store, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(hash_token(id))
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Deletes expired sessions; returns how many (the `sessions.cleanup` job).
pub async fn delete_expired_sessions(store: &Store) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now_ms())
        .execute(store.pool())
        .await?
        .rows_affected())
}
