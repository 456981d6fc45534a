//! Signed one-click links: `/incidents/{id}/{action}?exp=…&sig=…`, where `sig` is an HMAC of the
//! incident, the action and the expiry under a key derived from Lookout's secret key. Anyone
//! holding the link (the person paged) can act on that one incident until it expires, without
//! logging in; nobody can forge one for another incident or action.

use super::Alerting;
use lookout_core::time::now_ms;

/// How long a link works: a week, longer than any sane incident stays open unacknowledged.
pub const LINK_TTL_MS: i64 = 7 * 86_400_000;

/// What a link may do.
pub const ACTIONS: &[&str] = &["acknowledge", "resolve"];

fn message(id: i64, action: &str, exp: i64) -> String {
    format!("incident:{id}:{action}:{exp}")
}

/// The signed link for `action` on incident `id`.
pub fn signed(a: &Alerting, id: i64, action: &str) -> String {
    let exp = now_ms() + LINK_TTL_MS;
    let sig = a.sealer().sign(&message(id, action, exp));
    format!(
        "{}/incidents/{id}/{action}?exp={exp}&sig={sig}",
        a.public_url()
    )
}

/// Why a link was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not an action links can do.
    UnknownAction,
    /// Past its expiry.
    Expired,
    /// The signature does not match.
    BadSignature,
}

/// Checks a link's parameters.
pub fn verify(a: &Alerting, id: i64, action: &str, exp: i64, sig: &str) -> Result<(), Refused> {
    if !ACTIONS.contains(&action) {
        return Err(Refused::UnknownAction);
    }
    if !a.sealer().verify(&message(id, action, exp), sig) {
        return Err(Refused::BadSignature);
    }
    if exp < now_ms() {
        return Err(Refused::Expired);
    }
    Ok(())
}
