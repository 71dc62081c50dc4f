//! [`Writer`]: the way into the writer's queue from any thread.

use std::future::Future;
use std::sync::Arc;

use actix::{Addr, Message};
use tokio::sync::oneshot;

use super::queue::Writing;
use super::Persistence;
use crate::store::{AttemptWrite, StoreError, WriteOp, WriteOutcome};

/// Tells the actor to look at its queue: a session may start, or records need a timer.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Wake;

/// The writer's address and its queue. Writes go into the queue directly, from whatever
/// thread they are made on, and the actor is woken only when no running session will take
/// them. Under load a session is always running, so a publish costs no message and no
/// wake-up of the writer's thread.
#[derive(Clone)]
pub struct Writer {
    actor: Addr<Persistence>,
    writing: Arc<Writing>,
}

impl Writer {
    pub(super) fn new(actor: Addr<Persistence>, writing: Arc<Writing>) -> Self {
        Self { actor, writing }
    }

    /// The actor, for [`FlushWrites`](super::FlushWrites) and the other messages.
    pub fn address(&self) -> &Addr<Persistence> {
        &self.actor
    }

    /// Writes `op` in the next group commit; answers once that transaction has committed.
    pub fn write(&self, op: WriteOp) -> impl Future<Output = Result<WriteOutcome, Arc<StoreError>>> + 'static {
        let (wake, answer) = queue_write(&self.writing, op);
        if wake {
            self.actor.do_send(Wake);
        }
        answer
    }

    /// Tells the writer how many servers write to its database (see
    /// [`WriteQueue::share_among`](super::queue::WriteQueue::share_among)).
    pub fn share_database(&self, servers: usize) {
        self.writing.lock().share_among(servers);
    }

    /// Attempt records to write with the next ones; nobody waits for them.
    pub fn record(&self, writes: Vec<AttemptWrite>) {
        if self.writing.queue_records(writes.into_iter().map(|write| (WriteOp::Attempt(write), None)), false) {
            self.actor.do_send(Wake);
        }
    }
}

/// Queues `op`; whether the actor should look, and its answer once committed.
pub(super) fn queue_write(
    writing: &Writing,
    op: WriteOp,
) -> (bool, impl Future<Output = Result<WriteOutcome, Arc<StoreError>>> + 'static) {
    let (tx, rx) = oneshot::channel();
    let wake = match op {
        WriteOp::Publish(_) => writing.queue_publish(op, tx),
        // Someone waits for this record: it is due at once.
        WriteOp::Attempt(_) => writing.queue_records([(op, Some(tx))], true),
    };
    let answer = async move { rx.await.unwrap_or_else(|_| Err(Arc::new(StoreError::WriterStopped))) };
    (wake, answer)
}
