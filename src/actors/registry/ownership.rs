//! Which webhooks this server runs endpoints for, and keeping its webhooks current when
//! other servers change them (SPEC §9). Alone on its database (SQLite) a server runs every
//! enabled webhook's endpoint. On PostgreSQL it runs those it holds a lease on: the
//! [`Coordinator`](crate::actors::coordinator::Coordinator) claims, renews and gives up
//! leases and tells the registry through the messages here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{Registry, RegistryError};
use crate::actors::endpoint::{
    DeliveriesLoaded, DeliveriesRequeued, DrainEndpoint, EndpointHealth, EndpointLease, LeaseClock, LeaseReport,
    ResetCircuit, StopEndpoint, SweepPending,
};
use crate::domain::circuit::SavedCircuit;
use crate::domain::webhook::Webhook;
use crate::domain::{DeliveryId, WebhookId};
use crate::store::cluster::{channel, Announcements, ClaimedLease, DeliveryNotice, HeldLease};
use crate::store::PendingDelivery;

/// Which webhooks' endpoints run here.
pub enum Ownership {
    /// Every enabled webhook's (one server on its database).
    All,
    /// Those this server holds a lease on (PostgreSQL, where others may share the database).
    Leased {
        /// This server's id, as other servers see it.
        server_id: String,
        clock: LeaseClock,
        /// How long a lease lasts beyond its renewal.
        ttl: Duration,
        leases: HashMap<WebhookId, Lease>,
    },
}

/// A lease held by this server.
pub struct Lease {
    epoch: i64,
    /// The circuit the previous owner saved, until the endpoint starts with it.
    circuit: Option<SavedCircuit>,
}

impl Ownership {
    /// Leases will be claimed by the coordinator; none is held yet.
    pub fn leased(server_id: String, clock: LeaseClock, ttl: Duration) -> Self {
        Self::Leased { server_id, clock, ttl, leases: HashMap::new() }
    }

    /// What a server needs to claim a webhook it creates: its id and the lease's length.
    pub(super) fn claimant(&self) -> Option<(String, Duration)> {
        match self {
            Self::All => None,
            Self::Leased { server_id, ttl, .. } => Some((server_id.clone(), *ttl)),
        }
    }

    /// A lease this server claimed itself, asked for at `sent_at`. As the coordinator's claims:
    /// only a server that held no lease moves its clock (the others' clock is their renewal's).
    pub(super) fn take_claimed(&mut self, claim: ClaimedLease, sent_at: Instant) {
        if let Self::Leased { clock, ttl, leases, .. } = self {
            if leases.is_empty() {
                clock.extend_to(sent_at + *ttl);
            }
            leases.insert(claim.webhook_id, Lease { epoch: claim.epoch, circuit: Some(claim.circuit) });
        }
    }

    pub(super) fn owns(&self, id: &WebhookId) -> bool {
        match self {
            Self::All => true,
            Self::Leased { leases, .. } => leases.contains_key(id),
        }
    }

    pub(super) fn server_id(&self) -> Option<&str> {
        match self {
            Self::All => None,
            Self::Leased { server_id, .. } => Some(server_id),
        }
    }

    /// The lease an endpoint starting now runs under (and the circuit to go on from).
    pub(super) fn lease_for(&mut self, id: &WebhookId) -> Option<(EndpointLease, SavedCircuit)> {
        match self {
            Self::All => None,
            Self::Leased { clock, leases, .. } => leases.get_mut(id).map(|lease| {
                let endpoint = EndpointLease { epoch: lease.epoch, clock: clock.clone() };
                (endpoint, lease.circuit.take().unwrap_or_default())
            }),
        }
    }

    fn leases(&mut self) -> Option<&mut HashMap<WebhookId, Lease>> {
        match self {
            Self::All => None,
            Self::Leased { leases, .. } => Some(leases),
        }
    }
}

/// Brings the registry's webhooks up to date with the database (several servers: another
/// one may have changed them). `newer_than`: a configuration version known to be stale, so
/// the registry reads again unless it has read a newer one meanwhile; `None`: it asks the
/// database for the current version first.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct RefreshWebhooks {
    pub newer_than: Option<i64>,
}

/// What the coordinator writes at each renewal.
#[derive(Debug, Message)]
#[rtype(result = "LeaseState")]
pub struct ReportLeases;

/// The leases held, with each one's live figures; and how many webhooks are enabled.
#[derive(Debug, Default)]
pub struct LeaseState {
    pub leases: Vec<(HeldLease, EndpointHealth)>,
    /// Held leases of webhooks that are disabled (or unknown): the coordinator gives them up.
    pub idle: Vec<WebhookId>,
    pub enabled_webhooks: usize,
}

/// Leases just claimed: their endpoints start here.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TakeLeases(pub Vec<ClaimedLease>);

/// Leases that could not be renewed (another server may own them now): their endpoints stop
/// at once; attempts in flight finish and are recorded under their old epoch.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DropLeases(pub Vec<WebhookId>);

/// Leases to give up: their endpoints stop starting attempts, those in flight finish, and the
/// answer holds each lease with its final circuit, for the coordinator to release once the
/// records are written.
#[derive(Debug, Message)]
#[rtype(result = "Vec<HeldLease>")]
pub struct HandOver(pub Vec<WebhookId>);

/// Deliveries other servers published or requeued.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliveriesNoticed(pub Announcements);

/// The webhooks whose endpoints run on this server (what its `/metrics` shows).
#[derive(Debug, Message)]
#[rtype(result = "HashSet<WebhookId>")]
pub struct RunningWebhooks;

impl Handler<RunningWebhooks> for Registry {
    type Result = MessageResult<RunningWebhooks>;

    fn handle(&mut self, _: RunningWebhooks, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.running())
    }
}

/// Every endpoint here looks for pending deliveries nobody announced ([`SweepPending`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SweepEndpoints {
    pub catch_up: bool,
}

/// Another server asks the owner to close a webhook's circuit ([`channel::CIRCUIT`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseCircuit(pub WebhookId);

impl Handler<CloseCircuit> for Registry {
    type Result = ();

    fn handle(&mut self, CloseCircuit(webhook_id): CloseCircuit, _: &mut Context<Self>) {
        // Not passed on: the server that asked told every server.
        self.close_circuit_here(webhook_id);
    }
}

impl Registry {
    /// Closes the webhook's circuit if its endpoint runs here; `false` if it does not.
    fn close_circuit_here(&self, webhook_id: WebhookId) -> bool {
        self.endpoint(&webhook_id).map(|endpoint| endpoint.do_send(ResetCircuit)).is_some()
    }

    /// Closes the webhook's circuit where its endpoint runs: here, or, with several servers,
    /// on its owner, told through the database.
    pub(super) fn close_circuit(&self, webhook_id: WebhookId) {
        if self.close_circuit_here(webhook_id) || self.ownership.server_id().is_none() {
            return;
        }
        let store = self.store.clone();
        actix_rt::spawn(async move {
            if let Err(error) = store.notify(channel::CIRCUIT, &webhook_id.to_string()).await {
                log::warn!("could not tell webhook {webhook_id}'s owner to close its circuit: {error}");
            }
        });
    }

    /// With several servers: deliveries of a webhook owned elsewhere were put back in
    /// `pending`; its owner pages them in.
    pub(super) fn tell_owner_requeued(&self, webhook_id: WebhookId) {
        self.tell_owners(vec![DeliveryNotice { webhook_id, deliveries: Vec::new(), requeued: true }]);
    }

    /// With several servers: announces deliveries to whichever server owns their webhooks.
    fn tell_owners(&self, notices: Vec<DeliveryNotice>) {
        if self.ownership.server_id().is_none() || notices.is_empty() {
            return;
        }
        let store = self.store.clone();
        actix_rt::spawn(async move {
            if let Err(error) = store.announce(&notices).await {
                log::warn!("could not announce deliveries to their webhooks' owners (the sweep finds them): {error}");
            }
        });
    }

    /// Applies the webhooks as the database has them at `version`.
    fn apply_loaded(&mut self, version: i64, loaded: Vec<Webhook>, ctx: &mut Context<Self>) {
        let mut present = HashSet::with_capacity(loaded.len());
        for webhook in loaded {
            present.insert(webhook.id);
            if self.webhook(&webhook.id).as_deref() != Some(&webhook) {
                self.apply(Arc::new(webhook), ctx);
            }
        }
        let gone: Vec<_> = {
            let routes = self.routes.read();
            routes.webhooks.values().filter(|w| !present.contains(&w.id)).map(|w| (w.workspace_id, w.id)).collect()
        };
        for (workspace_id, id) in gone {
            self.forget(workspace_id, id);
        }
        self.routes.write().config_version = Some(version);
    }
}

impl Handler<RefreshWebhooks> for Registry {
    type Result = AtomicResponse<Self, Result<(), RegistryError>>;

    fn handle(&mut self, msg: RefreshWebhooks, _: &mut Context<Self>) -> Self::Result {
        let known = self.routes.read().config_version;
        let Some(known) = known else {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        };
        if msg.newer_than.is_some_and(|stale| known > stale) {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        }
        let store = self.store.clone();
        let load = async move {
            // The version first: the webhooks read after it are at least that new.
            let version = store.config_version().await?;
            if msg.newer_than.is_none() && version == known {
                return Ok(None);
            }
            Ok::<_, RegistryError>(Some((version, store.load_webhooks().await?)))
        };
        AtomicResponse::new(Box::pin(load.into_actor(self).map(|loaded, act, ctx| {
            if let Some((version, webhooks)) = loaded? {
                act.apply_loaded(version, webhooks, ctx);
            }
            Ok(())
        })))
    }
}

impl Handler<ReportLeases> for Registry {
    type Result = ResponseFuture<LeaseState>;

    fn handle(&mut self, _: ReportLeases, _: &mut Context<Self>) -> Self::Result {
        let enabled_webhooks = self.routes.read().webhooks.values().filter(|w| w.enabled).count();
        let Ownership::Leased { leases, .. } = &self.ownership else {
            return Box::pin(std::future::ready(LeaseState { enabled_webhooks, ..Default::default() }));
        };
        let mut running = Vec::new();
        let mut idle = Vec::new();
        for (id, lease) in leases {
            match (self.webhook(id), self.endpoint(id)) {
                (Some(webhook), Some(endpoint)) => {
                    running.push((*id, lease.epoch, webhook.settings.timeout_ms, endpoint))
                }
                _ => idle.push(*id),
            }
        }
        Box::pin(async move {
            let reports = running.into_iter().map(|(webhook_id, epoch, timeout_ms, endpoint)| async move {
                let (health, circuit) = endpoint.send(LeaseReport).await.unwrap_or_default();
                (HeldLease { webhook_id, epoch, timeout_ms, circuit }, health)
            });
            LeaseState { leases: futures_util::future::join_all(reports).await, idle, enabled_webhooks }
        })
    }
}

impl Handler<TakeLeases> for Registry {
    type Result = ();

    fn handle(&mut self, TakeLeases(claimed): TakeLeases, ctx: &mut Context<Self>) {
        let Some(leases) = self.ownership.leases() else {
            return;
        };
        let mut started = Vec::with_capacity(claimed.len());
        for claim in claimed {
            leases.insert(claim.webhook_id, Lease { epoch: claim.epoch, circuit: Some(claim.circuit) });
            started.push(claim.webhook_id);
        }
        for id in started {
            // Deliveries may wait in the database from the previous owner or other servers.
            self.idle.remove(&id);
            if let Some(webhook) = self.webhook(&id) {
                self.sync_endpoint(&webhook, ctx);
            }
        }
    }
}

impl Handler<DropLeases> for Registry {
    type Result = ();

    fn handle(&mut self, DropLeases(lost): DropLeases, _: &mut Context<Self>) {
        if let Some(leases) = self.ownership.leases() {
            for id in &lost {
                leases.remove(id);
            }
            for id in lost {
                log::warn!("webhook {id}: lease lost; its endpoint stops here");
                self.stop_endpoint(id);
            }
        }
    }
}

impl Handler<HandOver> for Registry {
    type Result = ResponseFuture<Vec<HeldLease>>;

    fn handle(&mut self, HandOver(ids): HandOver, _: &mut Context<Self>) -> Self::Result {
        let mut handing = Vec::new();
        if let Some(leases) = self.ownership.leases() {
            for id in ids {
                if let Some(lease) = leases.remove(&id) {
                    handing.push((id, lease.epoch));
                }
            }
        }
        let handing: Vec<_> = handing
            .into_iter()
            .map(|(id, epoch)| {
                let timeout_ms = self.webhook(&id).map_or(0, |w| w.settings.timeout_ms);
                // Out of the routes first: publishes here now tell the next owner instead.
                let (endpoint, running) = {
                    let mut routes = self.routes.write();
                    (routes.endpoints.remove(&id), routes.endpoints.len())
                };
                self.metrics.set_owned_webhooks(running);
                (id, epoch, timeout_ms, endpoint)
            })
            .collect();
        let recorder = self.recorder.clone();
        Box::pin(async move {
            let mut held = Vec::with_capacity(handing.len());
            for (webhook_id, epoch, timeout_ms, endpoint) in handing {
                let circuit = match endpoint {
                    Some(endpoint) => {
                        let _ = endpoint.send(DrainEndpoint).await;
                        let (_, circuit) = endpoint.send(LeaseReport).await.unwrap_or_default();
                        endpoint.do_send(StopEndpoint);
                        circuit
                    }
                    None => SavedCircuit::default(),
                };
                held.push(HeldLease { webhook_id, epoch, timeout_ms, circuit });
            }
            // The drained attempts' records go to the writer before the caller's flush.
            recorder.send_now();
            held
        })
    }
}

impl Handler<DeliveriesNoticed> for Registry {
    type Result = ();

    fn handle(&mut self, DeliveriesNoticed(mut announced): DeliveriesNoticed, ctx: &mut Context<Self>) {
        // Every server hears every announcement: those of webhooks not run here are another's
        // (one handed over meanwhile starts with a read of the database that finds them).
        let here = announced.carried_for(|webhook_id| self.endpoint(webhook_id).is_some());
        self.hand_to_endpoints(here);
        for notice in announced.notices {
            let Some(endpoint) = self.endpoint(&notice.webhook_id) else {
                continue;
            };
            if notice.requeued {
                endpoint.do_send(DeliveriesRequeued);
            } else {
                self.noticed.waiting.extend(notice.deliveries);
            }
        }
        self.read_noticed(ctx);
    }
}

/// Deliveries other servers announced, on their way to this server's endpoints.
#[derive(Default)]
pub(super) struct NoticedDeliveries {
    /// A read is under way.
    reading: bool,
    /// Announced since it started.
    waiting: Vec<DeliveryId>,
}

impl Registry {
    /// Reads the announced deliveries of every endpoint here in one query, one read at a
    /// time: those announced meanwhile go together in the next, so under load the reads
    /// grow instead of multiplying.
    fn read_noticed(&mut self, ctx: &mut Context<Self>) {
        if self.noticed.reading || self.noticed.waiting.is_empty() {
            return;
        }
        self.noticed.reading = true;
        let ids = std::mem::take(&mut self.noticed.waiting);
        let store = self.store.clone();
        let load = async move { store.pending_by_ids(&ids).await };
        ctx.spawn(load.into_actor(self).map(|loaded, act, ctx| {
            act.noticed.reading = false;
            act.read_noticed(ctx);
            match loaded {
                // Handed over while they were read: the next owner hears of them.
                Ok(deliveries) => {
                    let moved = act.hand_to_endpoints(deliveries);
                    act.tell_owners(moved.iter().map(|d| DeliveryNotice::of(&d.delivery)).collect());
                }
                // Still pending in the database: the sweep finds them.
                Err(error) => log::warn!("could not read deliveries published elsewhere: {error}"),
            }
        }));
    }

    /// Gives announced deliveries to their endpoints here; returns those of webhooks whose
    /// endpoint does not run here, as they came.
    fn hand_to_endpoints(&self, deliveries: Vec<PendingDelivery>) -> Vec<PendingDelivery> {
        let mut by_webhook: HashMap<WebhookId, Vec<_>> = HashMap::new();
        for delivery in deliveries {
            by_webhook.entry(delivery.delivery.webhook_id).or_default().push(delivery);
        }
        let mut not_here = Vec::new();
        for (webhook_id, deliveries) in by_webhook {
            match self.endpoint(&webhook_id) {
                Some(endpoint) => endpoint.do_send(DeliveriesLoaded { deliveries }),
                None => not_here.extend(deliveries),
            }
        }
        not_here
    }
}

impl Handler<SweepEndpoints> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SweepEndpoints, _: &mut Context<Self>) {
        for endpoint in self.routes.read().endpoints.values() {
            endpoint.do_send(SweepPending { catch_up: msg.catch_up });
        }
    }
}
