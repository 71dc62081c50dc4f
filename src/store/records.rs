//! Rows as diesel sees them, and the typed records the rest of hookbus sees.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::batch::AttemptWrite;
use super::schema::{attempts, deliveries, events};
use super::{from_millis, to_millis, StoreError};
use crate::domain::envelope::Envelope;
use crate::domain::{DeliveryId, DeliveryStatus, EventId, EventType, WebhookId, WorkspaceId};

/// A published event.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub workspace_id: WorkspaceId,
    pub id: EventId,
    pub event: EventType,
    /// `data` as compact JSON.
    pub data_json: String,
    /// SHA-256 (hex) of the event type and data: the idempotency check.
    pub body_hash: String,
    pub matched_webhooks: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub(super) struct EventRow {
    pub workspace_id: String,
    pub id: String,
    pub event_type: String,
    pub data: String,
    pub body_hash: String,
    pub matched_webhooks: i32,
    pub created_at: i64,
}

impl From<&EventRecord> for EventRow {
    fn from(e: &EventRecord) -> Self {
        Self {
            workspace_id: e.workspace_id.to_string(),
            id: e.id.to_string(),
            event_type: e.event.to_string(),
            data: e.data_json.clone(),
            body_hash: e.body_hash.clone(),
            matched_webhooks: e.matched_webhooks as i32,
            created_at: to_millis(e.created_at),
        }
    }
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            workspace_id: parse_id(&r.workspace_id)?,
            id: EventId::from_stored(r.id),
            event: EventType::from_stored(r.event_type),
            data_json: r.data,
            body_hash: r.body_hash,
            matched_webhooks: r.matched_webhooks.max(0) as u32,
            created_at: from_millis(r.created_at),
        })
    }
}

#[warn(missing_docs)]
/// A delivery: one event to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Its id.
    pub id: DeliveryId,
    /// The workspace of its webhook.
    pub workspace_id: WorkspaceId,
    /// The webhook it goes to.
    pub webhook_id: WebhookId,
    /// The event it carries.
    pub event_id: EventId,
    /// The event's type.
    pub event: EventType,
    /// Where it is in its life.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's status, if it got an answer.
    pub status_code: Option<u16>,
    /// Why the last attempt failed.
    pub error_message: Option<String>,
    /// The first 1 KiB of the last answer.
    pub response_body: Option<String>,
    /// How long the last attempt took.
    pub duration_ms: Option<u64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Failures that count against `max_retries` (failed circuit probes do not).
    pub retries_used: u32,
    /// When the latest attempt started. That attempt is kept on the delivery itself (its
    /// outcome is `status_code` … `duration_ms`); see [`DeliveryRecord::latest_attempt`].
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Why a `failed` or `cancelled` delivery ended (`retries exhausted`, `gone`, `webhook
    /// disabled (<reason>)`, `webhook deleted`); `None` otherwise. Never an attempt's outcome.
    pub failure_reason: Option<String>,
}

impl DeliveryRecord {
    /// A new pending delivery, due at once.
    pub fn new_pending(event: &EventRecord, webhook_id: WebhookId) -> Self {
        let id = DeliveryId::generate();
        Self::pending(id, event.workspace_id, webhook_id, event.id.clone(), event.event.clone(), event.created_at)
    }

    /// Delivery `id` of an event created at `created_at`, as it is until its first attempt.
    pub fn pending(
        id: DeliveryId,
        workspace_id: WorkspaceId,
        webhook_id: WebhookId,
        event_id: EventId,
        event: EventType,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            workspace_id,
            webhook_id,
            event_id,
            event,
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            next_attempt_at: Some(created_at),
            status_code: None,
            error_message: None,
            response_body: None,
            duration_ms: None,
            created_at,
            completed_at: None,
            retries_used: 0,
            last_attempt_at: None,
            failure_reason: None,
        }
    }

    /// The latest attempt, as the delivery row holds it. `None` before the first attempt,
    /// and for deliveries recorded before attempts moved onto the row (all of theirs are in
    /// the `attempts` table).
    pub fn latest_attempt(&self) -> Option<AttemptRecord> {
        let started_at = self.last_attempt_at?;
        (self.attempt_count > 0).then(|| AttemptRecord {
            delivery_id: self.id,
            workspace_id: self.workspace_id,
            attempt: self.attempt_count,
            started_at,
            duration_ms: self.duration_ms.unwrap_or(0),
            status_code: self.status_code,
            error_message: self.error_message.clone(),
            response_body: self.response_body.clone(),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = deliveries, treat_none_as_default_value = false)]
pub(super) struct DeliveryRow {
    pub id: String,
    pub workspace_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempt_count: i32,
    pub next_attempt_at: Option<i64>,
    pub status_code: Option<i32>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: Option<i64>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub retries_used: i32,
    pub last_attempt_at: Option<i64>,
    pub failure_reason: Option<String>,
}

impl From<&DeliveryRecord> for DeliveryRow {
    fn from(d: &DeliveryRecord) -> Self {
        Self {
            id: d.id.to_string(),
            workspace_id: d.workspace_id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event.to_string(),
            status: d.status.as_str().to_owned(),
            attempt_count: d.attempt_count as i32,
            next_attempt_at: d.next_attempt_at.map(to_millis),
            status_code: d.status_code.map(i32::from),
            error_message: d.error_message.clone(),
            response_body: d.response_body.clone(),
            duration_ms: d.duration_ms.map(|v| v as i64),
            created_at: to_millis(d.created_at),
            completed_at: d.completed_at.map(to_millis),
            retries_used: d.retries_used as i32,
            last_attempt_at: d.last_attempt_at.map(to_millis),
            failure_reason: d.failure_reason.clone(),
        }
    }
}

impl TryFrom<DeliveryRow> for DeliveryRecord {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: parse_id(&r.id)?,
            workspace_id: parse_id(&r.workspace_id)?,
            webhook_id: parse_id(&r.webhook_id)?,
            event_id: EventId::from_stored(r.event_id),
            event: EventType::from_stored(r.event_type),
            status: DeliveryStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("delivery status '{}'", r.status)))?,
            attempt_count: r.attempt_count.max(0) as u32,
            next_attempt_at: r.next_attempt_at.map(from_millis),
            status_code: r.status_code.and_then(|s| u16::try_from(s).ok()),
            error_message: r.error_message,
            response_body: r.response_body,
            duration_ms: r.duration_ms.map(|v| v.max(0) as u64),
            created_at: from_millis(r.created_at),
            completed_at: r.completed_at.map(from_millis),
            retries_used: r.retries_used.max(0) as u32,
            last_attempt_at: r.last_attempt_at.map(from_millis),
            failure_reason: r.failure_reason,
        })
    }
}

/// A pending delivery with what it takes to build its body: the unit the delivery loop loads.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub delivery: DeliveryRecord,
    /// Shared by the event's deliveries: a fan-out to many webhooks holds it once.
    pub data_json: std::sync::Arc<str>,
    pub event_created_at: DateTime<Utc>,
}

impl PendingDelivery {
    /// The exact body every attempt of this delivery sends.
    pub fn body(&self) -> String {
        Envelope {
            event_id: &self.delivery.event_id,
            event: &self.delivery.event,
            timestamp: self.event_created_at,
            webhook_id: self.delivery.webhook_id,
            workspace_id: self.delivery.workspace_id,
            data_json: &self.data_json,
        }
        .to_body()
    }
}

/// The state a delivery is left in by an attempt (or by redelivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    pub id: DeliveryId,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub retries_used: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub status_code: Option<u16>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: Option<u64>,
    pub completed_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
}

/// The state one attempt left its delivery in, in column types: bound row by row on SQLite
/// (`prepared::SettleDelivery`), gathered into [`DeliveryChanges`] on PostgreSQL. The
/// attempt itself goes with it (`last_attempt_at` and the outcome columns).
pub(super) struct DeliveryState<'a> {
    pub id: String,
    pub status: &'static str,
    pub attempt_count: i32,
    pub retries_used: i32,
    pub next_attempt_at: Option<i64>,
    pub status_code: Option<i32>,
    pub error_message: Option<&'a str>,
    pub response_body: Option<&'a str>,
    pub duration_ms: Option<i64>,
    pub completed_at: Option<i64>,
    pub last_attempt_at: i64,
    pub failure_reason: Option<&'a str>,
}

impl<'a> From<&'a AttemptWrite> for DeliveryState<'a> {
    fn from(write: &'a AttemptWrite) -> Self {
        let u = &write.delivery;
        Self {
            id: u.id.to_string(),
            status: u.status.as_str(),
            attempt_count: u.attempt_count as i32,
            retries_used: u.retries_used as i32,
            next_attempt_at: u.next_attempt_at.map(to_millis),
            status_code: u.status_code.map(i32::from),
            error_message: u.error_message.as_deref(),
            response_body: u.response_body.as_deref(),
            duration_ms: u.duration_ms.map(|v| v as i64),
            completed_at: u.completed_at.map(to_millis),
            last_attempt_at: to_millis(write.attempt.started_at),
            failure_reason: u.failure_reason.as_deref(),
        }
    }
}

/// The state attempts leave deliveries in, one column per field, for PostgreSQL's one batched
/// `UPDATE` (`unnest` of arrays). One entry per delivery: when a batch holds two attempts of
/// the same delivery, the later one wins, as it would in order.
#[derive(Default)]
pub(super) struct DeliveryChanges<'a> {
    pub id: Vec<String>,
    pub status: Vec<&'static str>,
    pub attempt_count: Vec<i32>,
    pub retries_used: Vec<i32>,
    pub next_attempt_at: Vec<Option<i64>>,
    pub status_code: Vec<Option<i32>>,
    pub error_message: Vec<Option<&'a str>>,
    pub response_body: Vec<Option<&'a str>>,
    pub duration_ms: Vec<Option<i64>>,
    pub completed_at: Vec<Option<i64>>,
    pub last_attempt_at: Vec<i64>,
    pub failure_reason: Vec<Option<&'a str>>,
    pub epoch: Vec<Option<i64>>,
}

impl<'a> FromIterator<&'a AttemptWrite> for DeliveryChanges<'a> {
    fn from_iter<I: IntoIterator<Item = &'a AttemptWrite>>(writes: I) -> Self {
        let mut last: std::collections::HashMap<DeliveryId, &AttemptWrite> = std::collections::HashMap::new();
        let mut order = Vec::new();
        for w in writes {
            if last.insert(w.delivery.id, w).is_none() {
                order.push(w.delivery.id);
            }
        }
        let mut c = Self::default();
        for write in order.iter().map(|id| last[id]) {
            c.epoch.push(write.epoch);
            let state = DeliveryState::from(write);
            c.id.push(state.id);
            c.status.push(state.status);
            c.attempt_count.push(state.attempt_count);
            c.retries_used.push(state.retries_used);
            c.next_attempt_at.push(state.next_attempt_at);
            c.status_code.push(state.status_code);
            c.error_message.push(state.error_message);
            c.response_body.push(state.response_body);
            c.duration_ms.push(state.duration_ms);
            c.completed_at.push(state.completed_at);
            c.last_attempt_at.push(state.last_attempt_at);
            c.failure_reason.push(state.failure_reason);
        }
        c
    }
}

impl DeliveryChanges<'_> {
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivery_id: DeliveryId,
    pub workspace_id: WorkspaceId,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = attempts, treat_none_as_default_value = false)]
pub(super) struct AttemptRow {
    pub delivery_id: String,
    pub attempt: i32,
    pub workspace_id: String,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
}

impl From<&AttemptRecord> for AttemptRow {
    fn from(a: &AttemptRecord) -> Self {
        Self {
            delivery_id: a.delivery_id.to_string(),
            attempt: a.attempt as i32,
            workspace_id: a.workspace_id.to_string(),
            started_at: to_millis(a.started_at),
            duration_ms: a.duration_ms as i64,
            status_code: a.status_code.map(i32::from),
            error_message: a.error_message.clone(),
            response_body: a.response_body.clone(),
        }
    }
}

impl TryFrom<AttemptRow> for AttemptRecord {
    type Error = StoreError;
    fn try_from(r: AttemptRow) -> Result<Self, StoreError> {
        Ok(Self {
            delivery_id: parse_id(&r.delivery_id)?,
            workspace_id: parse_id(&r.workspace_id)?,
            attempt: r.attempt.max(0) as u32,
            started_at: from_millis(r.started_at),
            duration_ms: r.duration_ms.max(0) as u64,
            status_code: r.status_code.and_then(|s| u16::try_from(s).ok()),
            error_message: r.error_message,
            response_body: r.response_body,
        })
    }
}

pub(super) fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, StoreError> {
    raw.parse().map_err(|_| StoreError::Corrupt(format!("'{raw}' is not an id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: DeliveryId, attempt: u32, status: DeliveryStatus) -> AttemptWrite {
        let started_at = from_millis(i64::from(attempt) * 1000);
        AttemptWrite {
            attempt: AttemptRecord {
                delivery_id: id,
                workspace_id: crate::domain::WorkspaceId::DEFAULT,
                attempt,
                started_at,
                duration_ms: 1,
                status_code: Some(500),
                error_message: None,
                response_body: Some("x".into()),
            },
            delivery: DeliveryUpdate {
                id,
                status,
                attempt_count: attempt,
                retries_used: attempt,
                next_attempt_at: None,
                status_code: Some(500),
                error_message: None,
                response_body: Some("x".into()),
                duration_ms: Some(1),
                completed_at: None,
                failure_reason: None,
            },
            webhook_id: crate::domain::WebhookId::generate(),
            epoch: None,
        }
    }

    #[test]
    fn the_later_attempt_of_a_delivery_wins_within_one_batch() {
        let (a, b) = (DeliveryId::generate(), DeliveryId::generate());
        let writes = [
            write(a, 1, DeliveryStatus::Pending),
            write(b, 1, DeliveryStatus::Succeeded),
            write(a, 2, DeliveryStatus::Failed),
        ];
        let changes: DeliveryChanges = writes.iter().collect();
        assert_eq!(changes.id, vec![a.to_string(), b.to_string()]);
        assert_eq!(changes.attempt_count, vec![2, 1]);
        assert_eq!(changes.status, vec!["failed", "succeeded"]);
        assert_eq!(changes.last_attempt_at, vec![2000, 1000], "the attempt goes with its delivery state");
    }
}
