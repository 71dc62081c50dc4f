#![warn(missing_docs)]
//! Event type names, subscription patterns and publisher-supplied event ids.

use std::fmt;

use serde::Serialize;

use super::ValidationError;

const MAX_EVENT_TYPE_LEN: usize = 128;
const MAX_EVENT_ID_LEN: usize = 128;
const OPERATIONAL_PREFIX: &str = "hookbus.";

/// An event type such as `artifact.completed`: `^[a-z0-9_-]+(\.[a-z0-9_-]+)*$`, ≤ 128 chars.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct EventType(String);

fn is_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl EventType {
    /// Parses an event type; `field` names it in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        if raw.len() > MAX_EVENT_TYPE_LEN || !raw.split('.').all(is_segment) {
            return Err(ValidationError::new(
                field,
                "must be dot-separated segments of a-z, 0-9, '_' or '-', at most 128 characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Rebuilds a type read back from storage, where it was validated on the way in.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// hookbus' own events (`hookbus.webhook.disabled`, …). Publishers may not use this
    /// namespace, and `*` does not match it: operational events go only to webhooks that
    /// subscribe to them by name or with `hookbus.*`.
    pub fn is_operational(&self) -> bool {
        self.0.starts_with(OPERATIONAL_PREFIX)
    }

    /// The type as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subscription: an exact type, a prefix wildcard `artifact.*`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    /// `*`: every event but hookbus' own `hookbus.*`.
    All,
    /// `prefix.*`; holds `prefix.` so matching is one `starts_with`.
    Prefix(String),
    /// Exactly this type.
    Exact(EventType),
}

impl EventPattern {
    /// Parses a pattern; `field` names it in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        if raw == "*" {
            return Ok(Self::All);
        }
        if let Some(prefix) = raw.strip_suffix(".*") {
            EventType::parse(field, prefix)?;
            return Ok(Self::Prefix(format!("{prefix}.")));
        }
        EventType::parse(field, raw)
            .map(Self::Exact)
            .map_err(|_| ValidationError::new(field, format!("'{raw}' is not an event type, 'prefix.*' or '*'")))
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &EventType) -> bool {
        match self {
            Self::All => !event.is_operational(),
            Self::Prefix(prefix) => event.as_str().starts_with(prefix.as_str()),
            Self::Exact(exact) => exact == event,
        }
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Exact(exact) => f.write_str(exact.as_str()),
        }
    }
}

impl Serialize for EventPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The id of a published event: given by the publisher (≤ 128 chars, for idempotency)
/// or generated as a UUID v7.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// A new UUID v7 id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// Parses a publisher's id; `field` names it in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > MAX_EVENT_ID_LEN || raw.chars().any(char::is_control) {
            return Err(ValidationError::new(field, "must be 1 to 128 characters without control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Rebuilds an id read back from storage, where it was validated on the way in.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(raw: &str) -> EventType {
        EventType::parse("event", raw).unwrap()
    }

    #[test]
    fn event_types_follow_the_grammar() {
        for ok in ["artifact.completed", "a", "source_x.ready-now", "a.b.c.d", "v1"] {
            assert!(EventType::parse("event", ok).is_ok(), "{ok}");
        }
        let too_long = "a".repeat(129);
        for bad in ["", ".", "a.", ".a", "a..b", "Artifact", "a b", "a/b", "ä", too_long.as_str()] {
            assert!(EventType::parse("event", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_wildcard_matches_descendants_but_not_the_prefix_itself() {
        let pattern = EventPattern::parse("events", "artifact.*").unwrap();
        assert!(pattern.matches(&event("artifact.completed")));
        assert!(pattern.matches(&event("artifact.x.y")));
        assert!(!pattern.matches(&event("artifact")));
        assert!(!pattern.matches(&event("artifacts.completed")));
    }

    #[test]
    fn star_matches_everything_and_exact_matches_only_itself() {
        let all = EventPattern::parse("events", "*").unwrap();
        let exact = EventPattern::parse("events", "source.ready").unwrap();
        assert!(all.matches(&event("anything.at.all")));
        assert!(exact.matches(&event("source.ready")));
        assert!(!exact.matches(&event("source.ready.now")));
    }

    #[test]
    fn operational_events_match_only_patterns_that_name_them() {
        let disabled = event("hookbus.webhook.disabled");
        assert!(disabled.is_operational());
        assert!(!EventPattern::parse("events", "*").unwrap().matches(&disabled));
        assert!(EventPattern::parse("events", "hookbus.*").unwrap().matches(&disabled));
        assert!(EventPattern::parse("events", "hookbus.webhook.disabled").unwrap().matches(&disabled));
    }

    #[test]
    fn malformed_patterns_are_refused_and_round_trip_when_valid() {
        for bad in ["*.completed", "artifact.**", "art*", ".*", "a..*"] {
            assert!(EventPattern::parse("events", bad).is_err(), "{bad}");
        }
        for ok in ["*", "artifact.*", "a.b.*", "x.y"] {
            assert_eq!(EventPattern::parse("events", ok).unwrap().to_string(), ok);
        }
    }
}
