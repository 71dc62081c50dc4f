//! The per-webhook circuit breaker (SPEC §5) as a pure state machine: time is passed in.
//!
//! It also paces concurrency ("slow start"): after a failure only one attempt is in flight
//! until one succeeds, and the allowance then doubles per success up to `max_in_flight`.
//! So a dead endpoint sees `failure_threshold` attempts, then only probes — not a burst of
//! `max_in_flight` doomed requests.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// A breaker's state in wall-clock time, as it is kept in the database for the next owner.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedCircuit {
    pub state: CircuitState,
    pub consecutive_failures: u32,
    /// The cooldown the next re-open doubles (`None` while closed).
    pub cooldown: Option<Duration>,
    pub open_since: Option<DateTime<Utc>>,
    pub probe_at: Option<DateTime<Utc>>,
}

impl Default for SavedCircuit {
    fn default() -> Self {
        Self { state: CircuitState::Closed, consecutive_failures: 0, cooldown: None, open_since: None, probe_at: None }
    }
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

    /// The probe granted by [`Self::permit`] never started: it is due again.
    pub fn reset_probe(&mut self) {
        if self.state == CircuitState::HalfOpen {
            self.state = CircuitState::Open;
            self.probe_at = None;
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

    /// The state another server needs to go on where this one stopped (SPEC §9: circuit
    /// state moves with the webhook). Instants become wall-clock times.
    pub fn save(&self, now: Instant, wall: DateTime<Utc>) -> SavedCircuit {
        let to_wall = |at: Instant| {
            let (ahead, behind) = (at.saturating_duration_since(now), now.saturating_duration_since(at));
            wall + chrono::Duration::from_std(ahead).unwrap_or_default()
                - chrono::Duration::from_std(behind).unwrap_or_default()
        };
        SavedCircuit {
            state: self.state,
            consecutive_failures: self.consecutive_failures,
            cooldown: (self.state != CircuitState::Closed).then_some(self.cooldown),
            open_since: self.open_since.map(to_wall),
            probe_at: self.probe_at.map(to_wall),
        }
    }

    /// A breaker that goes on from `saved`. A half-open circuit's probe belonged to the
    /// previous owner, so it comes back open with its probe due.
    pub fn restore(settings: CircuitSettings, saved: &SavedCircuit, now: Instant, wall: DateTime<Utc>) -> Self {
        let to_instant = |at: DateTime<Utc>| match (at - wall).to_std() {
            Ok(ahead) => now + ahead,
            Err(_) => now.checked_sub((wall - at).to_std().unwrap_or_default()).unwrap_or(now),
        };
        let mut breaker = Self::new(settings);
        breaker.consecutive_failures = saved.consecutive_failures;
        if saved.state != CircuitState::Closed {
            breaker.state = CircuitState::Open;
            breaker.cooldown = saved.cooldown.unwrap_or(settings.cooldown).min(settings.cooldown_max);
            breaker.open_since = Some(saved.open_since.map_or(now, to_instant));
            breaker.probe_at = Some(match saved.state {
                CircuitState::HalfOpen => now,
                _ => saved.probe_at.map_or(now, to_instant),
            });
        }
        breaker
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
    fn a_saved_circuit_goes_on_where_it_stopped() {
        let (now, wall) = (Instant::now(), Utc::now());
        let mut breaker = opened(now);
        let saved = breaker.save(now + 40 * MS, wall);
        assert_eq!(saved.state, CircuitState::Open);
        let later = now + 1000 * MS;
        let mut restored =
            CircuitBreaker::restore(settings(), &saved, later, wall + chrono::Duration::milliseconds(960));
        assert_eq!(restored.state(), CircuitState::Open);
        assert_eq!(restored.consecutive_failures(), 3);
        // The probe was due 60 ms after the save; 960 ms later it is due at once.
        assert_eq!(restored.permit(later), Permit::Probe);
        // Restored right after the save, the probe still waits.
        let mut soon = CircuitBreaker::restore(settings(), &saved, now, wall);
        assert!(matches!(soon.permit(now), Permit::WaitUntil(at) if at > now + 50 * MS));
        // Closed stays closed; half-open comes back open with its probe due.
        assert_eq!(CircuitBreaker::new(settings()).save(now, wall), SavedCircuit::default());
        assert_eq!(breaker.permit(now + 200 * MS), Permit::Probe);
        let half_open = breaker.save(now + 200 * MS, wall);
        assert_eq!(CircuitBreaker::restore(settings(), &half_open, now, wall).permit(now), Permit::Probe);
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
