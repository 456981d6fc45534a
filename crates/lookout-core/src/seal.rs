//! Encryption of stored credentials (monitor passwords, bearer tokens, secret headers).
//!
//! Values are sealed with ChaCha20-Poly1305 under a 256-bit key that lives outside the database
//! (`LOOKOUT_SECRET_KEY`, or a key file in the data directory), so a copy of the database or a
//! backup does not hand out the credentials Lookout uses. A sealed value reads
//! `enc:v1:<hex of nonce and ciphertext>`; a random 96-bit nonce per value.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::rngs::OsRng;
use rand::RngCore;

const PREFIX: &str = "enc:v1:";

/// Seals and opens values under one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    /// A second key derived from the first, for signing links (never used to encrypt).
    sign_key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// HMAC-SHA256 of `msg` under `key`, as lowercase hex (webhook signatures, signed links).
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    use hmac::Mac;
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    hex::encode(m.finalize().into_bytes())
}

/// Whether a stored value is sealed.
pub fn is_sealed(v: &str) -> bool {
    v.starts_with(PREFIX)
}

impl Sealer {
    /// A key from 64 hex characters.
    pub fn from_hex(key: &str) -> Result<Sealer, String> {
        let bytes = hex::decode(key.trim())
            .map_err(|_| "the secret key must be 64 hex characters".to_string())?;
        if bytes.len() != 32 {
            return Err("the secret key must be 64 hex characters (256 bits)".into());
        }
        use sha2::Digest;
        let mut d = sha2::Sha256::new();
        d.update(b"lookout link signing v1\0");
        d.update(&bytes);
        Ok(Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
            sign_key: d.finalize().into(),
        })
    }

    /// An HMAC-SHA256 of `msg` under the link-signing key, as hex (for signed one-click links).
    pub fn sign(&self, msg: &str) -> String {
        hmac_sha256_hex(&self.sign_key, msg.as_bytes())
    }

    /// Whether `sig` is [`Sealer::sign`] of `msg`, compared in constant time.
    pub fn verify(&self, msg: &str, sig: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.sign(msg).as_bytes().ct_eq(sig.as_bytes()).into()
    }

    /// A new random key, as 64 hex characters.
    pub fn new_key_hex() -> String {
        crate::secret::random_hex(32)
    }

    /// Seals `plain` (a value already sealed is returned as is).
    pub fn seal(&self, plain: &str) -> String {
        if is_sealed(plain) {
            return plain.to_string();
        }
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce size cannot fail; an empty result would only
        // make the value unreadable, never leak it.
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}", hex::encode(out))
    }

    /// Opens a sealed value; a value that is not sealed (written before sealing) is returned as is.
    pub fn open(&self, stored: &str) -> Result<String, String> {
        let Some(body) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let raw = hex::decode(body).map_err(|_| "sealed value is not hex".to_string())?;
        if raw.len() < 12 {
            return Err("sealed value is too short".into());
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| {
                "sealed value does not open with this key (was LOOKOUT_SECRET_KEY changed?)"
                    .to_string()
            })?;
        String::from_utf8(plain).map_err(|_| "sealed value is not text".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key() {
        let s = Sealer::from_hex(&Sealer::new_key_hex()).unwrap();
        let sealed = s.seal("hunter2");
        assert!(is_sealed(&sealed) && !sealed.contains("hunter2"));
        assert_ne!(sealed, s.seal("hunter2"), "a fresh nonce each time");
        assert_eq!(s.open(&sealed).unwrap(), "hunter2");
        assert_eq!(s.seal(&sealed), sealed, "sealing twice is a no-op");
        assert_eq!(s.open("plain").unwrap(), "plain");
        let other = Sealer::from_hex(&Sealer::new_key_hex()).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(Sealer::from_hex("abcd").is_err());
    }
}
