//! [`WriteQueue`]: what the writer has queued and who is writing it, shared by the actor and
//! its writing sessions (each session takes its next batch here without a hop to the actor).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::store::{StoreError, WriteOp, WriteOutcome};

/// The longest a session waits for a batch of publishes to fill up (see [`Writing::wait_to_fill`]).
const FILL_WAIT: Duration = Duration::from_millis(2);

/// Records enough for a transaction of their own at once.
pub(super) const RECORDS_FULL_BATCH: usize = 128;
/// Records queued past which they take turns with publishes instead of waiting for a moment
/// with no publish queued.
const RECORDS_BACKLOG: usize = 8 * RECORDS_FULL_BATCH;

pub(super) type Reply = oneshot::Sender<Result<WriteOutcome, Arc<StoreError>>>;

/// One transaction's writes, and whom to answer.
pub(super) struct Batch {
    pub ops: Arc<[WriteOp]>,
    pub replies: Vec<Option<Reply>>,
    pub records_only: bool,
    pub taken_at: Instant,
}

impl Batch {
    pub fn ops(&self) -> Arc<[WriteOp]> {
        self.ops.clone()
    }

    /// Answers everyone waiting on a write of this committed batch.
    pub fn answer(&mut self, outcomes: Vec<WriteOutcome>) {
        for (reply, outcome) in self.replies.drain(..).zip(outcomes) {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(outcome));
            }
        }
    }
}

pub(super) struct WriteQueue {
    max_batch: usize,
    /// Publishes go first: a client waits for each one. Attempt records can wait (until
    /// written, their delivery is still pending in the database: at-least-once).
    publishes: Vec<(WriteOp, Option<Reply>)>,
    records: Vec<(WriteOp, Option<Reply>)>,
    /// When the queued records are to be written even if few.
    records_due: Option<Instant>,
    pub records_linger: Duration,
    /// Someone waits until everything queued is written: records go at once.
    pub flushing: bool,
    /// Whether the last batch taken held publishes: a backlog of ready records goes next, so
    /// a session that always finds publishes queued does not keep records waiting for ever.
    last_took_publishes: bool,
    /// Publishes in recent batches: the largest, halving with every batch (a burst that has
    /// passed stops making sessions wait within a few batches).
    publishes_peak: f32,
    /// How many queued publishes the waiting session wants before it goes on, and how long
    /// it waits at most.
    awaited: Option<usize>,
    pub fill_wait: Duration,
    /// Until when the actor holds back a new session for publishes to fill its batch
    /// ([`WriteQueue::fill_wait_left`]).
    fill_until: Option<Instant>,
    /// Sessions writing now (of which holding records), and how many may write at once.
    pub writing: usize,
    records_writing: usize,
    max_writing: usize,
    /// How many may write at once while this server is the database's only writer.
    alone_max_writing: usize,
}

impl WriteQueue {
    pub fn new(max_batch: usize, max_writing: usize, records_linger: Duration) -> Self {
        Self {
            max_batch,
            publishes: Vec::new(),
            records: Vec::new(),
            records_due: None,
            records_linger,
            flushing: false,
            last_took_publishes: false,
            publishes_peak: 0.0,
            awaited: None,
            fill_wait: FILL_WAIT,
            fill_until: None,
            writing: 0,
            records_writing: 0,
            max_writing,
            alone_max_writing: max_writing,
        }
    }

    /// Shares the sessions among the `servers` writing to the database, at least one each.
    /// A second session overlaps one batch's commit with the writing of the next; on a shared
    /// database the other servers' commits fill that gap, and each session more only splits
    /// the batches smaller: more transactions per delivery, each with its fixed cost in the
    /// database. Sessions over the new bound finish their batch; no new one starts until the
    /// count is below it.
    pub fn share_among(&mut self, servers: usize) {
        self.max_writing = (self.alone_max_writing / servers.max(1)).max(1);
    }

    pub fn is_empty(&self) -> bool {
        self.publishes.is_empty() && self.records.is_empty()
    }

    pub fn records_due(&self) -> Option<Instant> {
        self.records_due
    }

    /// Queues a publish; true if a session waits for it (see [`Writing::wait_to_fill`]).
    #[must_use]
    pub fn queue_publish(&mut self, op: WriteOp, reply: Reply) -> bool {
        self.publishes.push((op, Some(reply)));
        self.awaited.is_some_and(|wanted| self.publishes.len() >= wanted)
    }

    /// Whether ready records go next.
    fn records_turn(&self) -> bool {
        let records_may_start = self.max_writing == 1 || self.records_writing + 1 < self.max_writing;
        let records_ready = self.records.len() >= RECORDS_FULL_BATCH
            || self.flushing
            || self.records_due.is_some_and(|due| due <= Instant::now());
        let backlog = self.records.len() >= RECORDS_BACKLOG;
        records_may_start && records_ready && (self.publishes.is_empty() || (self.last_took_publishes && backlog))
    }

    /// Publishes worth waiting for: three quarters of the recent peak.
    fn publishes_wanted(&self) -> Option<usize> {
        let wanted = (self.publishes_peak * 0.75) as usize;
        (!self.records_turn() && !self.flushing && self.publishes.len() < wanted).then_some(wanted)
    }

    /// Queues attempt records, due after the linger, or at once when someone waits for them.
    pub fn queue_records(&mut self, records: impl IntoIterator<Item = (WriteOp, Option<Reply>)>, awaited: bool) {
        self.records.extend(records);
        if !self.records.is_empty() {
            let now = Instant::now();
            let due = if awaited { now } else { now + self.records_linger };
            self.records_due = Some(self.records_due.map_or(due, |earlier| earlier.min(due)));
        }
    }

    /// Records that failed to be written and have waited out the retry delay: first in line
    /// again, due now.
    pub fn requeue_records(&mut self, records: Vec<(WriteOp, Option<Reply>)>) {
        self.records.splice(0..0, records);
        self.records_due = Some(Instant::now());
    }

    /// How much longer a new session should wait for publishes to fill its batch, when one
    /// session writes at a time and its batches go one per session (PostgreSQL on a shared
    /// database). The reason is [`Writing::wait_to_fill`]'s: the publishers of a batch are
    /// answered at its commit and come back while the next one is written; without the wait,
    /// the few that arrived meanwhile make a commit of their own. With two sessions their
    /// batches overlap and neither waits.
    pub fn fill_wait_left(&mut self, now: Instant) -> Option<Duration> {
        let one_idle_session = self.max_writing == 1 && self.writing == 0;
        let wanted = if one_idle_session && !self.publishes.is_empty() { self.publishes_wanted() } else { None };
        if let Some(wanted) = wanted {
            let until = *self.fill_until.get_or_insert(now + self.fill_wait);
            if until > now {
                self.awaited = Some(wanted);
                return Some(until - now);
            }
        }
        (self.awaited, self.fill_until) = (None, None);
        None
    }

    /// A new session's first batch, if a session may start and there is something to write.
    pub fn start(&mut self) -> Option<Batch> {
        if self.writing >= self.max_writing {
            return None;
        }
        let batch = self.next_batch()?;
        self.writing += 1;
        self.records_writing += usize::from(batch.records_only);
        Some(batch)
    }

    /// A session wrote `batch` (or gave up on it); frees its place.
    pub fn finished(&mut self, batch: &Batch) {
        self.writing -= 1;
        self.records_writing -= usize::from(batch.records_only);
    }

    /// A session ended with its batch lost (the task running it failed): frees its place.
    /// Whether that batch held records is not known; no more sessions hold records than run.
    pub fn session_lost(&mut self) {
        self.writing -= 1;
        self.records_writing = self.records_writing.min(self.writing);
    }

    /// The session that wrote `written` goes on with the next batch, or ends if there is none.
    pub fn next_after(&mut self, written: &Batch) -> Option<Batch> {
        self.finished(written);
        self.start()
    }

    /// Publishes get batches of their own: a publish waits for its commit and records do
    /// not, so a publish sharing a commit with a batch of records would wait for them. Records go once due, a full batch, or a
    /// flush is asked for, when no publish is queued or, past a backlog of them, after every
    /// batch of publishes. With several writers (PostgreSQL), records never take the last free
    /// one, so a publish does not wait behind a long batch of records.
    fn next_batch(&mut self) -> Option<Batch> {
        let (publishes, records) = if self.records_turn() {
            (0, self.records.len().min(self.max_batch))
        } else {
            (self.publishes.len().min(self.max_batch), 0)
        };
        if publishes + records == 0 {
            return None;
        }
        let (ops, replies): (Vec<WriteOp>, Vec<Option<Reply>>) =
            self.publishes.drain(..publishes).chain(self.records.drain(..records)).unzip();
        if records > 0 {
            // What is left over has waited as long as what went: due now.
            self.records_due = (!self.records.is_empty()).then(Instant::now);
        }
        self.last_took_publishes = publishes > 0;
        if publishes > 0 {
            self.publishes_peak = (publishes as f32).max(self.publishes_peak * 0.5);
        }
        Some(Batch { ops: ops.into(), replies, records_only: publishes == 0, taken_at: Instant::now() })
    }
}

/// The queue, and how a session waiting for it to fill up is woken.
pub(super) struct Writing {
    queue: Mutex<WriteQueue>,
    filled: Condvar,
}

impl Writing {
    pub fn new(queue: WriteQueue) -> Self {
        Self { queue: Mutex::new(queue), filled: Condvar::new() }
    }

    /// The queue, locked. A panic while it was held leaves it consistent (every change is
    /// a few plain assignments), so a poisoned lock is taken as is.
    pub fn lock(&self) -> MutexGuard<'_, WriteQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a publish and wakes the session waiting for it, if one is. True if the actor
    /// should look: a session may start that would take it.
    #[must_use]
    pub fn queue_publish(&self, op: WriteOp, reply: Reply) -> bool {
        let mut queue = self.lock();
        let filled = queue.queue_publish(op, reply);
        if filled {
            self.filled.notify_one();
        }
        // While the actor waits for a batch to fill, only the publish that fills it wakes it.
        queue.writing < queue.max_writing && (queue.awaited.is_none() || filled)
    }

    /// Queues attempt records (see [`WriteQueue::queue_records`]). True if the actor should
    /// look: a session may start, or a timer is needed for them.
    #[must_use]
    pub fn queue_records(&self, records: impl IntoIterator<Item = (WriteOp, Option<Reply>)>, awaited: bool) -> bool {
        let mut queue = self.lock();
        queue.queue_records(records, awaited);
        queue.writing < queue.max_writing
    }

    /// Waits (at most `fill_wait`, [`FILL_WAIT`]) until at least three quarters as many
    /// publishes as in the recent peak batch have queued. A commit costs about as much for a few publishes as for 60
    /// (the fsync, the pages every commit rewrites); without the wait, the few that arrive
    /// while a large batch commits make a batch of their own, and the writer alternates
    /// between full and nearly empty commits (BENCHMARKS.md). A light load, one publish at a
    /// time, has a peak of one and never waits. Blocks the thread: sessions on a blocking
    /// thread only.
    pub fn wait_to_fill(&self) -> MutexGuard<'_, WriteQueue> {
        let mut queue = self.lock();
        let Some(wanted) = queue.publishes_wanted() else { return queue };
        queue.awaited = Some(wanted);
        let wait = queue.fill_wait;
        let (mut queue, _) = self
            .filled
            .wait_timeout_while(queue, wait, |queue| queue.publishes.len() < wanted)
            .unwrap_or_else(PoisonError::into_inner);
        queue.awaited = None;
        queue
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::publishes_then_records;

    fn queue_publishes(queue: &mut WriteQueue, count: usize) {
        for op in publishes_then_records(count).0 {
            let _ = queue.queue_publish(op, oneshot::channel().0);
        }
    }

    fn queue_records(queue: &mut WriteQueue, count: usize) {
        queue.queue_records(publishes_then_records(count).1.into_iter().map(|op| (op, None)), false);
    }

    /// Ready records wait for a moment with no publish queued, unless a backlog of them has
    /// built up: then they go after every batch of publishes, so a session that always finds
    /// publishes queued does not keep them waiting in memory for ever.
    #[test]
    fn a_backlog_of_ready_records_goes_after_every_batch_of_publishes() {
        let mut queue = WriteQueue::new(100_000, 1, Duration::ZERO);
        queue_publishes(&mut queue, 3);
        queue_records(&mut queue, 2);
        let first = queue.start().unwrap();
        assert_eq!((first.records_only, first.ops.len()), (false, 3), "publishes first");
        queue_publishes(&mut queue, 4);
        let second = queue.next_after(&first).unwrap();
        assert_eq!((second.records_only, second.ops.len()), (false, 4), "a few records wait");
        let third = queue.next_after(&second).unwrap();
        assert_eq!((third.records_only, third.ops.len()), (true, 2), "then go when no publish is queued");

        queue_publishes(&mut queue, 1);
        queue_records(&mut queue, RECORDS_BACKLOG);
        let fourth = queue.next_after(&third).unwrap();
        assert!(!fourth.records_only);
        queue_publishes(&mut queue, 1);
        let fifth = queue.next_after(&fourth).unwrap();
        assert_eq!((fifth.records_only, fifth.ops.len()), (true, RECORDS_BACKLOG), "the backlog takes its turn");
        let sixth = queue.next_after(&fifth).unwrap();
        assert_eq!((sixth.records_only, sixth.ops.len()), (false, 1));
        assert!(queue.next_after(&sixth).is_none(), "nothing left: the session ends");
        assert_eq!(queue.writing, 0);
    }

    /// Records still lingering do not jump the queue.
    #[test]
    fn records_not_yet_due_wait_behind_publishes() {
        let mut queue = WriteQueue::new(1000, 1, Duration::from_secs(600));
        queue_records(&mut queue, 2);
        queue_publishes(&mut queue, 1);
        let first = queue.start().unwrap();
        assert!(!first.records_only);
        queue_publishes(&mut queue, 1);
        let second = queue.next_after(&first).unwrap();
        assert!(!second.records_only, "the records are not due");
        assert!(queue.next_after(&second).is_none());
    }

    /// After a batch of 40 publishes a session waits for 30; a publish at a time never waits.
    #[test]
    fn publishes_worth_waiting_for_follow_the_recent_peak() {
        let mut queue = WriteQueue::new(1000, 1, Duration::from_secs(600));
        queue_publishes(&mut queue, 1);
        let one = queue.start().unwrap();
        assert_eq!(queue.publishes_wanted(), None, "a light load never waits");
        queue.finished(&one);
        queue_publishes(&mut queue, 40);
        let forty = queue.start().unwrap();
        assert_eq!(queue.publishes_wanted(), Some(30));
        queue_publishes(&mut queue, 29);
        assert_eq!(queue.publishes_wanted(), Some(30));
        queue_publishes(&mut queue, 1);
        assert_eq!(queue.publishes_wanted(), None, "enough have queued");
        // The peak halves with every batch, so a load that drops soon stops waiting.
        let mut last = queue.next_after(&forty).unwrap();
        for _ in 0..6 {
            queue_publishes(&mut queue, 1);
            last = queue.next_after(&last).unwrap();
        }
        assert_eq!(queue.publishes_wanted(), None);
    }

    /// The session waits at most `fill_wait`, and a publish that completes the batch wakes it.
    #[test]
    fn a_waiting_session_is_woken_by_the_publish_it_waits_for() {
        let writing = Arc::new(Writing::new(WriteQueue::new(1000, 1, Duration::from_secs(600))));
        queue_publishes(&mut writing.lock(), 40);
        let forty = writing.lock().start().unwrap();
        let started = Instant::now();
        assert_eq!(writing.wait_to_fill().publishes.len(), 0, "nobody came");
        assert!(started.elapsed() >= FILL_WAIT);

        writing.lock().fill_wait = Duration::from_secs(20);
        let publisher = writing.clone();
        let publishes = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            for op in publishes_then_records(30).0 {
                let _ = publisher.queue_publish(op, oneshot::channel().0);
            }
        });
        let started = Instant::now();
        let queue = writing.wait_to_fill();
        assert_eq!(queue.publishes.len(), 30, "woken by the 30th");
        assert!(started.elapsed() >= Duration::from_millis(50), "waited for them");
        assert!(started.elapsed() < Duration::from_secs(10), "woken, not timed out");
        drop(queue);
        publishes.join().unwrap();
        assert_eq!(writing.lock().next_after(&forty).unwrap().ops.len(), 30);
    }

    /// Two sessions alone; one each when a second server writes too; two again when it left.
    #[test]
    fn servers_sharing_the_database_share_its_writing_sessions() {
        let mut queue = WriteQueue::new(1, 2, Duration::ZERO);
        queue_publishes(&mut queue, 3);
        let first = queue.start().unwrap();
        queue.share_among(2);
        assert!(queue.start().is_none(), "one session per server");
        queue.share_among(1);
        let second = queue.start().unwrap();
        assert!(queue.start().is_none(), "two alone");
        queue.share_among(2);
        queue.finished(&first);
        assert!(queue.start().is_none(), "the remaining session is over the shared bound");
        let third = queue.next_after(&second).unwrap();
        assert_eq!(queue.writing, 1);
        queue.share_among(5);
        assert!(queue.next_after(&third).is_none(), "nothing left");
        queue_publishes(&mut queue, 1);
        assert!(queue.start().is_some(), "never fewer than one");
    }

    /// One session at a time (a shared PostgreSQL): a new session waits, at most `fill_wait`,
    /// until three quarters of the recent peak batch have queued, and only the publish that
    /// fills the batch wakes the actor. Two sessions (a server alone) never wait.
    #[test]
    fn one_session_waits_for_publishes_to_fill_its_batch() {
        let mut queue = WriteQueue::new(1000, 2, Duration::from_secs(600));
        queue_publishes(&mut queue, 40);
        let forty = queue.start().unwrap();
        queue.finished(&forty);
        queue_publishes(&mut queue, 5);
        assert_eq!(queue.fill_wait_left(Instant::now()), None, "two sessions overlap: no wait");

        queue.share_among(2);
        let now = Instant::now();
        let left = queue.fill_wait_left(now).expect("waits for company");
        assert!(left <= queue.fill_wait);
        assert_eq!(queue.fill_wait_left(now + left / 2), Some(left - left / 2), "the same deadline");
        let writing = Writing::new(queue);
        let mut woken = Vec::new();
        for op in publishes_then_records(25).0 {
            woken.push(writing.queue_publish(op, oneshot::channel().0));
        }
        assert_eq!(woken.iter().filter(|woke| **woke).count(), 1, "{woken:?}");
        assert!(woken[24], "the 30th publish wakes the actor");
        let mut queue = writing.lock();
        assert_eq!(queue.fill_wait_left(now), None, "filled");
        let thirty = queue.start().unwrap();
        assert_eq!(thirty.ops.len(), 30);
        queue_publishes(&mut queue, 1);
        assert_eq!(queue.fill_wait_left(Instant::now()), None, "the session is busy");

        queue.finished(&thirty);
        let now = Instant::now();
        let left = queue.fill_wait_left(now).expect("waits again");
        assert_eq!(queue.fill_wait_left(now + left), None, "the deadline has come: it goes as it is");
        assert_eq!(queue.start().unwrap().ops.len(), 1);
    }
}
