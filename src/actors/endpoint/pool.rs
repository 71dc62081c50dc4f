//! `OverflowPool`: room for pending deliveries beyond each webhook's own window, shared by
//! every endpoint.
//!
//! A webhook keeps up to `pending_window` pending deliveries in memory; what arrives beyond
//! that waits in the database and is paged back in. Paging costs: each page is a query, and
//! endpoints paging on their own schedules drift apart, so the writer settles deliveries
//! scattered over the table instead of neighbours, and fewer deliveries go out per second.
//! The pool lets a burst stay in memory while the total held beyond the windows stays bounded
//! by one number, however many webhooks there are.

use std::sync::atomic::Ordering;

use prometheus_client::metrics::gauge::Gauge;

#[derive(Debug)]
pub struct OverflowPool {
    capacity: i64,
    /// Slots taken: the `hookbus_pending_pool_used` gauge is the count itself.
    used: Gauge,
}

impl OverflowPool {
    pub fn new(capacity: usize, used: Gauge) -> Self {
        Self { capacity: i64::try_from(capacity).unwrap_or(i64::MAX), used }
    }

    /// Takes one slot, if any is free.
    pub fn try_take(&self) -> bool {
        let capacity = self.capacity;
        self.used
            .inner()
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| (used < capacity).then_some(used + 1))
            .is_ok()
    }

    /// Gives back `slots` taken earlier.
    pub fn give_back(&self, slots: usize) {
        if slots > 0 {
            self.used.dec_by(slots as i64);
        }
    }

    pub fn used(&self) -> usize {
        self.used.get() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_come_back() {
        let gauge = Gauge::default();
        let pool = OverflowPool::new(2, gauge.clone());
        assert!(pool.try_take());
        assert!(pool.try_take());
        assert!(!pool.try_take(), "a full pool refuses");
        assert_eq!((pool.used(), gauge.get()), (2, 2));
        pool.give_back(1);
        assert_eq!((pool.used(), gauge.get()), (1, 1));
        assert!(pool.try_take());
        pool.give_back(2);
        assert_eq!((pool.used(), gauge.get()), (0, 0));
    }

    #[test]
    fn an_empty_pool_never_gives_a_slot() {
        let pool = OverflowPool::new(0, Gauge::default());
        assert!(!pool.try_take());
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn threads_never_take_more_than_the_capacity() {
        let pool = std::sync::Arc::new(OverflowPool::new(1000, Gauge::default()));
        let takers: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || (0..600).filter(|_| pool.try_take()).count())
            })
            .collect();
        let taken: usize = takers.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!((taken, pool.used()), (1000, 1000));
    }
}
