//! Webhook secrets at rest: AES-256-GCM (ring) under the master key.
//!
//! Stored form: `enc:v1:` + base64(12-byte random nonce ‖ ciphertext ‖ tag). A value
//! without the prefix is read as plaintext, so a database written before encryption (or by
//! a tool) still loads; every write encrypts.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::StoreError;
use crate::files::{IfMissing, SecretError};

const PREFIX: &str = "enc:v1:";

/// The 32-byte master key (`HOOKBUS_MASTER_KEY`, base64, or `<data_dir>/master.key`).
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn from_base64(encoded: &str) -> Result<Self, String> {
        let bytes = BASE64.decode(encoded.trim()).map_err(|_| "the master key is not standard base64".to_owned())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "the master key must be 32 bytes".to_owned())?;
        Ok(Self(key))
    }

    /// The configured key, or the one in `<data_dir>/master.key`, generated (mode 0600) on
    /// first start. `in_use`: the database was written with a key, so none is generated (a
    /// new one could not read its secrets, and would be left on disk in the right one's place).
    pub fn resolve(configured: Option<&str>, data_dir: &Path, in_use: bool) -> Result<Self, SecretError> {
        if let Some(encoded) = configured {
            return Self::from_base64(encoded)
                .map_err(|reason| SecretError::Configured { setting: "master_key", reason });
        }
        let if_missing = match in_use {
            false => IfMissing::Generate,
            true => IfMissing::Refuse(
                "the database's webhook secrets were encrypted with a master key: \
                 restore that file from your backup, or set HOOKBUS_MASTER_KEY",
            ),
        };
        crate::files::read_or_generate_secret(
            data_dir,
            "master.key",
            if_missing,
            |key| BASE64.encode(key),
            Self::from_base64,
        )
    }

    /// A value that identifies the key without revealing it (HMAC of a fixed label).
    pub fn check_value(&self) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        hex::encode(hmac::sign(&key, b"hookbus master key check").as_ref())
    }
}

pub struct SecretCipher {
    key: LessSafeKey,
}

impl SecretCipher {
    pub fn new(master: &MasterKey) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, &master.0).expect("a 32-byte key is valid for AES-256");
        Self { key: LessSafeKey::new(key) }
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).expect("the system random number generator failed");
        let mut sealed = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut sealed)
            .expect("sealing a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", BASE64.encode(out))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, StoreError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let wrong = || StoreError::Corrupt("a webhook secret does not decrypt under this master key".into());
        let mut bytes = BASE64.decode(encoded).map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| wrong())?;
        let plaintext = self.key.open_in_place(nonce, Aad::empty(), &mut sealed).map_err(|_| wrong())?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey([byte; 32])
    }

    #[test]
    fn secrets_round_trip_and_never_appear_in_the_stored_form() {
        let cipher = SecretCipher::new(&key(7));
        let stored = cipher.encrypt("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0");
        assert!(stored.starts_with(PREFIX));
        assert!(!stored.contains("c2VjcmV0"));
        assert_ne!(stored, cipher.encrypt("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"), "random nonces");
        assert_eq!(cipher.decrypt(&stored).unwrap(), "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0");
    }

    #[test]
    fn a_wrong_key_fails_instead_of_returning_garbage() {
        let stored = SecretCipher::new(&key(1)).encrypt("a-secret-of-twenty-chars");
        assert!(SecretCipher::new(&key(2)).decrypt(&stored).is_err());
        assert_ne!(key(1).check_value(), key(2).check_value());
    }

    #[test]
    fn plaintext_values_are_read_as_they_are() {
        assert_eq!(SecretCipher::new(&key(1)).decrypt("plain-secret-value").unwrap(), "plain-secret-value");
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(MasterKey::from_base64(&BASE64.encode([0u8; 32])).is_ok());
        assert!(MasterKey::from_base64(&BASE64.encode([0u8; 16])).is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
