//! The batched writer behind group commit: many publishes and attempt records, one transaction.

use std::collections::HashSet;
use std::sync::Arc;

use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel::{QueryResult, SqliteConnection};
use diesel_async::AsyncPgConnection;

use super::prepared::{insert_in_fixed_chunks, Cached, MoveLatestAttempt, RecordAttemptAside, SettleDelivery};
use super::records::{AttemptRow, DeliveryChanges, DeliveryRow, DeliveryState, EventRow};
use super::schema::{deliveries, events};
use super::{AttemptRecord, DeliveryRecord, DeliveryUpdate, EventRecord, Pool, Store, StoreError, StoreResult};
use crate::domain::{AttemptOutcome, DeliveryStatus};

/// An event and its deliveries, committed together.
#[derive(Debug, Clone)]
pub struct PublishWrite {
    pub event: EventRecord,
    pub deliveries: Vec<DeliveryRecord>,
}

/// One attempt and the delivery state it leaves.
#[derive(Debug, Clone)]
pub struct AttemptWrite {
    pub attempt: AttemptRecord,
    pub delivery: DeliveryUpdate,
}

impl AttemptWrite {
    /// The record of one attempt of `delivery`, which already holds the state the attempt
    /// left it in (attempt count, retries used, status, next attempt).
    pub fn new(
        delivery: &DeliveryRecord,
        started_at: chrono::DateTime<chrono::Utc>,
        outcome: &AttemptOutcome,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let duration_ms = outcome.duration.as_millis() as u64;
        Self {
            attempt: AttemptRecord {
                delivery_id: delivery.id,
                workspace_id: delivery.workspace_id,
                attempt: delivery.attempt_count,
                started_at,
                duration_ms,
                status_code: outcome.status_code(),
                error_message: outcome.error_message(),
                response_body: outcome.response_body().map(str::to_owned),
            },
            delivery: DeliveryUpdate {
                id: delivery.id,
                status: delivery.status,
                attempt_count: delivery.attempt_count,
                retries_used: delivery.retries_used,
                next_attempt_at: delivery.next_attempt_at,
                status_code: outcome.status_code(),
                error_message: outcome.error_message(),
                response_body: outcome.response_body().map(str::to_owned),
                duration_ms: Some(duration_ms),
                completed_at: (delivery.status != DeliveryStatus::Pending).then_some(now),
                failure_reason: delivery.failure_reason.clone(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub enum WriteOp {
    Publish(PublishWrite),
    Attempt(AttemptWrite),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Published,
    /// An event with that id already exists in the workspace; nothing was written for it.
    DuplicateEvent,
    Recorded,
}

impl Store {
    /// Writes every op and returns one outcome per op, in order. On SQLite the batch is one
    /// transaction. On PostgreSQL the publishes are one statement and the attempt records
    /// another, each atomic on its own and sent together (one round trip, no `BEGIN`/`COMMIT`).
    /// The writer never mixes the two kinds in one batch, so a failure never leaves a batch
    /// half reported (and on SQLite a publish does not share its commit with records).
    pub async fn write_batch(&self, ops: impl Into<Arc<[WriteOp]>>) -> StoreResult<Vec<WriteOutcome>> {
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let reported = outcomes.clone();
        let session = self.write_batches(ops.into(), Arc::clone, move |_, written| {
            *reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = written;
            None
        });
        session.await.map_err(|(_, error)| error)?;
        let outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        Ok(outcomes)
    }

    /// Writes `first`, then each batch `written` hands back after reporting the last one,
    /// until it hands back none or a batch fails (returned with its error; nothing of it was
    /// reported). On SQLite every batch of the session runs in one blocking task on the
    /// writer's connection: the connection goes from one commit to the next without a hop
    /// back to the async side and a wake-up of the blocking thread in between, which on two
    /// busy cores cost as much as the transaction itself (BENCHMARKS.md). On PostgreSQL the
    /// batches go one after another over one pooled connection.
    pub async fn write_batches<B: Send + 'static>(
        &self,
        first: B,
        ops: fn(&B) -> Arc<[WriteOp]>,
        mut written: impl FnMut(B, Vec<WriteOutcome>) -> Option<B> + Send + 'static,
    ) -> Result<(), (Option<B>, StoreError)> {
        match &self.pool {
            Pool::Sqlite { writer, writer_is_shared, .. } => {
                // A shared connection goes back to the readers between batches.
                let keep_going = !writer_is_shared;
                let mut batch = first;
                loop {
                    let mut conn = match writer.get().await {
                        Ok(conn) => conn,
                        Err(error) => return Err((Some(batch), error.into())),
                    };
                    let session = conn.spawn_blocking(move |conn| loop {
                        match write_sqlite_batch(conn, &ops(&batch)) {
                            Ok(outcomes) => match (written(batch, outcomes), keep_going) {
                                (Some(next), true) => batch = next,
                                (next, _) => return Ok(Ok((next, written))),
                            },
                            Err(error) => return Ok(Err((Some(batch), StoreError::from(error)))),
                        }
                    });
                    // Err only if the blocking task itself failed; the batch went with it.
                    match session.await.map_err(|error| (None, error.into()))?? {
                        (Some(next), report) => (batch, written) = (next, report),
                        (None, _) => return Ok(()),
                    }
                }
            }
            Pool::Postgres(pool) => {
                let conn = match pool.get().await {
                    Ok(conn) => conn,
                    Err(error) => return Err((Some(first), error.into())),
                };
                let mut batch = first;
                loop {
                    match write_postgres(&conn, &ops(&batch)).await {
                        Ok(outcomes) => match written(batch, outcomes) {
                            Some(next) => batch = next,
                            None => return Ok(()),
                        },
                        Err(error) => return Err((Some(batch), error.into())),
                    }
                }
            }
        }
    }
}

/// One SQLite transaction; a batch of attempt records only commits without its own fsync.
fn write_sqlite_batch(conn: &mut SqliteConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
    let records_only = ops.iter().all(|op| matches!(op, WriteOp::Attempt(_)));
    let write = |conn: &mut SqliteConnection| conn.immediate_transaction(|c| write_sqlite(c, ops));
    if records_only {
        without_waiting_for_flush(conn, write)
    } else {
        write(conn)
    }
}

/// Splits ops into rows; event rows are inserted first so duplicates can be detected.
fn event_rows(ops: &[WriteOp]) -> Vec<(usize, EventRow)> {
    ops.iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            WriteOp::Publish(p) => Some((i, EventRow::from(&p.event))),
            WriteOp::Attempt(_) => None,
        })
        .collect()
}

fn delivery_rows(ops: &[WriteOp], outcomes: &[WriteOutcome]) -> Vec<DeliveryRow> {
    ops.iter()
        .zip(outcomes)
        .filter(|(_, outcome)| **outcome == WriteOutcome::Published)
        .filter_map(|(op, _)| match op {
            WriteOp::Publish(p) => Some(p.deliveries.iter().map(DeliveryRow::from)),
            WriteOp::Attempt(_) => None,
        })
        .flatten()
        .collect()
}

/// Puts delivery rows in the order of the `(webhook_id, …)` indexes: a fan-out's rows then
/// go into each webhook's index range one after another instead of hopping between ranges
/// on every row (measured: about +7 % deliveries/s in the 100-webhook fan-out on SQLite).
fn sort_for_indexes(rows: &mut [DeliveryRow]) {
    rows.sort_unstable_by(|a, b| (&a.webhook_id, &a.id).cmp(&(&b.webhook_id, &b.id)));
}

fn attempt_writes(ops: &[WriteOp]) -> impl Iterator<Item = &AttemptWrite> {
    ops.iter().filter_map(|op| match op {
        WriteOp::Attempt(a) => Some(a),
        WriteOp::Publish(_) => None,
    })
}

fn initial_outcomes(ops: &[WriteOp]) -> Vec<WriteOutcome> {
    ops.iter()
        .map(|op| match op {
            WriteOp::Publish(_) => WriteOutcome::Published,
            WriteOp::Attempt(_) => WriteOutcome::Recorded,
        })
        .collect()
}

/// Marks the publishes whose event row was not inserted (its id was taken) as duplicates.
/// `remove`, so a second publish of the same id in one batch counts as a duplicate too.
fn mark_duplicates<'a>(
    events: impl IntoIterator<Item = (usize, &'a EventRow)>,
    mut inserted: HashSet<(String, String)>,
    outcomes: &mut [WriteOutcome],
) {
    for (i, row) in events {
        if !inserted.remove(&(row.workspace_id.clone(), row.id.clone())) {
            outcomes[i] = WriteOutcome::DuplicateEvent;
        }
    }
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
fn write_sqlite(conn: &mut SqliteConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
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

/// A batch's publishes in one statement: the events that were not there yet, and the
/// deliveries of exactly those events. Arrays bind as one parameter each, so there is no
/// row limit per statement.
const PUBLISH_POSTGRES: &str = "WITH inserted AS ( \
     INSERT INTO events (workspace_id, id, event_type, data, body_hash, matched_webhooks, created_at) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::int8[]) \
     ON CONFLICT DO NOTHING RETURNING workspace_id, id), \
   delivered AS ( \
     INSERT INTO deliveries (id, workspace_id, webhook_id, event_id, event_type, status, attempt_count, \
       next_attempt_at, created_at, retries_used) \
     SELECT d.id, d.workspace_id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempt_count, \
       d.next_attempt_at, d.created_at, d.retries_used \
     FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int4[], \
       $15::int8[], $16::int8[], $17::int4[]) AS d(id, workspace_id, webhook_id, event_id, event_type, status, \
       attempt_count, next_attempt_at, created_at, retries_used) \
     JOIN inserted i ON i.workspace_id = d.workspace_id AND i.id = d.event_id) \
   SELECT workspace_id, id FROM inserted";

/// A batch's attempt records and the delivery states they leave, in one statement. Each
/// delivery row takes the latest of its attempts in the batch, after its previous attempt
/// moved to `attempts` (`moved`); the batch's other attempts go to `attempts` directly. An
/// attempt result never overwrites the result of a later attempt (batches can commit in any
/// order): that attempt goes to `attempts` too, unless the row holds this very attempt (a
/// batch written twice). On a delivery that ended meanwhile (webhook disabled or deleted) the
/// attempt is still the row's latest, but the status and `failure_reason` stay, unless it
/// succeeded (as `prepared::SettleDelivery`). Every part reads the rows as they were before
/// the statement.
///
/// The statement commits without waiting for its WAL flush (`synchronous_commit = off`, for
/// this statement's transaction only), so publishes, which do wait, are not queued behind
/// records' flushes. A database crash can then lose the last records, as a hookbus crash can
/// lose those not yet written: their deliveries are still pending and are sent again.
///
/// Each join with `deliveries` also says `d.id = ANY(ids)`: from a join with `unnest` alone the
/// planner chose hash joins over scans of the whole table while it was small (up to some tens
/// of thousands of rows: 16 ms for 150 records on 20,000 deliveries in `EXPLAIN ANALYZE`);
/// with the ids as a condition on the key it looks each one up in the primary key (4 ms).
/// It also makes the statement safe to prepare once (`Cached`): PostgreSQL's generic plan for
/// it, checked with `plan_cache_mode = force_generic_plan` on 200,000 unanalyzed rows, looks
/// the ids up in the primary key too. Before, a generic plan made while `deliveries` was
/// small hash-joined every pending delivery and stalled the writer, so the statement was
/// planned afresh on every batch, about 1–2 ms of PostgreSQL's time each (BENCHMARKS.md).
const RECORD_ATTEMPTS_POSTGRES: &str = "WITH moved AS ( \
     INSERT INTO attempts (delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, \
       error_message, response_body) \
     SELECT d.id, d.attempt_count, d.workspace_id, d.last_attempt_at, COALESCE(d.duration_ms, 0), \
       d.status_code, d.error_message, d.response_body \
     FROM deliveries AS d, unnest($1::text[], $3::int4[]) AS u(id, attempt_count) \
     WHERE d.id = u.id AND d.id = ANY($1::text[]) AND d.attempt_count < u.attempt_count \
       AND d.last_attempt_at IS NOT NULL \
     ON CONFLICT DO NOTHING), \
   settled AS ( \
     UPDATE deliveries AS d SET \
       status = CASE WHEN d.status = 'pending' OR u.status = 'succeeded' THEN u.status ELSE d.status END, \
       attempt_count = u.attempt_count, \
       retries_used = CASE WHEN d.status = 'pending' THEN u.retries_used ELSE d.retries_used END, \
       next_attempt_at = CASE WHEN d.status = 'pending' THEN u.next_attempt_at ELSE d.next_attempt_at END, \
       status_code = u.status_code, error_message = u.error_message, response_body = u.response_body, \
       duration_ms = u.duration_ms, \
       completed_at = CASE WHEN d.status = 'pending' OR u.status = 'succeeded' THEN u.completed_at \
         ELSE d.completed_at END, \
       failure_reason = CASE WHEN d.status = 'pending' OR u.status = 'succeeded' THEN u.failure_reason \
         ELSE d.failure_reason END, \
       last_attempt_at = u.last_attempt_at \
     FROM unnest($1::text[], $2::text[], $3::int4[], $4::int4[], $5::int8[], $6::int4[], $7::text[], \
       $8::text[], $9::int8[], $10::int8[], $11::int8[], $20::text[]) AS u(id, status, attempt_count, \
       retries_used, next_attempt_at, status_code, error_message, response_body, duration_ms, completed_at, \
       last_attempt_at, failure_reason) \
     WHERE d.id = u.id AND d.id = ANY($1::text[]) AND d.attempt_count < u.attempt_count \
     RETURNING d.id, d.attempt_count) \
   INSERT INTO attempts (delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, \
     error_message, response_body) \
   SELECT * FROM unnest($12::text[], $13::int4[], $14::text[], $15::int8[], $16::int8[], $17::int4[], \
     $18::text[], $19::text[]) AS a(delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, \
     error_message, response_body) \
   WHERE NOT EXISTS (SELECT 1 FROM settled AS s WHERE s.id = a.delivery_id AND s.attempt_count = a.attempt) \
     AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.id = a.delivery_id AND d.id = ANY($12::text[]) \
       AND d.attempt_count = a.attempt AND d.last_attempt_at IS NOT NULL) \
     AND (SELECT set_config('synchronous_commit', 'off', true)) = 'off' \
   ON CONFLICT DO NOTHING";

/// The publish statement's name in the connection's cache of prepared statements.
struct PublishStatement;

/// The records statement's name in that cache.
struct RecordStatement;

#[derive(diesel::QueryableByName)]
struct EventKey {
    #[diesel(sql_type = Text)]
    workspace_id: String,
    #[diesel(sql_type = Text)]
    id: String,
}

/// The publish statement and the attempt statement are pipelined: sent together on the one
/// connection, executed in order by the server.
async fn write_postgres(conn: &AsyncPgConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
    let (outcomes, ()) =
        futures_util::future::try_join(publish_postgres(conn, ops), record_attempts_postgres(conn, ops)).await?;
    Ok(outcomes)
}

async fn publish_postgres(mut conn: &AsyncPgConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
    use diesel_async::RunQueryDsl;
    let mut outcomes = initial_outcomes(ops);
    let events = event_rows(ops);
    if events.is_empty() {
        return Ok(outcomes);
    }
    // A second publish of the same id in one batch is a duplicate: only the first one's
    // event and deliveries go into the statement.
    let mut first = HashSet::new();
    let firsts: Vec<&(usize, EventRow)> =
        events.iter().filter(|(_, row)| first.insert((row.workspace_id.as_str(), row.id.as_str()))).collect();
    let column = |f: fn(&EventRow) -> &String| firsts.iter().map(|(_, row)| f(row)).collect::<Vec<_>>();
    let mut deliveries: Vec<DeliveryRow> = firsts
        .iter()
        .filter_map(|(i, _)| match &ops[*i] {
            WriteOp::Publish(p) => Some(p.deliveries.iter().map(DeliveryRow::from)),
            WriteOp::Attempt(_) => None,
        })
        .flatten()
        .collect();
    sort_for_indexes(&mut deliveries);
    let text = |f: fn(&DeliveryRow) -> &String| deliveries.iter().map(f).collect::<Vec<_>>();
    let statement = diesel::sql_query(PUBLISH_POSTGRES)
        .bind::<Array<Text>, _>(column(|r| &r.workspace_id))
        .bind::<Array<Text>, _>(column(|r| &r.id))
        .bind::<Array<Text>, _>(column(|r| &r.event_type))
        .bind::<Array<Text>, _>(column(|r| &r.data))
        .bind::<Array<Text>, _>(column(|r| &r.body_hash))
        .bind::<Array<Integer>, _>(firsts.iter().map(|(_, r)| r.matched_webhooks).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(firsts.iter().map(|(_, r)| r.created_at).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(text(|d| &d.id))
        .bind::<Array<Text>, _>(text(|d| &d.workspace_id))
        .bind::<Array<Text>, _>(text(|d| &d.webhook_id))
        .bind::<Array<Text>, _>(text(|d| &d.event_id))
        .bind::<Array<Text>, _>(text(|d| &d.event_type))
        .bind::<Array<Text>, _>(text(|d| &d.status))
        .bind::<Array<Integer>, _>(deliveries.iter().map(|d| d.attempt_count).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(deliveries.iter().map(|d| d.next_attempt_at).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(deliveries.iter().map(|d| d.created_at).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(deliveries.iter().map(|d| d.retries_used).collect::<Vec<_>>());
    let inserted: Vec<EventKey> = Cached::<PublishStatement, _>::new(statement).load(&mut conn).await?;
    let inserted = inserted.into_iter().map(|key| (key.workspace_id, key.id)).collect();
    mark_duplicates(events.iter().map(|(i, row)| (*i, row)), inserted, &mut outcomes);
    Ok(outcomes)
}

async fn record_attempts_postgres(mut conn: &AsyncPgConnection, ops: &[WriteOp]) -> QueryResult<()> {
    use diesel_async::RunQueryDsl;
    let c: DeliveryChanges = attempt_writes(ops).collect();
    if c.is_empty() {
        return Ok(());
    }
    let a: Vec<AttemptRow> = attempt_writes(ops).map(|w| AttemptRow::from(&w.attempt)).collect();
    let statement = diesel::sql_query(RECORD_ATTEMPTS_POSTGRES)
        .bind::<Array<Text>, _>(&c.id)
        .bind::<Array<Text>, _>(&c.status)
        .bind::<Array<Integer>, _>(&c.attempt_count)
        .bind::<Array<Integer>, _>(&c.retries_used)
        .bind::<Array<Nullable<BigInt>>, _>(&c.next_attempt_at)
        .bind::<Array<Nullable<Integer>>, _>(&c.status_code)
        .bind::<Array<Nullable<Text>>, _>(&c.error_message)
        .bind::<Array<Nullable<Text>>, _>(&c.response_body)
        .bind::<Array<Nullable<BigInt>>, _>(&c.duration_ms)
        .bind::<Array<Nullable<BigInt>>, _>(&c.completed_at)
        .bind::<Array<BigInt>, _>(&c.last_attempt_at)
        .bind::<Array<Text>, _>(a.iter().map(|r| &r.delivery_id).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(a.iter().map(|r| r.attempt).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(a.iter().map(|r| &r.workspace_id).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(a.iter().map(|r| r.started_at).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(a.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
        .bind::<Array<Nullable<Integer>>, _>(a.iter().map(|r| r.status_code).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(a.iter().map(|r| r.error_message.as_ref()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(a.iter().map(|r| r.response_body.as_ref()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(&c.failure_reason);
    Cached::<RecordStatement, _>::new(statement).execute(&mut conn).await?;
    Ok(())
}

#[cfg(test)]
/// `events` publishes (one delivery each), then the records of their first attempts.
pub(crate) fn publishes_then_records(events: usize) -> (Vec<WriteOp>, Vec<WriteOp>) {
    use crate::domain::{EventId, EventType, WebhookId, WorkspaceId};
    let webhook = WebhookId::generate();
    let now = crate::domain::now();
    let outcome = AttemptOutcome::answered(204, String::new(), None, std::time::Duration::from_millis(1));
    let (mut publishes, mut records) = (Vec::new(), Vec::new());
    for _ in 0..events {
        let event = EventRecord {
            workspace_id: WorkspaceId::DEFAULT,
            id: EventId::generate(),
            event: EventType::parse("event", "artifact.completed").unwrap(),
            data_json: "{}".into(),
            body_hash: String::new(),
            matched_webhooks: 1,
            created_at: now,
        };
        let mut delivery = DeliveryRecord::new_pending(&event, webhook);
        publishes.push(WriteOp::Publish(PublishWrite { event, deliveries: vec![delivery.clone()] }));
        delivery.attempt_count = 1;
        delivery.status = DeliveryStatus::Succeeded;
        records.push(WriteOp::Attempt(AttemptWrite::new(&delivery, now, &outcome, now)));
    }
    (publishes, records)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use diesel::Connection;
    use diesel_migrations::MigrationHarness;

    use super::*;

    /// Instrumentation that records the SQL of every statement a connection adds to its cache.
    fn recording_cached_statements() -> (Arc<Mutex<Vec<String>>>, Box<dyn Instrumentation>) {
        let cached = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = cached.clone();
        let instrumentation = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        };
        (cached, Box::new(instrumentation))
    }

    /// The point of `prepared`: a second batch of the same sizes prepares nothing new.
    #[test]
    fn sqlite_prepares_each_statement_of_the_writer_once_per_connection() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(super::super::SQLITE_MIGRATIONS).unwrap();
        let (cached, instrumentation) = recording_cached_statements();
        conn.set_instrumentation(instrumentation);
        let write = |conn: &mut SqliteConnection, (publishes, records): (Vec<WriteOp>, Vec<WriteOp>)| {
            assert!(write_sqlite(conn, &publishes).unwrap().iter().all(|o| *o == WriteOutcome::Published));
            assert!(write_sqlite(conn, &records).unwrap().iter().all(|o| *o == WriteOutcome::Recorded));
        };
        // A second attempt moves the first out of the row; an attempt the row does not take
        // goes aside. Each delivery here fails once, then succeeds.
        let retries = |conn: &mut SqliteConnection, records: &[WriteOp]| {
            let attempt = |n: u32, status: DeliveryStatus| -> Vec<WriteOp> {
                let mut records = records.to_vec();
                for op in &mut records {
                    let WriteOp::Attempt(write) = op else { unreachable!() };
                    (write.attempt.attempt, write.delivery.attempt_count, write.delivery.status) = (n, n, status);
                }
                records
            };
            // The first attempts again last: a batch written twice; the row does not take them.
            let (first, second) = (attempt(1, DeliveryStatus::Pending), attempt(2, DeliveryStatus::Succeeded));
            for batch in [first.clone(), second, first] {
                assert!(write_sqlite(conn, &batch).unwrap().iter().all(|o| *o == WriteOutcome::Recorded));
            }
        };
        // 21 = 16 + 4 + 1: three insert sizes for events and deliveries; first attempts are
        // the attempt-state UPDATE alone.
        write(&mut conn, publishes_then_records(21));
        let (publishes, records) = publishes_then_records(21);
        write_sqlite(&mut conn, &publishes).unwrap();
        retries(&mut conn, &records);
        let first = cached.lock().unwrap().len();
        // Each statement the writer ran is in the cache: a statement diesel will not cache
        // would be missing here (and prepared on every run).
        let kinds: Vec<String> = cached
            .lock()
            .unwrap()
            .iter()
            .map(|sql| sql.split(['(', ' ']).take(3).collect::<Vec<_>>().join(" ").replace('`', ""))
            .collect();
        for kind in ["INSERT INTO events", "INSERT INTO deliveries"] {
            assert_eq!(kinds.iter().filter(|k| *k == kind).count(), 3, "{kind} in three sizes: {kinds:?}");
        }
        assert_eq!(kinds.iter().filter(|k| *k == "UPDATE deliveries SET").count(), 1, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "INSERT INTO attempts").count(), 2, "move and aside: {kinds:?}");
        write(&mut conn, publishes_then_records(21));
        let (publishes, records) = publishes_then_records(21);
        write_sqlite(&mut conn, &publishes).unwrap();
        retries(&mut conn, &records);
        let statements = cached.lock().unwrap();
        assert_eq!(statements.len(), first, "prepared again: {:#?}", &statements[first..]);
    }

    /// A batch of attempt records commits with `synchronous = NORMAL` (no fsync of its own);
    /// a batch of publishes with `FULL`, and the writer's connection is left at `FULL`.
    #[actix_rt::test]
    async fn sqlite_records_commit_without_their_own_fsync_and_publishes_with_one() {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Synchronous {
            #[diesel(sql_type = Integer)]
            synchronous: i32,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookbus.db");
        let store = Store::open(&super::super::DatabaseUrl::SqliteFile(path), 2).await.unwrap();
        let Pool::Sqlite { writer, .. } = &store.pool else { unreachable!() };
        let ran = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = ran.clone();
        let instrumentation = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                seen.lock().unwrap().push(query.to_string());
            }
        };
        writer.get().await.unwrap().set_instrumentation(Box::new(instrumentation) as Box<dyn Instrumentation>);
        // What the writer told SQLite around each transaction.
        let modes = |ran: &[String]| -> Vec<String> {
            let around = |q: &&String| q.starts_with("PRAGMA synchronous") || q.starts_with("BEGIN") || *q == "COMMIT";
            ran.iter().filter(around).cloned().collect()
        };
        let (publishes, records) = publishes_then_records(5);
        store.write_batch(publishes).await.unwrap();
        assert_eq!(modes(&ran.lock().unwrap()), ["BEGIN IMMEDIATE", "COMMIT"]);
        ran.lock().unwrap().clear();
        store.write_batch(records).await.unwrap();
        assert_eq!(
            modes(&ran.lock().unwrap()),
            ["PRAGMA synchronous = NORMAL", "BEGIN IMMEDIATE", "COMMIT", "PRAGMA synchronous = FULL"]
        );
        let mut conn = writer.get().await.unwrap();
        let mode = diesel::sql_query("SELECT synchronous FROM pragma_synchronous").get_result::<Synchronous>(&mut conn);
        const FULL: i32 = 2;
        assert_eq!(mode.await.unwrap().synchronous, FULL);
    }

    /// A session writes each batch its callback hands back, in order, until it is handed
    /// none; a batch that fails comes back with its error, unreported, and the batches
    /// before it stay written.
    #[actix_rt::test]
    async fn a_session_writes_the_batches_it_is_handed_and_returns_the_one_that_failed() {
        use crate::domain::{EventId, WorkspaceId};
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(&super::super::DatabaseUrl::SqliteFile(dir.path().join("hookbus.db")), 2).await.unwrap();
        let (publishes, records) = publishes_then_records(3);
        let WriteOp::Publish(first) = &publishes[0] else { unreachable!() };
        let delivery_id = first.deliveries[0].id;
        // Another event whose delivery reuses that id: its insert fails on the primary key.
        let mut clash = first.clone();
        clash.event.id = EventId::generate();
        clash.deliveries[0].event_id = clash.event.id.clone();
        let handed: Vec<Arc<[WriteOp]>> = vec![records.into(), vec![WriteOp::Publish(clash)].into()];
        let reported = Arc::new(Mutex::new(Vec::new()));
        let (mut next, seen) = (handed.into_iter(), reported.clone());
        let session = store.write_batches(Arc::<[WriteOp]>::from(publishes), Arc::clone, move |batch, outcomes| {
            seen.lock().unwrap().push((batch.len(), outcomes));
            next.next()
        });
        let (failed, _) = session.await.expect_err("the third batch fails");
        assert_eq!(failed.expect("handed back").len(), 1);
        assert_eq!(
            *reported.lock().unwrap(),
            [(3, vec![WriteOutcome::Published; 3]), (3, vec![WriteOutcome::Recorded; 3])],
            "the first two, in order"
        );
        let (delivery, attempts) = store.get_delivery(WorkspaceId::DEFAULT, delivery_id).await.unwrap().unwrap();
        assert_eq!(
            (delivery.delivery.status, attempts.len()),
            (DeliveryStatus::Succeeded, 1),
            "the records were written"
        );

        // Handed nothing after the first batch, the session ends with it.
        let (publishes, _) = publishes_then_records(2);
        let calls = Arc::new(Mutex::new(0));
        let counted = calls.clone();
        store
            .write_batches(Arc::<[WriteOp]>::from(publishes), Arc::clone, move |_, _| {
                *counted.lock().unwrap() += 1;
                None
            })
            .await
            .unwrap_or_else(|(_, error)| panic!("{error}"));
        assert_eq!(*calls.lock().unwrap(), 1);
    }

    /// On PostgreSQL the publish and records statements are cached too (diesel marks every
    /// `sql_query` unsafe to cache, and tokio-postgres then prepared them on every batch).
    #[actix_rt::test]
    async fn postgres_prepares_each_statement_of_the_writer_once_per_connection() {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let admin = match std::env::var("HOOKBUS_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(std::env::var_os("CI").is_none(), "HOOKBUS_TEST_POSTGRES_URL must be set under CI");
                return eprintln!("HOOKBUS_TEST_POSTGRES_URL is not set: skipping");
            }
        };
        let name = format!("hookbus_unit_{}", uuid::Uuid::new_v4().simple());
        let mut admin_conn = AsyncPgConnection::establish(&admin).await.unwrap();
        admin_conn.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        super::super::run_migrations(super::super::DatabaseUrl::Postgres(url.clone())).await.unwrap();

        let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
        let (cached, instrumentation) = recording_cached_statements();
        conn.set_instrumentation(instrumentation);
        for (round, size) in [(1, 21), (2, 3), (3, 40)] {
            let (publishes, records) = publishes_then_records(size);
            assert!(write_postgres(&conn, &publishes).await.unwrap().iter().all(|o| *o == WriteOutcome::Published));
            assert!(write_postgres(&conn, &records).await.unwrap().iter().all(|o| *o == WriteOutcome::Recorded));
            let statements = cached.lock().unwrap();
            assert_eq!(statements.len(), 2, "after round {round}: {statements:#?}");
            assert!(statements[0].starts_with("WITH inserted AS"), "{statements:#?}");
            assert!(statements[1].starts_with("WITH moved AS"), "{statements:#?}");
        }
        drop(conn);
        admin_conn.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    }
}
