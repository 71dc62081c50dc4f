//! Sending again: `POST …/test` (one synchronous attempt, recorded as a delivery),
//! redeliver one delivery, and replay a webhook's deliveries since a time.

use actix::prelude::*;

use super::*;

impl Handler<TestWebhook> for Registry {
    type Result = ResponseActFuture<Self, Result<TestResult, RegistryError>>;

    fn handle(&mut self, msg: TestWebhook, _: &mut Context<Self>) -> Self::Result {
        let webhook = match self.find(msg.workspace_id, msg.webhook_id) {
            Ok(webhook) => webhook,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let event = EventType::from_stored("webhook.test".to_owned());
        let record = EventRecord {
            workspace_id: webhook.workspace_id,
            id: EventId::generate(),
            body_hash: body_hash(&event, "{}"),
            event,
            data_json: "{}".to_owned(),
            matched_webhooks: 1,
            created_at: crate::domain::now(),
        };
        let delivery = DeliveryRecord::new_pending(&record, webhook.id);
        let webhook_id = webhook.id;
        let writer = self.writer.clone();
        let outbound = self.outbound.clone();
        Box::pin(
            async move {
                let delivery_id = delivery.id;
                let delivery_record = delivery.clone();
                let body = PendingDelivery {
                    delivery: delivery.clone(),
                    data_json: record.data_json.as_str().into(),
                    event_created_at: record.created_at,
                }
                .body();
                let publish = WriteOp::Publish(PublishWrite::new(record.clone(), vec![delivery]));
                persist(&writer, publish).await?;
                let attempt = DeliveryRef { id: delivery_id, event: &record.event, attempt: 1, body: body.into() };
                let slot = outbound.connection_slot(&webhook).await;
                let SentAttempt { started_at, outcome } = outbound.attempt(&slot, &webhook, &attempt).await;
                let succeeded = outcome.succeeded();
                let duration_ms = outcome.duration.as_millis() as u64;
                let mut tested = delivery_record;
                tested.attempt_count = 1;
                tested.status = if succeeded { DeliveryStatus::Succeeded } else { DeliveryStatus::Failed };
                tested.failure_reason = (!succeeded).then(|| FailureReason::TestFailed.to_string());
                let record = WriteOp::Attempt(AttemptWrite::new(&tested, started_at, &outcome, crate::domain::now()));
                persist(&writer, record).await?;
                Ok(TestResult {
                    delivery_id,
                    succeeded,
                    status_code: outcome.status_code(),
                    duration_ms,
                    error_message: outcome.error_message(),
                })
            }
            .into_actor(self)
            .map(move |result, act, _| {
                // A successful test closes an open circuit.
                if result.as_ref().is_ok_and(|r| r.succeeded) {
                    if let Some(endpoint) = act.endpoint(&webhook_id) {
                        endpoint.do_send(ResetCircuit);
                    }
                }
                result
            }),
        )
    }
}

async fn persist(writer: &Writer, op: WriteOp) -> Result<WriteOutcome, RegistryError> {
    Ok(writer.write(op).await?)
}

impl Handler<Redeliver> for Registry {
    type Result = ResponseActFuture<Self, Result<DeliveryRecord, RegistryError>>;

    fn handle(&mut self, msg: Redeliver, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        Box::pin(
            async move {
                let Some((pending, _)) = store.get_delivery(msg.workspace_id, msg.delivery_id).await? else {
                    return Err(RegistryError::NotFound("delivery"));
                };
                Ok(pending)
            }
            .into_actor(self)
            .then(move |found, act, _| {
                let checked = found.and_then(|pending| act.check_deliverable(pending.delivery.webhook_id));
                let store = act.store.clone();
                async move {
                    checked?;
                    store
                        .requeue_delivery(msg.workspace_id, msg.delivery_id, crate::domain::now())
                        .await?
                        .ok_or(RegistryError::NotFound("delivery"))
                }
                .into_actor(act)
            })
            .map(|result, act, _| {
                let pending = result?;
                let record = pending.delivery.clone();
                match act.endpoint(&record.webhook_id) {
                    Some(endpoint) => endpoint.do_send(DeliveryEnqueued { delivery: pending, redelivered: true }),
                    None => act.tell_owner_requeued(record.webhook_id),
                }
                Ok(record)
            }),
        )
    }
}

/// Deliveries requeued per statement by a replay.
const REPLAY_BATCH: usize = 500;

impl Handler<ReplayDeliveries> for Registry {
    type Result = ResponseActFuture<Self, Result<u64, RegistryError>>;

    fn handle(&mut self, msg: ReplayDeliveries, _: &mut Context<Self>) -> Self::Result {
        let checked = self.find(msg.workspace_id, msg.webhook_id).and_then(|_| {
            if msg.status == DeliveryStatus::Pending {
                return Err(ValidationError::new("status", "must be failed, succeeded or cancelled").into());
            }
            self.check_deliverable(msg.webhook_id)
        });
        if let Err(e) = checked {
            return Box::pin(fut::ready(Err(e)));
        }
        let store = self.store.clone();
        Box::pin(
            async move {
                let mut requeued = 0u64;
                loop {
                    let now = crate::domain::now();
                    let batch = store.requeue_batch(msg.webhook_id, msg.status, msg.since, now, REPLAY_BATCH).await?;
                    if batch == 0 {
                        return Ok(requeued);
                    }
                    requeued += batch as u64;
                }
            }
            .into_actor(self)
            .map(move |result, act, _| {
                match act.endpoint(&msg.webhook_id) {
                    Some(endpoint) => endpoint.do_send(DeliveriesRequeued),
                    None => act.tell_owner_requeued(msg.webhook_id),
                }
                result
            }),
        )
    }
}
