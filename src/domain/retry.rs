//! When to try a failed delivery again (SPEC §5). Pure: the caller passes the jitter and `now`.

use std::time::{Duration, SystemTime};

/// Exponential backoff with jitter, capped; `Retry-After` honoured on 429/503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt number `failed_attempt` (1-based), or `None` when the
    /// retries are used up. `jitter` in `[0, 1)` adds up to 10 % of the backoff.
    pub fn delay_after(&self, failed_attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
        if failed_attempt > self.max_retries {
            return None;
        }
        if let Some(wait) = retry_after {
            return Some(wait.min(self.backoff_max));
        }
        let exponent = failed_attempt.saturating_sub(1).min(31);
        let backoff = self.backoff_base.saturating_mul(1u32 << exponent).min(self.backoff_max);
        let jitter = backoff.mul_f64(jitter.clamp(0.0, 1.0) * 0.1);
        Some((backoff + jitter).min(self.backoff_max))
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_retries: 3, backoff_base: Duration::from_secs(1), backoff_max: Duration::from_secs(3600) }
    }

    #[test]
    fn backoff_doubles_from_the_base_without_jitter() {
        let p = policy();
        assert_eq!(p.delay_after(1, None, 0.0), Some(Duration::from_secs(1)));
        assert_eq!(p.delay_after(2, None, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(p.delay_after(3, None, 0.0), Some(Duration::from_secs(4)));
    }

    #[test]
    fn retries_stop_after_max_retries() {
        assert_eq!(policy().delay_after(4, None, 0.0), None);
        let none = RetryPolicy { max_retries: 0, ..policy() };
        assert_eq!(none.delay_after(1, None, 0.0), None);
    }

    #[test]
    fn jitter_adds_at_most_ten_percent() {
        let p = policy();
        let max = p.delay_after(3, None, 0.999_999).unwrap();
        assert!(max > Duration::from_millis(4390) && max < Duration::from_millis(4400), "{max:?}");
    }

    #[test]
    fn backoff_and_retry_after_are_capped() {
        let p = RetryPolicy { max_retries: 20, ..policy() };
        assert_eq!(p.delay_after(20, None, 0.5), Some(Duration::from_secs(3600)));
        let long = Some(Duration::from_secs(86_400));
        assert_eq!(p.delay_after(1, long, 0.0), Some(Duration::from_secs(3600)));
        assert_eq!(p.delay_after(1, Some(Duration::from_secs(7)), 0.9), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
