//! The `Persistence` actor: group commit of publishes and attempt records.
//!
//! Writes queue up (through a [`Writer`], from any thread) while batches are being written;
//! when one commits, the session that wrote it takes everything that queued meanwhile as its
//! next batch. Under load, one batch carries many writes; when idle, a write commits at once.
//! SQLite takes one writer at a time; PostgreSQL takes a few batches at once, so their round
//! trips overlap.

mod messages;
mod queue;
mod recorder;
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

pub use messages::FlushWrites;
use queue::{Batch, Reply, WriteQueue, Writing};
pub use recorder::AttemptRecorder;
pub use writer::Writer;

use crate::store::{Backend, Store, StoreError, WriteOp, WriteOutcome};

/// How long a failed batch of attempt records waits before it is written again.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// How long attempt records wait for company before they are written, unless a full batch
/// has queued or someone waits for them. Nobody waits on an attempt's record, and under a
/// steady load a transaction per handful of records would take most of the SQLite writer's
/// time; waiting a little lets one transaction carry many.
const RECORDS_LINGER: Duration = Duration::from_millis(10);

/// Starts writing sessions and answers what they could not write. A session takes batch
/// after batch from the shared queue until it is empty, answering each batch's writers
/// itself as it commits; the actor sees a session again only when it ends.
pub struct Persistence {
    store: Store,
    writing: Arc<Writing>,
    /// Failed writes waiting to be tried again; a flush is not complete until they land.
    retrying: usize,
    drained: Vec<oneshot::Sender<()>>,
    /// Whether a timer is set for records waiting for company.
    records_timer: bool,
    /// Whether a timer is set for publishes filling a batch.
    fill_timer: bool,
    /// Whether sessions wait for a fuller batch themselves, between their batches: SQLite's
    /// run on a blocking thread and may. PostgreSQL's run on this actor's thread, which must
    /// never block, and write a batch each: the actor holds back the next one instead.
    sessions_wait: bool,
}

impl Persistence {
    pub fn new(store: Store, max_batch: usize) -> Self {
        let queue = WriteQueue::new(max_batch, store.concurrent_writers(), RECORDS_LINGER);
        let sessions_wait = store.backend() == Backend::Sqlite;
        Self {
            store,
            writing: Arc::new(Writing::new(queue)),
            retrying: 0,
            drained: Vec::new(),
            records_timer: false,
            fill_timer: false,
            sessions_wait,
        }
    }

    /// Lets attempt records wait `linger` for company instead of [`RECORDS_LINGER`].
    #[cfg(test)]
    fn with_records_linger(self, linger: Duration) -> Self {
        self.writing.lock().records_linger = linger;
        self
    }

    /// Starts the actor in the current arbiter; writes go straight into its queue.
    pub fn start_writer(self) -> Writer {
        let writing = self.writing.clone();
        Writer::new(self.start(), writing)
    }

    /// Starts as many sessions as the queue and the limit allow.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let mut queue = self.writing.lock();
        if queue.is_empty() {
            if self.retrying == 0 && queue.writing == 0 {
                queue.flushing = false;
                self.drained.drain(..).for_each(|tx| {
                    let _ = tx.send(());
                });
            }
            return;
        }
        queue.flushing |= !self.drained.is_empty();
        let fill_wait = if self.sessions_wait { None } else { queue.fill_wait_left(Instant::now()) };
        if let Some(wait) = fill_wait {
            drop(queue);
            if !self.fill_timer {
                self.fill_timer = true;
                ctx.run_later(wait, |act, ctx| {
                    act.fill_timer = false;
                    act.flush(ctx);
                });
            }
            return;
        }
        let mut started = Vec::new();
        while let Some(batch) = queue.start() {
            started.push(batch);
        }
        // Records waiting for company: come back when they are due. Records already due but
        // not started wait for a running session, which takes them after its batch.
        let now = Instant::now();
        let timer_due = queue.records_due().filter(|due| *due > now && !self.records_timer);
        drop(queue);
        for batch in started {
            self.write(batch, ctx);
        }
        if let Some(due) = timer_due {
            self.records_timer = true;
            ctx.run_later(due - now, |act, ctx| {
                act.records_timer = false;
                act.flush(ctx);
            });
        }
    }

    /// Runs a session from `first` on; when it ends, looks at the queue again.
    fn write(&mut self, first: Batch, ctx: &mut Context<Self>) {
        let (store, writing, may_wait) = (self.store.clone(), self.writing.clone(), self.sessions_wait);
        let written = move |mut batch: Batch, outcomes: Vec<WriteOutcome>| {
            log::debug!(
                "wrote a batch of {} {} in {:?}",
                batch.ops.len(),
                if batch.records_only { "records" } else { "publishes" },
                batch.taken_at.elapsed()
            );
            batch.answer(outcomes);
            if may_wait {
                writing.wait_to_fill().next_after(&batch)
            } else {
                // On the actor's own thread going on saves no hop: the actor looks at the
                // queue again when this session ends, as after every batch before sessions.
                writing.lock().finished(&batch);
                None
            }
        };
        let session = async move { store.write_batches(first, Batch::ops, written).await };
        ctx.spawn(session.into_actor(self).map(move |result, act, ctx| {
            if let Err((batch, error)) = result {
                match batch {
                    Some(batch) => {
                        act.writing.lock().finished(&batch);
                        act.failed(batch, error, ctx);
                    }
                    // The batch went down with the task that ran it; its writers hear so
                    // through their dropped replies.
                    None => {
                        log::error!("the writer's session failed: {error}: {error:?}");
                        act.writing.lock().session_lost();
                    }
                }
            }
            act.flush(ctx);
        }));
    }

    /// A batch that could not be written: its publishes are refused, its records kept.
    fn failed(&mut self, batch: Batch, error: StoreError, ctx: &mut Context<Self>) {
        log::error!("a batch of {} writes failed: {error}: {error:?}", batch.ops.len());
        let error = Arc::new(error);
        let mut retry: Vec<(WriteOp, Option<Reply>)> = Vec::new();
        for (op, reply) in batch.ops.iter().zip(batch.replies) {
            match op {
                // The publisher is told and answers 503; nothing was accepted.
                WriteOp::Publish(_) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
                // An attempt already happened: keep its record until it is written.
                WriteOp::Attempt(_) => retry.push((op.clone(), reply)),
            }
        }
        if !retry.is_empty() {
            self.retrying += retry.len();
            ctx.run_later(RETRY_DELAY, move |act, ctx| {
                act.retrying -= retry.len();
                act.writing.lock().requeue_records(retry);
                act.flush(ctx);
            });
        }
    }
}

impl Actor for Persistence {
    type Context = Context<Self>;
}

impl Handler<writer::Wake> for Persistence {
    type Result = ();

    fn handle(&mut self, _: writer::Wake, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl Handler<FlushWrites> for Persistence {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: FlushWrites, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        self.flush(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::queue::RECORDS_FULL_BATCH;
    use super::*;
    use crate::domain::WorkspaceId;
    use crate::store::{publishes_then_records, AttemptWrite, DatabaseUrl};

    /// A writer over a fresh SQLite file holding `count` published deliveries; their first
    /// attempts' records are returned for the test to send.
    async fn writer_with_published(
        count: usize,
        linger: Duration,
    ) -> (tempfile::TempDir, Store, Writer, Vec<AttemptWrite>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseUrl::SqliteFile(dir.path().join("hookbus.db")), 2).await.unwrap();
        let (publishes, records) = publishes_then_records(count);
        store.write_batch(publishes).await.unwrap();
        let records = records
            .into_iter()
            .map(|op| match op {
                WriteOp::Attempt(write) => write,
                WriteOp::Publish(_) => unreachable!(),
            })
            .collect();
        let writer = Persistence::new(store.clone(), 1000).with_records_linger(linger).start_writer();
        (dir, store, writer, records)
    }

    /// How many of the records' attempts are in the database.
    async fn written(store: &Store, records: &[AttemptWrite]) -> usize {
        let mut found = 0;
        for record in records {
            let (_, attempts) = store.get_delivery(WorkspaceId::DEFAULT, record.delivery.id).await.unwrap().unwrap();
            found += attempts.len();
        }
        found
    }

    async fn wait_until_written(store: &Store, records: &[AttemptWrite], within: Duration) {
        let started = Instant::now();
        while written(store, records).await < records.len() {
            assert!(started.elapsed() < within, "records not written within {within:?}");
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[actix_rt::test]
    async fn a_few_records_wait_for_company_then_go_on_their_own() {
        let linger = Duration::from_millis(400);
        let (_dir, store, writer, records) = writer_with_published(2, linger).await;
        let sent = Instant::now();
        writer.record(records[..1].to_vec());
        writer.record(records[1..].to_vec());
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(written(&store, &records).await, 0, "held for the linger");
        wait_until_written(&store, &records, Duration::from_secs(10)).await;
        assert!(sent.elapsed() >= linger);
    }

    #[actix_rt::test]
    async fn a_full_batch_of_records_goes_at_once() {
        let (_dir, store, writer, records) = writer_with_published(RECORDS_FULL_BATCH, Duration::from_secs(600)).await;
        writer.record(records.clone());
        wait_until_written(&store, &records, Duration::from_secs(30)).await;
    }

    #[actix_rt::test]
    async fn a_flush_writes_lingering_records_at_once() {
        let (_dir, store, writer, records) = writer_with_published(1, Duration::from_secs(600)).await;
        writer.record(records.clone());
        let flushed = actix_rt::time::timeout(Duration::from_secs(30), writer.address().send(FlushWrites)).await;
        flushed.expect("flushed before the linger").unwrap();
        assert_eq!(written(&store, &records).await, 1);
    }

    /// Writes made through the [`Writer`] go into the queue without a message; an idle
    /// actor is woken to start a session for a publish, and to time lingering records.
    #[actix_rt::test]
    async fn writes_through_the_writer_wake_an_idle_actor() {
        let (_dir, store, writer, records) = writer_with_published(1, Duration::from_millis(50)).await;
        writer.record(records.clone());
        wait_until_written(&store, &records, Duration::from_secs(30)).await;

        let (publishes, _) = crate::store::publishes_then_records(1);
        let publish = publishes.into_iter().next().unwrap();
        let outcome = actix_rt::time::timeout(Duration::from_secs(30), writer.write(publish)).await;
        assert_eq!(outcome.expect("answered").unwrap(), WriteOutcome::Published);
    }

    #[actix_rt::test]
    async fn a_record_someone_waits_for_does_not_linger() {
        let (_dir, store, writer, records) = writer_with_published(1, Duration::from_secs(600)).await;
        let op = WriteOp::Attempt(records[0].clone());
        let outcome = actix_rt::time::timeout(Duration::from_secs(30), writer.write(op)).await;
        assert_eq!(outcome.expect("answered before the linger").unwrap(), WriteOutcome::Recorded);
        assert_eq!(written(&store, &records).await, 1);
    }
}
