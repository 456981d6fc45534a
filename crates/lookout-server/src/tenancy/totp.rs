//! Two-factor sign-in with time-based one-time codes (TOTP, RFC 6238: SHA-1, 6 digits, 30-second
//! steps, one step of clock skew either way), with the `totp-rs` crate; the enrolment QR code is
//! drawn as SVG by `qrcode`.
//!
//! The seed is sealed at rest (`Sealer::seal`) and never logged or shown again after enrolment.
//! A code is accepted once: the newest accepted step is stored and only later steps pass. Ten
//! recovery codes (64 random bits each, only their SHA-256 kept) are shown once at enrolment and
//! each works once.
//!
//! At sign-in the password comes first; then, before any session exists, the code (or, when it
//! is required and not set up yet, the enrolment). Between the two steps the browser holds a
//! signed, five-minute "pending sign-in" token naming the user. Every code tried counts in the
//! login throttle like a password.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_core::secret::{random_hex, secrets_equal};
use lookout_core::time::now_ms;
use lookout_store::sso::Grants;
use lookout_store::tenancy::User;
use lookout_store::{identity, mfa, StoreError};

/// The issuer authenticator apps show.
const ISSUER: &str = "Lookout";
/// The server setting holding [`SecuritySettings`].
pub const SECURITY_SETTING: &str = "security";
/// How long the step between password and code may take.
const PENDING_TTL_MS: i64 = 5 * 60_000;
/// Recovery codes made at enrolment.
const RECOVERY_CODES: usize = 10;

/// Installation-wide sign-in rules (admin).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SecuritySettings {
    /// Everyone must sign in with a second factor; users without one set it up at their next
    /// sign-in, before a session is made.
    #[serde(default)]
    pub require_totp: bool,
}

/// The installation's sign-in rules.
pub async fn security(state: &AppState) -> ServiceResult<SecuritySettings> {
    Ok(
        match identity::setting(state.store(), SECURITY_SETTING).await? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => SecuritySettings::default(),
        },
    )
}

/// Stores the installation's sign-in rules.
pub async fn save_security(state: &AppState, s: &SecuritySettings) -> ServiceResult<()> {
    let v = serde_json::to_value(s).map_err(|e| ServiceError::Internal(e.to_string()))?;
    identity::put_setting(state.store(), SECURITY_SETTING, Some(&v)).await?;
    Ok(())
}

/// Whether the user must use a second factor (an admin required it of them, or of everyone).
pub async fn required(state: &AppState, user_id: i64) -> ServiceResult<bool> {
    Ok(mfa::required_for(state.store(), user_id).await? || security(state).await?.require_totp)
}

/// A user's second factor, as their account page and `/api/v1/me` show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Status {
    /// Asked at every sign-in.
    pub enabled: bool,
    /// The user may not turn it off (required of them or of everyone).
    pub required: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

/// The user's second-factor status.
pub async fn status(state: &AppState, user_id: i64) -> ServiceResult<Status> {
    let enabled = mfa::totp(state.store(), user_id)
        .await?
        .is_some_and(|t| t.confirmed);
    Ok(Status {
        enabled,
        required: required(state, user_id).await?,
        recovery_codes_left: if enabled {
            mfa::recovery_codes_left(state.store(), user_id).await?
        } else {
            0
        },
    })
}

/// What an authenticator app needs to enrol.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Enrolment {
    /// The seed in base32, to type in by hand.
    pub secret: String,
    /// The `otpauth://` URL the QR code holds.
    pub otpauth_url: String,
    /// The QR code as an SVG document.
    pub qr_svg: String,
}

fn totp_of(seed_hex: &str, email: &str) -> ServiceResult<totp_rs::TOTP> {
    let seed = hex::decode(seed_hex).map_err(|e| ServiceError::Internal(e.to_string()))?;
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        seed,
        Some(ISSUER.to_string()),
        email.replace(':', ""),
    )
    .map_err(|e| ServiceError::Internal(format!("TOTP: {e}")))
}

/// Starts enrolment with a new seed (replacing one not yet confirmed).
pub async fn begin(state: &AppState, user: &User) -> ServiceResult<Enrolment> {
    // 160 bits, the size RFC 4226 recommends for SHA-1.
    let seed = random_hex(20);
    match mfa::begin_enrolment(state.store(), user.id, &state.sealer().seal(&seed)).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ServiceError::Conflict(
                "two-factor sign-in is on already: turn it off first to set up a new device".into(),
            ))
        }
        other => other?,
    }
    tracing::info!(user = user.id, "Two-factor enrolment started.");
    enrolment_for(&seed, user)
}

/// Why [`begin_proven`] refused.
#[derive(Debug)]
pub enum BeginRefused {
    /// Too many wrong passwords or codes: wait this many seconds.
    Throttled(i64),
    /// Not proven, already on, or a failure: as for any service call.
    Service(ServiceError),
}

impl From<ServiceError> for BeginRefused {
    fn from(e: ServiceError) -> Self {
        BeginRefused::Service(e)
    }
}

impl From<StoreError> for BeginRefused {
    fn from(e: StoreError) -> Self {
        BeginRefused::Service(e.into())
    }
}

/// Starts enrolment from the account page or the API, which a stolen session cookie alone must
/// not do: the current password, and when a device is enrolled already, a current code from it
/// or a recovery code too (re-enrolment of a new phone; the old seed stops working at once and sign-in asks for
/// the new one's enrolment if it is required). Wrong passwords and codes count in the login
/// throttle.
pub async fn begin_proven(
    state: &AppState,
    user: &User,
    password: &str,
    code: Option<&str>,
    client: Option<std::net::IpAddr>,
) -> Result<Enrolment, BeginRefused> {
    let throttle = state.login_throttle();
    if let Err(wait_ms) = throttle.begin_shared(&user.email, client, now_ms()).await {
        return Err(BeginRefused::Throttled((wait_ms + 999) / 1000));
    }
    if !identity::password_matches(state.store(), user.id, password).await? {
        throttle.failed_shared(&user.email, client, now_ms()).await;
        return Err(ServiceError::Invalid("password: not your password".into()).into());
    }
    let enrolled = mfa::totp(state.store(), user.id)
        .await?
        .is_some_and(|t| t.confirmed);
    if enrolled {
        let code = code.unwrap_or_default();
        if code.trim().is_empty() {
            return Err(ServiceError::Invalid(
                "code: two-factor sign-in is on: type a current code from your app (or a recovery code) to set up a new one"
                    .into(),
            )
            .into());
        }
        if !verify(state, user, code).await? {
            throttle.failed_shared(&user.email, client, now_ms()).await;
            return Err(ServiceError::Invalid("code: wrong or already used code".into()).into());
        }
        mfa::disable(state.store(), user.id).await?;
        tracing::info!(user = user.id, "Two-factor device being replaced.");
    }
    throttle.succeeded_shared(&user.email, client).await;
    Ok(begin(state, user).await?)
}

/// The enrolment under way (the seed already shown), to show again after a wrong code; `None`
/// when none is under way.
pub async fn current_enrolment(state: &AppState, user: &User) -> ServiceResult<Option<Enrolment>> {
    match mfa::totp(state.store(), user.id).await? {
        Some(t) if !t.confirmed => {
            let seed = state
                .sealer()
                .open(&t.secret)
                .map_err(ServiceError::Internal)?;
            enrolment_for(&seed, user).map(Some)
        }
        _ => Ok(None),
    }
}

fn enrolment_for(seed: &str, user: &User) -> ServiceResult<Enrolment> {
    let totp = totp_of(seed, &user.email)?;
    let otpauth_url = totp.get_url();
    let qr_svg = qrcode::QrCode::new(otpauth_url.as_bytes())
        .map_err(|e| ServiceError::Internal(format!("QR code: {e}")))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    // Inline in a page: the `<?xml …?>` prolog is for files only.
    let qr_svg = match qr_svg.find("<svg") {
        Some(i) => qr_svg[i..].to_string(),
        None => qr_svg,
    };
    Ok(Enrolment {
        secret: totp.get_secret_base32(),
        otpauth_url,
        qr_svg,
    })
}

/// The step whose code `code` is, within one step of `now_s` either way.
fn matching_step(totp: &totp_rs::TOTP, code: &str, now_s: u64) -> Option<i64> {
    [now_s.saturating_sub(30), now_s, now_s + 30]
        .into_iter()
        .find(|t| secrets_equal(&totp.generate(*t), code))
        .and_then(|t| i64::try_from(t / 30).ok())
}

fn now_s() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or(0)
}

/// Six digits, spaces and dashes dropped (apps show `123 456`).
pub fn six_digits(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// A recovery code as typed, normalised: lower case, spaces and dashes dropped.
pub fn recovery_form(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .flat_map(char::to_lowercase)
        .take(64)
        .collect()
}

/// Confirms enrolment with a code from the app; answers the recovery codes (shown once).
pub async fn confirm(state: &AppState, user: &User, code: &str) -> ServiceResult<Vec<String>> {
    let Some(row) = mfa::totp(state.store(), user.id)
        .await?
        .filter(|t| !t.confirmed)
    else {
        return Err(ServiceError::Conflict(
            "no two-factor enrolment is under way: start one first".into(),
        ));
    };
    let seed = state
        .sealer()
        .open(&row.secret)
        .map_err(ServiceError::Internal)?;
    let totp = totp_of(&seed, &user.email)?;
    let step = six_digits(code)
        .and_then(|c| matching_step(&totp, &c, now_s()))
        .ok_or_else(|| {
            ServiceError::Invalid(
                "code: not the code your app shows now (check the phone's clock)".into(),
            )
        })?;
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let h = random_hex(8);
            format!("{}-{}-{}-{}", &h[0..4], &h[4..8], &h[8..12], &h[12..16])
        })
        .collect();
    let stored: Vec<String> = codes.iter().map(|c| recovery_form(c)).collect();
    if !mfa::confirm(state.store(), user.id, step, &stored).await? {
        return Err(ServiceError::Conflict(
            "no two-factor enrolment is under way: start one first".into(),
        ));
    }
    tracing::info!(user = user.id, "Two-factor sign-in turned on.");
    Ok(codes)
}

/// Checks a second factor at sign-in: a current code (accepted once) or an unused recovery code
/// (spent). False for anything else.
pub async fn verify(state: &AppState, user: &User, code: &str) -> ServiceResult<bool> {
    let Some(row) = mfa::totp(state.store(), user.id)
        .await?
        .filter(|t| t.confirmed)
    else {
        return Ok(false);
    };
    if let Some(c) = six_digits(code) {
        let seed = state
            .sealer()
            .open(&row.secret)
            .map_err(ServiceError::Internal)?;
        let totp = totp_of(&seed, &user.email)?;
        return Ok(match matching_step(&totp, &c, now_s()) {
            Some(step) if step > row.last_step => {
                mfa::accept_step(state.store(), user.id, step).await?
            }
            Some(_) => {
                tracing::info!(user = user.id, "Two-factor code refused: already used.");
                false
            }
            None => false,
        });
    }
    let used = mfa::use_recovery_code(state.store(), user.id, &recovery_form(code)).await?;
    if used {
        tracing::info!(user = user.id, "Recovery code used.");
    }
    Ok(used)
}

/// Turns two-factor sign-in off, unless it is required.
pub async fn disable(state: &AppState, user_id: i64) -> ServiceResult<()> {
    if required(state, user_id).await? {
        return Err(ServiceError::Conflict(
            "two-factor sign-in is required for your account: an admin can lift that".into(),
        ));
    }
    mfa::disable(state.store(), user_id).await?;
    tracing::info!(user = user_id, "Two-factor sign-in turned off.");
    Ok(())
}

/// Clears a user's second factor for them (an admin, when the phone and the recovery codes are
/// lost): the seed and recovery codes are deleted; if it is required they enrol at their next
/// sign-in.
pub async fn clear_for(state: &AppState, user_id: i64) -> ServiceResult<()> {
    mfa::disable(state.store(), user_id).await?;
    tracing::warn!(user = user_id, "Two-factor sign-in cleared by an admin.");
    Ok(())
}

/// What sign-in needs after a right password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondStep {
    /// Nothing: start the session.
    None,
    /// A code (or recovery code).
    Code,
    /// Required but not set up: enrol now, before a session exists.
    Enrol,
}

/// What `user` must still do to sign in.
pub async fn second_step(state: &AppState, user: &User) -> ServiceResult<SecondStep> {
    if mfa::totp(state.store(), user.id)
        .await?
        .is_some_and(|t| t.confirmed)
    {
        return Ok(SecondStep::Code);
    }
    Ok(if required(state, user.id).await? {
        SecondStep::Enrol
    } else {
        SecondStep::None
    })
}

fn pending_text(payload: &str) -> String {
    format!("lookout-pending-sign-in:{payload}")
}

/// A signed token naming a user whose password was right, valid five minutes, with what an SSO
/// sign-in's groups give (applied only once the second factor is right). `None`, logged, when
/// the grants make it longer than [`MAX_PENDING_TOKEN`]: such a token could never be opened, and
/// the sign-in would only ever answer "Sign-in expired".
pub fn pending_token(state: &AppState, user_id: i64, grants: Option<&Grants>) -> Option<String> {
    new_pending_token(state.sealer(), user_id, grants, now_ms())
}

fn new_pending_token(
    sealer: &lookout_core::seal::Sealer,
    user_id: i64,
    grants: Option<&Grants>,
    now: i64,
) -> Option<String> {
    let p = Pending {
        user_id,
        expires: now + PENDING_TTL_MS,
        nonce: random_hex(8),
        grants: grants.cloned(),
    };
    let token = token_of(sealer, &p);
    if token.len() > MAX_PENDING_TOKEN {
        tracing::error!(
            user = user_id,
            teams = grants.map_or(0, |g| g.join.len() + g.leave.len()),
            bytes = token.len(),
            max = MAX_PENDING_TOKEN,
            "SSO sign-in refused: the teams from [oidc.teams] are too many to carry through the second factor; shorten the mapping."
        );
        return None;
    }
    Some(token)
}

/// A live pending sign-in: whose, until when, and its nonce (what the wrong codes are counted
/// against, see `tenancy::code_guard`).
#[derive(Debug, Clone)]
pub struct Pending {
    /// The user whose password was right.
    pub user_id: i64,
    /// When it expires (ms).
    pub expires: i64,
    /// Its random part, the same in every token of this sign-in.
    pub nonce: String,
    /// The role and teams an SSO sign-in's groups give, applied after the code.
    pub grants: Option<Grants>,
}

impl Pending {
    /// When the sign-in began (ms): its grants are refused once a sign-in that began later
    /// has applied its own (see `lookout_store::sso::apply_grants`).
    pub fn issued_at(&self) -> i64 {
        self.expires - PENDING_TTL_MS
    }
}

/// The longest pending token opened: a user id, an expiry, a nonce, the grants (hex JSON of a
/// role and the team slugs the config lists) and a signature.
const MAX_PENDING_TOKEN: usize = 8 * 1024;

/// The same pending sign-in in a fresh token for the next form: same nonce and expiry, so
/// answering a wrong code neither extends it nor resets its count of wrong codes.
pub fn pending_again(state: &AppState, p: &Pending) -> String {
    token_of(state.sealer(), p)
}

fn token_of(sealer: &lookout_core::seal::Sealer, p: &Pending) -> String {
    let mut payload = format!("{}.{}.{}", p.user_id, p.expires, p.nonce);
    if let Some(g) = &p.grants {
        // Hex of JSON: no dot in it, so the token's fields still split on dots.
        payload.push('.');
        payload.push_str(&hex::encode(serde_json::to_vec(g).unwrap_or_default()));
    }
    let sig = sealer.sign(&pending_text(&payload));
    format!("{payload}.{sig}")
}

/// The pending sign-in a live token is for, if its signature is right.
pub fn open_pending(state: &AppState, token: &str) -> Option<Pending> {
    open_pending_full(state.sealer(), token, now_ms())
}

/// [`open_pending`]'s user with the sealer and the time given (the fuzz target's entry point).
pub fn open_pending_with(
    sealer: &lookout_core::seal::Sealer,
    token: &str,
    now: i64,
) -> Option<i64> {
    open_pending_full(sealer, token, now).map(|p| p.user_id)
}

fn open_pending_full(
    sealer: &lookout_core::seal::Sealer,
    token: &str,
    now: i64,
) -> Option<Pending> {
    if token.len() > MAX_PENDING_TOKEN {
        return None;
    }
    let (payload, sig) = token.rsplit_once('.')?;
    if !sealer.verify(&pending_text(payload), sig) {
        return None;
    }
    let mut parts = payload.split('.');
    let user_id: i64 = parts.next()?.parse().ok()?;
    let expires: i64 = parts.next()?.parse().ok()?;
    let nonce = parts.next()?.to_string();
    let grants = match parts.next() {
        Some(h) => Some(serde_json::from_slice(&hex::decode(h).ok()?).ok()?),
        None => None,
    };
    (expires > now).then_some(Pending {
        user_id,
        expires,
        nonce,
        grants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_tokens_carry_the_grants_and_refuse_any_change() {
        let sealer = lookout_core::seal::Sealer::from_hex(&"11".repeat(32)).unwrap();
        let grants = Grants {
            role: lookout_core::role::Role::Admin,
            join: vec!["payments".into()],
            leave: vec!["search".into()],
        };
        let p = Pending {
            user_id: 7,
            expires: 2_000,
            nonce: "abcd".into(),
            grants: Some(grants.clone()),
        };
        let token = token_of(&sealer, &p);
        let opened = open_pending_full(&sealer, &token, 1_000).unwrap();
        assert_eq!((opened.user_id, opened.grants), (7, Some(grants)));
        assert!(
            open_pending_full(&sealer, &token, 2_000).is_none(),
            "expired"
        );
        // Another role put in the grants: the signature no longer matches.
        let (payload, sig) = token.rsplit_once('.').unwrap();
        let (head, g) = payload.rsplit_once('.').unwrap();
        let forged = String::from_utf8(hex::decode(g).unwrap())
            .unwrap()
            .replace("admin", "viewer");
        let forged = format!("{head}.{}.{sig}", hex::encode(forged));
        assert!(open_pending_full(&sealer, &forged, 1_000).is_none());
        let plain = token_of(&sealer, &Pending { grants: None, ..p });
        assert!(open_pending_full(&sealer, &plain, 1_000)
            .unwrap()
            .grants
            .is_none());
    }

    #[test]
    fn a_pending_token_up_to_the_maximum_opens_and_a_longer_one_is_never_issued() {
        let sealer = lookout_core::seal::Sealer::from_hex(&"11".repeat(32)).unwrap();
        let now = 1_000_000;
        let grants = |n: usize| Grants {
            role: lookout_core::role::Role::Member,
            join: (0..n).map(|i| format!("team-{i:04}")).collect(),
            leave: vec![],
        };
        // The most teams whose token still fits: it is issued and opens with all of them.
        let mut n = 0;
        while new_pending_token(&sealer, 7, Some(&grants(n + 1)), now).is_some() {
            n += 1;
        }
        assert!(n > 50, "room for a real mapping: {n} teams");
        let token = new_pending_token(&sealer, 7, Some(&grants(n)), now).unwrap();
        assert!(token.len() <= MAX_PENDING_TOKEN);
        let opened = open_pending_full(&sealer, &token, now + 1).unwrap();
        assert_eq!(opened.issued_at(), now);
        assert_eq!(opened.grants.unwrap().join.len(), n);
        // One more team: refused at issue instead of a token that can only expire.
        assert!(new_pending_token(&sealer, 7, Some(&grants(n + 1)), now).is_none());
    }

    #[test]
    fn codes_match_rfc_6238_within_one_step_of_skew() {
        // RFC 6238 appendix B: SHA-1 seed "12345678901234567890", 8 digits at T=59 is 94287082;
        // its last six digits are the 6-digit code.
        let totp = totp_of(&hex::encode(b"12345678901234567890"), "ada@example.com").unwrap();
        assert_eq!(totp.generate(59), "287082");
        assert_eq!(matching_step(&totp, "287082", 59), Some(1));
        assert_eq!(matching_step(&totp, "287082", 89), Some(1), "one step late");
        assert_eq!(
            matching_step(&totp, "287082", 29),
            Some(1),
            "one step early"
        );
        assert_eq!(matching_step(&totp, "287082", 120), None, "two steps late");
        assert_eq!(six_digits("287 082").as_deref(), Some("287082"));
        assert_eq!(six_digits("28708"), None);
        assert_eq!(recovery_form("AB12-cd34 EF56-7890"), "ab12cd34ef567890");
    }
}
