//! Domain logic: no I/O and no actors. Rules that depend on time take it as an argument
//! (the circuit breaker, retries, [`delivery::settle`]); the only reads of the outside world
//! are [`now`] and the generators of ids, secrets and keys (system randomness).
//!
//! Values here validate when they are parsed, so code holding a [`WebhookUrl`] or an
//! [`EventPattern`] never has to check it again.

pub mod activity;
pub mod api_key;
pub mod circuit;
pub mod delivery;
pub mod envelope;
pub mod event;
pub mod health;
pub mod ids;
pub mod name;
pub mod rate_limit;
pub mod retry;
pub mod secret;
pub mod signature;
pub mod target;
pub mod url;
pub mod webhook;

pub use delivery::{AttemptOutcome, AttemptResult, DeliveryStatus, FailureReason, BLOCKED_TARGET};
pub use event::{EventId, EventPattern, EventType};
pub use ids::{DeliveryId, ReplayId, WebhookId, WorkspaceId};
pub use retry::RetryPolicy;
pub use secret::WebhookSecret;
pub use url::WebhookUrl;

/// A value that parsed but is not allowed; `field` names it for the 422 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[warn(missing_docs)]
/// One page of a list: `{"data": [...], "next_cursor": "…"|null}`, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, newest first.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// The current time at millisecond precision: what the database keeps, so a value
/// reads back exactly as it was first shown.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis()).unwrap_or_default()
}
