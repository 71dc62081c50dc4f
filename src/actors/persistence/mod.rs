//! The `Persistence` actor: group commit of publishes and attempt records.
//!
//! Writes queue up while batches are being written; when one commits, everything that
//! queued meanwhile goes into the next one. Under load, one batch carries many writes;
//! when idle, a write commits at once. SQLite takes one writer at a time; PostgreSQL takes a
//! few batches at once, so their round trips overlap.

mod messages;
mod recorder;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

pub use messages::{FlushWrites, PersistWrite, RecordAttempts};
pub use recorder::AttemptRecorder;

use crate::store::{Store, StoreError, WriteOp, WriteOutcome};

/// How long a failed batch of attempt records waits before it is written again.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// How long attempt records wait for company before they are written, unless a full batch
/// has queued or someone waits for them. Nobody waits on an attempt's record, and under a
/// steady load one transaction per handful of records took most of the SQLite writer's time:
/// at 10,000 deliveries/s, 6,700 record transactions in 10 s (2.5 s of the writer's time)
/// became 850 (0.9 s; BENCHMARKS.md).
const RECORDS_LINGER: Duration = Duration::from_millis(10);
/// Records enough for a transaction of their own at once.
const RECORDS_FULL_BATCH: usize = 128;

type Reply = oneshot::Sender<Result<WriteOutcome, Arc<StoreError>>>;

/// One transaction's writes, and whom to answer.
struct Batch {
    ops: Arc<[WriteOp]>,
    replies: Vec<Option<Reply>>,
    records_only: bool,
}

pub struct Persistence {
    store: Store,
    max_batch: usize,
    /// Publishes go first: a client waits for each one. Attempt records can wait (until
    /// written, their delivery is still pending in the database: at-least-once).
    publishes: Vec<(WriteOp, Option<Reply>)>,
    records: Vec<(WriteOp, Option<Reply>)>,
    /// Transactions running now (of which holding only records), and how many may run at once.
    writing: usize,
    records_writing: usize,
    max_writing: usize,
    /// Failed writes waiting to be tried again; a flush is not complete until they land.
    retrying: usize,
    drained: Vec<oneshot::Sender<()>>,
    /// When the queued records are to be written even if few, and whether a timer is set for it.
    records_due: Option<Instant>,
    records_timer: bool,
    records_linger: Duration,
}

impl Persistence {
    pub fn new(store: Store, max_batch: usize) -> Self {
        let max_writing = store.concurrent_writers();
        Self {
            max_batch,
            publishes: Vec::new(),
            records: Vec::new(),
            writing: 0,
            records_writing: 0,
            store,
            max_writing,
            retrying: 0,
            drained: Vec::new(),
            records_due: None,
            records_timer: false,
            records_linger: RECORDS_LINGER,
        }
    }

    /// Lets attempt records wait `linger` for company instead of [`RECORDS_LINGER`].
    #[cfg(test)]
    fn with_records_linger(mut self, linger: Duration) -> Self {
        self.records_linger = linger;
        self
    }

    /// Queues attempt records, due after the linger, or at once when someone waits for them.
    fn queue_records(&mut self, records: impl IntoIterator<Item = (WriteOp, Option<Reply>)>, awaited: bool) {
        self.records.extend(records);
        if !self.records.is_empty() {
            let now = Instant::now();
            let due = if awaited { now } else { now + self.records_linger };
            self.records_due = Some(self.records_due.map_or(due, |earlier| earlier.min(due)));
        }
    }

    /// Starts as many transactions as the queues and the limit allow.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.publishes.is_empty() && self.records.is_empty() {
            if self.retrying == 0 && self.writing == 0 {
                self.drained.drain(..).for_each(|tx| {
                    let _ = tx.send(());
                });
            }
            return;
        }
        while self.writing < self.max_writing {
            let Some(batch) = self.next_batch() else { break };
            self.write(batch, ctx);
        }
        // Records waiting for company: come back when they are due. Records already due but
        // not started wait for a running batch, whose end calls `flush`.
        let now = Instant::now();
        if let Some(due) = self.records_due.filter(|due| *due > now && !self.records_timer) {
            self.records_timer = true;
            ctx.run_later(due - now, |act, ctx| {
                act.records_timer = false;
                act.flush(ctx);
            });
        }
    }

    /// Publishes get batches of their own, ahead of records (sharing a commit with a batch of
    /// records made SQLite publishes slower and cost more CPU; sharing it with only as many
    /// records as publishes showed no gain: BENCHMARKS.md). With several writers (PostgreSQL),
    /// records never take the last free one, so a publish does not wait behind a long batch
    /// of records. Records go once due, a full batch, or a flush is asked for.
    fn next_batch(&mut self) -> Option<Batch> {
        let publishes = self.publishes.len().min(self.max_batch);
        let records_may_start = self.max_writing == 1 || self.records_writing + 1 < self.max_writing;
        let records_ready = self.records.len() >= RECORDS_FULL_BATCH
            || !self.drained.is_empty()
            || self.records_due.is_some_and(|due| due <= Instant::now());
        let records = if publishes == 0 && records_may_start && records_ready {
            self.records.len().min(self.max_batch)
        } else {
            0
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
        Some(Batch { ops: ops.into(), replies, records_only: publishes == 0 })
    }

    fn write(&mut self, batch: Batch, ctx: &mut Context<Self>) {
        self.writing += 1;
        self.records_writing += usize::from(batch.records_only);
        let (store, written) = (self.store.clone(), batch.ops.clone());
        let started = std::time::Instant::now();
        ctx.spawn(async move { store.write_batch(written).await }.into_actor(self).map(move |result, act, ctx| {
            log::debug!(
                "wrote a batch of {} {} in {:?}",
                batch.ops.len(),
                if batch.records_only { "records" } else { "publishes" },
                started.elapsed()
            );
            act.writing -= 1;
            act.records_writing -= usize::from(batch.records_only);
            act.committed(&batch.ops, batch.replies, result, ctx);
            act.flush(ctx);
        }));
    }

    fn committed(
        &mut self,
        ops: &[WriteOp],
        replies: Vec<Option<Reply>>,
        result: Result<Vec<WriteOutcome>, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        match result {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(outcome));
                    }
                }
            }
            Err(error) => {
                log::error!("a batch of {} writes failed: {error}: {error:?}", ops.len());
                let error = Arc::new(error);
                let mut retry = Vec::new();
                for (op, reply) in ops.iter().zip(replies) {
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
                        act.records.splice(0..0, retry);
                        act.records_due = Some(Instant::now());
                        act.flush(ctx);
                    });
                }
            }
        }
    }
}

impl Actor for Persistence {
    type Context = Context<Self>;
}

impl Handler<PersistWrite> for Persistence {
    type Result = ResponseFuture<Result<WriteOutcome, Arc<StoreError>>>;

    fn handle(&mut self, msg: PersistWrite, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        match msg.op {
            WriteOp::Publish(_) => self.publishes.push((msg.op, Some(tx))),
            WriteOp::Attempt(_) => self.queue_records([(msg.op, Some(tx))], true),
        }
        self.flush(ctx);
        Box::pin(
            async move { rx.await.unwrap_or_else(|_| Err(Arc::new(StoreError::Corrupt("the writer stopped".into())))) },
        )
    }
}

impl Handler<RecordAttempts> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordAttempts, ctx: &mut Context<Self>) {
        self.queue_records(msg.writes.into_iter().map(|write| (WriteOp::Attempt(write), None)), false);
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
    use super::*;
    use crate::domain::WorkspaceId;
    use crate::store::{publishes_then_records, AttemptWrite, DatabaseUrl};

    /// A writer over a fresh SQLite file holding `count` published deliveries; their first
    /// attempts' records are returned for the test to send.
    async fn writer_with_published(
        count: usize,
        linger: Duration,
    ) -> (tempfile::TempDir, Store, Addr<Persistence>, Vec<AttemptWrite>) {
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
        let writer = Persistence::new(store.clone(), 1000).with_records_linger(linger).start();
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
        writer.do_send(RecordAttempts { writes: records[..1].to_vec() });
        writer.do_send(RecordAttempts { writes: records[1..].to_vec() });
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(written(&store, &records).await, 0, "held for the linger");
        wait_until_written(&store, &records, Duration::from_secs(10)).await;
        assert!(sent.elapsed() >= linger);
    }

    #[actix_rt::test]
    async fn a_full_batch_of_records_goes_at_once() {
        let (_dir, store, writer, records) = writer_with_published(RECORDS_FULL_BATCH, Duration::from_secs(600)).await;
        writer.do_send(RecordAttempts { writes: records.clone() });
        wait_until_written(&store, &records, Duration::from_secs(30)).await;
    }

    #[actix_rt::test]
    async fn a_flush_writes_lingering_records_at_once() {
        let (_dir, store, writer, records) = writer_with_published(1, Duration::from_secs(600)).await;
        writer.do_send(RecordAttempts { writes: records.clone() });
        let flushed = actix_rt::time::timeout(Duration::from_secs(30), writer.send(FlushWrites)).await;
        flushed.expect("flushed before the linger").unwrap();
        assert_eq!(written(&store, &records).await, 1);
    }

    #[actix_rt::test]
    async fn a_record_someone_waits_for_does_not_linger() {
        let (_dir, store, writer, records) = writer_with_published(1, Duration::from_secs(600)).await;
        let op = WriteOp::Attempt(records[0].clone());
        let outcome = actix_rt::time::timeout(Duration::from_secs(30), writer.send(PersistWrite { op })).await;
        assert_eq!(outcome.expect("answered before the linger").unwrap().unwrap(), WriteOutcome::Recorded);
        assert_eq!(written(&store, &records).await, 1);
    }
}
