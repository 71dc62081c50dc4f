#![warn(missing_docs)]
//! [`Publisher`]: publishing from any thread. It matches an event against the routes the
//! registry shares, hands it to the writer, and once committed queues its deliveries on their
//! endpoints.

use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use futures_util::future::BoxFuture;
use ring::digest;

use super::routes::SharedRoutes;
use super::{Publish, Published, RefreshWebhooks, RegistryError};
use crate::actors::endpoint::{DeliveryEnqueued, EndpointActor};
use crate::actors::persistence::Writer;
use crate::domain::{EventId, EventType, ValidationError, WorkspaceId};
use crate::metrics::Metrics;
use crate::store::cluster::DeliveryNotice;
use crate::store::{
    DeliveryRecord, EventRecord, PendingDelivery, PublishWrite, Store, StoreError, WriteOp, WriteOutcome,
};

/// SHA-256 of the event type and data, to tell a replay of a publish from a conflicting one.
pub(super) fn body_hash(event: &EventType, data_json: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(event.as_str().as_bytes());
    ctx.update(b"\n");
    ctx.update(data_json.as_bytes());
    hex::encode(ctx.finish().as_ref())
}

/// A publish handed to the writer; [`PublishInFlight::finish`] waits for its commit, then
/// queues its deliveries on their endpoints. It can be awaited on any thread, so an HTTP
/// worker gets its answer straight from the writer rather than back through the registry's
/// thread, which is busy with the endpoints' sending.
pub struct PublishInFlight {
    committed: BoxFuture<'static, Result<WriteOutcome, Arc<StoreError>>>,
    write: PublishWrite,
    endpoints: Vec<Option<Addr<EndpointActor>>>,
    publisher: Publisher,
}

/// How many times a publish is matched again after another server changed a webhook
/// meanwhile, before it gives up (each time the registry has read the changes first).
const STALE_RETRIES: usize = 5;

impl PublishInFlight {
    /// Waits until the event and its deliveries are committed.
    pub async fn finish(self) -> Result<Published, RegistryError> {
        let Self { mut committed, mut write, mut endpoints, publisher } = self;
        let mut outcome = committed.await?;
        for _ in 0..STALE_RETRIES {
            if outcome != WriteOutcome::StaleConfig {
                break;
            }
            // Another server changed a webhook after this one matched the event: read the
            // changes, then match the event again.
            publisher.refresh(write.config_version).await?;
            let event = write.event;
            let again = publisher.begin(event.workspace_id, event.event, event.data_json, Some(event.id));
            (committed, write, endpoints) = (again.committed, again.write, again.endpoints);
            outcome = committed.await?;
        }
        if outcome == WriteOutcome::StaleConfig {
            return Err(RegistryError::Store(Arc::new(StoreError::Driver(
                "webhooks kept changing while the event was matched".into(),
            ))));
        }
        let (store, metrics) = (&publisher.0.store, &publisher.0.metrics);
        let event = write.event;
        if outcome != WriteOutcome::Published {
            // The id was used before: same body → the original answer; else a conflict.
            let original =
                store.find_event(event.workspace_id, &event.id).await?.ok_or(RegistryError::NotFound("event"))?;
            if original.body_hash != event.body_hash {
                return Err(RegistryError::Conflict(event.id.to_string()));
            }
            return Ok(Published {
                id: original.id,
                event: original.event,
                matched_webhooks: original.matched_webhooks,
            });
        }
        metrics.event_published();
        let data_json: Arc<str> = event.data_json.as_str().into();
        let mut stopped_meanwhile = Vec::new();
        for (delivery, endpoint) in write.deliveries.into_iter().zip(endpoints) {
            match endpoint {
                Some(endpoint) if endpoint.connected() => {
                    let delivery =
                        PendingDelivery { data_json: data_json.clone(), event_created_at: event.created_at, delivery };
                    endpoint.do_send(DeliveryEnqueued { delivery, redelivered: false });
                }
                // With several servers, an endpoint gone since the match (its webhook moved
                // to another server) leaves the delivery to the next owner: tell it.
                Some(_) if write.config_version.is_some() => stopped_meanwhile.push(DeliveryNotice::of(&delivery)),
                _ => {}
            }
        }
        if let Err(error) = store.announce(&stopped_meanwhile).await {
            log::warn!("could not announce deliveries to their webhooks' new owner (the sweep finds them): {error}");
        }
        Ok(Published { id: event.id, event: event.event, matched_webhooks: event.matched_webhooks })
    }
}

/// Publishes events from any thread: matches them against the registry's webhooks as they
/// are now and hands them to the writer. The HTTP routes publish through one of these, so a
/// publish never waits for the registry's thread; embedding apps can use it too, or send the
/// registry [`Publish`] (which uses the same one).
#[derive(Clone)]
pub struct Publisher(Arc<PublisherParts>);

/// Behind one `Arc`: every publish holds a clone until it is answered, and HTTP workers on
/// several threads would otherwise contend on five reference counts instead of one.
struct PublisherParts {
    routes: SharedRoutes,
    writer: Writer,
    store: Store,
    metrics: Arc<Metrics>,
    /// The registry, once it runs: it reads webhooks changed by other servers.
    refresher: OnceLock<Recipient<RefreshWebhooks>>,
}

impl Publisher {
    pub(super) fn new(routes: SharedRoutes, writer: Writer, store: Store, metrics: Arc<Metrics>) -> Self {
        Self(Arc::new(PublisherParts { routes, writer, store, metrics, refresher: OnceLock::new() }))
    }

    pub(super) fn set_refresher(&self, registry: Recipient<RefreshWebhooks>) {
        let _ = self.0.refresher.set(registry);
    }

    /// Waits until the registry holds the webhooks of a configuration newer than `stale`.
    async fn refresh(&self, stale: Option<i64>) -> Result<(), RegistryError> {
        match self.0.refresher.get() {
            Some(registry) => registry.send(RefreshWebhooks { newer_than: stale }).await?,
            None => Ok(()),
        }
    }

    /// Checks a publish and hands it to the writer; [`PublishInFlight::finish`] answers once
    /// it is committed.
    pub fn start(&self, msg: Publish) -> Result<PublishInFlight, RegistryError> {
        let parsed = (|| {
            let event = EventType::parse("event", &msg.event)?;
            if event.is_operational() {
                return Err(ValidationError::new(
                    "event",
                    "the hookbus.* namespace is reserved for hookbus' own events",
                ));
            }
            if !msg.data.is_object() {
                return Err(ValidationError::new("data", "must be a JSON object"));
            }
            let id = msg.id.as_deref().map(|raw| EventId::parse("id", raw)).transpose()?;
            Ok((event, id))
        })();
        let (event, id) = parsed?;
        Ok(self.begin(msg.workspace_id, event, msg.data.to_string(), id))
    }

    /// Matches an event to webhooks and hands it to the writer.
    pub(super) fn begin(
        &self,
        workspace_id: WorkspaceId,
        event: EventType,
        data_json: String,
        id: Option<EventId>,
    ) -> PublishInFlight {
        let (matched, config_version, lapsed) = {
            let routes = self.0.routes.read();
            let lapsed = routes.lease_clock.as_ref().is_some_and(|c| !c.may_start(std::time::Instant::now()));
            (routes.matching(workspace_id, &event), routes.config_version, lapsed)
        };
        let (matched, mut endpoints): (Vec<_>, Vec<_>) = matched.into_iter().unzip();
        if lapsed {
            endpoints.iter_mut().for_each(|endpoint| *endpoint = None);
        }
        let record = EventRecord {
            workspace_id,
            id: id.unwrap_or_else(EventId::generate),
            body_hash: body_hash(&event, &data_json),
            event,
            data_json,
            matched_webhooks: matched.len() as u32,
            created_at: crate::domain::now(),
        };
        let deliveries: Vec<DeliveryRecord> =
            matched.iter().map(|webhook| DeliveryRecord::new_pending(&record, webhook.id)).collect();
        // With several servers, a webhook without an endpoint here is owned by another one.
        let owned_elsewhere = match config_version {
            Some(_) => {
                endpoints.iter().enumerate().filter(|(_, endpoint)| endpoint.is_none()).map(|(i, _)| i).collect()
            }
            None => Vec::new(),
        };
        let write = PublishWrite { event: record, deliveries, config_version, owned_elsewhere };
        let committed = Box::pin(self.0.writer.write(WriteOp::Publish(write.clone())));
        PublishInFlight { committed, write, endpoints, publisher: self.clone() }
    }
}
