//! `EndpointActor`: one per enabled webhook. It owns that webhook's window of pending
//! deliveries, its in-flight limit and its retry timers, sends attempts with `awc`,
//! and hands every outcome to the `Persistence` actor.
//!
//! The database holds the truth (status, attempt count, next attempt time); the actor
//! only holds a window of it, so it can be rebuilt from the database at any time.

mod messages;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::web::Bytes;
use chrono::Utc;
use tokio::sync::oneshot;

pub use messages::{DeliveryEnqueued, DrainEndpoint, StopEndpoint, WebhookChanged};

use super::persistence::{PersistWrite, Persistence};
use super::registry::DisableWebhook;
use crate::delivery::{send_attempt, AttemptRequest};
use crate::domain::delivery::{next_step, NextStep};
use crate::domain::envelope::Envelope;
use crate::domain::webhook::{DisabledReason, Webhook};
use crate::domain::{AttemptOutcome, DeliveryId, DeliveryStatus};
use crate::store::{AttemptRecord, AttemptWrite, DeliveryUpdate, PendingDelivery, Store, WriteOp};

/// How long to wait before paging again after the database failed to answer.
const PAGE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// What every endpoint actor shares.
#[derive(Clone)]
pub struct EndpointDeps {
    pub store: Store,
    pub persistence: Addr<Persistence>,
    pub registry: Recipient<DisableWebhook>,
    pub client: awc::Client,
    pub backoff_max: Duration,
    /// Most pending deliveries held in memory.
    pub window: usize,
}

/// A delivery held in memory, with its body built once.
struct Held {
    pending: PendingDelivery,
    body: Bytes,
}

pub struct EndpointActor {
    webhook: Arc<Webhook>,
    deps: EndpointDeps,
    held: HashMap<DeliveryId, Held>,
    /// Due now, oldest first.
    ready: BTreeSet<DeliveryId>,
    /// Waiting for a retry timer; the handle cancels it.
    waiting: HashMap<DeliveryId, SpawnHandle>,
    in_flight: HashSet<DeliveryId>,
    /// Highest delivery id taken into the window; paging continues after it.
    cursor: Option<DeliveryId>,
    /// The database may hold pending deliveries that are not in the window.
    backlog: bool,
    paging: bool,
    /// A delivery was turned away while a page was loading, so that page may miss it.
    missed_while_paging: bool,
    draining: bool,
    drained: Vec<oneshot::Sender<()>>,
}

impl EndpointActor {
    pub fn new(webhook: Arc<Webhook>, deps: EndpointDeps) -> Self {
        Self {
            webhook,
            deps,
            held: HashMap::new(),
            ready: BTreeSet::new(),
            waiting: HashMap::new(),
            in_flight: HashSet::new(),
            cursor: None,
            backlog: true,
            paging: false,
            missed_while_paging: false,
            draining: false,
            drained: Vec::new(),
        }
    }

    /// Takes a pending delivery into the window: due now, or on a timer.
    fn admit(&mut self, pending: PendingDelivery, ctx: &mut Context<Self>) {
        let id = pending.delivery.id;
        if self.held.contains_key(&id) {
            return;
        }
        self.cursor = self.cursor.max(Some(id));
        let body = Envelope {
            event_id: &pending.delivery.event_id,
            event: &pending.delivery.event,
            timestamp: pending.event_created_at,
            webhook_id: pending.delivery.webhook_id,
            workspace_id: pending.delivery.workspace_id,
            data_json: &pending.data_json,
        }
        .to_body();
        let wait = pending
            .delivery
            .next_attempt_at
            .and_then(|at| (at - crate::domain::now()).to_std().ok())
            .unwrap_or_default();
        self.held.insert(
            id,
            Held {
                pending,
                body: Bytes::from(body),
            },
        );
        if wait.is_zero() {
            self.ready.insert(id);
        } else {
            self.schedule_retry(id, wait, ctx);
        }
    }

    fn schedule_retry(&mut self, id: DeliveryId, wait: Duration, ctx: &mut Context<Self>) {
        let handle = ctx.run_later(wait, move |act, ctx| {
            if act.waiting.remove(&id).is_some() {
                act.ready.insert(id);
                act.dispatch(ctx);
            }
        });
        self.waiting.insert(id, handle);
    }

    /// Starts as many due attempts as the in-flight limit allows.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let limit = self.webhook.settings.max_in_flight as usize;
        // At 1, order is strict: a delivery waiting for its retry holds back later ones.
        let strict_fifo = limit == 1;
        while self.in_flight.len() < limit && (!strict_fifo || self.waiting.is_empty()) {
            let Some(id) = self.ready.pop_first() else {
                break;
            };
            self.start_attempt(id, ctx);
        }
        self.page_in(ctx);
    }

    fn start_attempt(&mut self, id: DeliveryId, ctx: &mut Context<Self>) {
        let Some(held) = self.held.get(&id) else {
            return;
        };
        self.in_flight.insert(id);
        let attempt = held.pending.delivery.attempt_count + 1;
        let webhook = self.webhook.clone();
        let client = self.deps.client.clone();
        let body = held.body.clone();
        let event = held.pending.delivery.event.clone();
        let started_at = crate::domain::now();
        log::debug!("webhook {} delivery {id}: attempt {attempt}", webhook.id);
        let send = async move {
            let request = AttemptRequest {
                url: webhook.url.as_str(),
                delivery_id: id,
                event: &event,
                attempt,
                body,
                secrets: webhook.signing_secrets(crate::domain::now()),
                headers: &webhook.headers,
                timeout: webhook.settings.timeout(),
            };
            send_attempt(&client, request).await
        };
        ctx.spawn(send.into_actor(self).map(move |outcome, act, ctx| {
            act.attempt_finished(id, attempt, started_at, outcome, ctx);
        }));
    }

    fn attempt_finished(
        &mut self,
        id: DeliveryId,
        attempt: u32,
        started_at: chrono::DateTime<Utc>,
        outcome: AttemptOutcome,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight.remove(&id);
        let policy = self.webhook.settings.retry_policy(self.deps.backoff_max);
        let step = next_step(&policy, attempt, &outcome, fastrand::f64());
        let now = crate::domain::now();
        if let Some(error) = &outcome.error_message {
            log::warn!(
                "webhook {} delivery {id}: attempt {attempt} failed: {error}",
                self.webhook.id
            );
        }
        let (status, next_attempt_at) = match step {
            NextStep::Succeeded => (DeliveryStatus::Succeeded, None),
            NextStep::Failed | NextStep::Gone => (DeliveryStatus::Failed, None),
            NextStep::RetryIn(wait) => (DeliveryStatus::Pending, Some(now + wait)),
        };
        let Some(held) = self.held.get_mut(&id) else {
            return;
        };
        let delivery = &mut held.pending.delivery;
        delivery.attempt_count = attempt;
        delivery.next_attempt_at = next_attempt_at;
        let write = AttemptWrite {
            attempt: AttemptRecord {
                delivery_id: id,
                workspace_id: delivery.workspace_id,
                attempt,
                started_at,
                duration_ms: outcome.duration.as_millis() as u64,
                status_code: outcome.status_code,
                error_message: outcome.error_message.clone(),
                response_body: outcome.response_body.clone(),
            },
            delivery: DeliveryUpdate {
                id,
                status,
                attempt_count: attempt,
                next_attempt_at,
                status_code: outcome.status_code,
                error_message: outcome.error_message,
                response_body: outcome.response_body,
                duration_ms: Some(outcome.duration.as_millis() as u64),
                completed_at: (status != DeliveryStatus::Pending).then_some(now),
            },
        };
        // Fire and forget: the writer retries until the record is committed, and until
        // then the delivery is still pending in the database (at-least-once).
        self.deps.persistence.do_send(PersistWrite {
            op: WriteOp::Attempt(write),
        });
        match step {
            NextStep::RetryIn(wait) => self.schedule_retry(id, wait, ctx),
            _ => {
                self.held.remove(&id);
            }
        }
        if step == NextStep::Gone {
            self.deps.registry.do_send(DisableWebhook {
                webhook_id: self.webhook.id,
                reason: DisabledReason::Gone,
            });
        }
        if self.draining && self.in_flight.is_empty() {
            self.drained.drain(..).for_each(|tx| {
                let _ = tx.send(());
            });
        }
        self.dispatch(ctx);
    }

    /// Loads more pending deliveries from the database once the window is half empty.
    fn page_in(&mut self, ctx: &mut Context<Self>) {
        let room = self.deps.window.saturating_sub(self.held.len());
        if !self.backlog || self.paging || self.draining || room < self.deps.window / 2 {
            return;
        }
        self.paging = true;
        self.missed_while_paging = false;
        let store = self.deps.store.clone();
        let (webhook_id, after) = (self.webhook.id, self.cursor);
        ctx.spawn(
            async move { store.pending_page(webhook_id, after, room).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    act.paging = false;
                    match result {
                        Ok(page) => {
                            act.backlog = page.len() == room || act.missed_while_paging;
                            for pending in page {
                                act.admit(pending, ctx);
                            }
                            act.dispatch(ctx);
                        }
                        Err(error) => {
                            log::error!(
                                "webhook {webhook_id}: could not load pending deliveries: {error}"
                            );
                            ctx.run_later(PAGE_RETRY_DELAY, |act, ctx| act.dispatch(ctx));
                        }
                    }
                }),
        );
    }
}

impl Actor for EndpointActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.dispatch(ctx);
    }
}

impl Handler<DeliveryEnqueued> for EndpointActor {
    type Result = ();

    fn handle(&mut self, msg: DeliveryEnqueued, ctx: &mut Context<Self>) {
        let id = msg.delivery.delivery.id;
        // Behind the cursor means redelivered: it can join the window out of order.
        let behind_cursor = Some(id) <= self.cursor;
        if self.held.len() >= self.deps.window || (self.backlog && !behind_cursor) {
            // It is in the database; paging will bring it in, in order.
            self.backlog = true;
            self.missed_while_paging |= self.paging;
            if behind_cursor {
                self.cursor = None;
            }
            return;
        }
        self.admit(msg.delivery, ctx);
        self.dispatch(ctx);
    }
}

impl Handler<WebhookChanged> for EndpointActor {
    type Result = ();

    fn handle(&mut self, msg: WebhookChanged, ctx: &mut Context<Self>) {
        self.webhook = msg.webhook;
        self.dispatch(ctx);
    }
}

impl Handler<DrainEndpoint> for EndpointActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: DrainEndpoint, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let (tx, rx) = oneshot::channel();
        if self.in_flight.is_empty() {
            let _ = tx.send(());
        } else {
            self.drained.push(tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<StopEndpoint> for EndpointActor {
    type Result = ();

    fn handle(&mut self, _: StopEndpoint, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
