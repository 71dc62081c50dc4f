//! [`AttemptRecorder`]: how endpoint actors hand attempt records to the writer.

use std::sync::{Arc, Mutex};

use super::Writer;
use crate::store::AttemptWrite;

/// Collects attempt records on the delivery thread and sends them to the writer as one
/// message per turn of that thread's event loop. The writer lives on another thread, and
/// waking it once per attempt cost more than writing the record (BENCHMARKS.md).
///
/// Records are fire and forget: until one is written its delivery is still pending in the
/// database, so a record lost with the process means the attempt is made again.
#[derive(Clone)]
pub struct AttemptRecorder {
    writer: Writer,
    collected: Arc<Mutex<Vec<AttemptWrite>>>,
}

impl AttemptRecorder {
    pub fn new(writer: Writer) -> Self {
        Self { writer, collected: Arc::default() }
    }

    /// Queues one record. The first record of a turn schedules the send, which runs after
    /// the tasks already due on this thread (the other attempts finishing now) have queued theirs.
    /// Must be called inside an actix arbiter (as actors are).
    pub fn record(&self, write: AttemptWrite) {
        let first = {
            let mut collected = self.collected.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            collected.push(write);
            collected.len() == 1
        };
        if first {
            let recorder = self.clone();
            actix_rt::spawn(async move {
                tokio::task::yield_now().await;
                recorder.send_now();
            });
        }
    }

    /// Sends what is collected and waits until every record the writer holds is committed.
    pub async fn flush(&self) {
        self.send_now();
        let _ = self.writer.address().send(super::FlushWrites).await;
    }

    /// Sends whatever is collected now (shutdown calls it before flushing the writer).
    pub fn send_now(&self) {
        let writes = std::mem::take(&mut *self.collected.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        if !writes.is_empty() {
            self.writer.record(writes);
        }
    }
}
