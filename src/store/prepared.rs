//! SQLite statements of the batched writer that are prepared once per connection.
//!
//! diesel keeps prepared statements in a per-connection cache, but marks some as unsafe to
//! cache: a multi-row `INSERT` of a `Vec` (one SQL text per row count), every `UPDATE` built
//! with its DSL and `sql_query`. Those were parsed and planned again on every execution,
//! which for the writer's many small batches cost as much as running them. So rows go in
//! through multi-row inserts of arrays of a few fixed sizes, and attempt results through one
//! hand-built `UPDATE` per attempt; the test in `batch.rs` checks that each is cached.

use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};

use super::{to_millis, DeliveryUpdate};

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

/// The state one attempt left its delivery in. It never overwrites a delivery that left
/// `pending` meanwhile (cancelled, say), nor the result of a later attempt.
pub(super) struct SettleDelivery<'a> {
    id: String,
    status: &'static str,
    attempt_count: i32,
    retries_used: i32,
    next_attempt_at: Option<i64>,
    status_code: Option<i32>,
    error_message: Option<&'a str>,
    response_body: Option<&'a str>,
    duration_ms: Option<i64>,
    completed_at: Option<i64>,
}

impl<'a> From<&'a DeliveryUpdate> for SettleDelivery<'a> {
    fn from(u: &'a DeliveryUpdate) -> Self {
        Self {
            id: u.id.to_string(),
            status: u.status.as_str(),
            attempt_count: u.attempt_count as i32,
            retries_used: u.retries_used as i32,
            next_attempt_at: u.next_attempt_at.map(to_millis),
            status_code: u.status_code.map(i32::from),
            error_message: u.error_message.as_deref(),
            response_body: u.response_body.as_deref(),
            duration_ms: u.duration_ms.map(|v| v as i64),
            completed_at: u.completed_at.map(to_millis),
        }
    }
}

// The SQL below depends on nothing but the type, so diesel may key its cache by the type.
impl QueryId for SettleDelivery<'_> {
    type QueryId = SettleDelivery<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for SettleDelivery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE deliveries SET status = ");
        out.push_bind_param::<Text, _>(self.status)?;
        out.push_sql(", attempt_count = ");
        out.push_bind_param::<Integer, _>(&self.attempt_count)?;
        out.push_sql(", retries_used = ");
        out.push_bind_param::<Integer, _>(&self.retries_used)?;
        out.push_sql(", next_attempt_at = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.next_attempt_at)?;
        out.push_sql(", status_code = ");
        out.push_bind_param::<Nullable<Integer>, _>(&self.status_code)?;
        out.push_sql(", error_message = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.error_message)?;
        out.push_sql(", response_body = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.response_body)?;
        out.push_sql(", duration_ms = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.duration_ms)?;
        out.push_sql(", completed_at = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.completed_at)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(&self.id)?;
        out.push_sql(" AND status = 'pending' AND attempt_count < ");
        out.push_bind_param::<Integer, _>(&self.attempt_count)?;
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for SettleDelivery<'_> {}
