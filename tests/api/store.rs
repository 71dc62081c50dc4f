//! The store's own suite: the same cases against SQLite and PostgreSQL.

use chrono::Utc;
use hookbus::domain::url::UrlPolicy;
use hookbus::domain::webhook::{Webhook, WebhookInput};
use hookbus::domain::{DeliveryStatus, EventId, EventType, WorkspaceId};
use hookbus::store::{
    AttemptRecord, AttemptWrite, DatabaseUrl, DeliveryRecord, DeliveryUpdate, EventRecord, PublishWrite, Store,
    WriteOp, WriteOutcome,
};

use crate::backend_test;
use crate::helpers::*;

async fn open(db: &TestDb) -> Store {
    Store::open(&DatabaseUrl::parse(&db.url), 2).await.expect("the store opens and migrates")
}

fn webhook() -> Webhook {
    let input = WebhookInput {
        url: Some("https://example.com/hook".into()),
        events: Some(vec!["artifact.*".into()]),
        ..Default::default()
    };
    Webhook::create(WorkspaceId::DEFAULT, input, UrlPolicy::default(), hookbus::domain::now()).unwrap()
}

fn event(id: &str, data: &str) -> EventRecord {
    EventRecord {
        workspace_id: WorkspaceId::DEFAULT,
        id: EventId::parse("id", id).unwrap(),
        event: EventType::parse("event", "artifact.completed").unwrap(),
        data_json: data.to_owned(),
        body_hash: format!("hash-{data}"),
        matched_webhooks: 1,
        created_at: hookbus::domain::now(),
    }
}

fn publish(event: &EventRecord, webhook: &Webhook, n: usize) -> WriteOp {
    let deliveries = (0..n).map(|_| DeliveryRecord::new_pending(event, webhook.id)).collect();
    WriteOp::Publish(PublishWrite::new(event.clone(), deliveries))
}

/// The record of attempt `n` of `d`, leaving it in `status`.
fn attempt_write(d: &DeliveryRecord, n: u32, status: DeliveryStatus, code: u16) -> WriteOp {
    WriteOp::Attempt(AttemptWrite {
        attempt: AttemptRecord {
            delivery_id: d.id,
            workspace_id: d.workspace_id,
            attempt: n,
            started_at: hookbus::domain::now(),
            duration_ms: 12,
            status_code: Some(code),
            error_message: None,
            response_body: Some("ok".into()),
        },
        delivery: DeliveryUpdate {
            id: d.id,
            status,
            attempt_count: n,
            retries_used: 0,
            next_attempt_at: None,
            status_code: Some(code),
            error_message: None,
            response_body: Some("ok".into()),
            duration_ms: Some(12),
            completed_at: (status != DeliveryStatus::Pending).then(hookbus::domain::now),
            failure_reason: (status == DeliveryStatus::Failed).then(|| "retries exhausted".to_owned()),
        },
        webhook_id: d.webhook_id,
        epoch: None,
    })
}

backend_test!(migrations_run_twice_and_the_default_workspace_exists, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    drop(store);
    let store = open(&db).await;
    assert!(store.workspace_exists(WorkspaceId::DEFAULT).await.unwrap());
    assert!(!store.workspace_exists(hookbus::domain::ids::WorkspaceId::generate()).await.unwrap());
    assert!(store.ping().await.is_ok());
});

backend_test!(webhooks_round_trip_through_the_store, |backend| async move {
    let db = TestDb::new(backend).await;
    let mut store = open(&db).await;
    // Secrets are sealed at rest: both the secret and, during a rotation, the previous one
    // come back as they went in (a restart in a rotation once signed with the sealed form).
    let key = hookbus::store::cipher::MasterKey::from_base64(&base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [7u8; 32],
    ))
    .unwrap();
    store.use_master_key(&key).await.unwrap();
    let mut hook = webhook();
    hook.headers.insert("X-Tenant".into(), "acme".into());
    hook.settings.rate_limit_per_sec = Some(9);
    store.insert_webhook(&hook).await.unwrap();
    assert_eq!(store.load_webhooks().await.unwrap(), vec![hook.clone()]);
    hook.name = "renamed".into();
    hook.rotate_secret(
        hookbus::domain::WebhookSecret::generate(),
        std::time::Duration::from_secs(60),
        hookbus::domain::now(),
    );
    store.update_webhook(&hook).await.unwrap();
    assert_eq!(store.load_webhooks().await.unwrap(), vec![hook.clone()]);
    store.delete_webhook(hook.id, Utc::now()).await.unwrap();
    assert!(store.load_webhooks().await.unwrap().is_empty());
});

backend_test!(a_batch_commits_events_and_deliveries_and_detects_reused_ids, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    store.insert_webhook(&hook).await.unwrap();
    let first = event("e1", "{}");
    let outcomes = store
        .write_batch(vec![
            publish(&first, &hook, 1),
            publish(&event("e2", "{}"), &hook, 2),
            publish(&event("e1", "{\"x\":1}"), &hook, 1),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, [WriteOutcome::Published, WriteOutcome::Published, WriteOutcome::DuplicateEvent]);
    let (rows, _) = store.list_deliveries(WorkspaceId::DEFAULT, hook.id, None, None, 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    let stored = store.find_event(WorkspaceId::DEFAULT, &first.id).await.unwrap().unwrap();
    assert_eq!(stored.body_hash, first.body_hash);
    assert_eq!(stored.created_at, first.created_at);

    // An id from an earlier batch is a duplicate too, and brings no deliveries.
    let outcomes = store
        .write_batch(vec![publish(&event("e2", "{}"), &hook, 5), publish(&event("e3", "{}"), &hook, 1)])
        .await
        .unwrap();
    assert_eq!(outcomes, [WriteOutcome::DuplicateEvent, WriteOutcome::Published]);
    let (rows, _) = store.list_deliveries(WorkspaceId::DEFAULT, hook.id, None, None, 10).await.unwrap();
    assert_eq!(rows.len(), 4);
});

backend_test!(pending_deliveries_page_in_id_order_after_a_cursor, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    let ev = event("e", r#"{"k":"v"}"#);
    store.write_batch(vec![publish(&ev, &hook, 5)]).await.unwrap();
    let first = store.pending_page(hook.id, None, 2).await.unwrap();
    let second = store.pending_page(hook.id, Some(first[1].delivery.id), 10).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(second.len(), 3);
    let ids: Vec<_> = first.iter().chain(&second).map(|p| p.delivery.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(&*first[0].data_json, r#"{"k":"v"}"#);
    assert_eq!(first[0].event_created_at, ev.created_at);
});

/// Several servers: a record of an attempt made under a lease that another server has
/// claimed since (a newer epoch) is kept in the history but leaves the delivery to the new
/// owner, even when the two attempts carry the same number.
#[actix_web::test]
async fn a_record_under_a_lost_lease_never_changes_the_delivery() {
    if postgres_url().is_none() {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let store = open(&db).await;
    let hook = webhook();
    store.insert_webhook(&hook).await.unwrap();
    let ev = event("fenced", "{}");
    let op = publish(&ev, &hook, 1);
    let WriteOp::Publish(write) = &op else { unreachable!() };
    let d = write.deliveries[0].clone();
    store.write_batch(vec![op]).await.unwrap();
    let a = store.claim_leases("server-a", std::time::Duration::from_secs(10), 10).await.unwrap();
    assert_eq!(a.len(), 1);
    // A's lease runs out; B claims the webhook (a newer epoch).
    store.release_leases("server-a", &[]).await.unwrap();
    diesel_run(&db.url, "UPDATE webhook_leases SET expires_at = 0").await;
    let b = store.claim_leases("server-b", std::time::Duration::from_secs(10), 10).await.unwrap();
    assert_eq!(b[0].epoch, a[0].epoch + 1);
    let under = |epoch: i64, status: DeliveryStatus, code: u16| {
        let WriteOp::Attempt(mut write) = attempt_write(&d, 1, status, code) else { unreachable!() };
        write.epoch = Some(epoch);
        WriteOp::Attempt(write)
    };
    // A's late record (a 500 that would leave it pending), then B's success: B's stands.
    store.write_batch(vec![under(a[0].epoch, DeliveryStatus::Pending, 500)]).await.unwrap();
    let (detail, attempts) = store.get_delivery(WorkspaceId::DEFAULT, d.id).await.unwrap().unwrap();
    assert_eq!((detail.delivery.status, detail.delivery.attempt_count), (DeliveryStatus::Pending, 0));
    assert_eq!(attempts.len(), 1, "A's attempt is in the history");
    std::thread::sleep(std::time::Duration::from_millis(2));
    store.write_batch(vec![under(b[0].epoch, DeliveryStatus::Succeeded, 200)]).await.unwrap();
    // And A's record arriving again after B's changes nothing either. (Started in another
    // millisecond than B's: a record with the row's own number and start is taken for that
    // very attempt written twice.)
    std::thread::sleep(std::time::Duration::from_millis(2));
    store.write_batch(vec![under(a[0].epoch, DeliveryStatus::Failed, 500)]).await.unwrap();
    let (detail, attempts) = store.get_delivery(WorkspaceId::DEFAULT, d.id).await.unwrap().unwrap();
    assert_eq!(detail.delivery.status, DeliveryStatus::Succeeded);
    assert_eq!(detail.delivery.status_code, Some(200));
    let codes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.status_code)).collect();
    assert_eq!(codes.len(), 3, "both of A's attempts and B's are kept: {codes:?}");
    assert!(codes.contains(&(1, Some(200))) && codes.contains(&(1, Some(500))), "{codes:?}");
}

/// One statement on the test database.
async fn diesel_run(url: &str, sql: &str) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    conn.batch_execute(sql).await.unwrap();
}

backend_test!(a_late_success_on_a_cancelled_delivery_is_the_truth, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    let ev = event("e", "{}");
    let op = publish(&ev, &hook, 2);
    let WriteOp::Publish(write) = &op else { unreachable!() };
    let (a, b) = (write.deliveries[0].clone(), write.deliveries[1].clone());
    store.write_batch(vec![op]).await.unwrap();
    let attempt = |d: &DeliveryRecord, status: DeliveryStatus| attempt_write(d, 1, status, 200);
    // Writing the same attempt twice (a retried batch) is harmless.
    store
        .write_batch(vec![attempt(&a, DeliveryStatus::Succeeded), attempt(&a, DeliveryStatus::Succeeded)])
        .await
        .unwrap();
    let (detail, attempts) = store.get_delivery(WorkspaceId::DEFAULT, a.id).await.unwrap().unwrap();
    assert_eq!(detail.delivery.status, DeliveryStatus::Succeeded);
    assert_eq!(detail.delivery.attempt_count, 1);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].response_body.as_deref(), Some("ok"));

    // The webhook was deleted while b's attempt was in flight, and the receiver took it:
    // the delivery says it succeeded, with that attempt.
    store.delete_webhook(hook.id, Utc::now()).await.unwrap();
    let (cancelled, _) = store.get_delivery(WorkspaceId::DEFAULT, b.id).await.unwrap().unwrap();
    assert_eq!(cancelled.delivery.failure_reason.as_deref(), Some("webhook deleted"));
    store.write_batch(vec![attempt(&b, DeliveryStatus::Succeeded)]).await.unwrap();
    let (detail, attempts) = store.get_delivery(WorkspaceId::DEFAULT, b.id).await.unwrap().unwrap();
    assert_eq!(detail.delivery.status, DeliveryStatus::Succeeded);
    assert_eq!((detail.delivery.attempt_count, attempts.len()), (1, 1));
    assert_eq!(detail.delivery.failure_reason, None);
});

/// The record of attempt `n` of `d` that failed with `error` at `started_at`, leaving it pending.
fn failed_attempt(d: &DeliveryRecord, n: u32, error: &str, started_at: chrono::DateTime<Utc>) -> WriteOp {
    let WriteOp::Attempt(mut write) = attempt_write(d, n, DeliveryStatus::Pending, 500) else { unreachable!() };
    write.attempt.started_at = started_at;
    write.attempt.error_message = Some(error.to_owned());
    write.delivery.error_message = Some(error.to_owned());
    WriteOp::Attempt(write)
}

// A delivery row holds its latest attempt and the `attempts` table the earlier ones; readers
// see one history either way, whatever order batches, cancellations and retries come in.
backend_test!(every_attempt_is_kept_whether_its_delivery_row_or_the_attempts_table_holds_it, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let (hook, other) = (webhook(), webhook());
    store.insert_webhook(&hook).await.unwrap();
    store.insert_webhook(&other).await.unwrap();
    let deliveries = |op: &WriteOp| match op {
        WriteOp::Publish(write) => write.deliveries.clone(),
        WriteOp::Attempt(_) => unreachable!(),
    };
    let (first, second) = (publish(&event("e1", "{}"), &hook, 2), publish(&event("e2", "{}"), &other, 1));
    let ([retried, cancelled], [disabled]) =
        (deliveries(&first).try_into().unwrap(), deliveries(&second).try_into().unwrap());
    store.write_batch(vec![first, second]).await.unwrap();
    let at = |seconds: i64| chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap();
    let history = |id| {
        let store = store.clone();
        async move {
            let (detail, attempts) = store.get_delivery(WorkspaceId::DEFAULT, id).await.unwrap().unwrap();
            let attempts: Vec<_> = attempts
                .into_iter()
                .map(|a| (a.attempt, a.started_at, a.status_code, a.error_message.unwrap_or_default()))
                .collect();
            (detail.delivery, attempts)
        }
    };

    // Two failures, then a success, each in its own batch; then the second failure's batch
    // again, as after a lost answer. The history keeps each attempt's own outcome.
    store.write_batch(vec![failed_attempt(&retried, 1, "refused", at(1))]).await.unwrap();
    store.write_batch(vec![failed_attempt(&retried, 2, "timed out", at(2))]).await.unwrap();
    store.write_batch(vec![attempt_write(&retried, 3, DeliveryStatus::Succeeded, 200)]).await.unwrap();
    store.write_batch(vec![failed_attempt(&retried, 2, "timed out", at(2))]).await.unwrap();
    let (delivery, attempts) = history(retried.id).await;
    assert_eq!(
        (delivery.status, delivery.attempt_count, delivery.status_code),
        (DeliveryStatus::Succeeded, 3, Some(200))
    );
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts[0], (1, at(1), Some(500), "refused".into()));
    assert_eq!(attempts[1], (2, at(2), Some(500), "timed out".into()));
    assert_eq!((attempts[2].0, attempts[2].2), (3, Some(200)));

    // An attempt that ends after its delivery was cancelled is kept and is the delivery's
    // latest: the count and the outcome follow the attempts, the status and why it ended stay.
    store.write_batch(vec![failed_attempt(&cancelled, 1, "refused", at(1))]).await.unwrap();
    store.delete_webhook(hook.id, Utc::now()).await.unwrap();
    store.write_batch(vec![failed_attempt(&cancelled, 2, "reset", at(2))]).await.unwrap();
    let (delivery, attempts) = history(cancelled.id).await;
    assert_eq!((delivery.status, delivery.attempt_count), (DeliveryStatus::Cancelled, 2));
    assert_eq!(delivery.error_message.as_deref(), Some("reset"));
    assert_eq!(delivery.failure_reason.as_deref(), Some("webhook deleted"));
    assert_eq!(attempts, [(1, at(1), Some(500), "refused".into()), (2, at(2), Some(500), "reset".into())]);

    // Failing a disabled webhook's deliveries gives the reason a field of its own; the
    // delivery keeps its latest attempt's outcome.
    store.write_batch(vec![failed_attempt(&disabled, 1, "refused", at(1))]).await.unwrap();
    assert_eq!(
        store.fail_pending_deliveries(other.id, "webhook disabled (manual)", None, Utc::now()).await.unwrap(),
        1
    );
    let (delivery, attempts) = history(disabled.id).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.failure_reason.as_deref(), Some("webhook disabled (manual)"));
    assert_eq!((delivery.attempt_count, delivery.error_message.as_deref()), (1, Some("refused")));
    assert_eq!(attempts, [(1, at(1), Some(500), "refused".into())]);

    // Three attempts, two, and one: counted once each.
    assert_eq!(store.workspace_totals(WorkspaceId::DEFAULT).await.unwrap().attempts, 6);
});

// Retention removes finished deliveries and then the events none refers to any more; an
// event with a pending delivery stays, and so does every event while old finished
// deliveries remain (a full batch), so no delivery is ever left without its event.
backend_test!(retention_removes_an_event_only_once_no_delivery_refers_to_it, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    store.insert_webhook(&hook).await.unwrap();
    let hour_ago = hookbus::domain::now() - chrono::Duration::hours(1);
    let old = |id: &str| EventRecord { created_at: hour_ago, ..event(id, "{}") };
    let (done, waiting, both) = (old("done"), old("waiting"), old("both"));
    let ops = vec![publish(&done, &hook, 1), publish(&waiting, &hook, 1), publish(&both, &hook, 2)];
    let delivered: Vec<DeliveryRecord> = [&ops[0], &ops[2]]
        .into_iter()
        .flat_map(|op| match op {
            WriteOp::Publish(p) => p.deliveries.clone(),
            WriteOp::Attempt(_) => unreachable!(),
        })
        .collect();
    let WriteOp::Publish(pending) = &ops[1] else { unreachable!() };
    let pending = pending.deliveries[0].clone();
    store.write_batch(ops).await.unwrap();
    let records = delivered.iter().map(|d| attempt_write(d, 1, DeliveryStatus::Succeeded, 200)).collect::<Vec<_>>();
    store.write_batch(records).await.unwrap();
    let exists = |event: &EventRecord| {
        let (store, id) = (store.clone(), event.id.clone());
        async move { store.find_event(WorkspaceId::DEFAULT, &id).await.unwrap().is_some() }
    };

    let cutoff = hookbus::domain::now();
    // A full batch: two of the three finished deliveries, no event.
    assert_eq!(store.purge_batch(cutoff, 2).await.unwrap(), 2);
    assert!(exists(&done).await && exists(&both).await && exists(&waiting).await);
    // The last finished delivery, then the two events left without deliveries.
    assert_eq!(store.purge_batch(cutoff, 2).await.unwrap(), 3);
    assert_eq!(store.purge_batch(cutoff, 2).await.unwrap(), 0);
    assert!(!exists(&done).await && !exists(&both).await);
    assert!(exists(&waiting).await, "an event with a pending delivery stays");
    let (kept, _) = store.get_delivery(WorkspaceId::DEFAULT, pending.id).await.unwrap().expect("pending stays");
    assert_eq!(kept.delivery.status, DeliveryStatus::Pending);
    // Events and deliveries newer than the cutoff are not touched.
    assert_eq!(store.purge_batch(hour_ago, 10).await.unwrap(), 0);
});

// SQLite inserts rows through statements of a few fixed sizes (256, 64, 16, 4, 1 rows): a
// batch of 347 goes through every size, with a reused id in a later statement than its first.
backend_test!(a_large_batch_goes_through_every_statement_size, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    store.insert_webhook(&hook).await.unwrap();
    let mut ops: Vec<WriteOp> = (0..346).map(|i| publish(&event(&format!("e{i}"), "{}"), &hook, 1)).collect();
    ops.push(publish(&event("e3", "{}"), &hook, 1));
    let outcomes = store.write_batch(ops.clone()).await.unwrap();
    assert!(outcomes[..346].iter().all(|o| *o == WriteOutcome::Published));
    assert_eq!(outcomes[346], WriteOutcome::DuplicateEvent);
    assert_eq!(store.pending_page(hook.id, None, 1000).await.unwrap().len(), 346);

    // Attempt results of one batch apply in order: the later attempt of a delivery wins.
    let deliveries: Vec<DeliveryRecord> = ops[..346]
        .iter()
        .map(|op| match op {
            WriteOp::Publish(p) => p.deliveries[0].clone(),
            WriteOp::Attempt(_) => unreachable!(),
        })
        .collect();
    let mut records: Vec<WriteOp> =
        deliveries.iter().map(|d| attempt_write(d, 1, DeliveryStatus::Pending, 500)).collect();
    records.push(attempt_write(&deliveries[7], 2, DeliveryStatus::Succeeded, 200));
    records.push(attempt_write(&deliveries[9], 1, DeliveryStatus::Pending, 500));
    store.write_batch(records).await.unwrap();
    assert_eq!(store.pending_page(hook.id, None, 1000).await.unwrap().len(), 345);
    let (seventh, attempts) = store.get_delivery(WorkspaceId::DEFAULT, deliveries[7].id).await.unwrap().unwrap();
    assert_eq!((seventh.delivery.status, seventh.delivery.attempt_count), (DeliveryStatus::Succeeded, 2));
    assert_eq!(attempts.len(), 2);
    let (ninth, attempts) = store.get_delivery(WorkspaceId::DEFAULT, deliveries[9].id).await.unwrap().unwrap();
    assert_eq!((ninth.delivery.status, ninth.delivery.attempt_count), (DeliveryStatus::Pending, 1));
    assert_eq!(attempts.len(), 1);
});

backend_test!(delivery_lists_filter_by_status_and_paginate, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    store.write_batch(vec![publish(&event("e", "{}"), &hook, 5)]).await.unwrap();
    let (page, cursor) = store.list_deliveries(WorkspaceId::DEFAULT, hook.id, None, None, 3).await.unwrap();
    assert_eq!(page.len(), 3);
    assert!(page[0].id > page[1].id, "newest first");
    let (rest, end) = store
        .list_deliveries(WorkspaceId::DEFAULT, hook.id, None, Some(cursor.unwrap().parse().unwrap()), 3)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert!(end.is_none());
    let (failed, _) =
        store.list_deliveries(WorkspaceId::DEFAULT, hook.id, Some(DeliveryStatus::Failed), None, 10).await.unwrap();
    assert!(failed.is_empty());
    let other = WorkspaceId::generate();
    assert!(store.list_deliveries(other, hook.id, None, None, 10).await.unwrap().0.is_empty());
});

#[actix_web::test]
async fn sqlite_runs_in_wal_mode() {
    let db = TestDb::new(Backend::Sqlite).await;
    open(&db).await;
    let path = db.url.trim_start_matches("sqlite://").to_owned();
    // WAL leaves its -wal/-shm files beside the database and records the mode in the header.
    let header = std::fs::read(&path).unwrap();
    assert_eq!(header[18], 2, "file format write version 2 means WAL");
}

backend_test!(totals_never_count_a_settled_delivery_without_its_attempt, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    let publishes: Vec<WriteOp> = (0..40).map(|i| publish(&event(&format!("e{i}"), "{}"), &hook, 50)).collect();
    store.write_batch(publishes.clone()).await.unwrap();
    let deliveries: Vec<DeliveryRecord> = publishes
        .iter()
        .flat_map(|op| match op {
            WriteOp::Publish(p) => p.deliveries.clone(),
            WriteOp::Attempt(_) => unreachable!(),
        })
        .collect();
    // Attempt records commit in small batches while the totals are read again and again.
    let writing = async {
        for chunk in deliveries.chunks(10) {
            let records = chunk.iter().map(|d| attempt_write(d, 1, DeliveryStatus::Succeeded, 200)).collect::<Vec<_>>();
            store.write_batch(records).await.unwrap();
        }
    };
    let reading = async {
        let mut reads = 0;
        loop {
            let totals = store.workspace_totals(WorkspaceId::DEFAULT).await.unwrap();
            let settled: u64 =
                totals.deliveries.iter().filter(|c| c.status != DeliveryStatus::Pending).map(|c| c.count).sum();
            assert!(
                totals.attempts >= settled,
                "read {reads}: {settled} settled deliveries but {} attempts",
                totals.attempts
            );
            reads += 1;
            if settled == deliveries.len() as u64 {
                return reads;
            }
        }
    };
    let ((), reads) = futures_util::future::join(writing, reading).await;
    assert!(reads > 1, "the totals were read while records were being written");
});

/// Every text column in a PostgreSQL index compares byte by byte (collation "C"), as on
/// SQLite: under the database's own collation each B-tree comparison of an id went through
/// the locale's `strcoll` (BENCHMARKS.md, tenth round).
#[actix_web::test]
async fn postgres_indexes_compare_text_bytewise() {
    use diesel::sql_types::Text;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    #[derive(diesel::QueryableByName, Debug)]
    struct IndexedColumn {
        #[diesel(sql_type = Text)]
        index: String,
        #[diesel(sql_type = Text)]
        column: String,
        #[diesel(sql_type = Text)]
        collation: String,
    }

    if postgres_url().is_none() {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    open(&db).await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let columns: Vec<IndexedColumn> = diesel::sql_query(
        "SELECT ix.relname::text AS index, a.attname::text AS column, coll.collname::text AS collation
         FROM pg_index i
         JOIN pg_class ix ON ix.oid = i.indexrelid
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (i.indkey)
         JOIN pg_collation coll ON coll.oid = a.attcollation
         WHERE n.nspname = 'public' AND a.atttypid = 'text'::regtype
           AND t.relname NOT LIKE '\\_\\_diesel%'
         ORDER BY 1, 2",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let index_names: Vec<&str> = columns.iter().map(|c| c.index.as_str()).collect();
    for index in ["deliveries_pkey", "deliveries_by_webhook_id", "deliveries_unsettled", "attempts_pkey", "events_pkey"]
    {
        assert!(index_names.contains(&index), "{index} is found among {columns:#?}");
    }
    let not_bytewise: Vec<String> = columns
        .iter()
        .filter(|c| c.collation != "C")
        .map(|c| format!("{}.{} ({})", c.index, c.column, c.collation))
        .collect();
    assert!(not_bytewise.is_empty(), "indexed text columns under a locale's collation: {not_bytewise:#?}");
}
