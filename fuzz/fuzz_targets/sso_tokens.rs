//! Fuzzes what single sign-on reads from an OpenID provider: discovery documents, key sets and
//! ID tokens (parsed by `openidconnect`, verified with Lookout's algorithm list), and the groups
//! claim Lookout reads from a token's payload. None may panic, and no token verifies against an
//! empty key set.
//!
//! Run: `fuzz/run.sh sso_tokens` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use lookout_server::tenancy::sso::{accepted_algorithms, groups_of};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, IssuerUrl, Nonce, ProviderMetadataWithLogout};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ProviderMetadataWithLogout>(data);
    let _ = serde_json::from_slice::<CoreJsonWebKeySet>(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    assert!(groups_of(s, "groups").len() <= 1000);
    if let Ok(token) = CoreIdToken::from_str(s) {
        let verifier = CoreIdTokenVerifier::new_public_client(
            ClientId::new("lookout".into()),
            IssuerUrl::new("https://id.example.com".into()).expect("a valid URL"),
            CoreJsonWebKeySet::new(Vec::new()),
        )
        .set_allowed_algs(accepted_algorithms());
        assert!(token.claims(&verifier, &Nonce::new("n".into())).is_err());
    }
});
