//! The batched writer behind group commit: many publishes and attempt records, one transaction.

use std::collections::HashSet;

use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel::{QueryResult, SqliteConnection};
use diesel_async::AsyncPgConnection;

use super::records::{AttemptRow, DeliveryChanges, DeliveryRow, EventRow};
use super::schema::{attempts, deliveries, events};
use super::{AttemptRecord, DeliveryRecord, DeliveryUpdate, EventRecord, Pool, Store, StoreResult};
use crate::domain::{AttemptOutcome, DeliveryStatus};

/// PostgreSQL takes at most 65,535 bind parameters per statement.
const ROWS_PER_INSERT: usize = 2_000;

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
                status_code: outcome.status_code,
                error_message: outcome.error_message.clone(),
                response_body: outcome.response_body.clone(),
            },
            delivery: DeliveryUpdate {
                id: delivery.id,
                status: delivery.status,
                attempt_count: delivery.attempt_count,
                retries_used: delivery.retries_used,
                next_attempt_at: delivery.next_attempt_at,
                status_code: outcome.status_code,
                error_message: outcome.error_message.clone(),
                response_body: outcome.response_body.clone(),
                duration_ms: Some(duration_ms),
                completed_at: (delivery.status != DeliveryStatus::Pending).then_some(now),
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
    /// Writes every op in one transaction and returns one outcome per op, in order.
    /// Shared, not owned, so the writer keeps its batch for replies without a copy.
    pub async fn write_batch(&self, ops: impl Into<std::sync::Arc<[WriteOp]>>) -> StoreResult<Vec<WriteOutcome>> {
        let ops: std::sync::Arc<[WriteOp]> = ops.into();
        match &self.pool {
            Pool::Sqlite { writer, .. } => {
                let mut conn = writer.get().await?;
                let outcomes = conn
                    .spawn_blocking(move |conn| conn.immediate_transaction(|conn| write_sqlite(conn, &ops)))
                    .await?;
                Ok(outcomes)
            }
            Pool::Postgres(pool) => {
                use diesel_async::AsyncConnection;
                let mut conn = pool.get().await?;
                let outcomes = conn
                    .transaction::<_, diesel::result::Error, _>(async |conn| write_postgres(conn, &ops).await)
                    .await?;
                Ok(outcomes)
            }
        }
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
fn mark_duplicates(
    chunk: &[(usize, EventRow)],
    mut inserted: HashSet<(String, String)>,
    outcomes: &mut [WriteOutcome],
) {
    for (i, row) in chunk {
        if !inserted.remove(&(row.workspace_id.clone(), row.id.clone())) {
            outcomes[*i] = WriteOutcome::DuplicateEvent;
        }
    }
}

/// The attempts' delivery states in one statement per batch. An attempt result never
/// overwrites a delivery that left `pending` meanwhile (cancelled, say), nor the result of
/// a later attempt (PostgreSQL batches can commit in any order).
const UPDATE_DELIVERIES_SQLITE: &str = "UPDATE deliveries SET status = u.value ->> 1, \
     attempt_count = u.value ->> 2, retries_used = u.value ->> 3, next_attempt_at = u.value ->> 4, \
     status_code = u.value ->> 5, error_message = u.value ->> 6, response_body = u.value ->> 7, \
     duration_ms = u.value ->> 8, completed_at = u.value ->> 9 \
     FROM json_each(?) AS u WHERE deliveries.id = u.value ->> 0 AND deliveries.status = 'pending' \
     AND deliveries.attempt_count < u.value ->> 2";

const UPDATE_DELIVERIES_POSTGRES: &str = "UPDATE deliveries AS d SET status = u.status, \
     attempt_count = u.attempt_count, retries_used = u.retries_used, next_attempt_at = u.next_attempt_at, \
     status_code = u.status_code, error_message = u.error_message, response_body = u.response_body, \
     duration_ms = u.duration_ms, completed_at = u.completed_at \
     FROM unnest($1::text[], $2::text[], $3::int4[], $4::int4[], $5::int8[], $6::int4[], $7::text[], \
     $8::text[], $9::int8[], $10::int8[]) AS u(id, status, attempt_count, retries_used, next_attempt_at, \
     status_code, error_message, response_body, duration_ms, completed_at) \
     WHERE d.id = u.id AND d.status = 'pending' AND d.attempt_count < u.attempt_count";

/// One multi-row statement per chunk for each table, so a batch costs a handful of
/// statements however many writes it holds.
fn write_sqlite(conn: &mut SqliteConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
    use diesel::RunQueryDsl;
    let mut outcomes = initial_outcomes(ops);
    for chunk in event_rows(ops).chunks(ROWS_PER_INSERT) {
        let rows: Vec<&EventRow> = chunk.iter().map(|(_, row)| row).collect();
        let inserted = diesel::insert_into(events::table)
            .values(rows)
            .on_conflict_do_nothing()
            .returning((events::workspace_id, events::id))
            .get_results(conn)?;
        mark_duplicates(chunk, inserted.into_iter().collect(), &mut outcomes);
    }
    for chunk in delivery_rows(ops, &outcomes).chunks(ROWS_PER_INSERT) {
        diesel::insert_into(deliveries::table).values(chunk).execute(conn)?;
    }
    let attempts: Vec<AttemptRow> = attempt_writes(ops).map(|w| AttemptRow::from(&w.attempt)).collect();
    for chunk in attempts.chunks(ROWS_PER_INSERT) {
        diesel::insert_into(attempts::table).values(chunk).on_conflict_do_nothing().execute(conn)?;
    }
    let changes: DeliveryChanges = attempt_writes(ops).map(|w| &w.delivery).collect();
    if !changes.is_empty() {
        diesel::sql_query(UPDATE_DELIVERIES_SQLITE).bind::<Text, _>(changes.to_json_rows()).execute(conn)?;
    }
    Ok(outcomes)
}

/// Publishes and attempt records touch different rows (an attempt's delivery was committed
/// before the attempt began), so their statements are pipelined: sent together on the one
/// connection, executed in order by the server, one round trip instead of several.
async fn write_postgres(conn: &mut AsyncPgConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
    let conn: &AsyncPgConnection = conn;
    let (outcomes, ()) =
        futures_util::future::try_join(publish_postgres(conn, ops), record_attempts_postgres(conn, ops)).await?;
    Ok(outcomes)
}

async fn publish_postgres(mut conn: &AsyncPgConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
    use diesel_async::RunQueryDsl;
    let mut outcomes = initial_outcomes(ops);
    for chunk in event_rows(ops).chunks(ROWS_PER_INSERT) {
        let rows: Vec<&EventRow> = chunk.iter().map(|(_, row)| row).collect();
        let inserted: Vec<(String, String)> = diesel::insert_into(events::table)
            .values(rows)
            .on_conflict_do_nothing()
            .returning((events::workspace_id, events::id))
            .get_results(&mut conn)
            .await?;
        mark_duplicates(chunk, inserted.into_iter().collect(), &mut outcomes);
    }
    for chunk in delivery_rows(ops, &outcomes).chunks(ROWS_PER_INSERT) {
        diesel::insert_into(deliveries::table).values(chunk).execute(&mut conn).await?;
    }
    Ok(outcomes)
}

async fn record_attempts_postgres(conn: &AsyncPgConnection, ops: &[WriteOp]) -> QueryResult<()> {
    use diesel_async::RunQueryDsl;
    let attempts: Vec<AttemptRow> = attempt_writes(ops).map(|w| AttemptRow::from(&w.attempt)).collect();
    let inserts =
        attempts.chunks(ROWS_PER_INSERT).map(|chunk| {
            let mut conn = conn;
            async move {
                diesel::insert_into(attempts::table).values(chunk).on_conflict_do_nothing().execute(&mut conn).await
            }
        });
    let c: DeliveryChanges = attempt_writes(ops).map(|w| &w.delivery).collect();
    let update = async {
        if c.is_empty() {
            return Ok(0);
        }
        let mut conn = conn;
        diesel::sql_query(UPDATE_DELIVERIES_POSTGRES)
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
            .execute(&mut conn)
            .await
    };
    futures_util::future::try_join(futures_util::future::try_join_all(inserts), update).await?;
    Ok(())
}
