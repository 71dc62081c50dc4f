//! Webhook signing secrets.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::sync::{Arc, OnceLock};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::ValidationError;

const PREFIX: &str = "whsec_";

/// A signing secret: `whsec_<base64 of 24–64 bytes>` or any 16–256 character string.
#[derive(Clone)]
pub struct WebhookSecret {
    raw: String,
    /// HMAC keys, prepared on the first signature: every attempt signs twice, and preparing
    /// a key hashes it (and decodes it) again; webhooks that never send hold nothing.
    keys: OnceLock<Arc<SigningKeys>>,
}

/// The two HMAC-SHA256 keys of a secret, ready to sign with.
pub struct SigningKeys {
    /// Standard Webhooks: the decoded part after `whsec_`, else the UTF-8 bytes.
    pub standard: hmac::Key,
    /// `X-Webhook-Signature`: the secret as given, as UTF-8.
    pub legacy: hmac::Key,
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for WebhookSecret {}

impl WebhookSecret {
    /// `whsec_` + base64 of 32 random bytes.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).expect("the system random number generator failed");
        Self::new(format!("{PREFIX}{}", BASE64.encode(bytes)))
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let chars = raw.chars().count();
        if !(16..=256).contains(&chars) {
            return Err(ValidationError::new(field, "must be 16 to 256 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(ValidationError::new(field, "must not contain control characters"));
        }
        if let Some(encoded) = raw.strip_prefix(PREFIX) {
            let decoded = BASE64
                .decode(encoded)
                .map_err(|_| ValidationError::new(field, "after 'whsec_' must be standard base64"))?;
            if !(24..=64).contains(&decoded.len()) {
                return Err(ValidationError::new(field, "after 'whsec_' must encode 24 to 64 bytes"));
            }
        }
        Ok(Self::new(raw.to_owned()))
    }

    fn new(raw: String) -> Self {
        Self { raw, keys: OnceLock::new() }
    }

    /// Rebuilds a secret read back from storage, where it was validated on the way in.
    pub fn from_stored(raw: String) -> Self {
        Self::new(raw)
    }

    /// The secret as given, for showing to its owner and for `X-Webhook-Signature`.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The Standard Webhooks key: the decoded part after `whsec_`, else the raw UTF-8 bytes.
    pub fn signing_key(&self) -> Vec<u8> {
        self.raw
            .strip_prefix(PREFIX)
            .and_then(|encoded| BASE64.decode(encoded).ok())
            .unwrap_or_else(|| self.raw.as_bytes().to_vec())
    }

    /// The HMAC keys, prepared once.
    pub fn keys(&self) -> &SigningKeys {
        self.keys.get_or_init(|| {
            Arc::new(SigningKeys {
                standard: hmac::Key::new(hmac::HMAC_SHA256, &self.signing_key()),
                legacy: hmac::Key::new(hmac::HMAC_SHA256, self.raw.as_bytes()),
            })
        })
    }
}

impl std::fmt::Debug for WebhookSecret {
    // Secrets never reach logs, not even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_whsec_base64_of_32_bytes_and_parse_back() {
        let secret = WebhookSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.signing_key().len(), 32);
        assert!(WebhookSecret::parse("secret", secret.expose()).is_ok());
        assert_ne!(secret, WebhookSecret::generate());
    }

    #[test]
    fn plain_secrets_sign_with_their_utf8_bytes() {
        let secret = WebhookSecret::parse("secret", "a-plain-secret-123").unwrap();
        assert_eq!(secret.signing_key(), b"a-plain-secret-123");
    }

    #[test]
    fn bad_secrets_are_refused() {
        let short_whsec = format!("whsec_{}", BASE64.encode([0u8; 16]));
        for bad in ["too-short", "whsec_not*base64*at*all!!", short_whsec.as_str()] {
            assert!(WebhookSecret::parse("secret", bad).is_err(), "{bad}");
        }
        assert!(WebhookSecret::parse("secret", &"x".repeat(257)).is_err());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let secret = WebhookSecret::parse("secret", "super-secret-value-1").unwrap();
        assert!(!format!("{secret:?}").contains("super"));
    }
}
