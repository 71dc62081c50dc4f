//! Messages of the [`Persistence`](super::Persistence) actor.

use std::sync::Arc;

use actix::Message;

use crate::store::{AttemptWrite, StoreError, WriteOp, WriteOutcome};

/// Writes `op` in the next group commit; answers once that transaction has committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<WriteOutcome, Arc<StoreError>>")]
pub struct PersistWrite {
    pub op: WriteOp,
}

/// Answers once every write queued before it has been committed (used at shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FlushWrites;

/// Attempt records to write in the next group commit; nobody waits for them (see
/// [`AttemptRecorder`](super::AttemptRecorder)).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecordAttempts {
    pub writes: Vec<AttemptWrite>,
}
