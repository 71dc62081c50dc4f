//! Delivery status and what one attempt's outcome means for it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

use super::RetryPolicy;

#[warn(missing_docs)]
/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Ended without success (`failure_reason` says why).
    Failed,
    /// Ended because its webhook was deleted.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// How one HTTP attempt ended. The record's `status_code`, `error_message` and
/// `response_body`, and the metrics' outcome label, are all derived from this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered; anything outside 2xx is a failure.
    Answered {
        status: u16,
        /// First 1 KiB of the response body, lossy UTF-8.
        body: String,
        /// `Retry-After` of a 429/503 response.
        retry_after: Option<Duration>,
    },
    /// No answer within the webhook's `timeout_ms`.
    TimedOut(Duration),
    /// The target guard refused every address of the host.
    Blocked,
    /// The TLS handshake failed, for the plain reason given.
    Tls(String),
    /// No answer for another reason: DNS, connect, or the connection broke.
    Connection(String),
}

/// What the record of an attempt says when the guard refused its address.
pub const BLOCKED_TARGET: &str = "blocked target address";

/// One attempt: how it ended and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    pub result: AttemptResult,
    pub duration: Duration,
}

impl AttemptOutcome {
    /// The receiver answered with `status`.
    pub fn answered(status: u16, body: String, retry_after: Option<Duration>, duration: Duration) -> Self {
        Self { result: AttemptResult::Answered { status, body, retry_after }, duration }
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.result, AttemptResult::Answered { status: 200..=299, .. })
    }

    /// The response status, if a response arrived.
    pub fn status_code(&self) -> Option<u16> {
        match self.result {
            AttemptResult::Answered { status, .. } => Some(status),
            _ => None,
        }
    }

    /// Why it failed, as recorded and shown (`None` on success).
    pub fn error_message(&self) -> Option<String> {
        match &self.result {
            AttemptResult::Answered { status: 200..=299, .. } => None,
            AttemptResult::Answered { status, .. } => Some(format!("HTTP {status}")),
            AttemptResult::TimedOut(after) => Some(format!("timed out after {} ms", after.as_millis())),
            AttemptResult::Blocked => Some(BLOCKED_TARGET.to_owned()),
            AttemptResult::Tls(reason) | AttemptResult::Connection(reason) => Some(reason.clone()),
        }
    }

    pub fn response_body(&self) -> Option<&str> {
        match &self.result {
            AttemptResult::Answered { body, .. } => Some(body),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self.result {
            AttemptResult::Answered { retry_after, .. } => retry_after,
            _ => None,
        }
    }

    /// The `outcome` label of `hookbus_attempts_total`.
    pub fn metric_label(&self) -> &'static str {
        match self.result {
            AttemptResult::Answered { status: 200..=299, .. } => "success",
            AttemptResult::Answered { .. } => "http_error",
            AttemptResult::TimedOut(_) => "timeout",
            AttemptResult::Blocked | AttemptResult::Tls(_) | AttemptResult::Connection(_) => "connection_error",
        }
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    RetryIn(Duration),
    /// Retries exhausted.
    Failed,
    /// 410: fail the delivery and disable the webhook.
    Gone,
}

/// Why a delivery ended without succeeding: the delivery's `failure_reason`, a field of its
/// own so it never hides what the last attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    RetriesExhausted,
    /// The endpoint answered 410.
    Gone,
    WebhookDisabled(super::webhook::DisabledReason),
    WebhookDeleted,
    /// The one attempt of `POST …/test` failed.
    TestFailed,
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RetriesExhausted => f.write_str("retries exhausted"),
            Self::Gone => f.write_str("gone"),
            Self::WebhookDisabled(reason) => write!(f, "webhook disabled ({})", reason.as_str()),
            Self::WebhookDeleted => f.write_str("webhook deleted"),
            Self::TestFailed => f.write_str("test attempt failed"),
        }
    }
}

impl NextStep {
    /// Why the delivery ended, if this step ends it without success.
    pub fn failure_reason(self) -> Option<FailureReason> {
        match self {
            Self::Failed => Some(FailureReason::RetriesExhausted),
            Self::Gone => Some(FailureReason::Gone),
            Self::Succeeded | Self::RetryIn(_) => None,
        }
    }
}

/// Decides the next step after attempt number `attempt` (1-based) ended with `outcome`.
pub fn next_step(policy: &RetryPolicy, failures: u32, outcome: &AttemptOutcome, jitter: f64) -> NextStep {
    if outcome.succeeded() {
        return NextStep::Succeeded;
    }
    if outcome.status_code() == Some(410) {
        return NextStep::Gone;
    }
    match policy.delay_after(failures, outcome.retry_after(), jitter) {
        Some(delay) => NextStep::RetryIn(delay),
        None => NextStep::Failed,
    }
}

/// What an attempt did to its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub step: NextStep,
    /// Failures that count against `max_retries` after this attempt.
    pub retries_used: u32,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<FailureReason>,
    /// The attempt was a circuit probe and failed: the delivery goes first in line for the
    /// next probe instead of waiting for a retry timer.
    pub probe_failed: bool,
}

/// Settles a delivery after an attempt ended with `outcome` at `now`: success, a retry (when),
/// or the end. `next_probe_in` is given when the attempt was a circuit probe: a failed probe
/// is the circuit's business, so its delivery waits that long for the next probe without
/// using up a retry. A 410 is final whoever sent it.
pub fn settle(
    policy: &RetryPolicy,
    retries_used: u32,
    outcome: &AttemptOutcome,
    next_probe_in: Option<Duration>,
    now: DateTime<Utc>,
    jitter: f64,
) -> Settled {
    let probe_failed = next_probe_in.is_some() && !outcome.succeeded() && outcome.status_code() != Some(410);
    let (step, retries_used) = match next_probe_in {
        Some(wait) if probe_failed => (NextStep::RetryIn(wait), retries_used),
        _ if outcome.succeeded() => (NextStep::Succeeded, retries_used),
        _ => (next_step(policy, retries_used + 1, outcome, jitter), retries_used + 1),
    };
    let (status, next_attempt_at) = match step {
        NextStep::Succeeded => (DeliveryStatus::Succeeded, None),
        NextStep::Failed | NextStep::Gone => (DeliveryStatus::Failed, None),
        NextStep::RetryIn(wait) => (DeliveryStatus::Pending, Some(now + wait)),
    };
    Settled { step, retries_used, status, next_attempt_at, failure_reason: step.failure_reason(), probe_failed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16) -> AttemptOutcome {
        AttemptOutcome::answered(status, String::new(), None, Duration::from_millis(5))
    }

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 2,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(3600),
    };

    #[test]
    fn any_2xx_succeeds() {
        assert_eq!(next_step(&POLICY, 1, &answered(204), 0.0), NextStep::Succeeded);
    }

    #[test]
    fn failures_retry_until_exhausted() {
        let failed = answered(500);
        assert_eq!(next_step(&POLICY, 1, &failed, 0.0), NextStep::RetryIn(Duration::from_millis(100)));
        assert_eq!(next_step(&POLICY, 2, &failed, 0.0), NextStep::RetryIn(Duration::from_millis(200)));
        assert_eq!(next_step(&POLICY, 3, &failed, 0.0), NextStep::Failed);
        let refused = AttemptOutcome {
            result: AttemptResult::Connection("connection refused".into()),
            duration: Duration::from_millis(5),
        };
        assert_eq!(next_step(&POLICY, 3, &refused, 0.0), NextStep::Failed);
    }

    #[test]
    fn gone_stops_at_once_and_3xx_is_a_failure() {
        assert_eq!(next_step(&POLICY, 1, &answered(410), 0.0), NextStep::Gone);
        let redirect = answered(302);
        assert!(matches!(next_step(&POLICY, 1, &redirect, 0.0), NextStep::RetryIn(_)));
    }

    #[test]
    fn retry_after_replaces_the_backoff() {
        let limited = AttemptOutcome::answered(429, String::new(), Some(Duration::from_secs(3)), Duration::ZERO);
        assert_eq!(next_step(&POLICY, 1, &limited, 0.5), NextStep::RetryIn(Duration::from_secs(3)));
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn a_success_settles_the_delivery_without_counting_a_retry() {
        let settled = settle(&POLICY, 1, &answered(200), None, at(100), 0.0);
        assert_eq!(
            (settled.step, settled.status, settled.retries_used),
            (NextStep::Succeeded, DeliveryStatus::Succeeded, 1)
        );
        assert_eq!((settled.next_attempt_at, settled.failure_reason), (None, None));
    }

    #[test]
    fn a_failure_counts_a_retry_and_waits_its_backoff_until_none_is_left() {
        let settled = settle(&POLICY, 0, &answered(500), None, at(100), 0.0);
        assert_eq!(settled.status, DeliveryStatus::Pending);
        assert_eq!((settled.retries_used, settled.next_attempt_at), (1, Some(at(100) + Duration::from_millis(100))));
        let last = settle(&POLICY, 2, &answered(500), None, at(100), 0.0);
        assert_eq!((last.step, last.status, last.retries_used), (NextStep::Failed, DeliveryStatus::Failed, 3));
        assert_eq!(last.failure_reason, Some(FailureReason::RetriesExhausted));
    }

    #[test]
    fn a_failed_probe_waits_for_the_next_probe_without_using_a_retry() {
        let settled = settle(&POLICY, 2, &answered(503), Some(Duration::from_secs(30)), at(100), 0.0);
        assert!(settled.probe_failed);
        assert_eq!((settled.status, settled.retries_used), (DeliveryStatus::Pending, 2));
        assert_eq!(settled.next_attempt_at, Some(at(130)));
    }

    #[test]
    fn a_410_ends_the_delivery_even_on_a_probe() {
        let settled = settle(&POLICY, 0, &answered(410), Some(Duration::from_secs(30)), at(100), 0.0);
        assert!(!settled.probe_failed);
        assert_eq!((settled.step, settled.failure_reason), (NextStep::Gone, Some(FailureReason::Gone)));
    }

    #[test]
    fn messages_and_metric_labels_follow_the_result() {
        let timed_out =
            AttemptOutcome { result: AttemptResult::TimedOut(Duration::from_millis(1500)), duration: Duration::ZERO };
        assert_eq!(timed_out.error_message().as_deref(), Some("timed out after 1500 ms"));
        assert_eq!(timed_out.metric_label(), "timeout");
        let blocked = AttemptOutcome { result: AttemptResult::Blocked, duration: Duration::ZERO };
        assert_eq!(blocked.error_message().as_deref(), Some(BLOCKED_TARGET));
        assert_eq!(blocked.metric_label(), "connection_error");
        assert_eq!(answered(503).error_message().as_deref(), Some("HTTP 503"));
        assert_eq!(answered(503).metric_label(), "http_error");
        assert_eq!((answered(200).error_message(), answered(200).metric_label()), (None, "success"));
    }

    #[test]
    fn statuses_round_trip() {
        for s in [DeliveryStatus::Pending, DeliveryStatus::Succeeded, DeliveryStatus::Failed, DeliveryStatus::Cancelled]
        {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("done"), None);
    }
}
