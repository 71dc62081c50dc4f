//! The `Registry` actor: owns every webhook config, matches published events to
//! webhooks, and starts/stops one `EndpointActor` per enabled webhook.
//!
//! Config changes are atomic (the registry waits for their database write before the
//! next message), so the in-memory map and the database never disagree. Publishes are
//! not: many wait for their group commit at once. Nor is the DNS check of a new target:
//! a lookup can take seconds, and every tenant's changes would wait behind it, so it runs
//! (with a deadline) before the change enters the atomic part.

mod messages;
mod publisher;
mod routes;
mod subscriptions;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use messages::{ApplyUpdate, InsertWebhook};
pub use messages::{
    DeleteWebhook, DeliveryFailed, DisableWebhook, DrainDeliveries, GetWebhook, HealthSnapshot, ListWebhooks, Publish,
    Published, Redeliver, RegisterWebhook, ReplayDeliveries, RotateSecret, RotatedSecret, StartPublish, TestResult,
    TestWebhook, UpdateWebhook, WebhookHealth,
};

use self::publisher::body_hash;
pub use self::publisher::{PublishInFlight, Publisher};
use self::routes::SharedRoutes;
use super::endpoint::{
    DeliveriesRequeued, DeliveryEnqueued, DrainEndpoint, EndpointActor, EndpointDeps, GetEndpointHealth, OverflowPool,
    ResetCircuit, StopEndpoint, WebhookChanged,
};
use super::persistence::{AttemptRecorder, Writer};
use crate::delivery::{DeliveryRef, Outbound, OutboundLimits, Resolver, SentAttempt, TrustedRoots};
use crate::domain::circuit::CircuitSettings;
use crate::domain::url::UrlPolicy;
use crate::domain::webhook::{DisabledReason, Webhook};
use crate::domain::{
    DeliveryId, DeliveryStatus, EventId, EventType, FailureReason, Page, ValidationError, WebhookId, WebhookSecret,
    WebhookUrl, WorkspaceId,
};
use crate::metrics::{FinalStatus, Metrics};
use crate::store::{
    AttemptWrite, DeliveryRecord, EventRecord, PendingDelivery, PublishWrite, Store, StoreError, WriteOp, WriteOutcome,
};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("event id '{0}' was already published with a different body")]
    Conflict(String),
    #[error("storage failed")]
    Store(#[source] Arc<StoreError>),
    #[error("the registry has stopped")]
    Stopped(#[from] MailboxError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        Self::Store(Arc::new(e))
    }
}

impl From<Arc<StoreError>> for RegistryError {
    fn from(e: Arc<StoreError>) -> Self {
        Self::Store(e)
    }
}

/// Settings the registry applies to every webhook.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub url_policy: UrlPolicy,
    pub backoff_max: Duration,
    pub pending_window: usize,
    pub pending_pool: usize,
    pub rotation_overlap: Duration,
    pub circuit: CircuitSettings,
    pub max_webhooks_per_workspace: usize,
    pub outbound: OutboundLimits,
    pub resolver: Resolver,
    /// What HTTPS targets' certificates are verified against.
    pub trust: TrustedRoots,
    /// How long registration waits for a target's DNS answer.
    pub registration_dns_timeout: Duration,
}

pub struct Registry {
    store: Store,
    writer: Writer,
    /// Shared by every endpoint actor: their attempt records go to the writer in batches.
    recorder: AttemptRecorder,
    outbound: Outbound,
    /// Room for pending deliveries beyond the endpoints' windows, shared by all of them.
    pool: Arc<OverflowPool>,
    metrics: Arc<Metrics>,
    settings: RegistrySettings,
    /// The webhooks, their subscriptions and endpoints, shared with [`Publisher`]s.
    routes: SharedRoutes,
    /// Per workspace, ids in creation order (ids are v7), for listing.
    by_workspace: HashMap<WorkspaceId, BTreeSet<WebhookId>>,
    /// Webhooks known to have nothing pending in the database, so their endpoint need not
    /// look: those idle at start-up and those just registered. Saves a query per endpoint.
    idle: HashSet<WebhookId>,
    publisher: Publisher,
}

impl Registry {
    /// A registry over the webhooks already loaded from `store`.
    pub fn new(
        store: Store,
        writer: Writer,
        metrics: Arc<Metrics>,
        settings: RegistrySettings,
        webhooks: Vec<Webhook>,
        idle: HashSet<WebhookId>,
    ) -> Self {
        let settings_guard_off = settings.url_policy.allow_private;
        let routes = SharedRoutes::default();
        let publisher = Publisher::new(routes.clone(), writer.clone(), store.clone(), metrics.clone());
        let mut registry = Self {
            store,
            recorder: AttemptRecorder::new(writer.clone()),
            pool: Arc::new(OverflowPool::new(settings.pending_pool, metrics.pending_pool_gauge())),
            writer,
            metrics,
            outbound: Outbound::new(!settings_guard_off, settings.resolver.clone(), settings.outbound, &settings.trust),
            settings,
            routes,
            by_workspace: HashMap::new(),
            idle,
            publisher,
        };
        for webhook in webhooks {
            registry.remember(Arc::new(webhook));
        }
        registry
    }

    /// Publishes from any thread, matching events against the registry's current webhooks.
    /// Use it once the registry runs with its endpoints ([`Registry::launch`]).
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Starts the registry with every enabled webhook's endpoint already running, so the
    /// [`Publisher`] finds each webhook with its endpoint from the first publish (a delivery
    /// matched to a webhook without its endpoint would wait in the database).
    pub fn launch(self) -> Addr<Self> {
        Self::create(move |ctx| {
            let mut registry = self;
            registry.start_endpoints(ctx);
            registry
        })
    }

    fn start_endpoints(&mut self, ctx: &mut Context<Self>) {
        let missing: Vec<_> = {
            let routes = self.routes.read();
            routes.webhooks.values().filter(|w| w.enabled && !routes.endpoints.contains_key(&w.id)).cloned().collect()
        };
        for webhook in missing {
            self.sync_endpoint(&webhook, ctx);
        }
    }

    /// Applies a new or changed webhook. Publishers match on other threads, so the order
    /// matters: an enabled webhook's endpoint runs before publishes can match the webhook,
    /// and a disabled one stops matching before its endpoint stops.
    fn apply(&mut self, webhook: Arc<Webhook>, ctx: &mut Context<Self>) {
        if webhook.enabled {
            self.sync_endpoint(&webhook, ctx);
            self.remember(webhook);
        } else {
            self.remember(webhook.clone());
            self.sync_endpoint(&webhook, ctx);
        }
    }

    fn remember(&mut self, webhook: Arc<Webhook>) {
        self.by_workspace.entry(webhook.workspace_id).or_default().insert(webhook.id);
        self.routes.write().insert(webhook);
    }

    /// Takes a webhook out of the routes (no publish matches it any more) and stops its
    /// endpoint; it stays listed until [`Registry::forget`].
    fn unroute(&mut self, id: WebhookId) {
        self.routes.write().remove(id);
        self.stop_endpoint(id);
    }

    fn forget(&mut self, workspace_id: WorkspaceId, id: WebhookId) {
        self.unroute(id);
        if let Some(ids) = self.by_workspace.get_mut(&workspace_id) {
            ids.remove(&id);
        }
    }

    fn webhook(&self, id: &WebhookId) -> Option<Arc<Webhook>> {
        self.routes.read().webhooks.get(id).cloned()
    }

    fn endpoint(&self, id: &WebhookId) -> Option<Addr<EndpointActor>> {
        self.routes.read().endpoints.get(id).cloned()
    }

    /// Deliveries can be sent again only to a webhook that exists and is enabled.
    fn check_deliverable(&self, webhook_id: WebhookId) -> Result<(), RegistryError> {
        match self.webhook(&webhook_id) {
            None => Err(ValidationError::new("delivery", "its webhook was deleted").into()),
            Some(w) if !w.enabled => Err(ValidationError::new("webhook", "is disabled; enable it first").into()),
            Some(_) => Ok(()),
        }
    }

    fn find(&self, workspace_id: WorkspaceId, id: WebhookId) -> Result<Arc<Webhook>, RegistryError> {
        self.webhook(&id).filter(|w| w.workspace_id == workspace_id).ok_or(RegistryError::NotFound("webhook"))
    }

    /// Starts or stops the webhook's endpoint actor to match its enabled flag.
    fn sync_endpoint(&mut self, webhook: &Arc<Webhook>, ctx: &mut Context<Self>) {
        match (webhook.enabled, self.endpoint(&webhook.id)) {
            (true, Some(endpoint)) => endpoint.do_send(WebhookChanged { webhook: webhook.clone() }),
            (true, None) => {
                let deps = EndpointDeps {
                    store: self.store.clone(),
                    recorder: self.recorder.clone(),
                    disable: ctx.address().recipient(),
                    failed: ctx.address().recipient(),
                    outbound: self.outbound.clone(),
                    metrics: self.metrics.clone(),
                    circuit: self.settings.circuit,
                    backoff_max: self.settings.backoff_max,
                    window: self.settings.pending_window,
                    pool: self.pool.clone(),
                };
                let backlog = !self.idle.remove(&webhook.id);
                let endpoint = EndpointActor::new(webhook.clone(), deps, backlog).start();
                self.routes.write().endpoints.insert(webhook.id, endpoint);
            }
            (false, _) => self.stop_endpoint(webhook.id),
        }
    }

    fn stop_endpoint(&mut self, id: WebhookId) {
        let stopped = self.routes.write().endpoints.remove(&id);
        if let Some(endpoint) = stopped {
            endpoint.do_send(StopEndpoint);
        }
    }

    /// Persists a changed webhook, then applies it in memory; fails pending deliveries
    /// (but `ended_by`'s) when it went from enabled to disabled.
    fn commit_change(
        &mut self,
        before: Arc<Webhook>,
        after: Webhook,
        ended_by: Option<DeliveryId>,
    ) -> ResponseActFuture<Self, Result<Arc<Webhook>, RegistryError>> {
        let store = self.store.clone();
        let after = Arc::new(after);
        let written = after.clone();
        let disabled_now = before.enabled && !after.enabled;
        Box::pin(
            async move {
                store.update_webhook(&written).await?;
                if !disabled_now {
                    return Ok(0);
                }
                let reason = FailureReason::WebhookDisabled(written.disabled_reason.unwrap_or(DisabledReason::Manual));
                let failed = store
                    .fail_pending_deliveries(written.id, &reason.to_string(), ended_by, crate::domain::now())
                    .await?;
                Ok::<_, RegistryError>(failed)
            }
            .into_actor(self)
            .map(move |result, act, ctx| {
                let failed = result?;
                act.apply(after.clone(), ctx);
                if disabled_now {
                    act.metrics.deliveries_completed(FinalStatus::Failed, failed as u64);
                    let data = serde_json::json!({
                        "webhook_id": after.id,
                        "name": after.name,
                        "reason": after.disabled_reason,
                        "failed_deliveries": failed,
                    });
                    act.publish_operational(after.workspace_id, "hookbus.webhook.disabled", data, ctx);
                }
                Ok(after)
            }),
        )
    }

    /// Publishes one of hookbus' own `hookbus.*` events (operational webhooks), if an
    /// enabled webhook of the workspace subscribes to it: nobody would read it otherwise, and
    /// a dead endpoint's backlog would store one for every delivery that fails.
    fn publish_operational(
        &mut self,
        workspace_id: WorkspaceId,
        event: &'static str,
        data: serde_json::Value,
        ctx: &mut Context<Self>,
    ) {
        let event = EventType::from_stored(event.to_owned());
        if self.routes.read().matching(workspace_id, &event).is_empty() {
            return;
        }
        let published = self.publisher.begin(workspace_id, event, data.to_string(), None).finish();
        ctx.spawn(fut::wrap_future(published).map(|result, _: &mut Self, _| {
            if let Err(error) = result {
                log::error!("could not publish an operational event: {error}");
            }
        }));
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Already done by `launch`; here for a registry started as a plain actor.
        self.start_endpoints(ctx);
        {
            let routes = self.routes.read();
            log::info!("registry started with {} webhooks ({} enabled)", routes.webhooks.len(), routes.endpoints.len());
        }
        let mut earlier = self.metrics.traffic();
        ctx.run_interval(SUMMARY_INTERVAL, move |act, ctx| {
            let now = act.metrics.traffic();
            let (since, store) = (std::mem::replace(&mut earlier, now), act.store.clone());
            if now == since {
                return;
            }
            ctx.spawn(fut::wrap_future(async move {
                let pending = store.queue_depths().await.map_or(0, |depths| depths.iter().map(|(_, n)| n).sum());
                if let Some(line) = now.summary_since(since, pending) {
                    log::info!("{line}");
                }
            }));
        });
    }
}

/// How often a server with traffic logs a summary line.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

impl Registry {
    fn check_room(&self, workspace_id: WorkspaceId) -> Result<(), RegistryError> {
        let registered = self.by_workspace.get(&workspace_id).map_or(0, BTreeSet::len);
        let limit = self.settings.max_webhooks_per_workspace;
        if registered >= limit {
            let full = ValidationError::new("webhooks", format!("the workspace already has the maximum of {limit}"));
            return Err(full.into());
        }
        Ok(())
    }

    /// The registration half of the target guard: a host name that resolves to an internal
    /// address is refused (the connect-time half re-checks every connection). Runs outside
    /// the atomic part, within `registration_dns_timeout`.
    fn dns_check(&self) -> impl Fn(&WebhookUrl) -> futures_util::future::BoxFuture<'static, Result<(), RegistryError>> {
        let guard = !self.settings.url_policy.allow_private;
        let (resolver, deadline) = (self.settings.resolver.clone(), self.settings.registration_dns_timeout);
        move |url| {
            let (resolver, url) = (resolver.clone(), url.clone());
            Box::pin(async move {
                if guard && crate::delivery::resolves_to_internal(&resolver, &url, deadline).await {
                    let message = "resolves to a private, loopback or otherwise internal address";
                    return Err(ValidationError::new("url", message).into());
                }
                Ok(())
            })
        }
    }
}

impl Handler<RegisterWebhook> for Registry {
    type Result = ResponseFuture<Result<Arc<Webhook>, RegistryError>>;

    fn handle(&mut self, msg: RegisterWebhook, ctx: &mut Context<Self>) -> Self::Result {
        let webhook = self.check_room(msg.workspace_id).and_then(|()| {
            Ok(Webhook::create(msg.workspace_id, msg.input, self.settings.url_policy, crate::domain::now())?)
        });
        let webhook = match webhook {
            Ok(webhook) => Arc::new(webhook),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let (dns_check, registry) = (self.dns_check(), ctx.address());
        Box::pin(async move {
            dns_check(&webhook.url).await?;
            registry.send(InsertWebhook { webhook }).await?
        })
    }
}

impl Handler<InsertWebhook> for Registry {
    type Result = AtomicResponse<Self, Result<Arc<Webhook>, RegistryError>>;

    fn handle(&mut self, msg: InsertWebhook, _: &mut Context<Self>) -> Self::Result {
        // Checked again: other registrations may have filled the workspace meanwhile.
        if let Err(full) = self.check_room(msg.webhook.workspace_id) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(full))));
        }
        let (store, webhook) = (self.store.clone(), msg.webhook);
        let written = webhook.clone();
        let register = async move { store.insert_webhook(&written).await };
        AtomicResponse::new(Box::pin(register.into_actor(self).map(move |result, act, ctx| {
            result?;
            log::info!("webhook {} created in workspace {}", webhook.id, webhook.workspace_id);
            act.idle.insert(webhook.id);
            act.apply(webhook.clone(), ctx);
            Ok(webhook)
        })))
    }
}

impl Handler<UpdateWebhook> for Registry {
    type Result = ResponseFuture<Result<Arc<Webhook>, RegistryError>>;

    fn handle(&mut self, msg: UpdateWebhook, ctx: &mut Context<Self>) -> Self::Result {
        // Only a new target needs a lookup; its URL is judged whole in the atomic part.
        let new_url = match (&msg.patch.url, self.find(msg.workspace_id, msg.webhook_id)) {
            (_, Err(e)) => return Box::pin(std::future::ready(Err(e))),
            (Some(raw), Ok(before)) => {
                WebhookUrl::parse("url", raw, self.settings.url_policy).ok().filter(|url| *url != before.url)
            }
            (None, Ok(_)) => None,
        };
        let (dns_check, registry) = (self.dns_check(), ctx.address());
        Box::pin(async move {
            if let Some(url) = new_url {
                dns_check(&url).await?;
            }
            registry.send(ApplyUpdate(msg)).await?
        })
    }
}

impl Handler<ApplyUpdate> for Registry {
    type Result = AtomicResponse<Self, Result<Arc<Webhook>, RegistryError>>;

    fn handle(&mut self, ApplyUpdate(msg): ApplyUpdate, _: &mut Context<Self>) -> Self::Result {
        if msg.patch.enabled == Some(true) {
            // Explicitly enabling closes the circuit (a disabled webhook starts afresh anyway).
            if let Some(endpoint) = self.endpoint(&msg.webhook_id) {
                endpoint.do_send(ResetCircuit);
            }
        }
        let patched = self.find(msg.workspace_id, msg.webhook_id).and_then(|before| {
            let after = before.patched(msg.patch, self.settings.url_policy, crate::domain::now())?;
            Ok((before, after))
        });
        match patched {
            Ok((before, after)) => {
                log::info!("webhook {} changed", after.id);
                AtomicResponse::new(self.commit_change(before, after, None))
            }
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}

impl Handler<DisableWebhook> for Registry {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: DisableWebhook, _: &mut Context<Self>) -> Self::Result {
        let Some(before) = self.webhook(&msg.webhook_id).filter(|w| w.enabled) else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        log::warn!("webhook {} disabled: {}", msg.webhook_id, msg.reason.as_str());
        let mut after = (*before).clone();
        after.disable(msg.reason, crate::domain::now());
        AtomicResponse::new(Box::pin(self.commit_change(before, after, msg.ended_by).map(move |result, _, _| {
            if let Err(error) = result {
                log::error!("could not disable webhook {}: {error}", msg.webhook_id);
            }
        })))
    }
}

impl Handler<DeleteWebhook> for Registry {
    type Result = AtomicResponse<Self, Result<(), RegistryError>>;

    fn handle(&mut self, msg: DeleteWebhook, _: &mut Context<Self>) -> Self::Result {
        let webhook = match self.find(msg.workspace_id, msg.webhook_id) {
            Ok(webhook) => webhook,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        // Out of the routes and stopped first: no publish adds a delivery the delete would
        // miss, and no attempt reaches the URL once the delete is answered.
        self.unroute(msg.webhook_id);
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.delete_webhook(msg.webhook_id, crate::domain::now()).await }.into_actor(self).map(
                move |result, act, ctx| match result {
                    Ok(cancelled) => {
                        log::info!("webhook {} deleted; {cancelled} pending deliveries cancelled", msg.webhook_id);
                        act.metrics.deliveries_completed(FinalStatus::Cancelled, cancelled as u64);
                        act.forget(msg.workspace_id, msg.webhook_id);
                        Ok(())
                    }
                    Err(e) => {
                        // Not deleted: put it back.
                        act.apply(webhook, ctx);
                        Err(e.into())
                    }
                },
            ),
        ))
    }
}

impl Handler<GetWebhook> for Registry {
    type Result = Result<Arc<Webhook>, RegistryError>;

    fn handle(&mut self, msg: GetWebhook, _: &mut Context<Self>) -> Self::Result {
        self.find(msg.workspace_id, msg.webhook_id)
    }
}

impl Handler<ListWebhooks> for Registry {
    type Result = Result<Page<Arc<Webhook>>, RegistryError>;

    fn handle(&mut self, msg: ListWebhooks, _: &mut Context<Self>) -> Self::Result {
        let Some(ids) = self.by_workspace.get(&msg.workspace_id) else {
            return Ok(Page { data: vec![], next_cursor: None });
        };
        let newer_than_cursor = |id: &&WebhookId| msg.cursor.is_none_or(|cursor| **id < cursor);
        let mut data: Vec<_> =
            ids.iter().rev().filter(newer_than_cursor).take(msg.limit + 1).filter_map(|id| self.webhook(id)).collect();
        let next_cursor = (data.len() > msg.limit).then(|| {
            data.truncate(msg.limit);
            data.last().map(|w| w.id.to_string()).unwrap_or_default()
        });
        Ok(Page { data, next_cursor })
    }
}

impl Handler<RotateSecret> for Registry {
    type Result = AtomicResponse<Self, Result<RotatedSecret, RegistryError>>;

    fn handle(&mut self, msg: RotateSecret, _: &mut Context<Self>) -> Self::Result {
        let rotated = self.find(msg.workspace_id, msg.webhook_id).and_then(|before| {
            let secret = match msg.secret {
                Some(raw) => WebhookSecret::parse("secret", &raw)?,
                None => WebhookSecret::generate(),
            };
            let mut after = (*before).clone();
            let valid_until = after.rotate_secret(secret, self.settings.rotation_overlap, crate::domain::now());
            Ok((before, after, valid_until))
        });
        match rotated {
            Ok((before, after, previous_valid_until)) => {
                AtomicResponse::new(Box::pin(self.commit_change(before, after, None).map(move |result, _, _| {
                    let webhook = result?;
                    Ok(RotatedSecret { secret: webhook.secret.expose().to_owned(), previous_valid_until })
                })))
            }
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}

impl Handler<Publish> for Registry {
    type Result = ResponseFuture<Result<Published, RegistryError>>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        match self.publisher.start(msg) {
            Ok(in_flight) => Box::pin(in_flight.finish()),
            Err(invalid) => Box::pin(std::future::ready(Err(invalid))),
        }
    }
}

impl Handler<StartPublish> for Registry {
    type Result = Result<PublishInFlight, RegistryError>;

    fn handle(&mut self, msg: StartPublish, _: &mut Context<Self>) -> Self::Result {
        self.publisher.start(msg.0)
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
        let data = serde_json::json!({
            "delivery_id": delivery.id,
            "webhook_id": delivery.webhook_id,
            "event_id": delivery.event_id,
            "event": delivery.event,
            "attempt_count": delivery.attempt_count,
            "status_code": delivery.status_code,
            "error_message": delivery.error_message,
            "failure_reason": delivery.failure_reason,
        });
        self.publish_operational(delivery.workspace_id, "hookbus.delivery.failed", data, ctx);
    }
}

impl Handler<HealthSnapshot> for Registry {
    type Result = ResponseFuture<Vec<WebhookHealth>>;

    fn handle(&mut self, msg: HealthSnapshot, _: &mut Context<Self>) -> Self::Result {
        let webhooks: Vec<_> = self
            .by_workspace
            .get(&msg.workspace_id)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|id| self.webhook(id))
            .map(|webhook| (self.endpoint(&webhook.id), webhook))
            .collect();
        Box::pin(async move {
            let mut snapshot = Vec::with_capacity(webhooks.len());
            for (endpoint, webhook) in webhooks {
                let endpoint = match endpoint {
                    Some(endpoint) => endpoint.send(GetEndpointHealth).await.unwrap_or_default(),
                    None => Default::default(),
                };
                snapshot.push(WebhookHealth { webhook, endpoint });
            }
            snapshot
        })
    }
}

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
                let publish = WriteOp::Publish(PublishWrite { event: record.clone(), deliveries: vec![delivery] });
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
                if let Some(endpoint) = act.endpoint(&record.webhook_id) {
                    endpoint.do_send(DeliveryEnqueued { delivery: pending, redelivered: true });
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
                if let Some(endpoint) = act.endpoint(&msg.webhook_id) {
                    endpoint.do_send(DeliveriesRequeued);
                }
                result
            }),
        )
    }
}

impl Handler<DrainDeliveries> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: DrainDeliveries, _: &mut Context<Self>) -> Self::Result {
        let drains: Vec<_> = self.routes.read().endpoints.values().map(|e| e.send(DrainEndpoint)).collect();
        let recorder = self.recorder.clone();
        Box::pin(async move {
            if actix_rt::time::timeout(msg.timeout, futures_util::future::join_all(drains)).await.is_err() {
                log::warn!("shutdown: attempts still in flight after {:?}; they will be retried", msg.timeout);
            }
            // The records of the last attempts reach the writer before the shutdown flush does.
            recorder.send_now();
        })
    }
}
