//! Fuzzes the parsers of identity input that arrives before anyone is signed in: invitation and
//! reset link tokens (`/invite/{token}`, `/reset/{token}`), the pending sign-in token between
//! password and code, typed codes and recovery codes, and the path-to-action reader of the audit
//! log. None may panic; a token opens only with a right signature, and an opened secret is the
//! 64 hex characters the server made.
//!
//! Run: `fuzz/run.sh identity_tokens` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_core::seal::Sealer;
use lookout_server::tenancy::{audit, links, totp};
use lookout_store::identity::LinkPurpose;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let sealer = Sealer::from_hex(&"5a".repeat(32)).expect("a valid key");
    for purpose in [LinkPurpose::Invite, LinkPurpose::Reset] {
        if let Some(secret) = links::open_token_with(&sealer, purpose, s) {
            assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
    let _ = totp::open_pending_with(&sealer, s, 0);
    if let Some(code) = totp::six_digits(s) {
        assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    }
    assert!(totp::recovery_form(s).chars().count() <= 64);
    let (action, _) = audit::normalise(s);
    assert!(action.chars().count() <= 300);
});
