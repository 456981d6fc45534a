//! Single sign-on's rows: sign-ins under way (the state's hash, the nonce and the PKCE verifier,
//! kept between the redirect to the provider and its answer, so that any replica can finish a
//! sign-in another began) and the provider identities users sign in as.

use serde_json::json;
use sqlx::Row;

use crate::tenancy::{user_from_row, User, USER_COLUMNS};
use crate::{events, Result, Store, StoreError};
use lookout_core::role::Role;
use lookout_core::time::now_ms;

/// Sign-ins under way at once, across the installation. Each row is made by an anonymous
/// request, so their number is capped: past it, new sign-ins wait (the caller answers 503)
/// until the oldest expire, 10 minutes at most.
pub const MAX_PENDING_LOGINS: i64 = 10_000;

/// What the provider's answer is checked against.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier sent with the code.
    pub pkce_verifier: String,
    /// Where to go after signing in (a local path).
    pub next: String,
}

/// Records a sign-in under way; `Ok(false)` when [`MAX_PENDING_LOGINS`] are under way already.
/// Expired rows are removed in the same transaction, so the table holds only live ones.
pub async fn begin_login(
    store: &Store,
    state_hash: &str,
    login: &PendingLogin,
    ttl_ms: i64,
) -> Result<bool> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    sqlx::query("DELETE FROM sso_logins WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let live: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sso_logins")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    if live >= MAX_PENDING_LOGINS {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO sso_logins (state_hash, nonce, pkce_verifier, next, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(state_hash)
    .bind(&login.nonce)
    .bind(&login.pkce_verifier)
    .bind(&login.next)
    .bind(now)
    .bind(now + ttl_ms)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a sign-in with this state"))?;
    tx.commit().await?;
    Ok(true)
}

/// Takes a sign-in under way by its state's hash: the row is deleted by the statement that reads
/// it, so a second answer with the same state (a replay) finds nothing. `None` also when it
/// expired.
pub async fn take_login(store: &Store, state_hash: &str) -> Result<Option<PendingLogin>> {
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(
        "DELETE FROM sso_logins WHERE state_hash = $1 \
         RETURNING nonce, pkce_verifier, next, expires_at",
    )
    .bind(state_hash)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: i64 = row.try_get("expires_at")?;
    if expires_at <= now_ms() {
        return Ok(None);
    }
    Ok(Some(PendingLogin {
        nonce: row.try_get("nonce")?,
        pkce_verifier: row.try_get("pkce_verifier")?,
        next: row.try_get("next")?,
    }))
}

/// Who the provider says signed in, after the ID token was verified.
#[derive(Debug, Clone)]
pub struct ProviderAccount<'a> {
    /// The issuer URL.
    pub issuer: &'a str,
    /// The `sub` claim: stable at this issuer.
    pub subject: &'a str,
    /// The `email` claim, lower-cased.
    pub email: &'a str,
    /// Whether the provider says it verified the email: an existing account is linked by email
    /// only then, or anyone who can choose their email at the provider could take it over.
    pub email_verified: bool,
    /// The `name` claim, set on the account when it has none.
    pub name: Option<&'a str>,
}

/// How the account was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Signed in before with this provider account.
    Known,
    /// An existing account with the same verified email, now linked.
    Linked,
    /// Created by this sign-in.
    Created,
}

/// Finds or creates the user for a provider account, in one write transaction: by (issuer,
/// subject), else by verified email (linking it), else a new active user without a password.
/// A new user is a viewer: the role and teams the groups give are [`apply_grants`]'s, called
/// only once the sign-in is complete (after the second factor when one is asked), so a sign-in
/// abandoned at the code step changes no role or team. Refused with `Conflict` when an account
/// has the email but the provider did not verify it.
pub async fn sign_in(store: &Store, who: &ProviderAccount<'_>) -> Result<(User, Found)> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let known =
        sqlx::query("SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2")
            .bind(who.issuer)
            .bind(who.subject)
            .fetch_optional(&mut *tx)
            .await?;
    let (id, found) = if let Some(row) = known {
        let id: i64 = row.try_get("user_id")?;
        sqlx::query(
            "UPDATE user_identities SET last_login_at = $1 WHERE issuer = $2 AND subject = $3",
        )
        .bind(now)
        .bind(who.issuer)
        .bind(who.subject)
        .execute(&mut *tx)
        .await?;
        (id, Found::Known)
    } else {
        let existing = sqlx::query("SELECT id FROM users WHERE email = $1")
            .bind(who.email)
            .fetch_optional(&mut *tx)
            .await?;
        let (id, found) = match existing {
            Some(_) if !who.email_verified => {
                return Err(StoreError::Conflict(
                    "an account with this email (the provider did not verify it)".into(),
                ))
            }
            Some(row) => (row.try_get::<i64, _>("id")?, Found::Linked),
            None => {
                let id: i64 = sqlx::query(
                    "INSERT INTO users (email, password_hash, role, created_at, name, status) \
                     VALUES ($1, '', $2, $3, $4, 'active') RETURNING id",
                )
                .bind(who.email)
                .bind(Role::Viewer.as_str())
                .bind(now)
                .bind(who.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::conflict_as("a user with this email"))?
                .try_get("id")?;
                let event = events::publish(
                    "user.created",
                    None,
                    Some(id.to_string()),
                    &json!({ "email": who.email, "role": Role::Viewer, "via": "sso" }),
                );
                events::publish_in_tx(store, &mut tx, &[event]).await?;
                (id, Found::Created)
            }
        };
        sqlx::query(
            "INSERT INTO user_identities (user_id, issuer, subject, created_at, last_login_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(id)
        .bind(who.issuer)
        .bind(who.subject)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_as("this provider account"))?;
        (id, found)
    };
    // An invited user who signs in with SSO has joined: that is the invitation's acceptance,
    // recorded like one accepted by its link, in this transaction. The name is kept when set.
    let accepted = sqlx::query(
        "UPDATE users SET status = 'active', name = COALESCE(name, $1)
         WHERE id = $2 AND status = 'invited'",
    )
    .bind(who.name)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if accepted > 0 {
        let target = id.to_string();
        crate::audit::record_in(
            &mut tx,
            &crate::audit::NewEntry {
                actor: &format!("user:{id}"),
                actor_label: who.email,
                action: "invitation.accept",
                target: Some(&target),
                details: &json!({ "via": "sso", "issuer": who.issuer, "recorded": "with the change" }),
                address: None,
            },
        )
        .await?;
    }
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let user = user_from_row(&row)?;
    tx.commit().await?;
    Ok((user, found))
}

/// What a provider's groups give a user, applied by [`apply_grants`] once the sign-in is
/// complete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    /// The role the configured group rules give.
    pub role: Role,
    /// Slugs of the listed teams the groups name: joined.
    pub join: Vec<String>,
    /// Slugs of the listed teams the groups do not name: left (only a membership the sync made).
    pub leave: Vec<String>,
}

/// What [`apply_grants`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The role before, when it changed.
    pub role_was: Option<Role>,
    /// Slugs of the teams joined.
    pub joined: Vec<String>,
    /// Slugs of the teams left.
    pub left: Vec<String>,
    /// Slugs in the grants that name no team (created by hand on the Teams page, never here).
    pub missing: Vec<String>,
    /// Nothing was applied: a sign-in through the provider began after this one, so these
    /// grants may be older than what the provider now says (a replayed or overtaken pending
    /// sign-in).
    pub stale: bool,
}

/// Gives the user the role and teams of `grants`, with one audit entry per change (actor
/// `sso`, labelled with the issuer; target `team/user` or the user), all in one transaction:
/// the change and its record commit together. The break-glass account (`keep_role_of`) keeps
/// its role; teams join and leave as for anyone. `issued_at` is when the sign-in that brought
/// the grants began: once a later sign-in of the user has begun they change nothing
/// ([`Applied::stale`]).
pub async fn apply_grants(
    store: &Store,
    org_id: i64,
    user_id: i64,
    issuer: &str,
    keep_role_of: Option<&str>,
    grants: &Grants,
    issued_at: i64,
) -> Result<Applied> {
    let mut tx = store.begin_write().await?;
    // A sign-in through the provider that began after this one (`sign_in` stamps
    // `last_login_at`) supersedes it: its grants, possibly a role since taken away, are refused
    // whichever replica or replayed token brings them.
    let latest: Option<i64> =
        sqlx::query("SELECT MAX(last_login_at) AS latest FROM user_identities WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("latest")?;
    if latest.is_some_and(|l| l > issued_at) {
        return Ok(Applied {
            stale: true,
            ..Applied::default()
        });
    }
    let row = sqlx::query("SELECT email, role FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let email: String = row.try_get("email")?;
    let was = crate::tenancy::role_of(&row, "role")?;
    let kept = keep_role_of.is_some_and(|k| k.eq_ignore_ascii_case(&email));
    let mut applied = Applied::default();
    let record = |action: &'static str, target: String, details: serde_json::Value| {
        (action, target, details)
    };
    let mut entries = Vec::new();
    if !kept && was != grants.role {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(grants.role.as_str())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        applied.role_was = Some(was);
        entries.push(record(
            "sso.role",
            user_id.to_string(),
            json!({ "user": email, "before": was, "after": grants.role }),
        ));
    }
    let changes =
        crate::teams::sync_membership_in(&mut tx, org_id, user_id, &grants.join, &grants.leave)
            .await?;
    for c in changes {
        match c {
            crate::teams::MembershipChange::Joined(team, slug) => {
                entries.push(record(
                    "sso.team_join",
                    format!("{team}/{user_id}"),
                    json!({ "team": slug, "user": email }),
                ));
                applied.joined.push(slug);
            }
            crate::teams::MembershipChange::Left(team, slug) => {
                entries.push(record(
                    "sso.team_leave",
                    format!("{team}/{user_id}"),
                    json!({ "team": slug, "user": email }),
                ));
                applied.left.push(slug);
            }
            crate::teams::MembershipChange::Missing(slug) => applied.missing.push(slug),
        }
    }
    for (action, target, details) in &entries {
        crate::audit::record_in(
            &mut tx,
            &crate::audit::NewEntry {
                actor: "sso",
                actor_label: issuer,
                action,
                target: Some(target),
                details,
                address: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(applied)
}

/// Whether the user has signed in through a provider (their sign-out also ends the provider's
/// session when it offers that).
pub async fn has_identity(store: &Store, user_id: i64) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM user_identities WHERE user_id = $1 LIMIT 1")
            .bind(user_id)
            .fetch_optional(store.pool())
            .await?
            .is_some(),
    )
}
