//! Messages of the [`Persistence`](super::Persistence) actor. Writes themselves go through
//! a [`Writer`](super::Writer), straight into the actor's queue.

use actix::Message;

/// Answers once every write queued before it has been committed (used at shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FlushWrites;
