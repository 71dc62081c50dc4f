//! The `Registry` actor: owns every webhook config, matches published events to
//! webhooks, and starts/stops one `EndpointActor` per enabled webhook.
//!
//! Config changes are atomic (the registry waits for their database write before the
//! next message), so the in-memory map and the database never disagree. Publishes are
//! not: many wait for their group commit at once. Nor is the DNS check of a new target:
//! a lookup can take seconds, and every tenant's changes would wait behind it, so it runs
//! (with a deadline) before the change enters the atomic part.
//!
//! Here: the actor, its endpoints and the read-only messages. Beside it: `changes` (webhook
//! changes), `operational` (`hookbus.*` events), `redelivery` (test, redeliver, replay),
//! `publisher` (publishing from any thread), `routes` and `subscriptions` (matching).

mod changes;
mod messages;
mod operational;
mod ownership;
mod publisher;
mod redelivery;
mod routes;
mod subscriptions;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

pub use messages::{
    DeleteWebhook, DeliveryFailed, DisableWebhook, DrainDeliveries, GetWebhook, HealthSnapshot, ListWebhooks, Publish,
    Published, Redeliver, RegisterWebhook, ReplayDeliveries, RotateSecret, RotatedSecret, StartPublish, StartReplay,
    TestResult, TestWebhook, UpdateWebhook, WebhookHealth,
};

use self::ownership::NoticedDeliveries;
pub use self::ownership::{
    CloseCircuit, DeliveriesNoticed, DropLeases, HandOver, LeaseState, Ownership, RefreshWebhooks, ReportLeases,
    RunningWebhooks, SweepEndpoints, TakeLeases,
};
use self::publisher::body_hash;
pub use self::publisher::{PublishInFlight, Publisher};
use self::routes::SharedRoutes;
use super::endpoint::{
    DeliveriesRequeued, DeliveryEnqueued, DrainEndpoint, EndpointActor, EndpointDeps, GetEndpointHealth, OverflowPool,
    StopEndpoint, WebhookChanged,
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

#[warn(missing_docs)]
/// Why a message to the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such resource in the caller's workspace (names it).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A value is invalid (names the field).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The request conflicts with the current state.
    #[error("event id '{0}' was already published with a different body")]
    Conflict(String),
    /// The database failed.
    #[error("storage failed")]
    Store(#[source] Arc<StoreError>),
    /// The registry has stopped (the server is shutting down).
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

#[warn(missing_docs)]
/// The actor that owns every webhook config: send it the messages of this crate's root.
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
    /// Which webhooks' endpoints run on this server.
    ownership: Ownership,
    noticed: NoticedDeliveries,
}

impl Registry {
    /// A registry over the webhooks already loaded from `store`. `config_version`: on
    /// PostgreSQL, the configuration version read before the webhooks were loaded.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        writer: Writer,
        metrics: Arc<Metrics>,
        settings: RegistrySettings,
        webhooks: Vec<Webhook>,
        idle: HashSet<WebhookId>,
        ownership: Ownership,
        config_version: Option<i64>,
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
            ownership,
            noticed: NoticedDeliveries::default(),
        };
        for webhook in webhooks {
            registry.remember(Arc::new(webhook));
        }
        {
            let mut routes = registry.routes.write();
            routes.config_version = config_version;
            if let Ownership::Leased { clock, .. } = &registry.ownership {
                routes.lease_clock = Some(clock.clone());
            }
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
            registry.publisher.set_refresher(ctx.address().recipient());
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

    /// Starts or stops the webhook's endpoint actor to match its enabled flag (and, with
    /// several servers, whether this one owns it).
    fn sync_endpoint(&mut self, webhook: &Arc<Webhook>, ctx: &mut Context<Self>) {
        let runs_here = webhook.enabled && self.ownership.owns(&webhook.id);
        match (runs_here, self.endpoint(&webhook.id)) {
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
                let lease = self.ownership.lease_for(&webhook.id);
                let endpoint = EndpointActor::new(webhook.clone(), deps, backlog, lease).start();
                let running = {
                    let mut routes = self.routes.write();
                    routes.endpoints.insert(webhook.id, endpoint);
                    routes.endpoints.len()
                };
                self.metrics.set_owned_webhooks(running);
            }
            (false, _) => self.stop_endpoint(webhook.id),
        }
    }

    fn stop_endpoint(&mut self, id: WebhookId) {
        let (stopped, running) = {
            let mut routes = self.routes.write();
            (routes.endpoints.remove(&id), routes.endpoints.len())
        };
        self.metrics.set_owned_webhooks(running);
        if let Some(endpoint) = stopped {
            endpoint.do_send(StopEndpoint);
        }
    }

    /// The webhooks whose endpoints run here (with several servers, those it owns).
    pub(super) fn running(&self) -> HashSet<WebhookId> {
        self.routes.read().endpoints.keys().copied().collect()
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
        let server_id = self.ownership.server_id().map(str::to_owned);
        let store = self.store.clone();
        Box::pin(async move {
            // With several servers, the webhooks owned elsewhere show what their owner last
            // reported.
            let elsewhere: Vec<WebhookId> =
                webhooks.iter().filter(|(endpoint, w)| endpoint.is_none() && w.enabled).map(|(_, w)| w.id).collect();
            let mut owners = HashMap::new();
            if server_id.is_some() && !elsewhere.is_empty() {
                match store.lease_owners(&elsewhere).await {
                    Ok(found) => owners.extend(found.into_iter().map(|o| (o.webhook_id, o))),
                    Err(error) => log::warn!("health: could not read the webhooks' owners: {error}"),
                }
            }
            let mut snapshot = Vec::with_capacity(webhooks.len());
            for (endpoint, webhook) in webhooks {
                let (owner, endpoint) = match endpoint {
                    Some(endpoint) => (server_id.clone(), endpoint.send(GetEndpointHealth).await.unwrap_or_default()),
                    None => match owners.remove(&webhook.id) {
                        Some(found) => {
                            let reported = found.health.and_then(|json| serde_json::from_str(&json).ok());
                            (Some(found.owner), reported.unwrap_or_default())
                        }
                        None => (None, Default::default()),
                    },
                };
                snapshot.push(WebhookHealth { webhook, endpoint, owner });
            }
            snapshot
        })
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
