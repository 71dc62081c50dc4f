//! `EndpointActor`: one per enabled webhook. It owns that webhook's window of pending
//! deliveries, its in-flight limit, retry timers, circuit breaker, rate limit and health
//! statistics; it sends attempts with `awc` and hands every outcome to `Persistence`.
//!
//! The database holds the truth (status, attempt count, retries used, next attempt time);
//! the actor only holds a window of it, so it can be rebuilt from the database at any time.
//! The rules themselves (retry policy, circuit breaker, token bucket) are pure domain
//! types; this actor glues them to timers.

mod lease;
mod messages;
mod pool;
mod window;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
// Keyed by delivery ids the server generated, so no caller chooses the keys and HashDoS
// resistance buys nothing: a fast hash instead of SipHash, which shows in the delivery
// thread's profile of a fan-out.
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use tokio::sync::oneshot;

pub use lease::{EndpointLease, LeaseClock};
pub use messages::{
    DeliveriesLoaded, DeliveriesPublishedElsewhere, DeliveriesRequeued, DeliveryEnqueued, DrainEndpoint,
    EndpointHealth, GetEndpointHealth, LeaseReport, ResetCircuit, StopEndpoint, SweepPending, WebhookChanged,
};
pub use pool::OverflowPool;
use window::Window;

use super::persistence::AttemptRecorder;
use super::registry::{DeliveryFailed, DisableWebhook};
use crate::delivery::{DeliveryRef, Outbound, SentAttempt};
use crate::domain::circuit::{CircuitBreaker, CircuitSettings, CircuitState, Permit, SavedCircuit};
use crate::domain::delivery::{settle, NextStep, Settled};
use crate::domain::health::EndpointStats;
use crate::domain::rate_limit::TokenBucket;
use crate::domain::webhook::{DisabledReason, Webhook};
use crate::domain::{AttemptOutcome, DeliveryId};
use crate::metrics::{FinalStatus, Metrics};
use crate::store::cluster::DeliveryNotice;
use crate::store::{AttemptWrite, PendingDelivery, Store};

/// How long to wait before paging again after the database failed to answer.
const PAGE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// How often an endpoint whose lease could not be renewed looks again.
const LEASE_RECHECK: Duration = Duration::from_millis(200);

/// A pending delivery behind the paging cursor that nobody announced is taken in by the
/// regular sweep once it is this old; younger ones may be sent already, with their record
/// still on its way to the database.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(30);

/// At most this many delivery ids per sweep.
const SWEEP_LIMIT: usize = 10_000;

/// What every endpoint actor shares.
#[derive(Clone)]
pub struct EndpointDeps {
    pub store: Store,
    pub recorder: AttemptRecorder,
    pub disable: Recipient<DisableWebhook>,
    pub failed: Recipient<DeliveryFailed>,
    pub outbound: Outbound,
    pub metrics: Arc<Metrics>,
    pub backoff_max: Duration,
    pub circuit: CircuitSettings,
    /// Pending deliveries held in memory by each endpoint.
    pub window: usize,
    /// Room beyond `window`, shared by all endpoints.
    pub pool: Arc<OverflowPool>,
}

pub struct EndpointActor {
    webhook: Arc<Webhook>,
    deps: EndpointDeps,
    /// The pending deliveries held in memory, and paging for the rest.
    window: Window,
    /// Due now, oldest first.
    ready: BTreeSet<DeliveryId>,
    /// Waiting for a retry timer; the handle cancels it.
    waiting: HashMap<DeliveryId, SpawnHandle>,
    in_flight: HashSet<DeliveryId>,
    breaker: CircuitBreaker,
    bucket: Option<TokenBucket>,
    stats: EndpointStats,
    /// One timer that calls `dispatch` again (probe time, or a rate-limit token).
    wake: Option<SpawnHandle>,
    /// The circuit state last written to the metrics gauge.
    reported_circuit: Option<CircuitState>,
    /// Draining (shutdown), disabled or deleted: no new attempts.
    stopped: bool,
    /// The same, for attempts still waiting for a connection: they give up instead of
    /// starting (the future cannot see the actor).
    halted: Rc<Cell<bool>>,
    /// The registry stopped this endpoint: it stops once its attempts in flight have ended
    /// and been recorded, so the history has every attempt that was made.
    stop_when_idle: bool,
    drained: Vec<oneshot::Sender<()>>,
    /// With several servers: the lease this endpoint runs under.
    lease: Option<EndpointLease>,
    /// While a sweep reads the database: deliveries finished meanwhile, whose records may
    /// land after the sweep's read (they must not be taken in again).
    finished_during_sweep: Option<HashSet<DeliveryId>>,
}

/// Why an attempt did not start after waiting for its connection.
enum NotStarted {
    /// The endpoint stopped meanwhile.
    Halted,
    /// The lease was not renewed in time: the attempt waits for the next renewal.
    LeaseLapsed,
}

impl EndpointActor {
    /// `backlog`: whether the database may hold pending deliveries for this webhook.
    /// `lease`: with several servers, the lease it runs under and the circuit its previous
    /// owner saved.
    pub fn new(
        webhook: Arc<Webhook>,
        deps: EndpointDeps,
        backlog: bool,
        lease: Option<(EndpointLease, SavedCircuit)>,
    ) -> Self {
        let now = Instant::now();
        let breaker = match &lease {
            Some((_, saved)) => CircuitBreaker::restore(deps.circuit, saved, now, crate::domain::now()),
            None => CircuitBreaker::new(deps.circuit),
        };
        Self {
            bucket: webhook.settings.rate_limit_per_sec.map(|rate| TokenBucket::new(rate, now)),
            breaker,
            stats: EndpointStats::default(),
            window: Window::new(deps.window, deps.pool.clone(), backlog),
            webhook,
            deps,
            ready: BTreeSet::new(),
            waiting: HashMap::new(),
            in_flight: HashSet::new(),
            wake: None,
            reported_circuit: None,
            stopped: false,
            halted: Rc::new(Cell::new(false)),
            stop_when_idle: false,
            drained: Vec::new(),
            lease: lease.map(|(lease, _)| lease),
            finished_during_sweep: None,
        }
    }

    /// With several servers: deliveries that reached this endpoint after it stopped (its
    /// webhook is being handed over, or its lease was lost) are announced again for the
    /// next owner. Sent after their commit, the announcement either finds the next owner's
    /// endpoint running, or comes before it starts and reads them from the database.
    fn pass_on(&self, ids: Vec<DeliveryId>) {
        let notice = DeliveryNotice { webhook_id: self.webhook.id, deliveries: ids, requeued: false };
        let store = self.deps.store.clone();
        actix_rt::spawn(async move {
            if let Err(error) = store.announce(&[notice]).await {
                log::warn!("could not announce deliveries to the next owner (the sweep finds them): {error}");
            }
        });
    }

    /// Deliveries another server published, read from the database: offered to the window
    /// as if published here.
    fn take_in(&mut self, deliveries: Vec<PendingDelivery>, ctx: &mut Context<Self>) {
        let may_borrow = self.breaker.state() == CircuitState::Closed;
        for delivery in deliveries {
            if let Some(pending) = self.window.offer(delivery, false, may_borrow) {
                self.admit(pending, ctx);
            }
        }
        self.dispatch(ctx);
    }

    fn lease_lapsed(&self, now: Instant) -> bool {
        self.lease.as_ref().is_some_and(|lease| !lease.clock.may_start(now))
    }

    /// Takes a pending delivery into the window: due now, or on a timer.
    fn admit(&mut self, pending: PendingDelivery, ctx: &mut Context<Self>) {
        let id = pending.delivery.id;
        let wait = pending.delivery.next_attempt_at.and_then(|at| (at - Utc::now()).to_std().ok()).unwrap_or_default();
        if !self.window.hold(pending) {
            return;
        }
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

    /// Calls `dispatch` again at `at`, replacing any earlier wake-up.
    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        if let Some(previous) = self.wake.take() {
            ctx.cancel_future(previous);
        }
        let wait = at.saturating_duration_since(Instant::now());
        self.wake = Some(ctx.run_later(wait, |act, ctx| {
            act.wake = None;
            if act.breaker.should_disable(Instant::now()) {
                act.disable(DisabledReason::Failing, None);
            } else {
                act.dispatch(ctx);
            }
        }));
    }

    /// Starts as many due attempts as the circuit, the rate limit and the in-flight limit allow.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let max_in_flight = self.webhook.settings.max_in_flight;
        // At 1, order is strict: a delivery waiting for its retry holds back later ones.
        let strict_fifo = max_in_flight == 1;
        while let Some(&id) = self.ready.first() {
            let limit = self.breaker.in_flight_limit(max_in_flight) as usize;
            if self.in_flight.len() >= limit || (strict_fifo && !self.waiting.is_empty()) {
                break;
            }
            let now = Instant::now();
            if self.lease_lapsed(now) {
                self.wake_at(now + LEASE_RECHECK, ctx);
                break;
            }
            if let Some(bucket) = &mut self.bucket {
                if let Err(wait) = bucket.try_take(now) {
                    self.wake_at(now + wait, ctx);
                    break;
                }
            }
            let probe = match self.breaker.permit(now) {
                Permit::Attempt => false,
                Permit::Probe => true,
                Permit::WaitUntil(at) => {
                    self.wake_at(at, ctx);
                    break;
                }
                Permit::Wait => break,
            };
            self.ready.remove(&id);
            self.start_attempt(id, probe, ctx);
        }
        // The gauge is written only when the state changes: this runs for every delivery.
        let circuit = self.breaker.state();
        if self.reported_circuit != Some(circuit) {
            self.reported_circuit = Some(circuit);
            self.deps.metrics.set_circuit(self.webhook.id, circuit);
        }
        self.page_in(ctx);
    }

    fn start_attempt(&mut self, id: DeliveryId, probe: bool, ctx: &mut Context<Self>) {
        let Some(held) = self.window.get(&id) else {
            return;
        };
        self.in_flight.insert(id);
        let attempt = held.delivery.attempt_count + 1;
        let webhook = self.webhook.clone();
        let outbound = self.deps.outbound.clone();
        // The same fields give the same bytes on every attempt.
        let body = Bytes::from(held.body());
        let event = held.delivery.event.clone();
        log::debug!("webhook {} delivery {id}: attempt {attempt}{}", webhook.id, if probe { " (probe)" } else { "" });
        let halted = self.halted.clone();
        let clock = self.lease.as_ref().map(|lease| lease.clock.clone());
        let send = async move {
            let slot = outbound.connection_slot(&webhook).await;
            // Stopped while waiting for a connection: the attempt never starts.
            if halted.get() {
                return Err(NotStarted::Halted);
            }
            if clock.is_some_and(|clock| !clock.may_start(Instant::now())) {
                return Err(NotStarted::LeaseLapsed);
            }
            let delivery = DeliveryRef { id, event: &event, attempt, body };
            Ok(outbound.attempt(&slot, &webhook, &delivery).await)
        };
        ctx.spawn(send.into_actor(self).map(move |sent, act, ctx| match sent {
            Ok(SentAttempt { started_at, outcome }) => {
                act.attempt_finished(id, attempt, probe, started_at, outcome, ctx)
            }
            // Never started: the delivery stays as the database has it.
            Err(NotStarted::Halted) => {
                act.in_flight.remove(&id);
                act.finish_stopping(ctx);
            }
            Err(NotStarted::LeaseLapsed) => {
                act.in_flight.remove(&id);
                act.ready.insert(id);
                if probe {
                    act.breaker.reset_probe();
                }
                act.wake_at(Instant::now() + LEASE_RECHECK, ctx);
            }
        }));
    }

    /// No new attempts from now on; those in flight finish and are recorded.
    fn halt(&mut self) {
        self.stopped = true;
        self.halted.set(true);
    }

    /// Once stopped and idle: answers the drains and, if the registry asked, stops.
    fn finish_stopping(&mut self, ctx: &mut Context<Self>) {
        if self.stopped && self.in_flight.is_empty() {
            self.drained.drain(..).for_each(|tx| {
                let _ = tx.send(());
            });
            if self.stop_when_idle {
                ctx.stop();
            }
        }
    }

    fn attempt_finished(
        &mut self,
        id: DeliveryId,
        attempt: u32,
        probe: bool,
        started_at: DateTime<Utc>,
        outcome: AttemptOutcome,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight.remove(&id);
        if let Some(finished) = &mut self.finished_during_sweep {
            finished.insert(id);
        }
        let (now, wall) = (Instant::now(), crate::domain::now());
        let error_message = outcome.error_message();
        self.stats.record(now, wall, outcome.duration, error_message.as_deref());
        self.deps.metrics.attempt_finished(&outcome);
        if outcome.succeeded() {
            self.breaker.record_success();
        } else {
            log::warn!(
                "webhook {} delivery {id}: attempt {attempt} failed: {}",
                self.webhook.id,
                error_message.as_deref().unwrap_or("")
            );
            if self.breaker.record_failure(now, probe) {
                log::warn!("webhook {}: circuit open", self.webhook.id);
            }
        }
        let Some(held) = self.window.get_mut(&id) else {
            return;
        };
        let delivery = &mut held.delivery;
        let policy = self.webhook.settings.retry_policy(self.deps.backoff_max);
        let next_probe_in =
            probe.then(|| self.breaker.probe_at().map_or(Duration::ZERO, |at| at.saturating_duration_since(now)));
        let Settled { step, retries_used, status, next_attempt_at, failure_reason, probe_failed } =
            settle(&policy, delivery.retries_used, &outcome, next_probe_in, wall, fastrand::f64());
        delivery.attempt_count = attempt;
        delivery.retries_used = retries_used;
        delivery.next_attempt_at = next_attempt_at;
        delivery.status = status;
        delivery.failure_reason = failure_reason.map(|reason| reason.to_string());
        delivery.status_code = outcome.status_code();
        delivery.error_message = error_message;
        let mut write = AttemptWrite::new(delivery, started_at, &outcome, wall);
        write.epoch = self.lease.as_ref().map(|lease| lease.epoch);
        // Fire and forget: the writer retries until the record is committed, and until
        // then the delivery is still pending in the database (at-least-once).
        self.deps.recorder.record(write);
        match step {
            // After a failed probe the delivery is first in line for the next one.
            NextStep::RetryIn(_) if probe_failed => {
                self.ready.insert(id);
            }
            NextStep::RetryIn(wait) => self.schedule_retry(id, wait, ctx),
            NextStep::Succeeded => {
                self.window.remove(&id);
                self.deps.metrics.deliveries_completed(FinalStatus::Succeeded, 1);
            }
            NextStep::Failed | NextStep::Gone => {
                if let Some(held) = self.window.remove(&id) {
                    log::warn!(
                        "webhook {} delivery {id} ({}) failed for good after {attempt} attempts: {}",
                        self.webhook.id,
                        held.delivery.event,
                        held.delivery.failure_reason.as_deref().unwrap_or("")
                    );
                    self.deps.metrics.deliveries_completed(FinalStatus::Failed, 1);
                    self.deps.failed.do_send(DeliveryFailed { delivery: held.delivery });
                }
            }
        }
        if step == NextStep::Gone {
            self.disable(DisabledReason::Gone, Some(id));
        } else if self.breaker.should_disable(now) {
            self.disable(DisabledReason::Failing, None);
        }
        self.finish_stopping(ctx);
        self.window.return_pool_slots();
        self.release_idle_window();
        self.dispatch(ctx);
    }

    /// Gives back the memory of an emptied window: maps keep their capacity when emptied,
    /// and with tens of thousands of mostly quiet webhooks that adds up.
    fn release_idle_window(&mut self) {
        if self.window.release_if_idle() {
            self.ready = BTreeSet::new();
            self.waiting = HashMap::new();
            self.in_flight = HashSet::new();
        }
    }

    /// Stops attempts and asks the registry to disable the webhook (which stops this actor);
    /// `ended_by` is the delivery whose attempt caused it, if one did.
    fn disable(&mut self, reason: DisabledReason, ended_by: Option<DeliveryId>) {
        if !self.stopped {
            self.halt();
            self.deps.disable.do_send(DisableWebhook { webhook_id: self.webhook.id, reason, ended_by });
        }
    }

    /// Loads more pending deliveries from the database once the window is half empty.
    fn page_in(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let Some(request) = self.window.next_page() else {
            return;
        };
        let store = self.deps.store.clone();
        let webhook_id = self.webhook.id;
        let load = async move { store.pending_page(webhook_id, request.after, request.room).await };
        ctx.spawn(load.into_actor(self).map(move |result, act, ctx| match result {
            Ok(page) => {
                for pending in act.window.page_loaded(request, page, Instant::now(), Utc::now()) {
                    act.admit(pending, ctx);
                }
                act.dispatch(ctx);
            }
            Err(error) => {
                act.window.page_failed();
                log::error!("webhook {webhook_id}: could not load pending deliveries: {error}");
                ctx.run_later(PAGE_RETRY_DELAY, |act, ctx| act.dispatch(ctx));
            }
        }));
    }

    fn health(&mut self) -> EndpointHealth {
        let now = Instant::now();
        let next_attempt_at = match self.breaker.probe_at() {
            Some(at) => {
                let wait = at.saturating_duration_since(now).as_millis() as i64;
                Some(crate::domain::now() + chrono::Duration::milliseconds(wait))
            }
            None => self.waiting.keys().filter_map(|id| self.window.get(id)?.delivery.next_attempt_at).min(),
        };
        EndpointHealth {
            circuit: self.breaker.state(),
            consecutive_failures: self.breaker.consecutive_failures(),
            in_flight: self.in_flight.len(),
            success_rate_5m: self.stats.success_rate_5m(now),
            latency_ms: self.stats.latency(now),
            last_success_at: self.stats.last_success_at,
            last_failure_at: self.stats.last_failure_at,
            last_error: self.stats.last_error.clone(),
            next_attempt_at,
        }
    }
}

impl Actor for EndpointActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.dispatch(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.deps.metrics.forget_webhook(self.webhook.id);
    }
}

impl Handler<DeliveryEnqueued> for EndpointActor {
    type Result = ();

    fn handle(&mut self, msg: DeliveryEnqueued, ctx: &mut Context<Self>) {
        if self.stopped && self.lease.is_some() {
            self.pass_on(vec![msg.delivery.delivery.id]);
            return;
        }
        let may_borrow = self.breaker.state() == CircuitState::Closed;
        if let Some(pending) = self.window.offer(msg.delivery, msg.redelivered, may_borrow) {
            self.admit(pending, ctx);
            self.dispatch(ctx);
        }
    }
}

impl Handler<DeliveriesRequeued> for EndpointActor {
    type Result = ();

    fn handle(&mut self, _: DeliveriesRequeued, ctx: &mut Context<Self>) {
        self.window.requeued();
        self.dispatch(ctx);
    }
}

impl Handler<WebhookChanged> for EndpointActor {
    type Result = ();

    fn handle(&mut self, msg: WebhookChanged, ctx: &mut Context<Self>) {
        if msg.webhook.settings.rate_limit_per_sec != self.webhook.settings.rate_limit_per_sec {
            self.bucket = msg.webhook.settings.rate_limit_per_sec.map(|rate| TokenBucket::new(rate, Instant::now()));
        }
        self.webhook = msg.webhook;
        self.dispatch(ctx);
    }
}

impl Handler<ResetCircuit> for EndpointActor {
    type Result = ();

    fn handle(&mut self, _: ResetCircuit, ctx: &mut Context<Self>) {
        self.breaker.reset();
        if let Some(wake) = self.wake.take() {
            ctx.cancel_future(wake);
        }
        self.dispatch(ctx);
    }
}

impl Handler<LeaseReport> for EndpointActor {
    type Result = MessageResult<LeaseReport>;

    fn handle(&mut self, _: LeaseReport, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.health(), self.breaker.save(Instant::now(), crate::domain::now())))
    }
}

impl Handler<DeliveriesPublishedElsewhere> for EndpointActor {
    type Result = ();

    fn handle(&mut self, msg: DeliveriesPublishedElsewhere, ctx: &mut Context<Self>) {
        if self.stopped {
            if self.lease.is_some() {
                self.pass_on(msg.ids);
            }
            return;
        }
        let store = self.deps.store.clone();
        let load = async move { store.pending_by_ids(&msg.ids).await };
        ctx.spawn(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(deliveries) => act.take_in(deliveries, ctx),
            // Still pending in the database: the sweep or the next page finds them.
            Err(error) => {
                log::warn!("webhook {}: could not read deliveries published elsewhere: {error}", act.webhook.id)
            }
        }));
    }
}

impl Handler<DeliveriesLoaded> for EndpointActor {
    type Result = ();

    fn handle(&mut self, msg: DeliveriesLoaded, ctx: &mut Context<Self>) {
        if self.stopped {
            if self.lease.is_some() {
                self.pass_on(msg.deliveries.iter().map(|d| d.delivery.id).collect());
            }
            return;
        }
        self.take_in(msg.deliveries, ctx);
    }
}

impl Handler<SweepPending> for EndpointActor {
    type Result = ();

    fn handle(&mut self, msg: SweepPending, ctx: &mut Context<Self>) {
        let Some(cursor) = self.window.cursor() else {
            // Nothing taken in yet: paging from the start finds everything.
            return;
        };
        if self.stopped || self.finished_during_sweep.is_some() {
            return;
        }
        // After the cursor, paging finds them; before it, the read below.
        self.window.look_ahead();
        self.dispatch(ctx);
        let min_age = if msg.catch_up { Duration::ZERO } else { SWEEP_MIN_AGE };
        let old_enough = crate::domain::now() - chrono::Duration::from_std(min_age).unwrap_or_default();
        let before = cursor.min(DeliveryId::first_at(old_enough));
        let (store, webhook_id, recorder) = (self.deps.store.clone(), self.webhook.id, self.deps.recorder.clone());
        // From here on, what finishes is remembered until the read is back; what finished
        // before is committed by the flush.
        self.finished_during_sweep = Some(HashSet::new());
        let look = async move {
            if msg.catch_up {
                recorder.flush().await;
            }
            store.pending_ids_before(webhook_id, before, SWEEP_LIMIT).await
        };
        ctx.spawn(look.into_actor(self).map(|found, act, ctx| {
            let finished = act.finished_during_sweep.take().unwrap_or_default();
            match found {
                Ok(ids) => {
                    let missed: Vec<_> =
                        ids.into_iter().filter(|id| act.window.get(id).is_none() && !finished.contains(id)).collect();
                    if !missed.is_empty() {
                        log::info!(
                            "webhook {}: {} pending deliveries found by the sweep",
                            act.webhook.id,
                            missed.len()
                        );
                        ctx.notify(DeliveriesPublishedElsewhere { ids: missed });
                    }
                }
                Err(error) => log::warn!("webhook {}: sweep failed: {error}", act.webhook.id),
            }
        }));
    }
}

impl Handler<GetEndpointHealth> for EndpointActor {
    type Result = MessageResult<GetEndpointHealth>;

    fn handle(&mut self, _: GetEndpointHealth, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.health())
    }
}

impl Handler<DrainEndpoint> for EndpointActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: DrainEndpoint, _: &mut Context<Self>) -> Self::Result {
        self.halt();
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
        self.halt();
        self.stop_when_idle = true;
        self.finish_stopping(ctx);
    }
}
