//! Prometheus metrics (`GET /metrics`), one registry per hookbus instance (no statics).
//! Labels are outcomes, statuses and webhook ids only: never URLs, secrets or payloads.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::circuit::CircuitState;
use crate::domain::{AttemptOutcome, WebhookId};

/// How a delivery ended, as the `status` label of `deliveries_completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalStatus {
    Succeeded,
    Failed,
    Cancelled,
}

impl FinalStatus {
    fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabel {
    pub webhook_id: String,
}

/// Every series hookbus exports.
pub struct Metrics {
    registry: Registry,
    events: Counter,
    attempts: Family<OutcomeLabel, Counter>,
    deliveries: Family<StatusLabel, Counter>,
    queue_depth: Family<WebhookLabel, Gauge>,
    circuit: Family<WebhookLabel, Gauge>,
    pending_pool_used: Gauge,
    attempt_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookbus");
        let events = Counter::default();
        let attempts = Family::<OutcomeLabel, Counter>::default();
        let deliveries = Family::<StatusLabel, Counter>::default();
        let queue_depth = Family::<WebhookLabel, Gauge>::default();
        let circuit = Family::<WebhookLabel, Gauge>::default();
        let pending_pool_used = Gauge::default();
        let attempt_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register("events_published", "Events accepted by publish", events.clone());
        registry.register("attempts", "HTTP attempts by outcome", attempts.clone());
        registry.register("deliveries_completed", "Deliveries by final status", deliveries.clone());
        registry.register("queue_depth", "Pending deliveries per webhook", queue_depth.clone());
        registry.register("circuit_state", "Circuit per webhook: 0 closed, 1 half-open, 2 open", circuit.clone());
        registry.register(
            "pending_pool_used",
            "Pending deliveries held in memory beyond their webhook's window (in the shared pool)",
            pending_pool_used.clone(),
        );
        registry.register("attempt_duration_seconds", "Attempt latency", attempt_seconds.clone());
        Self { registry, events, attempts, deliveries, queue_depth, circuit, pending_pool_used, attempt_seconds }
    }
}

impl Metrics {
    pub fn event_published(&self) {
        self.events.inc();
    }

    pub fn attempt_finished(&self, outcome: &AttemptOutcome) {
        let result = match (outcome.succeeded(), outcome.status_code, outcome.error_message.as_deref()) {
            (true, _, _) => "success",
            (false, Some(_), _) => "http_error",
            (false, None, Some(e)) if e.starts_with("timed out") => "timeout",
            (false, None, _) => "connection_error",
        };
        self.attempts.get_or_create(&OutcomeLabel { outcome: result }).inc();
        self.attempt_seconds.observe(outcome.duration.as_secs_f64());
    }

    pub fn deliveries_completed(&self, status: FinalStatus, count: u64) {
        self.deliveries.get_or_create(&StatusLabel { status: status.label() }).inc_by(count);
    }

    pub fn set_circuit(&self, webhook_id: WebhookId, state: CircuitState) {
        let value = match state {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        };
        self.circuit.get_or_create(&WebhookLabel { webhook_id: webhook_id.to_string() }).set(value);
    }

    /// Replaces every queue-depth gauge with fresh counts (taken at scrape time).
    pub fn set_queue_depths(&self, depths: impl IntoIterator<Item = (WebhookId, u64)>) {
        self.queue_depth.clear();
        for (webhook_id, depth) in depths {
            self.queue_depth.get_or_create(&WebhookLabel { webhook_id: webhook_id.to_string() }).set(depth as i64);
        }
    }

    /// The gauge the endpoints' shared pool keeps up to date.
    pub fn pending_pool_gauge(&self) -> Gauge {
        self.pending_pool_used.clone()
    }

    /// Drops a webhook's series once it no longer runs.
    pub fn forget_webhook(&self, webhook_id: WebhookId) {
        self.circuit.remove(&WebhookLabel { webhook_id: webhook_id.to_string() });
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
