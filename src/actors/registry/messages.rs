#![warn(missing_docs)]
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
    /// The workspace the webhook belongs to.
    pub workspace_id: WorkspaceId,
    /// What to register, validated by the registry.
    pub input: WebhookInput,
}

/// Applies a partial update; it takes effect from the next attempt.
#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<Webhook>, RegistryError>")]
pub struct UpdateWebhook {
    /// The caller's workspace: a webhook of another is not found.
    pub workspace_id: WorkspaceId,
    /// The webhook to change.
    pub webhook_id: WebhookId,
    /// The fields to change; absent fields stay as they are.
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
    /// The caller's workspace.
    pub workspace_id: WorkspaceId,
    /// The webhook to delete.
    pub webhook_id: WebhookId,
}

/// Reads one webhook.
#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<Webhook>, RegistryError>")]
pub struct GetWebhook {
    /// The caller's workspace.
    pub workspace_id: WorkspaceId,
    /// The webhook to read.
    pub webhook_id: WebhookId,
}

/// A page of a workspace's webhooks, newest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Page<Arc<Webhook>>, RegistryError>")]
pub struct ListWebhooks {
    /// The caller's workspace.
    pub workspace_id: WorkspaceId,
    /// Continue after this id (the previous page's `next_cursor`).
    pub cursor: Option<WebhookId>,
    /// Most webhooks in the page (1–500).
    pub limit: usize,
}

/// Replaces the signing secret; the old one keeps signing for the overlap.
#[derive(Debug, Message)]
#[rtype(result = "Result<RotatedSecret, RegistryError>")]
pub struct RotateSecret {
    /// The caller's workspace.
    pub workspace_id: WorkspaceId,
    /// The webhook whose secret rotates.
    pub webhook_id: WebhookId,
    /// The new secret; generated when `None`.
    pub secret: Option<String>,
}

/// A rotated secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    /// The new secret (`whsec_…`).
    pub secret: String,
    /// Until when the previous secret still signs too.
    pub previous_valid_until: DateTime<Utc>,
}

/// One synchronous attempt of a `webhook.test` event, recorded as a delivery.
#[derive(Debug, Message)]
#[rtype(result = "Result<TestResult, RegistryError>")]
pub struct TestWebhook {
    /// The caller's workspace.
    pub workspace_id: WorkspaceId,
    /// The webhook to test.
    pub webhook_id: WebhookId,
}

/// How the test attempt went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestResult {
    /// The delivery the test was recorded as.
    pub delivery_id: DeliveryId,
    /// Whether the endpoint answered 2xx.
    pub succeeded: bool,
    /// The endpoint's status, if it answered.
    pub status_code: Option<u16>,
    /// How long the attempt took.
    pub duration_ms: u64,
    /// Why it failed, if it did.
    pub error_message: Option<String>,
}

/// Publishes an event to every enabled webhook of the workspace that subscribed.
/// Answers once the event and its deliveries are committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Published, RegistryError>")]
pub struct Publish {
    /// The workspace publishing.
    pub workspace_id: WorkspaceId,
    /// The event type, such as `artifact.completed`.
    pub event: String,
    /// The event's data: a JSON object.
    pub data: serde_json::Value,
    /// Makes publishing idempotent: the same id and body answer the first result.
    pub id: Option<String>,
}

impl Publish {
    /// A publish of `event` with `data` in `workspace_id`, with a generated id.
    pub fn new(workspace_id: WorkspaceId, event: impl Into<String>, data: serde_json::Value) -> Self {
        Self { workspace_id, event: event.into(), data, id: None }
    }

    /// Gives the event an id of the publisher's own: publishing it again answers the first result and delivers nothing twice.
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

/// A committed publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Published {
    /// The event's id.
    pub id: EventId,
    /// The event's type.
    pub event: EventType,
    /// How many webhooks it is delivered to.
    pub matched_webhooks: u32,
}

/// Puts a delivery back in `pending`; new attempts continue its numbering.
#[derive(Debug, Message)]
#[rtype(result = "Result<DeliveryRecord, RegistryError>")]
pub struct Redeliver {
    /// The caller's workspace.
    pub workspace_id: WorkspaceId,
    /// The delivery to send again.
    pub delivery_id: DeliveryId,
}

/// hookbus itself disables a webhook (410 Gone, or a circuit open too long).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DisableWebhook {
    /// The webhook to disable.
    pub webhook_id: WebhookId,
    /// Why.
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
    /// How long to wait for attempts in flight.
    pub timeout: Duration,
}

/// A delivery failed for good (retries exhausted or 410); the registry turns this into a
/// `hookbus.delivery.failed` operational event.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliveryFailed {
    /// The delivery that failed, as it ended.
    pub delivery: DeliveryRecord,
}

/// The live health of every webhook of a workspace, newest webhook first.
#[derive(Debug, Message)]
#[rtype(result = "Vec<WebhookHealth>")]
pub struct HealthSnapshot {
    /// The workspace whose webhooks are shown.
    pub workspace_id: WorkspaceId,
}

/// One webhook and its endpoint's live state.
#[derive(Debug, Clone)]
pub struct WebhookHealth {
    /// The webhook.
    pub webhook: Arc<Webhook>,
    /// Its endpoint's live figures.
    pub endpoint: crate::actors::endpoint::EndpointHealth,
    /// With several servers on one database: the id of the server that owns it (`None`
    /// while nobody does, or alone on the database).
    pub owner: Option<String>,
}

/// Puts every delivery of a webhook in `status` created since `since` back in `pending`,
/// in batches; answers how many.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, RegistryError>")]
pub struct ReplayDeliveries {
    /// The caller's workspace.
    pub workspace_id: WorkspaceId,
    /// The webhook whose deliveries go back to pending.
    pub webhook_id: WebhookId,
    /// Deliveries created at or after this time.
    pub since: DateTime<Utc>,
    /// Deliveries in this status (failed, succeeded or cancelled).
    pub status: crate::domain::DeliveryStatus,
}

/// Starts a replay in the background (`POST …/replay` with `"background": true`); answers
/// with its record at once. Its progress is in the database (`Store::get_replay`).
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::store::ReplayRecord, RegistryError>")]
pub struct StartReplay(pub ReplayDeliveries);
