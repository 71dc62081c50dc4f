//! Statements of the batched writer that are prepared once per connection.
//!
//! diesel keeps prepared statements in a per-connection cache, but marks some as unsafe to
//! cache: a multi-row `INSERT` of a `Vec` (one SQL text per row count), every `UPDATE` built
//! with its DSL and `sql_query`. Those were parsed and planned again on every execution,
//! which for the writer's many small batches cost as much as running them. On SQLite, rows go
//! in through multi-row inserts of arrays of a few fixed sizes, and attempt results through
//! hand-built statements (one `UPDATE` per first attempt); on PostgreSQL, the writer's two
//! statements (publishes, attempt records) are wrapped in [`Cached`]. Tests in `batch.rs`
//! check that each is cached.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};

use super::records::{AttemptRow, DeliveryState};

/// Inserts `$rows` (a slice) into `$table` with multi-row statements of the sizes given,
/// largest first; `$each` runs every statement (`|statement| statement.execute(conn)`).
/// A batch of 46 rows costs statements of 16, 16, 4, 4, 4, 1 and 1 rows, each prepared once.
macro_rules! insert_in_fixed_chunks {
    ($table:expr, $rows:expr, [$($size:literal),+], |$statement:ident| $each:expr) => {{
        let mut rest = $rows;
        $(
            while rest.len() >= $size {
                let (chunk, tail) = rest.split_at($size);
                let chunk: &[_; $size] = chunk.try_into().expect("split at the chunk's size");
                let $statement = diesel::insert_into($table).values(chunk);
                $each;
                rest = tail;
            }
        )+
    }};
}
pub(super) use insert_in_fixed_chunks;

/// Statements whose SQL depends on nothing but their type, so diesel may key its cache by
/// the type: static query id, runnable on SQLite.
macro_rules! static_sqlite_statement {
    ($statement:ident) => {
        impl QueryId for $statement<'_> {
            type QueryId = $statement<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl RunQueryDsl<SqliteConnection> for $statement<'_> {}
    };
}

/// Writes the state one attempt left its delivery in, with the attempt itself (the row holds
/// its latest attempt). It never overwrites the result of a later attempt (batches commit in
/// any order): it reports 0 rows then, and the attempt goes to the `attempts` table instead
/// ([`RecordAttemptAside`]). On a delivery that ended meanwhile (its webhook was disabled or
/// deleted while the attempt was in flight) it records the attempt as the latest, so the
/// history stays whole, but keeps the status and why the delivery ended, unless the attempt
/// succeeded: then the receiver has the event, and the delivery says so.
pub(super) struct SettleDelivery<'a>(pub DeliveryState<'a>);
static_sqlite_statement!(SettleDelivery);

impl QueryFragment<Sqlite> for SettleDelivery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let state = &self.0;
        // The attempt decides the delivery's state while it is pending, or when it succeeded.
        let decides = |out: &mut AstPass<'_, 'b, Sqlite>| -> QueryResult<()> {
            out.push_sql("CASE WHEN status = 'pending' OR ");
            out.push_bind_param::<Text, _>(state.status)?;
            out.push_sql(" = 'succeeded' THEN ");
            Ok(())
        };
        out.push_sql("UPDATE deliveries SET status = ");
        decides(&mut out)?;
        out.push_bind_param::<Text, _>(state.status)?;
        out.push_sql(" ELSE status END, attempt_count = ");
        out.push_bind_param::<Integer, _>(&state.attempt_count)?;
        out.push_sql(", retries_used = CASE WHEN status = 'pending' THEN ");
        out.push_bind_param::<Integer, _>(&state.retries_used)?;
        out.push_sql(" ELSE retries_used END, next_attempt_at = CASE WHEN status = 'pending' THEN ");
        out.push_bind_param::<Nullable<BigInt>, _>(&state.next_attempt_at)?;
        out.push_sql(" ELSE next_attempt_at END, status_code = ");
        out.push_bind_param::<Nullable<Integer>, _>(&state.status_code)?;
        out.push_sql(", error_message = ");
        out.push_bind_param::<Nullable<Text>, _>(&state.error_message)?;
        out.push_sql(", response_body = ");
        out.push_bind_param::<Nullable<Text>, _>(&state.response_body)?;
        out.push_sql(", duration_ms = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&state.duration_ms)?;
        out.push_sql(", completed_at = ");
        decides(&mut out)?;
        out.push_bind_param::<Nullable<BigInt>, _>(&state.completed_at)?;
        out.push_sql(" ELSE completed_at END, failure_reason = ");
        decides(&mut out)?;
        out.push_bind_param::<Nullable<Text>, _>(&state.failure_reason)?;
        out.push_sql(" ELSE failure_reason END, last_attempt_at = ");
        out.push_bind_param::<BigInt, _>(&state.last_attempt_at)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(&state.id)?;
        out.push_sql(" AND attempt_count < ");
        out.push_bind_param::<Integer, _>(&state.attempt_count)?;
        Ok(())
    }
}

/// Before [`SettleDelivery`] puts a later attempt on the row, moves the attempt the row holds
/// into the `attempts` table, under the same conditions (so either both happen or neither).
pub(super) struct MoveLatestAttempt<'a>(pub &'a DeliveryState<'a>);
static_sqlite_statement!(MoveLatestAttempt);

impl QueryFragment<Sqlite> for MoveLatestAttempt<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO attempts (delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, \
             error_message, response_body) \
             SELECT id, attempt_count, workspace_id, last_attempt_at, COALESCE(duration_ms, 0), status_code, \
             error_message, response_body FROM deliveries WHERE id = ",
        );
        out.push_bind_param::<Text, _>(&self.0.id)?;
        out.push_sql(" AND attempt_count < ");
        out.push_bind_param::<Integer, _>(&self.0.attempt_count)?;
        out.push_sql(" AND last_attempt_at IS NOT NULL ON CONFLICT DO NOTHING");
        Ok(())
    }
}

/// An attempt whose delivery [`SettleDelivery`] did not take (a later attempt is on it): it goes to the `attempts` table, unless the row holds this very attempt
/// already (a batch written twice).
pub(super) struct RecordAttemptAside<'a>(pub &'a AttemptRow);
static_sqlite_statement!(RecordAttemptAside);

impl QueryFragment<Sqlite> for RecordAttemptAside<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let row = self.0;
        out.push_sql(
            "INSERT INTO attempts (delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, \
             error_message, response_body) SELECT ",
        );
        out.push_bind_param::<Text, _>(&row.delivery_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Integer, _>(&row.attempt)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&row.workspace_id)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&row.started_at)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&row.duration_ms)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Integer>, _>(&row.status_code)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.error_message)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.response_body)?;
        out.push_sql(" WHERE NOT EXISTS (SELECT 1 FROM deliveries WHERE id = ");
        out.push_bind_param::<Text, _>(&row.delivery_id)?;
        out.push_sql(" AND attempt_count = ");
        out.push_bind_param::<Integer, _>(&row.attempt)?;
        out.push_sql(" AND last_attempt_at IS NOT NULL) ON CONFLICT DO NOTHING");
        Ok(())
    }
}

/// A PostgreSQL `sql_query` (with its binds) whose text never changes, kept prepared by
/// diesel-async like a DSL query. Without it, tokio-postgres prepared the statement again on
/// every execution: a round trip and a parse per batch. `Statement` names it in the cache, so
/// each `Statement` type must go with one SQL text only.
pub(super) struct Cached<Statement, Q> {
    query: Q,
    statement: PhantomData<Statement>,
}

impl<Statement, Q> Cached<Statement, Q> {
    pub fn new(query: Q) -> Self {
        Self { query, statement: PhantomData }
    }
}

impl<Statement: 'static, Q> QueryId for Cached<Statement, Q> {
    type QueryId = Statement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Statement, Q: QueryFragment<Pg>> QueryFragment<Pg> for Cached<Statement, Q> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out)
    }

    fn is_safe_to_cache_prepared(&self, _: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Statement, Q: Query> Query for Cached<Statement, Q> {
    type SqlType = Q::SqlType;
}
