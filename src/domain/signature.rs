//! HMAC-SHA256 signatures (SPEC §4), computed with `ring`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::hmac;

use super::WebhookSecret;

/// One Standard Webhooks entry: `v1,<base64 HMAC(key, "{id}.{timestamp}.{body}")>`.
pub fn standard_signature(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut entry = String::with_capacity(ENTRY_LEN);
    push_standard_signature(&mut entry, secret, msg_id, timestamp, body);
    entry
}

/// `v1,` and 44 characters of base64 (32 bytes).
const ENTRY_LEN: usize = 47;

fn push_standard_signature(out: &mut String, secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) {
    let mut ctx = hmac::Context::with_key(&secret.keys().standard);
    ctx.update(msg_id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    out.push_str("v1,");
    BASE64.encode_string(ctx.sign().as_ref(), out);
}

/// The `webhook-signature` header: one entry per signing secret, space-separated, newest first.
/// Built into one string: this runs for every attempt.
pub fn standard_signature_header(secrets: &[&WebhookSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut header = String::with_capacity(secrets.len() * (ENTRY_LEN + 1));
    for (i, secret) in secrets.iter().enumerate() {
        if i > 0 {
            header.push(' ');
        }
        push_standard_signature(&mut header, secret, msg_id, timestamp, body);
    }
    header
}

/// The `X-Webhook-Signature` header: `sha256=<hex HMAC(secret as UTF-8, body)>`.
pub fn hex_signature(secret: &WebhookSecret, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac::sign(&secret.keys().legacy, body).as_ref()))
}

/// What a receiver learns from checking a delivery's headers against its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureCheck {
    /// An entry of `webhook-signature` verifies.
    pub standard: bool,
    /// `X-Webhook-Signature` verifies.
    pub hex: bool,
    /// `webhook-timestamp` is within the tolerance of now (a replayed request is not).
    pub fresh: bool,
}

/// How far `webhook-timestamp` may be from the receiver's clock, as the Standard Webhooks
/// libraries allow by default.
pub const TIMESTAMP_TOLERANCE_S: i64 = 300;

/// Checks a delivery as a receiver should (SPEC §4): each header's HMAC compared in constant
/// time, and the timestamp against `now` (Unix seconds).
pub fn check_signatures(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: &str,
    standard_header: &str,
    hex_header: &str,
    body: &[u8],
    now: i64,
) -> SignatureCheck {
    let keys = secret.keys();
    let signed = [msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    let standard = standard_header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|encoded| BASE64.decode(encoded).is_ok_and(|tag| hmac::verify(&keys.standard, &signed, &tag).is_ok()));
    let hex = hex_header
        .strip_prefix("sha256=")
        .and_then(|encoded| hex::decode(encoded).ok())
        .is_some_and(|tag| hmac::verify(&keys.legacy, body, &tag).is_ok());
    let fresh = timestamp.parse::<i64>().is_ok_and(|at| (now - at).abs() <= TIMESTAMP_TOLERANCE_S);
    SignatureCheck { standard, hex, fresh }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_verifies_what_hookbus_signs_and_nothing_else() {
        let secret = WebhookSecret::parse("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let other = WebhookSecret::generate();
        let body = br#"{"event":"artifact.completed"}"#;
        let standard = standard_signature_header(&[&other, &secret], "msg_1", 1_000, body);
        let hex = hex_signature(&secret, body);
        let check = check_signatures(&secret, "msg_1", "1000", &standard, &hex, body, 1_100);
        assert_eq!(check, SignatureCheck { standard: true, hex: true, fresh: true });
        // Another body, another id, a stale timestamp, garbage: each fails on its own.
        let check = check_signatures(&secret, "msg_1", "1000", &standard, &hex, b"{}", 1_000);
        assert_eq!((check.standard, check.hex), (false, false));
        assert!(!check_signatures(&secret, "msg_2", "1000", &standard, &hex, body, 1_000).standard);
        assert!(!check_signatures(&secret, "msg_1", "1000", &standard, &hex, body, 1_000 + 301).fresh);
        let check = check_signatures(&secret, "msg_1", "x", "v1,%%% v2,abc", "sha256=zz", body, 1_000);
        assert_eq!(check, SignatureCheck { standard: false, hex: false, fresh: false });
    }

    #[test]
    fn standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature =
            standard_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn hex_signature_is_hmac_of_the_body_under_the_utf8_secret() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        // Our secrets are at least 16 chars, so build the value directly.
        let secret = WebhookSecret::from_stored("Jefe".to_owned());
        assert_eq!(
            hex_signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rotation_header_lists_newest_first() {
        let new = WebhookSecret::parse("secret", "new-secret-0123456789").unwrap();
        let old = WebhookSecret::parse("secret", "old-secret-0123456789").unwrap();
        let header = standard_signature_header(&[&new, &old], "id", 1, b"{}");
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0], standard_signature(&new, "id", 1, b"{}"));
        assert_eq!(entries[1], standard_signature(&old, "id", 1, b"{}"));
    }
}
