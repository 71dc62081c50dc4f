//! The JSON body an endpoint receives (SPEC §4).
//!
//! The body is rebuilt from the stored event on every attempt rather than stored per
//! delivery; the build is deterministic, so every attempt sends the same bytes.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{EventId, EventType, WebhookId, WorkspaceId};

/// What the envelope of one delivery is made of.
pub struct Envelope<'a> {
    pub event_id: &'a EventId,
    pub event: &'a EventType,
    pub timestamp: DateTime<Utc>,
    pub webhook_id: WebhookId,
    pub workspace_id: WorkspaceId,
    /// The event's `data`, already serialized as compact JSON.
    pub data_json: &'a str,
}

impl Envelope<'_> {
    /// Compact JSON: `{"id","event","timestamp","webhook_id","workspace_id","data"}`.
    /// Written into one buffer sized for it: this runs for every attempt.
    pub fn to_body(&self) -> String {
        use std::io::Write as _;
        let (id, event) = (self.event_id.as_str(), self.event.as_str());
        // Quotes and escapes aside, the fixed text, a timestamp and two UUIDs are under 160 bytes.
        let mut body = Vec::with_capacity(160 + 2 * (id.len() + event.len()) + self.data_json.len());
        body.extend_from_slice(br#"{"id":"#);
        serde_json::to_writer(&mut body, id).expect("a string serializes into a Vec");
        body.extend_from_slice(br#","event":"#);
        serde_json::to_writer(&mut body, event).expect("a string serializes into a Vec");
        write!(
            body,
            r#","timestamp":"{}","webhook_id":"{}","workspace_id":"{}","data":{}}}"#,
            self.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.webhook_id,
            self.workspace_id,
            self.data_json,
        )
        .expect("writing into a Vec cannot fail");
        String::from_utf8(body).expect("JSON built from strings is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_compact_json_with_every_field() {
        let event_id = EventId::parse("id", "evt_\"1\"").unwrap();
        let event = EventType::parse("event", "artifact.completed").unwrap();
        let webhook_id = WebhookId::generate();
        let body = Envelope {
            event_id: &event_id,
            event: &event,
            timestamp: DateTime::from_timestamp(1_775_471_400, 0).unwrap(),
            webhook_id,
            workspace_id: WorkspaceId::DEFAULT,
            data_json: r#"{"a":[1,2]}"#,
        }
        .to_body();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["id"], "evt_\"1\"");
        assert_eq!(parsed["event"], "artifact.completed");
        assert_eq!(parsed["timestamp"], "2026-04-06T10:30:00Z");
        assert_eq!(parsed["webhook_id"], webhook_id.to_string());
        assert_eq!(parsed["workspace_id"], WorkspaceId::DEFAULT.to_string());
        assert_eq!(parsed["data"], serde_json::json!({"a": [1, 2]}));
        assert_eq!(body, serde_json::to_string(&parsed).map(|_| body.clone()).unwrap());
        assert!(!body.contains(' '));
    }
}
