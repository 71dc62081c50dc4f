//! The per-webhook circuit breaker (SPEC §5) as a pure state machine: time is passed in.
//!
//! It also paces concurrency ("slow start"): after a failure only one attempt is in flight
//! until one succeeds, and the allowance then doubles per success up to `max_in_flight`.
//! So a dead endpoint sees `failure_threshold` attempts, then only probes — not a burst of
//! `max_in_flight` doomed requests.

use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Consecutive failed attempts that open the circuit.
    pub failure_threshold: u32,
    /// First wait before a probe; doubles on each re-open.
    pub cooldown: Duration,
    pub cooldown_max: Duration,
    /// Open this long without a success → the webhook is disabled (`"failing"`).
    pub disable_after: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
            cooldown_max: Duration::from_secs(600),
            disable_after: Duration::from_secs(72 * 3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// Whether an attempt may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// A normal attempt.
    Attempt,
    /// The one half-open probe: its outcome decides the circuit.
    Probe,
    /// Not before this instant (a probe will be allowed then).
    WaitUntil(Instant),
    /// A probe is in flight; nothing else until it ends.
    Wait,
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: CircuitSettings,
    state: CircuitState,
    consecutive_failures: u32,
    cooldown: Duration,
    /// When the current open (or half-open) spell began; reset only by a success.
    open_since: Option<Instant>,
    /// When the next probe is allowed while open.
    probe_at: Option<Instant>,
    /// Slow-start allowance of attempts in flight.
    allowance: u32,
}

impl CircuitBreaker {
    pub fn new(settings: CircuitSettings) -> Self {
        Self {
            settings,
            state: CircuitState::Closed,
            consecutive_failures: 0,
            cooldown: settings.cooldown,
            open_since: None,
            probe_at: None,
            allowance: 1,
        }
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the next probe may go out, while the circuit is open.
    pub fn probe_at(&self) -> Option<Instant> {
        self.probe_at.filter(|_| self.state == CircuitState::Open)
    }

    /// How many attempts may be in flight at once, given the webhook's own limit.
    pub fn in_flight_limit(&self, max_in_flight: u32) -> u32 {
        match self.state {
            CircuitState::Closed => self.allowance.min(max_in_flight).max(1),
            CircuitState::Open | CircuitState::HalfOpen => 1,
        }
    }

    /// Asks to start an attempt at `now`; an open circuit whose cooldown is over turns
    /// half-open and grants the probe.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            CircuitState::Closed => Permit::Attempt,
            CircuitState::HalfOpen => Permit::Wait,
            CircuitState::Open => match self.probe_at {
                Some(at) if now < at => Permit::WaitUntil(at),
                _ => {
                    self.state = CircuitState::HalfOpen;
                    Permit::Probe
                }
            },
        }
    }

    pub fn record_success(&mut self) {
        self.close();
        self.allowance = self.allowance.saturating_mul(2);
    }

    /// Records a failed attempt; returns `true` if this failure opened (or re-opened) the circuit.
    pub fn record_failure(&mut self, now: Instant, was_probe: bool) -> bool {
        self.allowance = 1;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state {
            CircuitState::HalfOpen if was_probe => {
                self.cooldown = (self.cooldown * 2).min(self.settings.cooldown_max);
                self.open(now);
                true
            }
            CircuitState::Closed if self.consecutive_failures >= self.settings.failure_threshold => {
                self.open_since = Some(now);
                self.open(now);
                true
            }
            // Attempts that were already in flight when the circuit opened change nothing.
            _ => false,
        }
    }

    /// True once the circuit has stayed open for `disable_after`.
    pub fn should_disable(&self, now: Instant) -> bool {
        self.open_since.is_some_and(|since| now.saturating_duration_since(since) >= self.settings.disable_after)
    }

    /// Closes the circuit from outside (a successful test, or the webhook re-enabled).
    pub fn reset(&mut self) {
        self.close();
    }

    fn open(&mut self, now: Instant) {
        self.state = CircuitState::Open;
        self.probe_at = Some(now + self.cooldown);
    }

    fn close(&mut self) {
        self.state = CircuitState::Closed;
        self.consecutive_failures = 0;
        self.cooldown = self.settings.cooldown;
        self.open_since = None;
        self.probe_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings() -> CircuitSettings {
        CircuitSettings { failure_threshold: 3, cooldown: 100 * MS, cooldown_max: 350 * MS, disable_after: 1000 * MS }
    }

    fn opened(now: Instant) -> CircuitBreaker {
        let mut breaker = CircuitBreaker::new(settings());
        for _ in 0..3 {
            breaker.record_failure(now, false);
        }
        breaker
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let now = Instant::now();
        let mut breaker = CircuitBreaker::new(settings());
        assert!(!breaker.record_failure(now, false));
        assert!(!breaker.record_failure(now, false));
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert!(breaker.record_failure(now, false));
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.consecutive_failures(), 3);
    }

    #[test]
    fn a_success_resets_the_count_of_consecutive_failures() {
        let now = Instant::now();
        let mut breaker = CircuitBreaker::new(settings());
        breaker.record_failure(now, false);
        breaker.record_failure(now, false);
        breaker.record_success();
        breaker.record_failure(now, false);
        breaker.record_failure(now, false);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn no_attempt_while_open_then_one_probe_after_the_cooldown() {
        let now = Instant::now();
        let mut breaker = opened(now);
        assert_eq!(breaker.permit(now + 50 * MS), Permit::WaitUntil(now + 100 * MS));
        assert_eq!(breaker.probe_at(), Some(now + 100 * MS));
        assert_eq!(breaker.permit(now + 100 * MS), Permit::Probe);
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert_eq!(breaker.permit(now + 101 * MS), Permit::Wait, "only one probe at a time");
    }

    #[test]
    fn a_successful_probe_closes_the_circuit() {
        let now = Instant::now();
        let mut breaker = opened(now);
        assert_eq!(breaker.permit(now + 100 * MS), Permit::Probe);
        breaker.record_success();
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.permit(now + 100 * MS), Permit::Attempt);
        assert_eq!(breaker.consecutive_failures(), 0);
    }

    #[test]
    fn a_failed_probe_reopens_with_the_cooldown_doubled_up_to_its_maximum() {
        let now = Instant::now();
        let mut breaker = opened(now);
        let mut at = now;
        for expected in [200, 350, 350] {
            at += 400 * MS;
            assert_eq!(breaker.permit(at), Permit::Probe);
            assert!(breaker.record_failure(at, true));
            assert_eq!(breaker.probe_at(), Some(at + expected * MS));
        }
    }

    #[test]
    fn in_flight_failures_after_opening_change_nothing() {
        let now = Instant::now();
        let mut breaker = opened(now);
        assert!(!breaker.record_failure(now + 10 * MS, false));
        assert_eq!(breaker.probe_at(), Some(now + 100 * MS));
    }

    #[test]
    fn staying_open_for_disable_after_asks_to_disable() {
        let now = Instant::now();
        let mut breaker = opened(now);
        assert!(!breaker.should_disable(now + 999 * MS));
        // Re-opening does not restart the clock: the spell is continuous.
        assert_eq!(breaker.permit(now + 500 * MS), Permit::Probe);
        breaker.record_failure(now + 500 * MS, true);
        assert!(breaker.should_disable(now + 1000 * MS));
        breaker.reset();
        assert!(!breaker.should_disable(now + 5000 * MS));
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn concurrency_starts_at_one_and_doubles_per_success() {
        let now = Instant::now();
        let mut breaker = CircuitBreaker::new(settings());
        assert_eq!(breaker.in_flight_limit(16), 1);
        breaker.record_success();
        assert_eq!(breaker.in_flight_limit(16), 2);
        for _ in 0..10 {
            breaker.record_success();
        }
        assert_eq!(breaker.in_flight_limit(16), 16);
        breaker.record_failure(now, false);
        assert_eq!(breaker.in_flight_limit(16), 1);
        assert_eq!(breaker.in_flight_limit(0), 1);
    }
}
