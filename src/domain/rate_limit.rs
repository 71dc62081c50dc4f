//! A token bucket for `rate_limit_per_sec` (burst = the rate). Pure: time is passed in.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens, refilled at `rate` per second.
    pub fn new(rate_per_sec: u32, now: Instant) -> Self {
        Self::with_burst(rate_per_sec, rate_per_sec, now)
    }

    /// A full bucket of `burst` tokens, refilled at `rate` per second.
    pub fn with_burst(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        let rate = f64::from(rate_per_sec.max(1));
        let burst = f64::from(burst.max(1));
        Self { rate, burst, tokens: burst, last: now }
    }

    /// Takes a token, or says how long until one is there.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_a_burst_of_the_rate_then_paces() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(5, now);
        for _ in 0..5 {
            assert!(bucket.try_take(now).is_ok());
        }
        let wait = bucket.try_take(now).unwrap_err();
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-9, "{wait:?}");
        assert!(bucket.try_take(now + Duration::from_millis(200)).is_ok());
        assert!(bucket.try_take(now + Duration::from_millis(200)).is_err());
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(2, now);
        bucket.try_take(now).unwrap();
        bucket.try_take(now).unwrap();
        let later = now + Duration::from_secs(60);
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn the_burst_can_exceed_the_rate() {
        let now = Instant::now();
        let mut bucket = TokenBucket::with_burst(50, 100, now);
        for _ in 0..100 {
            assert!(bucket.try_take(now).is_ok());
        }
        assert!(bucket.try_take(now).is_err());
        for _ in 0..50 {
            assert!(bucket.try_take(now + Duration::from_secs(1)).is_ok());
        }
        assert!(bucket.try_take(now + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn twenty_takes_at_five_per_second_span_three_seconds() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5, start);
        let mut now = start;
        for _ in 0..20 {
            while let Err(wait) = bucket.try_take(now) {
                now += wait;
            }
        }
        let span = now - start;
        assert!(span >= Duration::from_millis(2990) && span <= Duration::from_millis(3010), "{span:?}");
    }
}
