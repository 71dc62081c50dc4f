//! The PostgreSQL half of the batched writer: a batch's publishes in one statement and its
//! attempt records in another, prepared once per connection.

use std::collections::HashSet;

use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use super::{attempt_writes, event_rows, initial_outcomes, mark_duplicates, sort_for_indexes, WriteOp, WriteOutcome};
use crate::store::cluster::{announcement_line, payload_numbers};
use crate::store::prepared::Cached;
use crate::store::records::{AttemptRow, DeliveryChanges, DeliveryRow, EventRow};

/// The part of the publish statement that writes: the events that were not there yet, and
/// the deliveries of exactly those events. Arrays bind as one parameter each, so there is no
/// row limit per statement. An event matched under an older configuration version than the
/// database's is not written (another server changed a webhook since).
macro_rules! publish_writes {
    () => {
        "WITH current AS (SELECT version FROM cluster_config), \
   inserted AS ( \
     INSERT INTO events (workspace_id, id, event_type, data, body_hash, matched_webhooks, created_at) \
     SELECT e.workspace_id, e.id, e.event_type, e.data, e.body_hash, e.matched_webhooks, e.created_at \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::int8[], $18::int8[]) \
       AS e(workspace_id, id, event_type, data, body_hash, matched_webhooks, created_at, version) \
     WHERE e.version IS NULL OR e.version = (SELECT version FROM current) \
     ON CONFLICT DO NOTHING RETURNING workspace_id, id), \
   delivered AS ( \
     INSERT INTO deliveries (id, workspace_id, webhook_id, event_id, event_type, status, attempt_count, \
       next_attempt_at, created_at, retries_used) \
     SELECT d.id, d.workspace_id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempt_count, \
       d.next_attempt_at, d.created_at, d.retries_used \
     FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int4[], \
       $15::int8[], $16::int8[], $17::int4[]) AS d(id, workspace_id, webhook_id, event_id, event_type, status, \
       attempt_count, next_attempt_at, created_at, retries_used) \
     JOIN inserted i ON i.workspace_id = d.workspace_id AND i.id = d.event_id)"
    };
}

/// A batch's publishes in one statement (`publish_writes!`). It returns the events written
/// and one more row, with an empty workspace, holding the current configuration version, to
/// tell events matched under an older one from duplicates.
///
/// The announcements of deliveries to other servers' webhooks (`notified`) go out with the
/// commit (`pg_notify` is transactional), for the events actually written only, since a line
/// may carry the whole delivery for its owner to send without reading it back.
const PUBLISH_POSTGRES: &str = concat!(
    publish_writes!(),
    ", \
   notified AS ( \
     SELECT pg_notify('hookbus_deliveries', string_agg(n.line, E'\\n' ORDER BY n.ord))::text AS sent \
     FROM unnest($19::text[], $20::text[], $21::int4[], $22::text[]) WITH ORDINALITY \
       AS n(workspace_id, event_id, payload, line, ord) \
     JOIN inserted i ON i.workspace_id = n.workspace_id AND i.id = n.event_id \
     GROUP BY n.payload) \
   SELECT workspace_id, id FROM inserted \
   UNION ALL SELECT '', version::text FROM current WHERE (SELECT count(sent) FROM notified) >= 0"
);

/// The same for a batch that announces nothing (every batch of a server alone, and most on a
/// shared database): the announcing part costs the database a few percent of the statement
/// even with nothing in it. It is sent the same parameters; the announcements' are unused.
const PUBLISH_QUIET_POSTGRES: &str = concat!(
    publish_writes!(),
    " \
   SELECT workspace_id, id FROM inserted \
   UNION ALL SELECT '', version::text FROM current"
);

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
/// Several servers: a record made under a lease epoch that is no longer the webhook's (the
/// lease was lost and another server claimed it) goes to `attempts` only (a deleted webhook
/// has no lease left, and its late records follow the rules above),
/// and leaves the delivery row to the new owner. Its number may then equal the new owner's
/// attempt, which the key `(delivery_id, attempt, started_at)` allows. The leases are looked
/// up once per webhook and epoch in the batch (`lost`), not once per record: a batch holds
/// up to hundreds of records of a few webhooks, and the result is nearly always empty.
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
/// the ids up in the primary key too, so the plan stays good as `deliveries` grows (a
/// generic plan that hash-joins every pending delivery would stall the writer).
const RECORD_ATTEMPTS_POSTGRES: &str = "WITH lost AS ( \
     SELECT w.webhook_id, w.epoch FROM unnest($22::text[], $23::int8[]) AS w(webhook_id, epoch) \
     JOIN webhook_leases AS l ON l.webhook_id = w.webhook_id AND l.epoch <> w.epoch), \
   moved AS ( \
     INSERT INTO attempts (delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, \
       error_message, response_body) \
     SELECT d.id, d.attempt_count, d.workspace_id, d.last_attempt_at, COALESCE(d.duration_ms, 0), \
       d.status_code, d.error_message, d.response_body \
     FROM deliveries AS d, unnest($1::text[], $3::int4[], $21::int8[]) AS u(id, attempt_count, epoch) \
     WHERE d.id = u.id AND d.id = ANY($1::text[]) AND d.attempt_count < u.attempt_count \
       AND d.last_attempt_at IS NOT NULL \
       AND NOT EXISTS (SELECT 1 FROM lost WHERE lost.webhook_id = d.webhook_id AND lost.epoch = u.epoch) \
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
       $8::text[], $9::int8[], $10::int8[], $11::int8[], $20::text[], $21::int8[]) AS u(id, status, \
       attempt_count, retries_used, next_attempt_at, status_code, error_message, response_body, duration_ms, \
       completed_at, last_attempt_at, failure_reason, epoch) \
     WHERE d.id = u.id AND d.id = ANY($1::text[]) AND d.attempt_count < u.attempt_count \
       AND NOT EXISTS (SELECT 1 FROM lost WHERE lost.webhook_id = d.webhook_id AND lost.epoch = u.epoch) \
     RETURNING d.id, d.attempt_count) \
   INSERT INTO attempts (delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, \
     error_message, response_body) \
   SELECT * FROM unnest($12::text[], $13::int4[], $14::text[], $15::int8[], $16::int8[], $17::int4[], \
     $18::text[], $19::text[]) AS a(delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, \
     error_message, response_body) \
   WHERE NOT EXISTS (SELECT 1 FROM settled AS s WHERE s.id = a.delivery_id AND s.attempt_count = a.attempt) \
     AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.id = a.delivery_id AND d.id = ANY($12::text[]) \
       AND d.attempt_count = a.attempt AND d.last_attempt_at = a.started_at) \
     AND (SELECT set_config('synchronous_commit', 'off', true)) = 'off' \
   ON CONFLICT DO NOTHING";

/// The publish statements' names in the connection's cache of prepared statements.
struct PublishStatement;
struct QuietPublishStatement;

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
pub(super) async fn write_postgres(conn: &AsyncPgConnection, ops: &[WriteOp]) -> QueryResult<Vec<WriteOutcome>> {
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
    let announced = announcements(ops, &firsts);
    let quiet = announced.is_empty();
    let statement = diesel::sql_query(if quiet { PUBLISH_QUIET_POSTGRES } else { PUBLISH_POSTGRES })
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
        .bind::<Array<Integer>, _>(deliveries.iter().map(|d| d.retries_used).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(firsts.iter().map(|(i, _)| config_version(&ops[*i])).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(announced.iter().map(|a| a.workspace_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(announced.iter().map(|a| a.event_id).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(announced.iter().map(|a| a.payload).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(announced.iter().map(|a| a.line.as_str()).collect::<Vec<_>>());
    let rows: Vec<EventKey> = if quiet {
        Cached::<QuietPublishStatement, _>::new(statement).load(&mut conn).await?
    } else {
        Cached::<PublishStatement, _>::new(statement).load(&mut conn).await?
    };
    // One row, without a workspace, is the current configuration version.
    let (version, inserted): (Vec<_>, Vec<_>) = rows.into_iter().partition(|row| row.workspace_id.is_empty());
    let current = <[EventKey]>::first(&version).and_then(|row| row.id.parse::<i64>().ok());
    let inserted = inserted.into_iter().map(|key| (key.workspace_id, key.id)).collect();
    mark_duplicates(events.iter().map(|(i, row)| (*i, row)), inserted, &mut outcomes);
    for (i, outcome) in outcomes.iter_mut().enumerate() {
        let stale = config_version(&ops[i]).is_some_and(|matched| Some(matched) != current);
        if *outcome == WriteOutcome::DuplicateEvent && stale {
            *outcome = WriteOutcome::StaleConfig;
        }
    }
    Ok(outcomes)
}

fn config_version(op: &WriteOp) -> Option<i64> {
    match op {
        WriteOp::Publish(p) => p.config_version,
        WriteOp::Attempt(_) => None,
    }
}

/// The announcement of a new delivery to another server's webhook.
struct Announcement<'a> {
    /// The event it belongs to: announced only if the statement writes it.
    workspace_id: &'a str,
    event_id: &'a str,
    /// Which of the batch's notification payloads it goes in.
    payload: i32,
    /// The whole delivery when it fits, else its id.
    line: String,
}

/// The batch's announcements. Only first publishes of an id count (the statement writes no
/// other).
fn announcements<'a>(ops: &'a [WriteOp], firsts: &[&'a (usize, EventRow)]) -> Vec<Announcement<'a>> {
    let mut announced = Vec::new();
    for (i, row) in firsts {
        let WriteOp::Publish(publish) = &ops[*i] else { continue };
        for delivery in publish.owned_elsewhere.iter().map(|&d| &publish.deliveries[d]) {
            announced.push(Announcement {
                workspace_id: &row.workspace_id,
                event_id: &row.id,
                payload: 0,
                line: announcement_line(delivery, &publish.event.data_json),
            });
        }
    }
    let numbers = payload_numbers(announced.iter().map(|a| a.line.len()));
    announced.iter_mut().zip(numbers).for_each(|(a, number)| a.payload = number);
    announced
}

async fn record_attempts_postgres(mut conn: &AsyncPgConnection, ops: &[WriteOp]) -> QueryResult<()> {
    use diesel_async::RunQueryDsl;
    let c: DeliveryChanges = attempt_writes(ops).collect();
    if c.is_empty() {
        return Ok(());
    }
    let a: Vec<AttemptRow> = attempt_writes(ops).map(|w| AttemptRow::from(&w.attempt)).collect();
    // The webhooks and lease epochs the batch's records were made under, each once.
    let mut leases: Vec<_> = attempt_writes(ops).filter_map(|w| Some((w.webhook_id, w.epoch?))).collect();
    leases.sort_unstable();
    leases.dedup();
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
        .bind::<Array<Nullable<Text>>, _>(&c.failure_reason)
        .bind::<Array<Nullable<BigInt>>, _>(&c.epoch)
        .bind::<Array<Text>, _>(leases.iter().map(|(webhook, _)| webhook.to_string()).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(leases.iter().map(|(_, epoch)| *epoch).collect::<Vec<_>>());
    Cached::<RecordStatement, _>::new(statement).execute(&mut conn).await?;
    Ok(())
}
