//! Workspace API keys: `hbk_` + base64url of 32 random bytes. Only their SHA-256 is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "hbk_";
/// How much of a key is kept to tell keys apart: `hbk_` and 8 characters (48 of its 256
/// random bits).
const SHOWN_CHARS: usize = 12;

/// A freshly generated key: the plaintext (shown once) and the hash (stored).
pub struct NewApiKey {
    pub plaintext: String,
    pub hash: String,
}

impl NewApiKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).expect("the system random number generator failed");
        let plaintext = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = hash_key(&plaintext);
        Self { plaintext, hash }
    }

    /// The first characters of the key, stored and listed so keys can be told apart.
    pub fn prefix(&self) -> &str {
        &self.plaintext[..SHOWN_CHARS]
    }
}

/// Whether a bearer token is shaped like a workspace key (the admin token never is).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// SHA-256 (hex) of a presented key. Keys carry 256 bits of entropy, so a fast hash is the
/// right tool: looking the hash up reveals nothing useful about any key.
pub fn hash_key(key: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, key.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_stored_only_as_their_hash() {
        let a = NewApiKey::generate();
        let b = NewApiKey::generate();
        assert!(looks_like_key(&a.plaintext));
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(a.hash, hash_key(&a.plaintext));
        assert!(!a.hash.contains(&a.plaintext[4..]));
        assert_eq!(a.hash.len(), 64);
        assert!(a.prefix().starts_with("hbk_") && a.prefix().len() == 12 && a.plaintext.starts_with(a.prefix()));
    }
}
