//! The batched writer behind group commit: many publishes and attempt records, one transaction.

use std::collections::HashSet;
use std::sync::Arc;

mod postgres;
mod sqlite;

use self::postgres::write_postgres;
use self::sqlite::write_sqlite_batch;
use super::records::{DeliveryRow, EventRow};
use super::{AttemptRecord, DeliveryRecord, DeliveryUpdate, EventRecord, Pool, Store, StoreError, StoreResult};
use crate::domain::{AttemptOutcome, DeliveryStatus, WebhookId};

/// An event and its deliveries, committed together.
#[derive(Debug, Clone)]
pub struct PublishWrite {
    pub event: EventRecord,
    pub deliveries: Vec<DeliveryRecord>,
    /// On PostgreSQL, the configuration version the event was matched under: if a webhook
    /// changed since, nothing is written ([`WriteOutcome::StaleConfig`]) and the publish is
    /// matched again.
    pub config_version: Option<i64>,
    /// Indexes into `deliveries` of those whose webhook another server owns: it is told of
    /// them on commit.
    pub owned_elsewhere: Vec<usize>,
}

impl PublishWrite {
    pub fn new(event: EventRecord, deliveries: Vec<DeliveryRecord>) -> Self {
        Self { event, deliveries, config_version: None, owned_elsewhere: Vec::new() }
    }
}

/// One attempt and the delivery state it leaves.
#[derive(Debug, Clone)]
pub struct AttemptWrite {
    pub attempt: AttemptRecord,
    pub delivery: DeliveryUpdate,
    /// The webhook the delivery belongs to, whose lease `epoch` is.
    pub webhook_id: WebhookId,
    /// The lease epoch the attempt was made under (several servers): if the lease has moved
    /// on since, the attempt is kept in the history but leaves the delivery as it is.
    pub epoch: Option<i64>,
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
        let (error_message, response_body) = (outcome.error_message(), outcome.response_body().map(str::to_owned));
        Self {
            attempt: AttemptRecord {
                delivery_id: delivery.id,
                workspace_id: delivery.workspace_id,
                attempt: delivery.attempt_count,
                started_at,
                duration_ms,
                status_code: outcome.status_code(),
                error_message: error_message.clone(),
                response_body: response_body.clone(),
            },
            delivery: DeliveryUpdate {
                id: delivery.id,
                status: delivery.status,
                attempt_count: delivery.attempt_count,
                retries_used: delivery.retries_used,
                next_attempt_at: delivery.next_attempt_at,
                status_code: outcome.status_code(),
                error_message,
                response_body,
                duration_ms: Some(duration_ms),
                completed_at: (delivery.status != DeliveryStatus::Pending).then_some(now),
                failure_reason: delivery.failure_reason.clone(),
            },
            webhook_id: delivery.webhook_id,
            epoch: None,
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
    /// A webhook changed after the event was matched (another server changed it); nothing
    /// was written, and the event must be matched again.
    StaleConfig,
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
    /// back to the async side and a wake-up of the blocking thread in between, which on busy
    /// cores costs as much as the transaction itself. On PostgreSQL the
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
            Pool::Postgres { writer, .. } => {
                let conn = match writer.get().await {
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
/// on every row, which touches fewer pages per batch.
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
        publishes.push(WriteOp::Publish(PublishWrite::new(event, vec![delivery.clone()])));
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

    use diesel::sql_types::Integer;
    use diesel::SqliteConnection;
    use diesel_async::AsyncPgConnection;

    use super::sqlite::write_sqlite;
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
        conn.run_pending_migrations(crate::store::migrations::SQLITE_MIGRATIONS).unwrap();
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
    /// `sql_query` unsafe to cache, and tokio-postgres then prepared them on every batch). The
    /// publishes announce their deliveries to other servers' webhooks whole, and only when
    /// they write them.
    #[actix_rt::test]
    async fn postgres_prepares_each_statement_of_the_writer_once_per_connection() {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        use futures_util::StreamExt;

        use crate::store::cluster::Announcements;
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
        let mut listener = AsyncPgConnection::establish(&url).await.unwrap();
        listener.batch_execute("LISTEN hookbus_deliveries").await.unwrap();
        let (cached, instrumentation) = recording_cached_statements();
        conn.set_instrumentation(instrumentation);
        for (round, size) in [(1, 21), (2, 3), (3, 40)] {
            let (mut publishes, records) = publishes_then_records(size);
            // As if the webhook were owned by another server: the batch notifies it.
            for op in &mut publishes {
                if let WriteOp::Publish(publish) = op {
                    publish.owned_elsewhere = (0..publish.deliveries.len()).collect();
                }
            }
            assert!(write_postgres(&conn, &publishes).await.unwrap().iter().all(|o| *o == WriteOutcome::Published));
            assert!(write_postgres(&conn, &records).await.unwrap().iter().all(|o| *o == WriteOutcome::Recorded));
            let mut statements = cached.lock().unwrap().clone();
            statements.sort();
            assert_eq!(statements.len(), 2, "after round {round}: {statements:#?}");
            assert!(statements[0].starts_with("WITH current AS"), "{statements:#?}");
            assert!(statements[1].starts_with("WITH lost AS"), "{statements:#?}");
            // The publishes announced every delivery whole, with the commit.
            let (mut announced, mut carried) = (Announcements::default(), Vec::new());
            {
                let mut notifications = std::pin::pin!(listener.notifications_stream());
                while carried.len() < size {
                    let next = actix_rt::time::timeout(std::time::Duration::from_secs(5), notifications.next());
                    announced.add(&next.await.expect("announced").unwrap().unwrap().payload);
                    carried.extend(announced.carried_for(|_| true));
                }
            }
            let sent: Vec<_> = publishes
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Publish(p) => Some(p.deliveries[0].clone()),
                    WriteOp::Attempt(_) => None,
                })
                .collect();
            let carried: Vec<_> = carried.into_iter().map(|c| c.delivery).collect();
            assert_eq!(carried, sent, "round {round}");
            assert!(announced.notices.is_empty());
            // Published again: nothing is written, so nothing is announced.
            assert!(write_postgres(&conn, &publishes)
                .await
                .unwrap()
                .iter()
                .all(|o| *o == WriteOutcome::DuplicateEvent));
            let mut notifications = std::pin::pin!(listener.notifications_stream());
            let next = actix_rt::time::timeout(std::time::Duration::from_millis(300), notifications.next()).await;
            assert!(next.is_err(), "a duplicate was announced: {next:?}");
        }
        drop(conn);
        admin_conn.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    }
}
