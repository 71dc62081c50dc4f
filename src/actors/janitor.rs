//! The `Janitor` actor: removes events, deliveries and attempts older than `retention_days`
//! in bounded batches, so delivery is never paused for long. Pending deliveries (and the
//! events they carry) are kept whatever their age. Idempotency ids live in the events table,
//! so they are honoured for exactly the retention window, across restarts.

use std::time::Duration;

use actix::prelude::*;

use crate::store::Store;

/// Rows per batch; each batch is one short transaction.
const BATCH: usize = 1_000;
/// Pause between batches, to let other writers in.
const BETWEEN_BATCHES: Duration = Duration::from_millis(10);

pub struct Janitor {
    store: Store,
    retention: Duration,
    interval: Duration,
    running: bool,
}

impl Janitor {
    pub fn new(store: Store, retention: Duration, interval: Duration) -> Self {
        Self { store, retention, interval, running: false }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let store = self.store.clone();
        let retention = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        ctx.spawn(
            async move {
                let cutoff = crate::domain::now() - retention;
                let mut removed = 0;
                loop {
                    match store.purge_batch(cutoff, BATCH).await {
                        Ok(0) => break,
                        Ok(n) => removed += n,
                        Err(error) => {
                            log::warn!("retention: a purge batch failed (will retry next sweep): {error}");
                            break;
                        }
                    }
                    actix_rt::time::sleep(BETWEEN_BATCHES).await;
                }
                if removed > 0 {
                    log::info!("retention: removed {removed} rows older than {cutoff}");
                }
            }
            .into_actor(self)
            .map(|_, act, _| act.running = false),
        );
    }
}

impl Actor for Janitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sweep(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.sweep(ctx));
    }
}
