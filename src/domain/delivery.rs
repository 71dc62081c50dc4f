//! Delivery status and what one attempt's outcome means for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RetryPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// How one HTTP attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The response status, if a response arrived.
    pub status_code: Option<u16>,
    /// Why it failed (`None` on success).
    pub error_message: Option<String>,
    /// First 1 KiB of the response body, lossy UTF-8.
    pub response_body: Option<String>,
    /// `Retry-After` of a 429/503 response.
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

impl AttemptOutcome {
    /// The receiver answered with `status`: anything outside 2xx fails as `HTTP <status>`.
    pub fn answered(status: u16, response_body: String, retry_after: Option<Duration>, duration: Duration) -> Self {
        Self {
            status_code: Some(status),
            error_message: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
            response_body: Some(response_body),
            retry_after,
            duration,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.error_message.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
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
    if outcome.status_code == Some(410) {
        return NextStep::Gone;
    }
    match policy.delay_after(failures, outcome.retry_after, jitter) {
        Some(delay) => NextStep::RetryIn(delay),
        None => NextStep::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<u16>, error: Option<&str>) -> AttemptOutcome {
        AttemptOutcome {
            status_code: status,
            error_message: error.map(str::to_owned),
            response_body: None,
            retry_after: None,
            duration: Duration::from_millis(5),
        }
    }

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 2,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(3600),
    };

    #[test]
    fn any_2xx_succeeds() {
        assert_eq!(next_step(&POLICY, 1, &outcome(Some(204), None), 0.0), NextStep::Succeeded);
    }

    #[test]
    fn failures_retry_until_exhausted() {
        let failed = outcome(Some(500), Some("HTTP 500"));
        assert_eq!(next_step(&POLICY, 1, &failed, 0.0), NextStep::RetryIn(Duration::from_millis(100)));
        assert_eq!(next_step(&POLICY, 2, &failed, 0.0), NextStep::RetryIn(Duration::from_millis(200)));
        assert_eq!(next_step(&POLICY, 3, &failed, 0.0), NextStep::Failed);
        let refused = outcome(None, Some("connection refused"));
        assert_eq!(next_step(&POLICY, 3, &refused, 0.0), NextStep::Failed);
    }

    #[test]
    fn gone_stops_at_once_and_3xx_is_a_failure() {
        assert_eq!(next_step(&POLICY, 1, &outcome(Some(410), Some("HTTP 410")), 0.0), NextStep::Gone);
        let redirect = outcome(Some(302), Some("HTTP 302"));
        assert!(matches!(next_step(&POLICY, 1, &redirect, 0.0), NextStep::RetryIn(_)));
    }

    #[test]
    fn retry_after_replaces_the_backoff() {
        let mut limited = outcome(Some(429), Some("HTTP 429"));
        limited.retry_after = Some(Duration::from_secs(3));
        assert_eq!(next_step(&POLICY, 1, &limited, 0.5), NextStep::RetryIn(Duration::from_secs(3)));
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
