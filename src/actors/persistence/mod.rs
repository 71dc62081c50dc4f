//! The `Persistence` actor: group commit of publishes and attempt records.
//!
//! Writes queue up while batches are being written; when one commits, everything that
//! queued meanwhile goes into the next one. Under load, one batch carries many writes;
//! when idle, a write commits at once. SQLite takes one writer at a time; PostgreSQL takes a
//! few batches at once, so their round trips overlap.

mod messages;
mod recorder;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

pub use messages::{FlushWrites, PersistWrite, RecordAttempts};
pub use recorder::AttemptRecorder;

use crate::store::{Store, StoreError, WriteOp, WriteOutcome};

/// How long a failed batch of attempt records waits before it is written again.
const RETRY_DELAY: Duration = Duration::from_millis(500);

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
    }

    /// Publishes get batches of their own, ahead of records (sharing a commit with a batch of
    /// records made SQLite publishes slower and cost more CPU; sharing it with only as many
    /// records as publishes showed no gain: BENCHMARKS.md). With several writers (PostgreSQL),
    /// records never take the last free one, so a publish does not wait behind a long batch
    /// of records.
    fn next_batch(&mut self) -> Option<Batch> {
        let publishes = self.publishes.len().min(self.max_batch);
        let records_may_start = self.max_writing == 1 || self.records_writing + 1 < self.max_writing;
        let records = if publishes == 0 && records_may_start { self.records.len().min(self.max_batch) } else { 0 };
        if publishes + records == 0 {
            return None;
        }
        let (ops, replies): (Vec<WriteOp>, Vec<Option<Reply>>) =
            self.publishes.drain(..publishes).chain(self.records.drain(..records)).unzip();
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
        let queue = match msg.op {
            WriteOp::Publish(_) => &mut self.publishes,
            WriteOp::Attempt(_) => &mut self.records,
        };
        queue.push((msg.op, Some(tx)));
        self.flush(ctx);
        Box::pin(
            async move { rx.await.unwrap_or_else(|_| Err(Arc::new(StoreError::Corrupt("the writer stopped".into())))) },
        )
    }
}

impl Handler<RecordAttempts> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordAttempts, ctx: &mut Context<Self>) {
        self.records.extend(msg.writes.into_iter().map(|write| (WriteOp::Attempt(write), None)));
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
