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
    running_webhooks: Gauge,
    live_servers: Gauge,
}

/// Counts since start, as the log's minute summary reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub events: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl Traffic {
    /// The summary of what happened between `earlier` and `self`, with `pending` deliveries
    /// now; `None` when nothing did (an idle server logs nothing).
    pub fn summary_since(self, earlier: Traffic, pending: u64) -> Option<String> {
        let (events, succeeded, failed) =
            (self.events - earlier.events, self.succeeded - earlier.succeeded, self.failed - earlier.failed);
        (events + succeeded + failed > 0).then(|| {
            format!(
                "last minute: {events} events published, {succeeded} deliveries succeeded, {failed} failed; \
                 {pending} pending"
            )
        })
    }
}

/// Every value of the `outcome` label of `attempts`, and of `status` of
/// `deliveries_completed`: each series exists from the start, at zero, so a rate over it is
/// defined before the first failure.
const OUTCOMES: [&str; 4] = ["success", "http_error", "timeout", "connection_error"];
const FINAL_STATUSES: [FinalStatus; 3] = [FinalStatus::Succeeded, FinalStatus::Failed, FinalStatus::Cancelled];

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
        let running_webhooks = Gauge::default();
        let live_servers = Gauge::default();
        registry.register(
            "owned_webhooks",
            "Webhooks whose deliveries this server makes (with several servers: those it holds a lease on)",
            running_webhooks.clone(),
        );
        registry.register("live_servers", "Servers sharing the database, this one included", live_servers.clone());
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
        for outcome in OUTCOMES {
            attempts.get_or_create(&OutcomeLabel { outcome }).inc_by(0);
        }
        for status in FINAL_STATUSES {
            deliveries.get_or_create(&StatusLabel { status: status.label() }).inc_by(0);
        }
        live_servers.set(1);
        Self {
            registry,
            events,
            attempts,
            deliveries,
            queue_depth,
            circuit,
            pending_pool_used,
            attempt_seconds,
            running_webhooks,
            live_servers,
        }
    }
}

impl Metrics {
    pub fn event_published(&self) {
        self.events.inc();
    }

    pub fn attempt_finished(&self, outcome: &AttemptOutcome) {
        self.attempts.get_or_create(&OutcomeLabel { outcome: outcome.metric_label() }).inc();
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

    /// How many webhooks' endpoints run on this server.
    pub fn set_owned_webhooks(&self, count: usize) {
        self.running_webhooks.set(count as i64);
    }

    pub fn set_live_servers(&self, count: usize) {
        self.live_servers.set(count as i64);
    }

    /// Events published and deliveries ended so far, for the log's summary.
    pub fn traffic(&self) -> Traffic {
        let completed =
            |status: FinalStatus| self.deliveries.get_or_create(&StatusLabel { status: status.label() }).get();
        Traffic {
            events: self.events.get(),
            succeeded: completed(FinalStatus::Succeeded),
            failed: completed(FinalStatus::Failed),
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

    /// The OpenMetrics text format (`application/openmetrics-text; version=1.0.0`).
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), which scrapers and
    /// `promtool` read by default.
    pub fn render_text(&self) -> String {
        openmetrics_to_text(&self.render_openmetrics())
    }
}

/// The text format 0.0.4 from OpenMetrics text. For what hookbus exports they differ in three
/// things: a counter's `# HELP` and `# TYPE` name its samples (`x_total`) in 0.0.4 but its
/// family (`x`) in OpenMetrics; 0.0.4 has no `# UNIT` lines and no `# EOF`. (The encoder
/// writes OpenMetrics only.)
fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let metadata = ["# HELP ", "# TYPE "].into_iter().find_map(|kind| Some((kind, line.strip_prefix(kind)?)));
        match metadata.and_then(|(kind, rest)| Some((kind, rest.split_once(' ')?))) {
            Some((kind, (name, rest))) if counters.contains(name) => {
                text.push_str(&format!("{kind}{name}_total {rest}\n"));
            }
            _ => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_counters_after_their_samples_and_has_no_openmetrics_lines() {
        let openmetrics =
            "# HELP a_events Events.\n# TYPE a_events counter\n# UNIT a_events events\na_events_total 3\n\
                           # HELP a_depth Depth.\n# TYPE a_depth gauge\na_depth{webhook_id=\"x\"} 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(openmetrics),
            "# HELP a_events_total Events.\n# TYPE a_events_total counter\na_events_total 3\n\
             # HELP a_depth Depth.\n# TYPE a_depth gauge\na_depth{webhook_id=\"x\"} 1\n"
        );
    }

    #[test]
    fn the_summary_says_what_happened_and_nothing_when_idle() {
        let earlier = Traffic { events: 10, succeeded: 90, failed: 1 };
        let now = Traffic { events: 25, succeeded: 240, failed: 3 };
        assert_eq!(
            now.summary_since(earlier, 7).as_deref(),
            Some("last minute: 15 events published, 150 deliveries succeeded, 2 failed; 7 pending")
        );
        assert_eq!(now.summary_since(now, 7), None);
        let metrics = Metrics::default();
        metrics.event_published();
        metrics.deliveries_completed(FinalStatus::Failed, 2);
        assert_eq!(metrics.traffic(), Traffic { events: 1, succeeded: 0, failed: 2 });
    }

    #[test]
    fn every_outcome_and_final_status_is_there_from_the_start() {
        let text = Metrics::default().render_text();
        for outcome in OUTCOMES {
            assert!(text.contains(&format!("hookbus_attempts_total{{outcome=\"{outcome}\"}} 0")), "{text}");
        }
        for status in ["succeeded", "failed", "cancelled"] {
            assert!(text.contains(&format!("hookbus_deliveries_completed_total{{status=\"{status}\"}} 0")), "{text}");
        }
        assert!(text.contains("# TYPE hookbus_events_published_total counter") && !text.contains("# EOF"));
    }
}
