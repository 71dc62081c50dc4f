//! Operational events: hookbus' own `hookbus.*` events about webhooks disabled and
//! deliveries failed for good, published into the webhook's workspace when someone listens.

use actix::prelude::*;
use serde::Serialize;

use super::*;

/// `hookbus.webhook.disabled`
#[derive(Serialize)]
pub(super) struct WebhookDisabledEvent<'a> {
    pub webhook_id: WebhookId,
    pub name: &'a str,
    pub reason: Option<DisabledReason>,
    pub failed_deliveries: usize,
}

/// `hookbus.delivery.failed`
#[derive(Serialize)]
struct DeliveryFailedEvent<'a> {
    delivery_id: DeliveryId,
    webhook_id: WebhookId,
    event_id: &'a EventId,
    event: &'a EventType,
    attempt_count: u32,
    status_code: Option<u16>,
    error_message: Option<&'a str>,
    failure_reason: Option<&'a str>,
}

impl Registry {
    /// Publishes one of hookbus' own `hookbus.*` events (operational webhooks), if an
    /// enabled webhook of the workspace subscribes to it: nobody would read it otherwise, and
    /// a dead endpoint's backlog would store one for every delivery that fails.
    pub(super) fn publish_operational(
        &mut self,
        workspace_id: WorkspaceId,
        event: &'static str,
        data: &impl Serialize,
        ctx: &mut Context<Self>,
    ) {
        let event = EventType::from_stored(event.to_owned());
        if self.routes.read().matching(workspace_id, &event).is_empty() {
            return;
        }
        let data = match serde_json::to_string(data) {
            Ok(data) => data,
            Err(error) => return log::error!("could not encode an operational event: {error}"),
        };
        let published = self.publisher.begin(workspace_id, event, data, None).finish();
        ctx.spawn(fut::wrap_future(published).map(|result, _: &mut Self, _| {
            if let Err(error) = result {
                log::error!("could not publish an operational event: {error}");
            }
        }));
    }
}

impl Handler<DeliveryFailed> for Registry {
    type Result = ();

    fn handle(&mut self, msg: DeliveryFailed, ctx: &mut Context<Self>) {
        let delivery = msg.delivery;
        // A failed operational event never triggers another one about itself.
        if delivery.event.is_operational() {
            return;
        }
        let data = DeliveryFailedEvent {
            delivery_id: delivery.id,
            webhook_id: delivery.webhook_id,
            event_id: &delivery.event_id,
            event: &delivery.event,
            attempt_count: delivery.attempt_count,
            status_code: delivery.status_code,
            error_message: delivery.error_message.as_deref(),
            failure_reason: delivery.failure_reason.as_deref(),
        };
        self.publish_operational(delivery.workspace_id, "hookbus.delivery.failed", &data, ctx);
    }
}
