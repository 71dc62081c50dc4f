//! Messages of the [`Registry`](super::Registry): the public API of an embedded hookbus.
//! The HTTP routes send these same messages.

use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::RegistryError;
use crate::domain::webhook::{DisabledReason, Webhook, WebhookInput, WebhookPatch};
use crate::domain::{DeliveryId, EventId, EventType, Page, WebhookId, WorkspaceId};
use crate::store::DeliveryRecord;

/// Registers a webhook. The input is validated here, so an embedding app gets the same
/// rules (and the same 422 field names) as the HTTP API.
#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<Webhook>, RegistryError>")]
pub struct RegisterWebhook {
    pub workspace_id: WorkspaceId,
    pub input: WebhookInput,
}

/// Applies a partial update; it takes effect from the next attempt.
#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<Webhook>, RegistryError>")]
pub struct UpdateWebhook {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
    pub patch: WebhookPatch,
}

/// The atomic half of [`RegisterWebhook`], once the target's DNS has been checked.
#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<Webhook>, RegistryError>")]
pub(super) struct InsertWebhook {
    pub webhook: Arc<Webhook>,
}

/// The atomic half of [`UpdateWebhook`], once a new target's DNS has been checked.
#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<Webhook>, RegistryError>")]
pub(super) struct ApplyUpdate(pub UpdateWebhook);

/// Deletes a webhook; its pending deliveries are cancelled.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct DeleteWebhook {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<Webhook>, RegistryError>")]
pub struct GetWebhook {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
}

/// A page of a workspace's webhooks, newest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Page<Arc<Webhook>>, RegistryError>")]
pub struct ListWebhooks {
    pub workspace_id: WorkspaceId,
    pub cursor: Option<WebhookId>,
    pub limit: usize,
}

/// Replaces the signing secret; the old one keeps signing for the overlap.
#[derive(Debug, Message)]
#[rtype(result = "Result<RotatedSecret, RegistryError>")]
pub struct RotateSecret {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
    /// The new secret; generated when `None`.
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    pub secret: String,
    pub previous_valid_until: DateTime<Utc>,
}

/// One synchronous attempt of a `webhook.test` event, recorded as a delivery.
#[derive(Debug, Message)]
#[rtype(result = "Result<TestResult, RegistryError>")]
pub struct TestWebhook {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestResult {
    pub delivery_id: DeliveryId,
    pub succeeded: bool,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error_message: Option<String>,
}

/// Publishes an event to every enabled webhook of the workspace that subscribed.
/// Answers once the event and its deliveries are committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Published, RegistryError>")]
pub struct Publish {
    pub workspace_id: WorkspaceId,
    pub event: String,
    pub data: serde_json::Value,
    /// Makes publishing idempotent: the same id and body answer the first result.
    pub id: Option<String>,
}

impl Publish {
    pub fn new(workspace_id: WorkspaceId, event: impl Into<String>, data: serde_json::Value) -> Self {
        Self { workspace_id, event: event.into(), data, id: None }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// [`Publish`], answered as soon as the writer has it: await [`super::PublishInFlight::finish`]
/// for the commit (on any thread).
#[derive(Debug, Message)]
#[rtype(result = "Result<super::PublishInFlight, RegistryError>")]
pub struct StartPublish(pub Publish);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Published {
    pub id: EventId,
    pub event: EventType,
    pub matched_webhooks: u32,
}

/// Puts a delivery back in `pending`; new attempts continue its numbering.
#[derive(Debug, Message)]
#[rtype(result = "Result<DeliveryRecord, RegistryError>")]
pub struct Redeliver {
    pub workspace_id: WorkspaceId,
    pub delivery_id: DeliveryId,
}

/// hookbus itself disables a webhook (410 Gone, or a circuit open too long).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DisableWebhook {
    pub webhook_id: WebhookId,
    pub reason: DisabledReason,
    /// The delivery whose own attempt disabled the webhook (a 410): it is not failed with
    /// the others, since its attempt's record says why it ended (`gone`).
    pub ended_by: Option<DeliveryId>,
}

/// Stops every endpoint from starting attempts and waits (at most `timeout`) for the
/// attempts in flight to finish. Used at shutdown.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DrainDeliveries {
    pub timeout: Duration,
}

/// A delivery failed for good (retries exhausted or 410); the registry turns this into a
/// `hookbus.delivery.failed` operational event.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliveryFailed {
    pub delivery: DeliveryRecord,
}

/// The live health of every webhook of a workspace, newest webhook first.
#[derive(Debug, Message)]
#[rtype(result = "Vec<WebhookHealth>")]
pub struct HealthSnapshot {
    pub workspace_id: WorkspaceId,
}

/// One webhook and its endpoint's live state.
#[derive(Debug, Clone)]
pub struct WebhookHealth {
    pub webhook: Arc<Webhook>,
    pub endpoint: crate::actors::endpoint::EndpointHealth,
}

/// Puts every delivery of a webhook in `status` created since `since` back in `pending`,
/// in batches; answers how many.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, RegistryError>")]
pub struct ReplayDeliveries {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
    pub since: DateTime<Utc>,
    pub status: crate::domain::DeliveryStatus,
}
