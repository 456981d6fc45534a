//! Invitation and password-reset links, and the account mail that carries them.
//!
//! A link's token is `SECRET.SIG`: 32 random bytes as hex, and an HMAC of the purpose and the
//! secret under the server's link-signing key (`Sealer::sign`). The signature is checked first,
//! so made-up tokens are refused without reading the database; the store keeps only a SHA-256 of
//! the secret with the link's expiry, use and revocation (single use, see
//! `lookout_store::identity`). Tokens never go to the log.
//!
//! Account mail goes through the installation's SMTP server (the `mail` server setting, set by
//! an admin on the settings page or `PUT /api/v1/settings/mail`), with the same SMTP client and
//! outbound policy as email notification channels.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_core::secret::random_hex;
use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_store::identity::{self, LinkPurpose};
use lookout_store::tenancy::User;
use lookout_store::StoreError;

/// How long an invitation link works.
pub const INVITE_TTL_MS: i64 = 7 * 86_400_000;
/// How long a password-reset link works.
pub const RESET_TTL_MS: i64 = 3_600_000;
/// A reset is not emailed again within this long of the last one to the same account.
pub const RESET_RESEND_MS: i64 = 60_000;
/// The longest token accepted (64 hex + `.` + 64 hex); longer ones are refused unread.
const MAX_TOKEN_LEN: usize = 129;

fn signed_text(purpose: LinkPurpose, secret: &str) -> String {
    format!("lookout-link:{}:{secret}", purpose.as_str())
}

/// A new link token: `(secret for the store, token for the URL)`.
pub fn new_token(state: &AppState, purpose: LinkPurpose) -> (String, String) {
    let secret = random_hex(32);
    let sig = state.sealer().sign(&signed_text(purpose, &secret));
    (secret.clone(), format!("{secret}.{sig}"))
}

/// The secret of a token whose signature is right for `purpose`, else `None`.
pub fn open_token(state: &AppState, purpose: LinkPurpose, token: &str) -> Option<String> {
    open_token_with(state.sealer(), purpose, token)
}

/// [`open_token`] with the sealer given (the fuzz target's entry point).
pub fn open_token_with(
    sealer: &lookout_core::seal::Sealer,
    purpose: LinkPurpose,
    token: &str,
) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (secret, sig) = token.split_once('.')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    sealer
        .verify(&signed_text(purpose, secret), sig)
        .then(|| secret.to_string())
}

/// The address of a link on this server.
pub fn link_url(state: &AppState, purpose: LinkPurpose, token: &str) -> String {
    let path = match purpose {
        LinkPurpose::Invite => "invite",
        LinkPurpose::Reset => "reset",
    };
    format!("{}/{path}/{token}", state.settings().public_url)
}

// ------------------------------------------------------------------ mail settings

/// The server setting holding the SMTP server for account mail.
pub const MAIL_SETTING: &str = "mail";

/// The SMTP server account mail (invitations, password resets) is sent through.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct MailSettings {
    /// SMTP server host name or address.
    pub smtp_host: String,
    /// Port; default by `security`: 587 (starttls), 465 (tls), 25 (none).
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    pub security: Option<String>,
    /// SMTP user name, if the server needs one.
    pub username: Option<String>,
    /// SMTP password: write-only; answers show `********` when one is set. Send `********` to
    /// keep the stored one.
    pub password: Option<String>,
    /// Sender address, e.g. `Lookout <lookout@example.com>`.
    pub from: String,
}

/// What answers show instead of a stored password.
pub const REDACTED: &str = "********";

/// The stored mail settings (password still sealed), if an admin set them.
pub async fn mail_settings(state: &AppState) -> ServiceResult<Option<MailSettings>> {
    match identity::setting(state.store(), MAIL_SETTING).await? {
        None => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| ServiceError::Internal(format!("stored mail settings: {e}"))),
    }
}

/// Validates and stores new mail settings (the password sealed; `********` keeps the old one).
pub async fn save_mail_settings(state: &AppState, mut new: MailSettings) -> ServiceResult<()> {
    let invalid = |m: &str| Err(ServiceError::Invalid(m.into()));
    new.smtp_host = new.smtp_host.trim().to_string();
    new.from = new.from.trim().to_string();
    if new.smtp_host.is_empty() || new.smtp_host.len() > 253 {
        return invalid("smtp_host: give the SMTP server's host name or address");
    }
    if new.smtp_port == Some(0) {
        return invalid("smtp_port must be a port number (1-65535)");
    }
    if !matches!(
        new.security.as_deref(),
        None | Some("starttls" | "tls" | "none")
    ) {
        return invalid("security must be starttls, tls or none");
    }
    if new.from.parse::<lettre::message::Mailbox>().is_err() {
        return invalid("from must be an address like Lookout <lookout@example.com>");
    }
    new.username = new.username.filter(|u| !u.trim().is_empty());
    new.password = match new.password.as_deref() {
        None | Some("") => None,
        Some(REDACTED) => mail_settings(state).await?.and_then(|old| old.password),
        Some(plain) => Some(state.sealer().seal(plain)),
    };
    let value = serde_json::to_value(&new).map_err(|e| ServiceError::Internal(e.to_string()))?;
    identity::put_setting(state.store(), MAIL_SETTING, Some(&value)).await?;
    Ok(())
}

/// Sends one account email to `to`; `Ok(false)` when no SMTP server is set up.
pub async fn send_account_mail(
    state: &AppState,
    to: &str,
    subject: &str,
    text: String,
    html: String,
) -> Result<bool, String> {
    let Some(m) = mail_settings(state).await.map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let mut config = json!({
        "smtp_host": m.smtp_host,
        "security": m.security.unwrap_or_else(|| "starttls".into()),
        "from": m.from,
        "to": to,
    });
    if let Some(p) = m.smtp_port {
        config["smtp_port"] = json!(p);
    }
    if let Some(u) = m.username {
        config["username"] = json!(u);
    }
    if let Some(p) = m.password {
        config["password"] = json!(p);
    }
    // The email channel's sender, with the installation's server and this recipient.
    let channel = lookout_store::alerting::ChannelRow {
        id: 0,
        org_id: 0,
        name: "account mail".into(),
        kind: "email".into(),
        config,
        user_id: None,
        urgencies: Vec::new(),
        enabled: true,
        created_at: 0,
        updated_at: 0,
    };
    crate::alerting::deliver_email::send_mail(state.alerting(), &channel, subject, text, html)
        .await
        .map(|()| true)
}

// ------------------------------------------------------------------ invitations

/// A sent invitation: the link (for the admin who made it, once) and whether it was emailed.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The invitation address.
    pub url: String,
    /// Emailed through the server's SMTP settings.
    pub emailed: bool,
    /// Why it was not emailed, if it was tried and failed.
    pub mail_error: Option<String>,
    /// When the link stops working, ms.
    pub expires_at: i64,
}

async fn mail_invitation(state: &AppState, user: &User, url: &str) -> (bool, Option<String>) {
    let subject = "You are invited to Lookout";
    let text = format!(
        "You were invited to the Lookout server at {public}.\n\nOpen this link within 7 days to choose your name and password:\n{url}\n",
        public = state.settings().public_url
    );
    let html = format!(
        "<p>You were invited to the Lookout server at {public}.</p><p><a href=\"{u}\">Accept the invitation</a> within 7 days to choose your name and password.</p><p>{u}</p>",
        public = crate::ui::escape(&state.settings().public_url),
        u = crate::ui::escape(url)
    );
    match send_account_mail(state, &user.email, subject, text, html).await {
        Ok(sent) => (sent, None),
        Err(e) => {
            tracing::warn!(user = user.id, error = %e, "Invitation email failed; the admin has the link.");
            (false, Some(e))
        }
    }
}

/// Invites a new user: creates them without a password, with a fresh link, and emails it.
pub async fn invite(
    state: &AppState,
    email: &str,
    name: Option<&str>,
    role: Role,
    by: Option<i64>,
) -> ServiceResult<(User, Sent)> {
    let (secret, token) = new_token(state, LinkPurpose::Invite);
    let expires_at = now_ms() + INVITE_TTL_MS;
    let user = match identity::invite_user(
        state.store(),
        email,
        name,
        role,
        by,
        &secret,
        expires_at,
    )
    .await
    {
        Err(StoreError::Conflict(_)) => {
            return Err(ServiceError::Conflict(
                "a user with this email exists already".into(),
            ))
        }
        other => other?,
    };
    let url = link_url(state, LinkPurpose::Invite, &token);
    let (emailed, mail_error) = mail_invitation(state, &user, &url).await;
    tracing::info!(user = user.id, role = %user.role, emailed, "User invited.");
    Ok((
        user,
        Sent {
            url,
            emailed,
            mail_error,
            expires_at,
        },
    ))
}

/// Sends a pending invitation again with a new link; the old link stops working.
pub async fn resend(state: &AppState, user_id: i64, by: Option<i64>) -> ServiceResult<Sent> {
    let inv = match identity::invitation(state.store(), user_id).await {
        Err(StoreError::NotFound) => return Err(ServiceError::NotFound("invitation")),
        other => other?,
    };
    let (secret, token) = new_token(state, LinkPurpose::Invite);
    let expires_at = now_ms() + INVITE_TTL_MS;
    identity::renew_link(
        state.store(),
        LinkPurpose::Invite,
        user_id,
        by,
        &secret,
        expires_at,
    )
    .await?;
    let url = link_url(state, LinkPurpose::Invite, &token);
    let (emailed, mail_error) = mail_invitation(state, &inv.user, &url).await;
    tracing::info!(user = user_id, emailed, "Invitation sent again.");
    Ok(Sent {
        url,
        emailed,
        mail_error,
        expires_at,
    })
}

/// Withdraws a pending invitation (the invited user is deleted; the link stops working).
pub async fn revoke(state: &AppState, user_id: i64) -> ServiceResult<()> {
    match identity::revoke_invitation(state.store(), user_id).await {
        Err(StoreError::NotFound) => Err(ServiceError::NotFound("invitation")),
        other => {
            other?;
            tracing::info!(user = user_id, "Invitation withdrawn.");
            Ok(())
        }
    }
}

// ------------------------------------------------------------------ password resets

/// Reset requests one client address may make per [`ResetRequests::WINDOW_MS`].
pub const RESETS_PER_CLIENT: usize = 5;

/// Reset requests per client address: a client asking for more than a few a minute gets 429,
/// so the form cannot be used to mail-bomb a list of addresses or to time the lookups in bulk.
/// Counted in Redis across replicas when it is configured and answers
/// ([`ResetRequests::admit_shared`]), and always in memory here, which decides alone when Redis
/// does not answer.
///
/// The memory is bounded by construction: clients are keyed as the login throttle keys them
/// (IPv6 by its /64, so one host cannot spread over its 2^64 addresses), each key holds a fixed
/// ring of [`RESETS_PER_CLIENT`] times, and a full map drops expired then idle-longest keys,
/// never all of them (clearing would hand a flooding client, and everyone else, a fresh budget).
/// The background work the admitted requests start is bounded too ([`ResetRequests::RESET_TASKS`]).
pub struct ResetRequests {
    clients: std::sync::Mutex<std::collections::HashMap<String, ResetRing>>,
    tasks: std::sync::Arc<tokio::sync::Semaphore>,
}

/// The times of a client's last [`RESETS_PER_CLIENT`] requests; `next` is the oldest (the slot
/// the next request overwrites).
#[derive(Clone, Copy, Default)]
struct ResetRing {
    times: [i64; RESETS_PER_CLIENT],
    next: usize,
}

impl ResetRing {
    fn last(&self) -> i64 {
        self.times[(self.next + RESETS_PER_CLIENT - 1) % RESETS_PER_CLIENT]
    }
}

impl Default for ResetRequests {
    fn default() -> Self {
        ResetRequests {
            clients: Default::default(),
            tasks: std::sync::Arc::new(tokio::sync::Semaphore::new(Self::RESET_TASKS)),
        }
    }
}

impl ResetRequests {
    /// The window of [`RESETS_PER_CLIENT`].
    pub const WINDOW_MS: i64 = 60_000;
    /// Client keys kept.
    pub const MAX_ENTRIES: usize = 100_000;
    /// Reset lookups and mails running at once; requests admitted while all are busy are answered
    /// the same but do nothing (the answer never tells whether a mail went out).
    pub const RESET_TASKS: usize = 8;
    /// The key of requests whose client address is not known (all of them share one budget).
    const UNKNOWN_CLIENT: &'static str = "unknown";

    /// Counts a request from `client`; the seconds to wait when it is one too many.
    pub fn admit(&self, client: Option<std::net::IpAddr>, now: i64) -> Option<i64> {
        let key = client.map_or_else(
            || Self::UNKNOWN_CLIENT.to_string(),
            crate::auth::LoginThrottle::client_key,
        );
        let mut m = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= Self::MAX_ENTRIES && !m.contains_key(&key) {
            crate::auth::evict_idle(&mut m, Self::MAX_ENTRIES, now - Self::WINDOW_MS, |r| {
                r.last()
            });
        }
        let ring = m.entry(key).or_default();
        let oldest = ring.times[ring.next];
        if oldest > now - Self::WINDOW_MS {
            return Some((oldest + Self::WINDOW_MS - now + 999) / 1000);
        }
        ring.times[ring.next] = now;
        ring.next = (ring.next + 1) % RESETS_PER_CLIENT;
        None
    }

    /// A slot for one reset's background work, if one is free.
    fn task_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.tasks.clone().try_acquire_owned().ok()
    }

    /// [`ResetRequests::admit`] across replicas when Redis answers, else in this process; the
    /// request is counted here either way, so a replica that loses Redis keeps what it saw.
    pub async fn admit_shared(&self, client: Option<std::net::IpAddr>, now: i64) -> Option<i64> {
        let local = self.admit(client, now);
        let shared = match client {
            Some(ip) => crate::shared::get().reset_admit(ip).await,
            None => None,
        };
        // The stricter of the two (None: admitted; a longer wait wins).
        shared.map_or(local, |shared| shared.max(local))
    }
}

/// Asks for a reset link for `email` and returns at once: the lookup, the link and the mail all
/// happen in a spawned task, so neither the answer nor its delay tells whether the address has
/// an account.
///
/// At most [`ResetRequests::RESET_TASKS`] run at once (the slot is held through the mail): when
/// none is free the request is dropped and logged, and the caller answers exactly as it would
/// otherwise. Returns whether the work was started.
pub fn request_reset(state: &AppState, email: &str) -> bool {
    let Some(slot) = state.reset_requests().task_slot() else {
        tracing::warn!(
            slots = ResetRequests::RESET_TASKS,
            "Password reset request dropped: all reset slots are busy."
        );
        return false;
    };
    let state = state.clone();
    let email = email.to_string();
    tokio::spawn(async move {
        if let Err(e) = reset_in_background(&state, &email, slot).await {
            tracing::warn!(error = %e, "Password reset request failed.");
        }
    });
    true
}

/// Emails a reset link to the active user with this email, if there is one (nothing for unknown
/// addresses); at most one email a minute per account.
async fn reset_in_background(
    state: &AppState,
    email: &str,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> ServiceResult<()> {
    let Some(user) = identity::active_user_by_email(state.store(), email).await? else {
        tracing::info!("Password reset asked for an unknown email; nothing sent.");
        return Ok(());
    };
    if let Some(at) = identity::newest_live_link(state.store(), LinkPurpose::Reset, user.id).await?
    {
        if now_ms() - at < RESET_RESEND_MS {
            tracing::info!(
                user = user.id,
                "Password reset asked again within a minute; not sent."
            );
            return Ok(());
        }
    }
    let (secret, token) = new_token(state, LinkPurpose::Reset);
    identity::renew_link(
        state.store(),
        LinkPurpose::Reset,
        user.id,
        None,
        &secret,
        now_ms() + RESET_TTL_MS,
    )
    .await?;
    let url = link_url(state, LinkPurpose::Reset, &token);
    let text = format!(
        "Someone asked to reset the password of your Lookout account at {public}.\n\nOpen this link within an hour to choose a new one:\n{url}\n\nIf it was not you, ignore this email: your password stays as it is.\n",
        public = state.settings().public_url
    );
    let html = format!(
        "<p>Someone asked to reset the password of your Lookout account at {public}.</p><p><a href=\"{u}\">Choose a new password</a> within an hour.</p><p>{u}</p><p>If it was not you, ignore this email: your password stays as it is.</p>",
        public = crate::ui::escape(&state.settings().public_url),
        u = crate::ui::escape(&url)
    );
    // Sent after answering: an SMTP round trip would otherwise tell, by the answer's delay, which
    // addresses have an account.
    let state = state.clone();
    tokio::spawn(async move {
        let _slot = slot;
        match send_account_mail(
            &state,
            &user.email,
            "Reset your Lookout password",
            text,
            html,
        )
        .await
        {
            Ok(true) => tracing::info!(user = user.id, "Password reset link emailed."),
            Ok(false) => tracing::warn!(
                user = user.id,
                "Password reset asked but no SMTP server is set up (settings, account email)."
            ),
            Err(e) => tracing::warn!(user = user.id, error = %e, "Password reset email failed."),
        }
    });
    Ok(())
}

/// Checks a new password's length (the rule of `validate_new_user`).
pub fn validate_password(password: &str) -> ServiceResult<()> {
    if password.chars().count() < 8 {
        return Err(ServiceError::Invalid(
            "password must be at least 8 characters".into(),
        ));
    }
    if password.len() > 1024 {
        return Err(ServiceError::Invalid(
            "password must be at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Checks a display name: 1 to 100 characters after trimming.
pub fn validate_name(name: &str) -> ServiceResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ServiceError::Invalid(
            "name must have 1 to 100 characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// The mail settings as answers show them (the password redacted).
pub fn redacted(m: Option<MailSettings>) -> Value {
    match m {
        None => Value::Null,
        Some(mut m) => {
            if m.password.is_some() {
                m.password = Some(REDACTED.into());
            }
            serde_json::to_value(m).unwrap_or(Value::Null)
        }
    }
}

#[cfg(test)]
mod reset_limit_tests {
    use super::*;

    #[test]
    fn one_address_gets_five_reset_requests_a_minute() {
        let r = ResetRequests::default();
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: std::net::IpAddr = "192.0.2.2".parse().unwrap();
        let t = 1_000_000;
        for i in 0..5 {
            assert_eq!(r.admit(Some(a), t + i), None);
        }
        assert_eq!(r.admit(Some(a), t + 10), Some(60), "the sixth waits");
        assert_eq!(r.admit(Some(b), t + 10), None, "another address does not");
        assert_eq!(r.admit(Some(a), t + ResetRequests::WINDOW_MS + 1), None);
    }
}

#[cfg(test)]
mod reset_bound_tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_addresses_of_one_ipv6_64_share_one_budget() {
        let r = ResetRequests::default();
        let t = 1_000_000;
        for i in 0..5 {
            let a = format!("2001:db8:1:2::{:x}", i + 1);
            assert_eq!(r.admit(ip(&a), t + i), None);
        }
        assert!(
            r.admit(ip("2001:db8:1:2:ffff::9"), t + 10).is_some(),
            "a sixth address of the same /64 waits"
        );
        assert_eq!(
            r.admit(ip("2001:db8:1:3::1"), t + 10),
            None,
            "another /64 does not"
        );
    }

    #[test]
    fn requests_without_a_client_address_share_one_budget() {
        let r = ResetRequests::default();
        let t = 1_000_000;
        for i in 0..5 {
            assert_eq!(r.admit(None, t + i), None);
        }
        assert_eq!(r.admit(None, t + 10), Some(60));
    }

    #[test]
    fn a_flood_of_new_addresses_does_not_wipe_a_limited_client() {
        let r = ResetRequests::default();
        let t = 1_000_000;
        let flood = |from: u32, n: u32, at: i64| {
            for i in from..from + n {
                let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                r.admit(Some(a), at + i64::from(i) / 10);
            }
        };
        let max = ResetRequests::MAX_ENTRIES as u32;
        // The map fills with clients who asked once, over 10 s.
        flood(0, max, t);
        // A client uses its whole budget …
        let limited = ip("198.51.100.7");
        let at = t + 20_000;
        for i in 0..5 {
            assert_eq!(r.admit(limited, at + i), None);
        }
        // … and more new addresses arrive while it waits.
        flood(max, max / 4, at + 1);
        let size = r.clients.lock().unwrap().len();
        assert!(size <= ResetRequests::MAX_ENTRIES, "{size} keys kept");
        assert!(
            r.admit(limited, at + 30_000).is_some(),
            "the limited client still has to wait"
        );
    }

    #[test]
    fn reset_work_runs_in_at_most_eight_slots() {
        let r = ResetRequests::default();
        let held: Vec<_> = (0..ResetRequests::RESET_TASKS)
            .map(|_| r.task_slot().expect("a free slot"))
            .collect();
        assert!(r.task_slot().is_none(), "a ninth finds none free");
        drop(held);
        assert!(r.task_slot().is_some(), "slots come back when work ends");
    }
}
