//! Secrets: API tokens, session ids, DSN keys and password hashes.
//!
//! Tokens and session ids are 160+ bits of randomness, so a fast SHA-256 of them is safe to store
//! (nobody can brute-force the preimage); passwords are low-entropy and get argon2id instead.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every Lookout API token, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "lk_";

/// `n` random bytes from the OS, as lowercase hex.
pub fn random_hex(n_bytes: usize) -> String {
    let mut buf = vec![0u8; n_bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A new API token: `lk_` and 40 hex characters (160 bits).
pub fn new_api_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(20))
}

/// A new DSN public key: 32 hex characters, the shape Sentry SDKs expect.
pub fn new_dsn_key() -> String {
    random_hex(16)
}

/// The stored form of a token or session id: SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets without leaking where they differ through timing.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A password that could not be hashed (argon2 refused its parameters; not expected in practice).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes a password with argon2id and a random salt, in PHC string form.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches a stored PHC hash. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("correct horse", "not-a-hash"));
    }

    #[test]
    fn tokens_and_keys_have_their_documented_shape() {
        let t = new_api_token();
        assert!(t.starts_with("lk_") && t.len() == 43);
        assert_ne!(t, new_api_token());
        let k = new_dsn_key();
        assert_eq!(k.len(), 32);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(hash_token("a"), hash_token("a"));
        assert_ne!(hash_token("a"), hash_token("b"));
        assert!(secrets_equal("abc", "abc") && !secrets_equal("abc", "abd"));
    }
}
