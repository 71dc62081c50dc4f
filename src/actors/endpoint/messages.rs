//! Messages of the [`EndpointActor`](super::EndpointActor).

use std::sync::Arc;

use actix::Message;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::circuit::CircuitState;
use crate::domain::health::Latency;
use crate::domain::webhook::Webhook;
use crate::store::PendingDelivery;

/// A delivery for this webhook was committed: new, or put back in `pending` by a redelivery.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliveryEnqueued {
    pub delivery: PendingDelivery,
    /// Redelivered (it was attempted before), rather than just published.
    pub redelivered: bool,
}

/// Deliveries behind the paging cursor were put back in `pending` (a replay): page the
/// database again from the start.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliveriesRequeued;

/// The webhook's settings changed; they apply from the next attempt on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WebhookChanged {
    pub webhook: Arc<Webhook>,
}

/// Closes the circuit (a successful test attempt, or the webhook explicitly re-enabled).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ResetCircuit;

/// Asks for the live health figures of this endpoint.
#[derive(Debug, Message)]
#[rtype(result = "EndpointHealth")]
pub struct GetEndpointHealth;

/// Live state of one endpoint, as the health dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EndpointHealth {
    pub circuit: CircuitState,
    pub consecutive_failures: u32,
    pub in_flight: usize,
    pub success_rate_5m: Option<f64>,
    pub latency_ms: Latency,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Default for EndpointHealth {
    /// A webhook without a running endpoint (disabled): nothing in flight, circuit closed.
    fn default() -> Self {
        Self {
            circuit: CircuitState::Closed,
            consecutive_failures: 0,
            in_flight: 0,
            success_rate_5m: None,
            latency_ms: Latency { p50: None, p95: None, p99: None },
            last_success_at: None,
            last_failure_at: None,
            last_error: None,
            next_attempt_at: None,
        }
    }
}

/// Stop starting attempts; answers when none is in flight any more.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DrainEndpoint;

/// Start no more attempts, and stop once those in flight have ended and been recorded (a
/// disabled or deleted webhook's history keeps every attempt that was made).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopEndpoint;

/// What the server writes about this endpoint at each lease renewal: its live figures (for
/// `GET /api/v1/health` on other servers) and its circuit (for the next owner).
#[derive(Debug, Message)]
#[rtype(result = "(EndpointHealth, crate::domain::circuit::SavedCircuit)")]
pub struct LeaseReport;

/// Deliveries another server published for this webhook: read them and take them in, as
/// if they had been published here.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliveriesPublishedElsewhere {
    pub ids: Vec<crate::domain::DeliveryId>,
}

/// Deliveries another server published, already read from the database (the registry reads
/// those of one notification for all its endpoints at once).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliveriesLoaded {
    pub deliveries: Vec<PendingDelivery>,
}

/// Looks in the database for pending deliveries behind the paging cursor that nobody
/// announced (a notification lost while the listening connection was down). `catch_up`: of
/// any age, after the writer has committed every record made so far (recent announcements
/// may be lost); otherwise only those old enough that no record of theirs can still be on
/// its way.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SweepPending {
    pub catch_up: bool,
}
