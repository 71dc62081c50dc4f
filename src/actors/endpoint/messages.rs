//! Messages of the [`EndpointActor`](super::EndpointActor).

use std::sync::Arc;

use actix::Message;

use crate::domain::webhook::Webhook;
use crate::store::PendingDelivery;

/// A delivery for this webhook was committed (new, redelivered or replayed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliveryEnqueued {
    pub delivery: PendingDelivery,
}

/// The webhook's settings changed; they apply from the next attempt on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WebhookChanged {
    pub webhook: Arc<Webhook>,
}

/// Stop starting attempts; answers when none is in flight any more.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DrainEndpoint;

/// Stop now, abandoning attempts in flight (their deliveries stay pending in the database).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopEndpoint;
