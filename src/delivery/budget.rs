//! [`ConnectionBudget`]: how many attempts may be in flight at once, and who gets the next.
//!
//! Every attempt holds one [`ConnectionSlot`] while it is in flight (one open connection).
//! The machine needs a bound on open connections, but a bound shared first come, first
//! served lets one tenant's slow receivers hold every slot while everyone else waits (SPEC
//! §5: a slow webhook never delays another). So:
//!
//! - each webhook always has one slot of its own that no other webhook can take, so every
//!   webhook can make progress whatever the others do;
//! - beyond that, webhooks share `shared` slots, of which one workspace may hold at most
//!   `per_workspace`, so another workspace always finds room;
//! - when shared slots are all taken, a freed one goes to the waiting workspace that holds
//!   the fewest, and within it to its waiting webhooks in turn.
//!
//! Open connections are thus at most `shared` plus one per webhook with an attempt in
//! flight. The budget lives on the delivery thread with the endpoints and the HTTP client,
//! so it needs no lock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

// Keyed by ids the server generated, and touched twice per attempt: a fast hash.
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use tokio::sync::oneshot;

use crate::domain::{WebhookId, WorkspaceId};

#[derive(Clone)]
pub struct ConnectionBudget {
    inner: Rc<RefCell<Slots>>,
}

/// One attempt's right to a connection; given back when dropped.
#[must_use = "the slot is given back as soon as it is dropped"]
pub struct ConnectionSlot {
    /// `None` for a slot that was never counted (a grant its waiter did not live to take).
    budget: Option<Rc<RefCell<Slots>>>,
    workspace: WorkspaceId,
    webhook: WebhookId,
}

struct Slots {
    shared: usize,
    per_workspace: usize,
    shared_used: usize,
    workspaces: HashMap<WorkspaceId, WorkspaceSlots>,
    /// Workspaces that may have waiting attempts (checked when one is picked), so a
    /// release looks only at them, not at every workspace with an attempt in flight.
    waiting_workspaces: HashSet<WorkspaceId>,
}

#[derive(Default)]
struct WorkspaceSlots {
    shared_used: usize,
    webhooks: HashMap<WebhookId, WebhookSlots>,
    /// Webhooks with waiting attempts, served in turn.
    waiting: VecDeque<WebhookId>,
}

#[derive(Default)]
struct WebhookSlots {
    /// Slots held; the first is the webhook's own, the rest are shared.
    held: usize,
    waiters: VecDeque<oneshot::Sender<ConnectionSlot>>,
}

impl ConnectionBudget {
    /// `shared` slots beyond each webhook's own, at most `per_workspace` of them per workspace.
    pub fn new(shared: usize, per_workspace: usize) -> Self {
        let slots = Slots {
            shared,
            per_workspace: per_workspace.min(shared),
            shared_used: 0,
            workspaces: HashMap::new(),
            waiting_workspaces: HashSet::new(),
        };
        Self { inner: Rc::new(RefCell::new(slots)) }
    }

    /// A slot for one attempt of `webhook`: at once if it has one free, else when its turn comes.
    pub async fn acquire(&self, workspace: WorkspaceId, webhook: WebhookId) -> ConnectionSlot {
        let waiting = {
            let mut slots = self.inner.borrow_mut();
            if slots.try_take(workspace, webhook) {
                return self.slot(workspace, webhook);
            }
            let (tx, rx) = oneshot::channel();
            slots.wait(workspace, webhook, tx);
            rx
        };
        // The sender is only dropped unused with the budget itself, which outlives every
        // attempt; should it happen, the attempt goes ahead uncounted rather than hang.
        waiting.await.unwrap_or(ConnectionSlot { budget: None, workspace, webhook })
    }

    /// Slots in use beyond the webhooks' own.
    pub fn shared_in_use(&self) -> usize {
        self.inner.borrow().shared_used
    }

    fn slot(&self, workspace: WorkspaceId, webhook: WebhookId) -> ConnectionSlot {
        ConnectionSlot { budget: Some(self.inner.clone()), workspace, webhook }
    }
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSlot").field("workspace", &self.workspace).field("webhook", &self.webhook).finish()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            Slots::release(&budget, self.workspace, self.webhook);
        }
    }
}

impl Slots {
    fn try_take(&mut self, workspace: WorkspaceId, webhook: WebhookId) -> bool {
        let (shared, per_workspace, shared_used) = (self.shared, self.per_workspace, self.shared_used);
        let ws = self.workspaces.entry(workspace).or_default();
        let wh = ws.webhooks.entry(webhook).or_default();
        if wh.held == 0 {
            wh.held = 1;
            return true;
        }
        // Within a webhook, first come first served.
        if !wh.waiters.is_empty() || shared_used >= shared || ws.shared_used >= per_workspace {
            return false;
        }
        wh.held += 1;
        ws.shared_used += 1;
        self.shared_used += 1;
        true
    }

    fn wait(&mut self, workspace: WorkspaceId, webhook: WebhookId, waiter: oneshot::Sender<ConnectionSlot>) {
        let ws = self.workspaces.entry(workspace).or_default();
        let wh = ws.webhooks.entry(webhook).or_default();
        if wh.waiters.is_empty() {
            ws.waiting.push_back(webhook);
        }
        wh.waiters.push_back(waiter);
        self.waiting_workspaces.insert(workspace);
    }

    /// Counts one slot of `webhook` as given back.
    fn give_back(&mut self, workspace: WorkspaceId, webhook: WebhookId) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else { return };
        let Some(wh) = ws.webhooks.get_mut(&webhook) else { return };
        wh.held = wh.held.saturating_sub(1);
        if wh.held > 0 {
            ws.shared_used -= 1;
            self.shared_used -= 1;
        }
    }

    fn release(budget: &Rc<RefCell<Self>>, workspace: WorkspaceId, webhook: WebhookId) {
        let mut slots = budget.borrow_mut();
        slots.give_back(workspace, webhook);
        slots.hand_own_slot(budget, workspace, webhook);
        while slots.shared_used < slots.shared && !slots.waiting_workspaces.is_empty() {
            let Some(next) = slots.most_deserving_workspace() else { break };
            slots.hand_shared_slot(budget, next);
        }
        slots.forget_idle(workspace, webhook);
    }

    /// A webhook whose last slot came back gives its own slot to its first waiter.
    fn hand_own_slot(&mut self, budget: &Rc<RefCell<Self>>, workspace: WorkspaceId, webhook: WebhookId) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else { return };
        let Some(wh) = ws.webhooks.get_mut(&webhook) else { return };
        while wh.held == 0 {
            let Some(waiter) = wh.waiters.pop_front() else { break };
            wh.held = 1;
            let slot = ConnectionSlot { budget: Some(budget.clone()), workspace, webhook };
            if let Err(mut unclaimed) = waiter.send(slot) {
                // That attempt was cancelled; the slot was never taken.
                unclaimed.budget = None;
                wh.held = 0;
            }
        }
        if wh.waiters.is_empty() {
            ws.waiting.retain(|id| *id != webhook);
        }
    }

    /// The workspace with waiters that holds the fewest shared slots, among those below
    /// their cap.
    fn most_deserving_workspace(&mut self) -> Option<WorkspaceId> {
        let workspaces = &self.workspaces;
        self.waiting_workspaces.retain(|id| workspaces.get(id).is_some_and(|ws| !ws.waiting.is_empty()));
        self.waiting_workspaces
            .iter()
            .filter_map(|id| Some((id, workspaces.get(id)?.shared_used)))
            .filter(|(_, used)| *used < self.per_workspace)
            .min_by_key(|(_, used)| *used)
            .map(|(id, _)| *id)
    }

    /// Gives one shared slot to the next waiting webhook of `workspace`, in turn.
    fn hand_shared_slot(&mut self, budget: &Rc<RefCell<Self>>, workspace: WorkspaceId) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else { return };
        let Some(webhook) = ws.waiting.pop_front() else { return };
        let Some(wh) = ws.webhooks.get_mut(&webhook) else { return };
        let Some(waiter) = wh.waiters.pop_front() else { return };
        if !wh.waiters.is_empty() {
            ws.waiting.push_back(webhook);
        }
        let slot = ConnectionSlot { budget: Some(budget.clone()), workspace, webhook };
        if let Err(mut unclaimed) = waiter.send(slot) {
            unclaimed.budget = None;
            return;
        }
        wh.held += 1;
        ws.shared_used += 1;
        self.shared_used += 1;
    }

    /// Drops the bookkeeping of a webhook (and workspace) that holds and wants nothing.
    fn forget_idle(&mut self, workspace: WorkspaceId, webhook: WebhookId) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else { return };
        if ws.webhooks.get(&webhook).is_some_and(|wh| wh.held == 0 && wh.waiters.is_empty()) {
            ws.webhooks.remove(&webhook);
        }
        if ws.webhooks.is_empty() {
            self.workspaces.remove(&workspace);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<WebhookId> {
        (0..n).map(|_| WebhookId::generate()).collect()
    }

    use std::future::Future as _;

    /// Polls `acquire` once: `Some` if it was granted at once.
    fn now(budget: &ConnectionBudget, ws: WorkspaceId, wh: WebhookId) -> Option<ConnectionSlot> {
        let mut future = Box::pin(budget.acquire(ws, wh));
        let waker = futures_util::task::noop_waker();
        match future.as_mut().poll(&mut std::task::Context::from_waker(&waker)) {
            std::task::Poll::Ready(slot) => Some(slot),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn every_webhook_keeps_its_own_slot_when_the_shared_ones_are_taken() {
        let budget = ConnectionBudget::new(4, 4);
        let (greedy, other) = (WorkspaceId::generate(), WorkspaceId::generate());
        let hog = WebhookId::generate();
        let held: Vec<_> = (0..5).map(|_| now(&budget, greedy, hog).expect("own + 4 shared")).collect();
        assert_eq!(budget.shared_in_use(), 4);
        assert!(now(&budget, greedy, hog).is_none(), "the shared slots are gone");
        let slot = now(&budget, other, WebhookId::generate());
        assert!(slot.is_some(), "another webhook still has its own slot");
        let second_of_same_workspace = now(&budget, greedy, WebhookId::generate());
        assert!(second_of_same_workspace.is_some(), "even in the same workspace");
        drop(held);
        assert_eq!(budget.shared_in_use(), 0);
    }

    #[test]
    fn one_workspace_cannot_take_more_than_its_cap() {
        let budget = ConnectionBudget::new(8, 6);
        let (greedy, other) = (WorkspaceId::generate(), WorkspaceId::generate());
        let hooks = ids(4);
        let mut held = Vec::new();
        for wh in &hooks {
            while let Some(slot) = now(&budget, greedy, *wh) {
                held.push(slot);
            }
        }
        assert_eq!(held.len(), 4 + 6, "own slots plus the workspace's cap");
        let newcomer = WebhookId::generate();
        let mut theirs: Vec<_> = std::iter::from_fn(|| now(&budget, other, newcomer)).take(10).collect();
        assert_eq!(theirs.len(), 1 + 2, "its own slot and what the cap left");
        theirs.clear();
    }

    #[actix_rt::test]
    async fn freed_slots_go_to_the_workspace_holding_fewest_then_to_webhooks_in_turn() {
        let budget = ConnectionBudget::new(4, 4);
        let (big, small) = (WorkspaceId::generate(), WorkspaceId::generate());
        let big_hook = WebhookId::generate();
        let mut big_slots: Vec<_> = (0..5).map(|_| now(&budget, big, big_hook).unwrap()).collect();
        let small_hooks = ids(2);
        let _own: Vec<_> = small_hooks.iter().map(|wh| now(&budget, small, *wh).unwrap()).collect();
        // Both workspaces wait for shared slots; the big one asked first.
        let waiter = |ws: WorkspaceId, wh: WebhookId| {
            let budget = budget.clone();
            tokio::task::spawn_local(async move { budget.acquire(ws, wh).await })
        };
        let big_waits = waiter(big, big_hook);
        let small_waits: Vec<_> = [0, 1, 0].into_iter().map(|i| waiter(small, small_hooks[i])).collect();
        for _ in 0..4 {
            actix_rt::task::yield_now().await;
        }
        // Three shared slots come back: the first two to the small workspace (it holds
        // fewer), its webhooks in turn; the third to the big one (then holding fewer).
        big_slots.truncate(2);
        for _ in 0..4 {
            actix_rt::task::yield_now().await;
        }
        let [first, second, third]: [_; 3] = small_waits.try_into().unwrap();
        assert!(first.is_finished() && second.is_finished() && big_waits.is_finished());
        assert!(!third.is_finished(), "two shared slots each now");
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!((first.webhook, second.webhook), (small_hooks[0], small_hooks[1]));
        let big_slot = big_waits.await.unwrap();
        assert_eq!(big_slot.workspace, big);
        assert_eq!(budget.shared_in_use(), 4);
        assert!(!third.is_finished());
        drop(first);
        assert_eq!(third.await.unwrap().webhook, small_hooks[0]);
    }

    #[actix_rt::test]
    async fn a_cancelled_waiter_does_not_keep_a_slot() {
        let budget = ConnectionBudget::new(0, 0);
        let (ws, wh) = (WorkspaceId::generate(), WebhookId::generate());
        let own = now(&budget, ws, wh).unwrap();
        assert!(now(&budget, ws, wh).is_none(), "that waiter is dropped at once");
        drop(own);
        let again = now(&budget, ws, wh);
        assert!(again.is_some(), "the slot came back to the webhook");
        assert!(budget.inner.borrow().workspaces.get(&ws).is_some_and(|w| w.webhooks[&wh].held == 1));
        drop(again);
        assert!(budget.inner.borrow().workspaces.is_empty(), "nothing is kept for an idle webhook");
    }
}
