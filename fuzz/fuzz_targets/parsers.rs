//! Fuzzes the parsers that take untrusted input: webhook URLs, event types and patterns,
//! event ids, secrets, and webhook bodies through validation and the envelope.
//! `cargo fuzz run parsers` (see the README).
#![no_main]

use hookbus::domain::envelope::Envelope;
use hookbus::domain::url::UrlPolicy;
use hookbus::domain::webhook::{Webhook, WebhookInput};
use hookbus::domain::{EventId, EventPattern, EventType, WebhookId, WebhookSecret, WebhookUrl, WorkspaceId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for policy in [UrlPolicy::default(), UrlPolicy { allow_http: true, allow_private: true }] {
        if let Ok(url) = WebhookUrl::parse("url", text, policy) {
            // A URL that parsed must survive a round trip through storage.
            assert_eq!(WebhookUrl::from_stored(url.as_str()).unwrap(), url);
        }
    }
    if let Ok(pattern) = EventPattern::parse("events", text) {
        assert_eq!(EventPattern::parse("events", &pattern.to_string()).unwrap(), pattern);
    }
    let _ = WebhookSecret::parse("secret", text);
    if let (Ok(event), Ok(id)) = (EventType::parse("event", text), EventId::parse("id", text)) {
        let body = Envelope {
            event_id: &id,
            event: &event,
            timestamp: chrono::DateTime::UNIX_EPOCH,
            webhook_id: WebhookId::generate(),
            workspace_id: WorkspaceId::DEFAULT,
            data_json: "{}",
        }
        .to_body();
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("the envelope is always JSON");
        assert_eq!(parsed["event"], event.as_str());
    }
    if let Ok(input) = serde_json::from_slice::<WebhookInput>(data) {
        let _ = Webhook::create(WorkspaceId::DEFAULT, input, UrlPolicy::default(), chrono::Utc::now());
    }
});
