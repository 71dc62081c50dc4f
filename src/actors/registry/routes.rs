//! What a publish needs to know: the webhooks, which of them subscribe to what, and their
//! endpoint actors. The registry is its only writer; publishers read it from their own
//! threads (an HTTP worker matches its event without a round trip through the registry's
//! thread, which is busy with the endpoints' sending).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use actix::Addr;

use super::subscriptions::Subscriptions;
use crate::actors::endpoint::EndpointActor;
use crate::domain::webhook::Webhook;
use crate::domain::{EventType, WebhookId, WorkspaceId};

#[derive(Default)]
pub(super) struct Routes {
    pub webhooks: HashMap<WebhookId, Arc<Webhook>>,
    subscriptions: Subscriptions,
    pub endpoints: HashMap<WebhookId, Addr<EndpointActor>>,
    /// On PostgreSQL, the configuration version these webhooks are as of. Several servers
    /// may then share the database: an enabled webhook without an endpoint here is another
    /// server's, which is told of its new deliveries.
    pub config_version: Option<i64>,
    /// With several servers, until when this server may start attempts: once its leases
    /// could not be renewed in time, its endpoints are treated as another server's (their
    /// new deliveries are announced to whoever owns them now).
    pub lease_clock: Option<crate::actors::endpoint::LeaseClock>,
}

impl Routes {
    /// Adds a webhook, or replaces it and its subscriptions.
    pub fn insert(&mut self, webhook: Arc<Webhook>) {
        if let Some(before) = self.webhooks.insert(webhook.id, webhook.clone()) {
            self.subscriptions.remove(&before);
        }
        self.subscriptions.add(&webhook);
    }

    /// Removes a webhook and its subscriptions (its endpoint is the caller's to stop).
    pub fn remove(&mut self, id: WebhookId) {
        if let Some(webhook) = self.webhooks.remove(&id) {
            self.subscriptions.remove(&webhook);
        }
    }

    /// The enabled webhooks subscribed to `event`, in id order, each with its endpoint as it
    /// is now (`None` when stopped: its deliveries wait in the database).
    pub fn matching(
        &self,
        workspace_id: WorkspaceId,
        event: &EventType,
    ) -> Vec<(Arc<Webhook>, Option<Addr<EndpointActor>>)> {
        self.subscriptions
            .candidates(workspace_id, event)
            .iter()
            .filter_map(|id| self.webhooks.get(id))
            .filter(|w| w.enabled && w.subscribes_to(event))
            .map(|w| (w.clone(), self.endpoints.get(&w.id).cloned()))
            .collect()
    }
}

/// Shared [`Routes`]. Nothing holds a guard across an `.await` or while taking another one.
#[derive(Clone, Default)]
pub(super) struct SharedRoutes(Arc<RwLock<Routes>>);

impl SharedRoutes {
    /// A panic elsewhere while writing leaves maps that are each still whole, so a poisoned
    /// lock is used as it is.
    pub fn read(&self) -> RwLockReadGuard<'_, Routes> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Routes> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}
