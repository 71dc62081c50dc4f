//! An endpoint's lease when several servers share the database (SPEC §9): under which epoch
//! its attempts are recorded, and until when it may start them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Until when this server may start attempts on the webhooks it leases: the send time of
/// its last successful renewal plus `lease_ttl`. The database's expiry is at least that
/// plus the webhook's `timeout_ms`, so every attempt started in time ends before another
/// server may take the webhook over. One clock for all leases: they are renewed together.
#[derive(Debug, Clone)]
pub struct LeaseClock {
    base: Instant,
    /// Milliseconds after `base`; 0 = never renewed.
    until_ms: Arc<AtomicU64>,
}

impl Default for LeaseClock {
    fn default() -> Self {
        Self { base: Instant::now(), until_ms: Arc::default() }
    }
}

impl LeaseClock {
    /// Moves the deadline to `until`, unless it is later already.
    pub fn extend_to(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.base).as_millis() as u64;
        self.until_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// Whether an attempt may start at `now`.
    pub fn may_start(&self, now: Instant) -> bool {
        now < self.until()
    }

    pub fn until(&self) -> Instant {
        self.base + Duration::from_millis(self.until_ms.load(Ordering::Acquire))
    }
}

/// The lease an endpoint runs under.
#[derive(Debug, Clone)]
pub struct EndpointLease {
    /// Bumped at every claim: records of attempts made under an older one leave the delivery
    /// to the new owner.
    pub epoch: i64,
    pub clock: LeaseClock,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_only_moves_forward() {
        let clock = LeaseClock::default();
        let now = Instant::now();
        assert!(!clock.may_start(now));
        clock.extend_to(now + Duration::from_secs(2));
        clock.extend_to(now + Duration::from_secs(1));
        assert!(clock.may_start(now + Duration::from_millis(1500)));
        assert!(!clock.may_start(now + Duration::from_millis(2500)));
    }
}
