//! The SQLite half of the batched writer: one transaction per batch, each statement
//! prepared once per connection.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use diesel::{QueryResult, SqliteConnection};

use super::{
    attempt_writes, delivery_rows, event_rows, initial_outcomes, mark_duplicates, sort_for_indexes, WriteOp,
    WriteOutcome,
};
use crate::store::prepared::{insert_in_fixed_chunks, MoveLatestAttempt, RecordAttemptAside, SettleDelivery};
use crate::store::records::{AttemptRow, DeliveryState, EventRow};
use crate::store::schema::{deliveries, events};

/// A write that held SQLite's write lock at least this long is logged: every other writer
/// (and publish) waited for it, and past the busy timeout they fail.
const SLOW_WRITE: Duration = Duration::from_secs(1);

/// One SQLite transaction; a batch of attempt records only commits without its own fsync.
pub(super) fn write_sqlite_batch(conn: &mut SqliteConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
    let records_only = ops.iter().all(|op| matches!(op, WriteOp::Attempt(_)));
    let write = |conn: &mut SqliteConnection| conn.immediate_transaction(|c| write_sqlite(c, ops));
    let started = Instant::now();
    let written = if records_only { without_waiting_for_flush(conn, write) } else { write(conn) };
    let took = started.elapsed();
    if took >= SLOW_WRITE {
        // Waiting for the lock counts too; the two are not told apart here.
        log::warn!("a SQLite write of {} ops took {took:.1?} (waiting for the lock, writing and syncing)", ops.len());
    }
    written
}

/// Runs a transaction of attempt records with `synchronous = NORMAL`: its commit does not
/// wait for an fsync of the WAL (the next publish's commit flushes the WAL up to and including
/// it), as the PostgreSQL records statement commits with `synchronous_commit = off`. A power
/// loss can then lose the last records, as a crash of hookbus can lose those not yet written:
/// their deliveries are still pending and are sent again. Every other write keeps `FULL`.
fn without_waiting_for_flush<T>(
    conn: &mut SqliteConnection,
    write: impl FnOnce(&mut SqliteConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("PRAGMA synchronous = NORMAL")?;
    let written = write(conn);
    let restored = conn.batch_execute("PRAGMA synchronous = FULL");
    let written = written?;
    restored?;
    Ok(written)
}

/// A batch in a handful of statements, each prepared once per connection (see `prepared`).
pub(super) fn write_sqlite(conn: &mut SqliteConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
    use diesel::RunQueryDsl;
    let mut outcomes = initial_outcomes(ops);
    let (positions, events): (Vec<usize>, Vec<EventRow>) = event_rows(ops).into_iter().unzip();
    let mut inserted = HashSet::new();
    insert_in_fixed_chunks!(events::table, &events[..], [256, 64, 16, 4, 1], |statement| inserted.extend(
        statement
            .on_conflict_do_nothing()
            .returning((events::workspace_id, events::id))
            .get_results::<(String, String)>(conn)?
    ));
    mark_duplicates(positions.into_iter().zip(&events), inserted, &mut outcomes);
    let mut deliveries = delivery_rows(ops, &outcomes);
    sort_for_indexes(&mut deliveries);
    insert_in_fixed_chunks!(deliveries::table, &deliveries[..], [256, 64, 16, 4, 1], |statement| statement
        .execute(conn)?);
    // In order, so a later attempt of the same delivery wins. A first attempt (nearly every
    // one) is a single UPDATE: the row takes it and there is no earlier one to move out.
    for write in attempt_writes(ops) {
        let state = DeliveryState::from(write);
        if write.attempt.attempt > 1 {
            MoveLatestAttempt(&state).execute(conn)?;
        }
        if SettleDelivery(state).execute(conn)? == 0 {
            RecordAttemptAside(&AttemptRow::from(&write.attempt)).execute(conn)?;
        }
    }
    Ok(outcomes)
}
