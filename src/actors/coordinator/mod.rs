//! The `Coordinator`: one per server on PostgreSQL, where several servers may share the
//! database (SPEC §9). Every tick it says the server is alive (with the figures of the
//! webhooks it owns), renews its leases, claims unowned webhooks up to its fair share and
//! hands over what is beyond it. Its listener (`listener.rs`) turns other servers'
//! notifications into messages: webhook changes, deliveries published elsewhere, leases
//! released. The design and its failure cases: docs/ARCHITECTURE.md, "Several servers".

mod listener;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::actors::endpoint::{EndpointHealth, LeaseClock};
use crate::actors::persistence::{FlushWrites, Writer};
use crate::actors::registry::{DropLeases, HandOver, LeaseState, Registry, ReportLeases, SweepEndpoints, TakeLeases};
use crate::domain::WebhookId;
use crate::store::cluster::{HeldLease, ServerRow};
use crate::store::Store;

/// How a server takes part in a shared database.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// How long a lease lasts beyond its last renewal (plus the webhook's `timeout_ms`).
    pub lease_ttl: Duration,
    /// The name other servers show for this one.
    pub server_name: String,
    /// The database, for the listening connection.
    pub database_url: String,
}

impl ClusterSettings {
    /// How often the coordinator ticks: a fifth of the lease, at most a second.
    fn tick(&self) -> Duration {
        (self.lease_ttl / 5).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// How often leases are renewed: four times per lease.
    fn renew_every(&self) -> Duration {
        self.lease_ttl / 4
    }
}

/// How often endpoints look for deliveries nobody announced, while other servers run.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

pub struct Coordinator {
    store: Store,
    registry: Addr<Registry>,
    writer: Writer,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    settings: ClusterSettings,
    server: ServerRow,
    clock: LeaseClock,
    last_renewal: Option<Instant>,
    ticking: bool,
    /// A tick was asked for while one ran.
    tick_again: bool,
    /// Stopping: no more claims; leases are handed over.
    leaving: bool,
    /// The live servers at the last heartbeat.
    live: Vec<ServerRow>,
    /// Webhooks being handed over (not counted as owned, not handed over twice).
    handing_over: HashSet<WebhookId>,
}

impl Coordinator {
    pub fn new(
        store: Store,
        registry: Addr<Registry>,
        writer: Writer,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        settings: ClusterSettings,
        server_id: String,
        clock: LeaseClock,
    ) -> Self {
        let server = ServerRow {
            id: server_id,
            name: settings.server_name.clone(),
            started_at: crate::domain::now().timestamp_millis(),
            last_seen_at: 0,
            webhooks: 0,
        };
        Self {
            store,
            registry,
            writer,
            metrics,
            settings,
            server,
            clock,
            last_renewal: None,
            ticking: false,
            tick_again: false,
            leaving: false,
            live: Vec::new(),
            handing_over: HashSet::new(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking {
            self.tick_again = true;
            return;
        }
        self.ticking = true;
        let renew = self.last_renewal.is_none_or(|at| at.elapsed() >= self.settings.renew_every());
        let round = Round {
            store: self.store.clone(),
            registry: self.registry.clone(),
            server: self.server.clone(),
            ttl: self.settings.lease_ttl,
            clock: self.clock.clone(),
            renew,
            leaving: self.leaving,
            handing_over: self.handing_over.clone(),
        };
        ctx.spawn(round.run().into_actor(self).map(|outcome, act, ctx| {
            act.ticking = false;
            match outcome {
                Ok(outcome) => {
                    if let Some(at) = outcome.renewed_at {
                        act.last_renewal = Some(at);
                    }
                    act.live = outcome.live;
                    let servers = servers_sharing(&act.live, &act.server.id);
                    act.metrics.set_live_servers(servers);
                    act.writer.share_database(servers);
                    if !outcome.hand_over.is_empty() {
                        act.hand_over(outcome.hand_over, ctx);
                    }
                }
                Err(error) => log::warn!("cluster: could not reach the database for leases: {error}"),
            }
            if std::mem::take(&mut act.tick_again) {
                act.tick(ctx);
            }
        }));
    }

    /// Gives leases up once their endpoints have drained and their records are written.
    fn hand_over(&mut self, ids: Vec<WebhookId>, ctx: &mut Context<Self>) {
        self.handing_over.extend(ids.iter().copied());
        let (registry, writer, store, server_id) =
            (self.registry.clone(), self.writer.clone(), self.store.clone(), self.server.id.clone());
        let handing = async move {
            let held = registry.send(HandOver(ids)).await.unwrap_or_default();
            // An attempt's record lands before its lease goes, so the next owner does not
            // send a delivery again that was already sent here.
            let _ = writer.address().send(FlushWrites).await;
            let released = store.release_leases(&server_id, &held).await;
            (held, released)
        };
        ctx.spawn(handing.into_actor(self).map(|(held, released), act, _| {
            for lease in &held {
                act.handing_over.remove(&lease.webhook_id);
            }
            match released {
                Ok(()) if !held.is_empty() => log::info!("cluster: handed over {} webhooks", held.len()),
                Ok(()) => {}
                // They run out on their own; nobody attempts them here any more.
                Err(error) => log::warn!("cluster: could not release {} leases: {error}", held.len()),
            }
        }));
    }
}

/// How many servers share the database: the live ones, this one counted even before its
/// first heartbeat is seen.
fn servers_sharing(live: &[ServerRow], server_id: &str) -> usize {
    live.iter().filter(|s| s.id != server_id).count() + 1
}

/// One tick's work, off the actor.
struct Round {
    store: Store,
    registry: Addr<Registry>,
    server: ServerRow,
    ttl: Duration,
    clock: LeaseClock,
    renew: bool,
    leaving: bool,
    handing_over: HashSet<WebhookId>,
}

struct RoundOutcome {
    renewed_at: Option<Instant>,
    live: Vec<ServerRow>,
    hand_over: Vec<WebhookId>,
}

impl Round {
    async fn run(self) -> Result<RoundOutcome, crate::store::StoreError> {
        let LeaseState { leases, idle, enabled_webhooks } = self.registry.send(ReportLeases).await.unwrap_or_default();
        let health: HashMap<String, &EndpointHealth> =
            leases.iter().map(|(lease, health)| (lease.webhook_id.to_string(), health)).collect();
        let health = serde_json::to_string(&health).unwrap_or_else(|_| "{}".into());
        let live = self.store.heartbeat(&self.server, &health, self.ttl).await?;
        let held: Vec<HeldLease> = leases.into_iter().map(|(lease, _)| lease).collect();
        let mut owned = held.len();
        let mut renewed_at = None;
        if self.renew && !held.is_empty() {
            let sent_at = Instant::now();
            let renewed: HashSet<WebhookId> =
                self.store.renew_leases(&self.server.id, self.ttl, &held).await?.into_iter().collect();
            self.clock.extend_to(sent_at + self.ttl);
            renewed_at = Some(sent_at);
            let lost: Vec<WebhookId> = held.iter().map(|l| l.webhook_id).filter(|id| !renewed.contains(id)).collect();
            owned -= lost.len();
            if !lost.is_empty() {
                let _ = self.registry.send(DropLeases(lost)).await;
            }
        }
        // Held but idle (the webhook was disabled): handed over like the rest.
        let mut hand_over: Vec<WebhookId> = idle.into_iter().filter(|id| !self.handing_over.contains(id)).collect();
        if self.leaving {
            return Ok(RoundOutcome { renewed_at, live, hand_over });
        }
        let servers = servers_sharing(&live, &self.server.id);
        let share = enabled_webhooks.div_ceil(servers);
        if owned < share {
            let sent_at = Instant::now();
            let claimed = self.store.claim_leases(&self.server.id, self.ttl, share - owned).await?;
            if !claimed.is_empty() {
                log::info!("cluster: claimed {} webhooks ({} servers, share {share})", claimed.len(), servers);
                // Claims say nothing about leases whose renewal is due: only a server that
                // held none (or just renewed them) moves its clock.
                if held.is_empty() || renewed_at.is_some() {
                    self.clock.extend_to(sent_at + self.ttl);
                }
                let _ = self.registry.send(TakeLeases(claimed)).await;
            }
        } else if owned > share + hand_over.len() {
            let excess = owned - share - hand_over.len();
            let extra: Vec<WebhookId> = held
                .iter()
                .map(|l| l.webhook_id)
                .filter(|id| !self.handing_over.contains(id) && !hand_over.contains(id))
                .take(excess)
                .collect();
            hand_over.extend(extra);
        }
        Ok(RoundOutcome { renewed_at, live, hand_over })
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!("cluster: server {} ({}) joins", self.server.id, self.server.name);
        listener::spawn(self.settings.database_url.clone(), self.registry.clone(), ctx.address());
        self.tick(ctx);
        ctx.run_interval(self.settings.tick(), |act, ctx| act.tick(ctx));
        ctx.run_interval(SWEEP_INTERVAL, |act, _| {
            if act.live.len() > 1 {
                act.registry.do_send(SweepEndpoints { catch_up: false });
            }
        });
    }
}

/// Ticks now (a webhook changed, or leases were released).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TickNow;

impl Handler<TickNow> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: TickNow, ctx: &mut Context<Self>) {
        if !self.leaving {
            self.tick(ctx);
        }
    }
}

/// The live servers as of the last heartbeat (for `GET /api/v1/health`).
#[derive(Debug, Message)]
#[rtype(result = "Vec<ServerRow>")]
pub struct LiveServers;

impl Handler<LiveServers> for Coordinator {
    type Result = MessageResult<LiveServers>;

    fn handle(&mut self, _: LiveServers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.live.clone())
    }
}

/// Stops claiming (the server is stopping); the registry's endpoints are drained next.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopClaiming;

impl Handler<StopClaiming> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: StopClaiming, _: &mut Context<Self>) {
        self.leaving = true;
    }
}

/// Hands every lease over (after the drain and the final flush) and leaves the server list,
/// so the others take the webhooks at once rather than when the leases run out.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave;

impl Handler<Leave> for Coordinator {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Leave, _: &mut Context<Self>) -> Self::Result {
        self.leaving = true;
        let (registry, writer, store, server_id) =
            (self.registry.clone(), self.writer.clone(), self.store.clone(), self.server.id.clone());
        Box::pin(async move {
            let state = registry.send(ReportLeases).await.unwrap_or_default();
            let mut ids: Vec<WebhookId> = state.leases.iter().map(|(l, _)| l.webhook_id).collect();
            ids.extend(state.idle);
            let held = registry.send(HandOver(ids)).await.unwrap_or_default();
            let _ = writer.address().send(FlushWrites).await;
            match store.release_leases(&server_id, &held).await {
                Ok(()) => log::info!("cluster: handed over {} webhooks", held.len()),
                Err(error) => log::warn!("cluster: could not hand over the leases (they run out instead): {error}"),
            }
            if let Err(error) = store.leave(&server_id).await {
                log::warn!("cluster: could not leave the server list: {error}");
            }
        })
    }
}
