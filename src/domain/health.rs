//! Per-webhook health statistics: success rate over 5 minutes, latency percentiles,
//! last success/failure. Pure: time is passed in. Memory is fixed whatever the traffic and
//! small (a few KiB, allocated on the first attempt), because a deployment may hold
//! tens of thousands of webhooks.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::Serialize;

const WINDOW: Duration = Duration::from_secs(300);
/// Outcomes are counted in 30 buckets of 10 s.
const BUCKETS: usize = 30;
const BUCKET_SECS: u64 = 10;
/// Latency is recorded in units of 10 µs, up to 60 s, with one significant digit
/// (≤ 6 % error): 1.25 KiB per histogram.
const LATENCY_UNIT_MICROS: u64 = 10;

/// Attempts and successes over the last 5 minutes, in a ring of 10-second buckets.
#[derive(Debug, Clone)]
struct RollingOutcomes {
    origin: Instant,
    /// (bucket number since origin, attempts, successes)
    buckets: [(u64, u32, u32); BUCKETS],
}

impl RollingOutcomes {
    fn new(origin: Instant) -> Self {
        Self { origin, buckets: [(u64::MAX, 0, 0); BUCKETS] }
    }

    fn bucket(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / BUCKET_SECS
    }

    fn record(&mut self, now: Instant, succeeded: bool) {
        let number = self.bucket(now);
        let bucket = &mut self.buckets[(number % BUCKETS as u64) as usize];
        if bucket.0 != number {
            *bucket = (number, 0, 0);
        }
        bucket.1 += 1;
        bucket.2 += u32::from(succeeded);
    }

    fn rate(&self, now: Instant) -> Option<f64> {
        let current = self.bucket(now);
        let (attempts, successes) = self
            .buckets
            .iter()
            .filter(|(number, _, _)| *number != u64::MAX && current.saturating_sub(*number) < BUCKETS as u64)
            .fold((0u64, 0u64), |(a, s), (_, attempts, successes)| {
                (a + u64::from(*attempts), s + u64::from(*successes))
            });
        (attempts > 0).then(|| successes as f64 / attempts as f64)
    }
}

/// Attempt latency over the last 5 to 10 minutes: two histograms, rotated every 5 minutes.
/// The previous one exists only after the first rotation, so an endpoint that has been
/// busy for less than 5 minutes holds one histogram.
#[derive(Debug, Clone)]
struct RollingLatency {
    current: Histogram<u32>,
    previous: Option<Histogram<u32>>,
    current_since: Instant,
}

fn latency_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 6_000_000, 1).expect("static bounds are valid")
}

impl RollingLatency {
    fn new(now: Instant) -> Self {
        Self { current: latency_histogram(), previous: None, current_since: now }
    }

    fn rotate(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.current_since);
        if age < WINDOW {
            return;
        }
        if age >= 2 * WINDOW {
            // Both windows are over: nothing recorded is recent enough to report.
            self.previous = None;
        } else {
            let previous = self.previous.get_or_insert_with(latency_histogram);
            std::mem::swap(&mut self.current, previous);
        }
        self.current.reset();
        self.current_since = now;
    }

    fn record(&mut self, now: Instant, latency: Duration) {
        self.rotate(now);
        self.current.saturating_record((latency.as_micros() as u64 / LATENCY_UNIT_MICROS).max(1));
    }

    fn summary(&self) -> Latency {
        let mut merged = self.current.clone();
        if let Some(previous) = &self.previous {
            let _ = merged.add(previous);
        }
        if merged.is_empty() {
            return Latency { p50: None, p95: None, p99: None };
        }
        let to_ms = 1000.0 / LATENCY_UNIT_MICROS as f64;
        let ms = |q: f64| Some((merged.value_at_quantile(q) as f64 / to_ms * 100.0).round() / 100.0);
        Latency { p50: ms(0.50), p95: ms(0.95), p99: ms(0.99) }
    }
}

/// Latency percentiles in milliseconds; `null` when there were no attempts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// The rolling windows, allocated on the first attempt: an idle webhook costs nothing.
#[derive(Debug, Clone)]
struct Windows {
    outcomes: RollingOutcomes,
    latency: RollingLatency,
}

#[derive(Debug, Clone, Default)]
pub struct EndpointStats {
    windows: Option<Box<Windows>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl EndpointStats {
    /// Records one attempt that ended at `now` (`at` in wall-clock time).
    pub fn record(&mut self, now: Instant, at: DateTime<Utc>, latency: Duration, error: Option<&str>) {
        let windows = self.windows.get_or_insert_with(|| {
            Box::new(Windows { outcomes: RollingOutcomes::new(now), latency: RollingLatency::new(now) })
        });
        windows.outcomes.record(now, error.is_none());
        windows.latency.record(now, latency);
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
        self.windows.as_ref()?.outcomes.rate(now)
    }

    pub fn latency(&mut self, now: Instant) -> Latency {
        match &mut self.windows {
            Some(windows) => {
                windows.latency.rotate(now);
                windows.latency.summary()
            }
            None => Latency { p50: None, p95: None, p99: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn success_rate_covers_the_last_five_minutes_only() {
        let start = Instant::now();
        let mut stats = EndpointStats::default();
        assert_eq!(stats.success_rate_5m(start), None);
        stats.record(start, Utc::now(), S / 100, Some("HTTP 500"));
        stats.record(start + 20 * S, Utc::now(), S / 100, None);
        stats.record(start + 20 * S, Utc::now(), S / 100, None);
        stats.record(start + 20 * S, Utc::now(), S / 100, None);
        assert_eq!(stats.success_rate_5m(start + 30 * S), Some(0.75));
        // The failure at second 0 has left the window; the successes have not.
        assert_eq!(stats.success_rate_5m(start + 305 * S), Some(1.0));
        assert_eq!(stats.success_rate_5m(start + 400 * S), None);
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let start = Instant::now();
        let mut stats = EndpointStats::default();
        for ms in 1..=100u64 {
            stats.record(start, Utc::now(), Duration::from_millis(ms), None);
        }
        let latency = stats.latency(start);
        // One significant digit: within about 6 %.
        let near = |v: Option<f64>, want: f64| (v.unwrap() - want).abs() <= want * 0.07;
        assert!(near(latency.p50, 50.0), "{latency:?}");
        assert!(near(latency.p95, 95.0), "{latency:?}");
        assert!(near(latency.p99, 99.0), "{latency:?}");
        // After two rotations the old samples are gone.
        assert!(stats.latency(start + 301 * S).p50.is_some());
        assert_eq!(stats.latency(start + 602 * S).p50, None);
    }

    #[test]
    fn samples_older_than_two_windows_are_not_reported_even_without_traffic_between() {
        let start = Instant::now();
        let mut stats = EndpointStats::default();
        stats.record(start, Utc::now(), Duration::from_millis(5), None);
        assert!(stats.latency(start + 400 * S).p50.is_some(), "5 to 10 minutes old: still reported");
        let mut quiet = EndpointStats::default();
        quiet.record(start, Utc::now(), Duration::from_millis(5), None);
        assert_eq!(quiet.latency(start + 700 * S).p50, None, "over 10 minutes old");
    }

    #[test]
    fn last_success_and_failure_are_kept_with_the_error() {
        let start = Instant::now();
        let mut stats = EndpointStats::default();
        let (t1, t2) = (Utc::now(), Utc::now() + chrono::Duration::seconds(1));
        stats.record(start, t1, S, None);
        stats.record(start, t2, S, Some("timed out after 100 ms"));
        assert_eq!(stats.last_success_at, Some(t1));
        assert_eq!(stats.last_failure_at, Some(t2));
        assert_eq!(stats.last_error.as_deref(), Some("timed out after 100 ms"));
    }
}
