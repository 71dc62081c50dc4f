//! Which of a webhook's pending deliveries are held in memory, and how the rest come back
//! from the database in order (paging). No timers and no I/O here: the endpoint actor asks
//! what to do and does it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::OverflowPool;
use crate::domain::DeliveryId;
use crate::store::PendingDelivery;

/// How long a page remembers the new deliveries it took in, so that their own
/// `DeliveryEnqueued`, if it comes later, does not send them a second time.
const PAGED_MEMORY: Duration = Duration::from_secs(10);

/// A page to load: up to `room` pending deliveries after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PageRequest {
    pub after: Option<DeliveryId>,
    pub room: usize,
}

pub(super) struct Window {
    /// The window's own size.
    size: usize,
    /// Room beyond `size`, shared by all endpoints.
    pool: Arc<OverflowPool>,
    /// Bodies are built when sent, not held: a full window of a fan-out would otherwise
    /// keep a body per delivery where the event's data is shared.
    held: HashMap<DeliveryId, PendingDelivery>,
    /// Slots of the shared pool held: deliveries beyond the window's own size.
    borrowed: usize,
    /// Highest delivery id taken in; paging continues after it.
    cursor: Option<DeliveryId>,
    /// The database may hold pending deliveries that are not held here.
    backlog: bool,
    paging: bool,
    /// A delivery was turned away while a page was loading, so that page may miss it.
    missed_while_paging: bool,
    /// Those deliveries: a page read before one of them committed can move the cursor past
    /// it (PostgreSQL batches commit out of order), and paging would then never find it.
    turned_away_while_paging: Vec<PendingDelivery>,
    /// New deliveries a page took in before their `DeliveryEnqueued` arrived (a page can read
    /// a commit before the registry announces it), with when: the announcement is then dropped.
    paged_ahead: HashMap<DeliveryId, Instant>,
}

impl Window {
    /// `backlog`: whether the database may hold pending deliveries already.
    pub fn new(size: usize, pool: Arc<OverflowPool>, backlog: bool) -> Self {
        Self {
            size,
            pool,
            held: HashMap::new(),
            borrowed: 0,
            cursor: None,
            backlog,
            paging: false,
            missed_while_paging: false,
            turned_away_while_paging: Vec::new(),
            paged_ahead: HashMap::new(),
        }
    }

    pub fn get(&self, id: &DeliveryId) -> Option<&PendingDelivery> {
        self.held.get(id)
    }

    pub fn get_mut(&mut self, id: &DeliveryId) -> Option<&mut PendingDelivery> {
        self.held.get_mut(id)
    }

    pub fn remove(&mut self, id: &DeliveryId) -> Option<PendingDelivery> {
        self.held.remove(id)
    }

    /// Holds `pending`; `false` if it already was.
    pub fn hold(&mut self, pending: PendingDelivery) -> bool {
        let id = pending.delivery.id;
        if self.held.contains_key(&id) {
            return false;
        }
        self.cursor = self.cursor.max(Some(id));
        self.held.insert(id, pending);
        true
    }

    /// A delivery just published (or redelivered): returns it if it joins the window now.
    /// Otherwise it stays in the database, and paging brings it in, in order, behind any
    /// backlog. `may_borrow`: whether the window may take a slot of the shared pool (only a
    /// webhook whose circuit is closed does: a failing one would keep its slots for as long
    /// as it fails, and its backlog waits just as well in the database).
    pub fn offer(&mut self, pending: PendingDelivery, redelivered: bool, may_borrow: bool) -> Option<PendingDelivery> {
        let id = pending.delivery.id;
        if !redelivered && self.paged_ahead.remove(&id).is_some() {
            return None;
        }
        // Behind the cursor: redelivered, or overtaken by a later publish (batches commit
        // and answer out of order). Paging would never find it, and paging again from the
        // start could re-read deliveries already sent whose records are not written yet, so
        // it joins the window even when the window is full (by at most the publishes in flight).
        let behind_cursor = Some(id) <= self.cursor;
        if !behind_cursor && (self.backlog || !self.take_room(may_borrow)) {
            self.backlog = true;
            if self.paging {
                self.missed_while_paging = true;
                self.turned_away_while_paging.push(pending);
            }
            return None;
        }
        Some(pending)
    }

    /// Deliveries were put back in `pending` in the database (replay): page from the start.
    pub fn requeued(&mut self) {
        self.backlog = true;
        self.cursor = None;
        self.missed_while_paging |= self.paging;
    }

    /// The page to load now, if any: only with a backlog, not while one loads, and once the
    /// window is half empty.
    pub fn next_page(&mut self) -> Option<PageRequest> {
        let room = self.size.saturating_sub(self.held.len());
        if !self.backlog || self.paging || room < self.size / 2 {
            return None;
        }
        self.paging = true;
        self.missed_while_paging = false;
        Some(PageRequest { after: self.cursor, room })
    }

    /// A page arrived: returns the deliveries to hold, in order (the page's, then any turned
    /// away meanwhile that the page skipped).
    pub fn page_loaded(
        &mut self,
        request: PageRequest,
        page: Vec<PendingDelivery>,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<PendingDelivery> {
        self.paging = false;
        self.backlog = page.len() == request.room || self.missed_while_paging;
        self.paged_ahead.retain(|_, at| now.duration_since(*at) < PAGED_MEMORY);
        let mut admitted = Vec::with_capacity(page.len());
        for pending in page {
            let recent = (wall - pending.delivery.created_at).to_std().map_or(true, |age| age < PAGED_MEMORY);
            if recent && pending.delivery.attempt_count == 0 {
                self.paged_ahead.insert(pending.delivery.id, now);
            }
            self.cursor = self.cursor.max(Some(pending.delivery.id));
            admitted.push(pending);
        }
        // Already held if the page had it; behind the cursor if it missed it.
        for pending in std::mem::take(&mut self.turned_away_while_paging) {
            if Some(pending.delivery.id) <= self.cursor {
                admitted.push(pending);
            }
        }
        admitted
    }

    /// The page could not be loaded; the next `next_page` tries again.
    pub fn page_failed(&mut self) {
        self.paging = false;
    }

    /// Makes room for one more new delivery: in the window, or by taking a pool slot.
    fn take_room(&mut self, may_borrow: bool) -> bool {
        if self.held.len() < self.size {
            return true;
        }
        if !may_borrow {
            return false;
        }
        let borrowed = self.pool.try_take();
        self.borrowed += usize::from(borrowed);
        borrowed
    }

    /// Gives back the pool slots no longer needed now that fewer deliveries are held.
    pub fn return_pool_slots(&mut self) {
        let beyond_window = self.held.len().saturating_sub(self.size);
        if self.borrowed > beyond_window {
            self.pool.give_back(self.borrowed - beyond_window);
            self.borrowed = beyond_window;
        }
    }

    /// Gives back the memory of emptied maps (they keep their capacity): with tens of
    /// thousands of mostly quiet webhooks that adds up. `true` if the window was released.
    pub fn release_if_idle(&mut self) -> bool {
        if self.paged_ahead.is_empty() && self.paged_ahead.capacity() > 0 {
            self.paged_ahead = HashMap::new();
        }
        if self.held.is_empty() && self.held.capacity() > 0 {
            self.held = HashMap::new();
            return true;
        }
        false
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.borrowed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, EventType, WebhookId, WorkspaceId};
    use crate::store::{DeliveryRecord, EventRecord};

    fn pending() -> PendingDelivery {
        let event = EventRecord {
            workspace_id: WorkspaceId::DEFAULT,
            id: EventId::generate(),
            event: EventType::from_stored("a.b".into()),
            data_json: "{}".into(),
            body_hash: String::new(),
            matched_webhooks: 1,
            created_at: crate::domain::now(),
        };
        let delivery = DeliveryRecord::new_pending(&event, WebhookId::generate());
        PendingDelivery { delivery, data_json: "{}".into(), event_created_at: event.created_at }
    }

    fn window(size: usize, pool: usize, backlog: bool) -> (Window, Arc<OverflowPool>) {
        let pool = Arc::new(OverflowPool::new(pool, Default::default()));
        (Window::new(size, pool.clone(), backlog), pool)
    }

    #[test]
    fn a_full_window_borrows_from_the_pool_and_gives_back() {
        let (mut window, pool) = window(1, 1, false);
        let first = window.offer(pending(), false, true).expect("room in the window");
        let first_id = first.delivery.id;
        window.hold(first);
        let second = window.offer(pending(), false, true).expect("a slot of the pool");
        window.hold(second);
        assert_eq!(pool.used(), 1);
        window.remove(&first_id);
        window.return_pool_slots();
        assert_eq!(pool.used(), 0);
        let third = window.offer(pending(), false, true).expect("the returned slot, borrowed again");
        window.hold(third);
        assert_eq!(pool.used(), 1);
        assert!(window.offer(pending(), false, true).is_none(), "the pool is used up: it waits in the database");
        drop(window);
        assert_eq!(pool.used(), 0, "a dropped window gives its slots back");
    }

    #[test]
    fn a_window_whose_circuit_is_not_closed_does_not_borrow() {
        let (mut window, pool) = window(2, 1, false);
        for _ in 0..2 {
            let own_room = window.offer(pending(), false, false).unwrap();
            window.hold(own_room);
        }
        assert!(window.offer(pending(), false, false).is_none());
        assert_eq!(pool.used(), 0);
        assert!(window.next_page().is_none(), "the window is full");
    }

    #[test]
    fn with_a_backlog_new_deliveries_wait_for_paging_in_order() {
        let (mut window, _) = window(4, 0, true);
        let request = window.next_page().expect("a backlog pages at once");
        assert!(window.next_page().is_none(), "one page at a time");
        let turned_away = pending();
        assert!(window.offer(turned_away.clone(), false, true).is_none());
        // The page read before the turned-away delivery committed, and ended after it.
        let (early, late) = (pending(), pending());
        let mut page = vec![early.clone()];
        page.push(late.clone());
        let mut ids: Vec<_> = [&early, &late].iter().map(|p| p.delivery.id).collect();
        let admitted = window.page_loaded(request, page, Instant::now(), crate::domain::now());
        ids.push(turned_away.delivery.id);
        assert_eq!(admitted.iter().map(|p| p.delivery.id).collect::<Vec<_>>(), ids);
        assert!(window.next_page().is_some(), "something was turned away while paging: look again");
    }

    #[test]
    fn a_delivery_a_page_brought_in_early_is_not_taken_again_when_announced() {
        let (mut window, _) = window(4, 0, true);
        let request = window.next_page().unwrap();
        let new = pending();
        for p in window.page_loaded(request, vec![new.clone()], Instant::now(), crate::domain::now()) {
            window.hold(p);
        }
        assert!(window.offer(new.clone(), false, true).is_none(), "announced after the page took it");
        assert!(window.offer(new, true, true).is_some(), "a redelivery is always taken");
    }
}
