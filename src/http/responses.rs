//! The JSON bodies the admin API answers with. Each derives `Serialize` for the wire and
//! `ToSchema` for the OpenAPI document, so the two cannot drift; each is built from the
//! domain or store type it shows, which stay free of the API's shape.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::endpoint::EndpointHealth;
use crate::domain::webhook::{DisabledReason, Webhook};
use crate::domain::{DeliveryId, DeliveryStatus, EventId, EventType, WebhookId, WorkspaceId};
use crate::store::{AttemptRecord, Backend, DeliveryRecord, KeyInfo, WorkspaceRecord};

/// `{"error": {"code", "message"}}`, the body of every error.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `validation_failed`, `not_found`, `unauthorized`, …
    pub code: &'static str,
    pub message: String,
}

/// One page of a list, newest first; `next_cursor` is `null` on the last page.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn of<S>(items: impl IntoIterator<Item = S>, next_cursor: Option<String>, show: impl Fn(S) -> T) -> Self {
        Self { data: items.into_iter().map(show).collect(), next_cursor }
    }
}

/// A webhook. The secret is shown only in the answer to create.
#[derive(Serialize, ToSchema)]
pub struct WebhookObject {
    pub id: WebhookId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    pub timeout_ms: u32,
    pub max_retries: u32,
    pub backoff_base_ms: u32,
    pub max_in_flight: u32,
    pub rate_limit_per_sec: Option<u32>,
    pub headers: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only in the answer to create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookObject {
    pub fn new(webhook: &Webhook) -> Self {
        let settings = &webhook.settings;
        Self {
            id: webhook.id,
            workspace_id: webhook.workspace_id,
            name: webhook.name.clone(),
            url: webhook.url.as_str().to_owned(),
            events: webhook.events.iter().map(ToString::to_string).collect(),
            enabled: webhook.enabled,
            disabled_reason: webhook.disabled_reason,
            timeout_ms: settings.timeout_ms,
            max_retries: settings.max_retries,
            backoff_base_ms: settings.backoff_base_ms,
            max_in_flight: settings.max_in_flight,
            rate_limit_per_sec: settings.rate_limit_per_sec,
            headers: webhook.headers.clone(),
            created_at: webhook.created_at,
            updated_at: webhook.updated_at,
            secret: None,
        }
    }

    /// The answer to create, the one time the secret is shown without asking for it.
    pub fn with_secret(webhook: &Webhook) -> Self {
        Self { secret: Some(webhook.secret.expose().to_owned()), ..Self::new(webhook) }
    }
}

/// `GET …/secret`
#[derive(Serialize, ToSchema)]
pub struct SecretObject {
    pub secret: String,
}

/// A delivery: one event to one webhook. `status_code` … `duration_ms` are its last
/// attempt's outcome (`null` before the first).
#[derive(Serialize, ToSchema)]
pub struct DeliveryObject {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event: EventType,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub status_code: Option<u16>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Why a `failed` or `cancelled` delivery ended: `retries exhausted`, `gone`,
    /// `webhook disabled (manual|gone|failing)`, `webhook deleted`, `test attempt failed`.
    pub failure_reason: Option<String>,
    /// Only on `GET /api/v1/deliveries/{id}`: the exact body sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Only on `GET /api/v1/deliveries/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptObject>>,
}

impl DeliveryObject {
    pub fn new(delivery: DeliveryRecord) -> Self {
        Self {
            id: delivery.id,
            webhook_id: delivery.webhook_id,
            event_id: delivery.event_id,
            event: delivery.event,
            status: delivery.status,
            attempt_count: delivery.attempt_count,
            next_attempt_at: delivery.next_attempt_at,
            status_code: delivery.status_code,
            error_message: delivery.error_message,
            response_body: delivery.response_body,
            duration_ms: delivery.duration_ms,
            created_at: delivery.created_at,
            completed_at: delivery.completed_at,
            failure_reason: delivery.failure_reason,
            payload: None,
            attempts: None,
        }
    }

    /// The delivery with the body it sends and every attempt so far.
    pub fn in_full(delivery: DeliveryRecord, payload: String, attempts: Vec<AttemptRecord>) -> Self {
        Self {
            payload: Some(payload),
            attempts: Some(attempts.into_iter().map(AttemptObject::new).collect()),
            ..Self::new(delivery)
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(Serialize, ToSchema)]
pub struct AttemptObject {
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
}

impl AttemptObject {
    fn new(attempt: AttemptRecord) -> Self {
        Self {
            attempt: attempt.attempt,
            started_at: attempt.started_at,
            duration_ms: attempt.duration_ms,
            status_code: attempt.status_code,
            error_message: attempt.error_message,
            response_body: attempt.response_body,
        }
    }
}

/// `POST …/replay`, done. No other field, so that a replay in the background (which has a
/// `requeued` too) matches only its own schema in `ReplayAnswer`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayedObject {
    pub requeued: u64,
}

/// A replay in the background and how far it got.
#[derive(Serialize, ToSchema)]
pub struct ReplayObject {
    pub id: crate::domain::ReplayId,
    pub webhook_id: WebhookId,
    /// Which deliveries: failed, succeeded or cancelled.
    pub status: &'static str,
    pub since: DateTime<Utc>,
    /// `running`, `finished`, `failed` (see `error`) or `interrupted` (its server stopped; run
    /// the replay again for the rest).
    pub state: crate::store::ReplayState,
    /// Deliveries that matched when it started.
    pub total: u64,
    pub requeued: u64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<crate::store::ReplayRecord> for ReplayObject {
    fn from(r: crate::store::ReplayRecord) -> Self {
        Self {
            id: r.id,
            webhook_id: r.webhook_id,
            status: r.status.as_str(),
            since: r.since,
            state: r.state,
            total: r.total,
            requeued: r.requeued,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        }
    }
}

/// The answer to a replay: the count once done, or the replay to follow.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ReplayAnswer {
    Done(ReplayedObject),
    Background(ReplayObject),
}

/// A webhook's deliveries minute by minute, oldest first, the current minute last.
#[derive(Serialize, ToSchema)]
pub struct ActivityObject {
    pub webhook_id: WebhookId,
    pub minutes: Vec<crate::domain::activity::ActivityMinute>,
}

/// A workspace. Its first key is shown only in the answer to create.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceObject {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Only in the answer to create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Only in the answer to create: the id of `api_key`, to revoke it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<uuid::Uuid>,
}

impl WorkspaceObject {
    pub fn new(workspace: WorkspaceRecord) -> Self {
        Self {
            id: workspace.id,
            name: workspace.name,
            created_at: workspace.created_at,
            api_key: None,
            api_key_id: None,
        }
    }
}

/// A new key: shown this once.
#[derive(Serialize, ToSchema)]
pub struct KeyObject {
    pub id: uuid::Uuid,
    pub api_key: String,
}

/// A live key as listed: never the key itself.
#[derive(Serialize, ToSchema)]
pub struct KeyInfoObject {
    pub id: uuid::Uuid,
    /// `hbk_` and the key's next 8 characters (keys made before hookbus kept them: `hbk_`).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// Within a minute of the key's last use; null if never used.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl KeyInfoObject {
    pub fn new(key: KeyInfo) -> Self {
        Self { id: key.id, prefix: key.prefix, created_at: key.created_at, last_used_at: key.last_used_at }
    }
}

/// `GET /health`: `ok`, or `unavailable` when the database does not answer.
#[derive(Serialize, ToSchema)]
pub struct StatusObject {
    pub status: &'static str,
}

/// `GET /`: what this server is and where to go.
#[derive(Serialize, ToSchema)]
pub struct IndexObject {
    pub service: &'static str,
    pub version: &'static str,
    pub dashboard: String,
    pub health: String,
    pub metrics: String,
    pub api: String,
    pub openapi: String,
}

/// `GET /api/v1/health`: the caller's workspace at a glance.
#[derive(Serialize, ToSchema)]
pub struct DashboardObject {
    /// `degraded` when an enabled webhook's circuit is not closed or the database does not
    /// answer; `ok` otherwise.
    pub status: &'static str,
    pub uptime_s: u64,
    pub database: DatabaseHealth,
    /// `null` when the database does not answer.
    pub totals: Option<Totals>,
    pub webhooks: Vec<WebhookHealth>,
    /// On PostgreSQL, for the admin token: the live servers sharing the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<ServerObject>>,
}

/// A live server (several servers on one PostgreSQL database).
#[derive(Serialize, ToSchema)]
pub struct ServerObject {
    pub id: String,
    pub name: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    /// Webhooks it holds a lease on.
    pub webhooks: u64,
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseHealth {
    pub backend: Backend,
    pub ok: bool,
    /// Round trip of a trivial query, in milliseconds.
    pub latency_ms: Option<f64>,
}

/// The workspace's totals over the retention window.
#[derive(Serialize, ToSchema)]
pub struct Totals {
    /// Events clients published (operational `hookbus.*` events are not counted).
    pub events: u64,
    pub pending: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub attempts: u64,
}

/// One webhook's live figures.
#[derive(Serialize, ToSchema)]
pub struct WebhookHealth {
    pub id: WebhookId,
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    /// Pending deliveries, counted in the database (`null` when it does not answer).
    pub queue_depth: Option<u64>,
    /// On PostgreSQL, the id of the server that owns the webhook and reported the figures
    /// below (`null` while unowned); absent on SQLite, where one server owns everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Option<String>>,
    /// The endpoint's live figures: circuit, failures, in flight, success rate, latency, the
    /// last success, failure and error, and the next attempt (the probe time while open).
    #[serde(flatten)]
    pub live: EndpointHealth,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::url::UrlPolicy;
    use crate::domain::webhook::WebhookInput;

    #[test]
    fn a_webhook_shows_its_secret_only_when_created() {
        let input = WebhookInput {
            url: Some("http://127.0.0.1:9/hook".into()),
            events: Some(vec!["artifact.*".into()]),
            ..Default::default()
        };
        let policy = UrlPolicy { allow_http: true, allow_private: true };
        let webhook = Webhook::create(WorkspaceId::DEFAULT, input, policy, crate::domain::now()).unwrap();
        let shown = serde_json::to_value(WebhookObject::new(&webhook)).unwrap();
        assert!(shown.get("secret").is_none(), "{shown}");
        assert_eq!(shown["timeout_ms"], 10_000);
        assert_eq!(shown["events"], serde_json::json!(["artifact.*"]));
        assert_eq!(shown["rate_limit_per_sec"], serde_json::Value::Null);
        let created = serde_json::to_value(WebhookObject::with_secret(&webhook)).unwrap();
        assert_eq!(created["secret"], webhook.secret.expose());
    }
}
