//! Per-webhook health statistics: success rate over 5 minutes, latency percentiles,
//! last success/failure. Pure: time is passed in; memory is fixed whatever the traffic.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::Serialize;

const WINDOW: Duration = Duration::from_secs(300);
const BUCKETS: usize = 300;

/// Attempts and successes per second over the last 5 minutes, in a ring of 300 buckets.
#[derive(Debug, Clone)]
struct RollingOutcomes {
    origin: Instant,
    /// (second since origin, attempts, successes)
    buckets: Vec<(u64, u32, u32)>,
}

impl RollingOutcomes {
    fn new(origin: Instant) -> Self {
        Self { origin, buckets: vec![(u64::MAX, 0, 0); BUCKETS] }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    fn record(&mut self, now: Instant, succeeded: bool) {
        let second = self.second(now);
        let bucket = &mut self.buckets[(second % BUCKETS as u64) as usize];
        if bucket.0 != second {
            *bucket = (second, 0, 0);
        }
        bucket.1 += 1;
        bucket.2 += u32::from(succeeded);
    }

    fn rate(&self, now: Instant) -> Option<f64> {
        let current = self.second(now);
        let (attempts, successes) = self
            .buckets
            .iter()
            .filter(|(second, _, _)| *second != u64::MAX && current.saturating_sub(*second) < BUCKETS as u64)
            .fold((0u64, 0u64), |(a, s), (_, attempts, successes)| {
                (a + u64::from(*attempts), s + u64::from(*successes))
            });
        (attempts > 0).then(|| successes as f64 / attempts as f64)
    }
}

/// Attempt latency over the last 5 to 10 minutes: two histograms, rotated every 5 minutes.
#[derive(Debug, Clone)]
struct RollingLatency {
    current: Histogram<u64>,
    previous: Histogram<u64>,
    current_since: Instant,
}

impl RollingLatency {
    fn new(now: Instant) -> Self {
        // Microseconds, up to 10 minutes, 3 significant digits.
        let histogram = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds are valid");
        Self { current: histogram(), previous: histogram(), current_since: now }
    }

    fn rotate(&mut self, now: Instant) {
        if now.saturating_duration_since(self.current_since) >= WINDOW {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.reset();
            self.current_since = now;
        }
    }

    fn record(&mut self, now: Instant, latency: Duration) {
        self.rotate(now);
        self.current.saturating_record((latency.as_micros() as u64).max(1));
    }

    fn summary(&self) -> Latency {
        let mut merged = self.previous.clone();
        let _ = merged.add(&self.current);
        if merged.is_empty() {
            return Latency { p50: None, p95: None, p99: None };
        }
        let ms = |q: f64| Some((merged.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0);
        Latency { p50: ms(0.50), p95: ms(0.95), p99: ms(0.99) }
    }
}

/// Latency percentiles in milliseconds; `null` when there were no attempts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct EndpointStats {
    outcomes: RollingOutcomes,
    latency: RollingLatency,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl EndpointStats {
    pub fn new(now: Instant) -> Self {
        Self {
            outcomes: RollingOutcomes::new(now),
            latency: RollingLatency::new(now),
            last_success_at: None,
            last_failure_at: None,
            last_error: None,
        }
    }

    /// Records one attempt that ended at `now` (`at` in wall-clock time).
    pub fn record(&mut self, now: Instant, at: DateTime<Utc>, latency: Duration, error: Option<&str>) {
        self.outcomes.record(now, error.is_none());
        self.latency.record(now, latency);
        match error {
            None => self.last_success_at = Some(at),
            Some(error) => {
                self.last_failure_at = Some(at);
                self.last_error = Some(error.to_owned());
            }
        }
    }

    /// Share of attempts that succeeded in the last 5 minutes; `None` without attempts.
    pub fn success_rate_5m(&self, now: Instant) -> Option<f64> {
        self.outcomes.rate(now)
    }

    pub fn latency(&mut self, now: Instant) -> Latency {
        self.latency.rotate(now);
        self.latency.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn success_rate_covers_the_last_five_minutes_only() {
        let start = Instant::now();
        let mut stats = EndpointStats::new(start);
        assert_eq!(stats.success_rate_5m(start), None);
        stats.record(start, Utc::now(), S / 100, Some("HTTP 500"));
        stats.record(start + 10 * S, Utc::now(), S / 100, None);
        stats.record(start + 10 * S, Utc::now(), S / 100, None);
        stats.record(start + 10 * S, Utc::now(), S / 100, None);
        assert_eq!(stats.success_rate_5m(start + 20 * S), Some(0.75));
        // The failure at second 0 has left the window; the successes have not.
        assert_eq!(stats.success_rate_5m(start + 301 * S), Some(1.0));
        assert_eq!(stats.success_rate_5m(start + 400 * S), None);
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let start = Instant::now();
        let mut stats = EndpointStats::new(start);
        for ms in 1..=100u64 {
            stats.record(start, Utc::now(), Duration::from_millis(ms), None);
        }
        let latency = stats.latency(start);
        let near = |v: Option<f64>, want: f64| (v.unwrap() - want).abs() <= want * 0.01 + 0.01;
        assert!(near(latency.p50, 50.0), "{latency:?}");
        assert!(near(latency.p95, 95.0), "{latency:?}");
        assert!(near(latency.p99, 99.0), "{latency:?}");
        // After two rotations the old samples are gone.
        assert!(stats.latency(start + 301 * S).p50.is_some());
        assert_eq!(stats.latency(start + 602 * S).p50, None);
    }

    #[test]
    fn last_success_and_failure_are_kept_with_the_error() {
        let start = Instant::now();
        let mut stats = EndpointStats::new(start);
        let (t1, t2) = (Utc::now(), Utc::now() + chrono::Duration::seconds(1));
        stats.record(start, t1, S, None);
        stats.record(start, t2, S, Some("timed out after 100 ms"));
        assert_eq!(stats.last_success_at, Some(t1));
        assert_eq!(stats.last_failure_at, Some(t2));
        assert_eq!(stats.last_error.as_deref(), Some("timed out after 100 ms"));
    }
}
