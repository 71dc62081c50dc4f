//! Delivery status and what one attempt's outcome means for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RetryPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
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
