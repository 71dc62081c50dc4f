//! Sending again: `POST …/test` (one synchronous attempt, recorded as a delivery),
//! redeliver one delivery, and replay a webhook's deliveries since a time.

use actix::prelude::*;

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::ReplayId;
use crate::store::{ReplayRecord, ReplayState, StoreResult};

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
                    act.close_circuit(webhook_id);
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

/// A replay put its deliveries back in `pending`: the endpoint pages them in from the start
/// of its queue. Told once, at the end: paging from the start while attempts of earlier
/// batches are still on their way to the database would read those as pending again and
/// send them twice.
#[derive(Message)]
#[rtype(result = "()")]
struct Replayed(WebhookId);

impl Handler<Replayed> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Replayed, _: &mut Context<Self>) {
        match self.endpoint(&msg.0) {
            Some(endpoint) => endpoint.do_send(DeliveriesRequeued),
            None => self.tell_owner_requeued(msg.0),
        }
    }
}

impl Registry {
    /// Whether `webhook_id` can be replayed by this caller, for `status`.
    fn check_replay(
        &self,
        workspace_id: WorkspaceId,
        webhook_id: WebhookId,
        status: DeliveryStatus,
    ) -> Result<(), RegistryError> {
        self.find(workspace_id, webhook_id)?;
        if status == DeliveryStatus::Pending {
            return Err(ValidationError::new("status", "must be failed, succeeded or cancelled").into());
        }
        self.check_deliverable(webhook_id)
    }
}

/// Requeues, batch by batch, the webhook's deliveries in `status` created from `since` to
/// `until`, recording the progress of a replay in the background after each batch, then
/// wakes the endpoint (also after a failure, for what was requeued). Returns how many.
async fn requeue_all(
    store: Store,
    registry: Addr<Registry>,
    webhook_id: WebhookId,
    status: DeliveryStatus,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    replay: Option<ReplayId>,
) -> StoreResult<u64> {
    let (mut requeued, mut after) = (0u64, None::<String>);
    let outcome = loop {
        let now = crate::domain::now();
        let (batch, last) =
            match store.requeue_batch(webhook_id, status, since, until, after.as_deref(), now, REPLAY_BATCH).await {
                Ok(batch) => batch,
                Err(error) => break Err(error),
            };
        if last.is_none() {
            break Ok(requeued);
        }
        requeued += batch as u64;
        after = last;
        if let Some(id) = replay {
            if let Err(error) = store.replay_progress(id, requeued, None, now).await {
                break Err(error);
            }
        }
    };
    if requeued > 0 {
        registry.do_send(Replayed(webhook_id));
    }
    outcome
}

impl Handler<ReplayDeliveries> for Registry {
    type Result = ResponseActFuture<Self, Result<u64, RegistryError>>;

    fn handle(&mut self, msg: ReplayDeliveries, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.check_replay(msg.workspace_id, msg.webhook_id, msg.status) {
            return Box::pin(fut::ready(Err(e)));
        }
        let (store, registry) = (self.store.clone(), ctx.address());
        let window = (msg.since, crate::domain::now());
        Box::pin(
            async move { Ok(requeue_all(store, registry, msg.webhook_id, msg.status, window, None).await?) }
                .into_actor(self),
        )
    }
}

impl Handler<StartReplay> for Registry {
    type Result = ResponseActFuture<Self, Result<ReplayRecord, RegistryError>>;

    fn handle(&mut self, StartReplay(msg): StartReplay, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.check_replay(msg.workspace_id, msg.webhook_id, msg.status) {
            return Box::pin(fut::ready(Err(e)));
        }
        let (store, registry) = (self.store.clone(), ctx.address());
        Box::pin(
            async move {
                let now = crate::domain::now();
                let replay = store.start_replay(msg.workspace_id, msg.webhook_id, msg.status, msg.since, now).await?;
                let started = replay.clone();
                // Runs on after the answer; its progress is in the database.
                actix_rt::spawn(async move {
                    let window = (started.since, started.created_at);
                    let outcome = requeue_all(
                        store.clone(),
                        registry,
                        started.webhook_id,
                        started.status,
                        window,
                        Some(started.id),
                    )
                    .await;
                    let (requeued, end) = match outcome {
                        Ok(requeued) => (requeued, (ReplayState::Finished, None)),
                        Err(error) => {
                            log::warn!("replay {} of webhook {} failed: {error}", started.id, started.webhook_id);
                            let so_far = store.get_replay(started.workspace_id, started.id).await;
                            let requeued = so_far.ok().flatten().map_or(0, |r| r.requeued);
                            (requeued, (ReplayState::Failed, Some(error.to_string())))
                        }
                    };
                    if let Err(error) =
                        store.replay_progress(started.id, requeued, Some(end), crate::domain::now()).await
                    {
                        log::warn!("could not record the end of replay {}: {error}", started.id);
                    }
                });
                Ok(replay)
            }
            .into_actor(self),
        )
    }
}
