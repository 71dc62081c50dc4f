//! The batched write path alone, without HTTP or actors: how long the writer's transactions
//! take per event and per attempt record, for the batch shapes the load scenarios produce.
//!
//! `cargo bench --bench store` (SQLite) or `cargo bench --bench store -- --postgres URL`.
//! Each shape writes `--events N` events (default 20,000) in batches of publishes, then one
//! attempt record per delivery in batches of records (as the writer does under load), one
//! batch at a time, and prints the wall time per event and per record. Each shape runs
//! `--rounds` times (default 3) on a fresh database; the table shows the median.
//! `--leased` writes as a server on a shared PostgreSQL does: each publish carries the
//! configuration version it was matched under, each record its webhook's lease epoch.

#[allow(dead_code)] // not every benchmark reads memory
mod common;

use std::time::{Duration, Instant};

use common::{drop_database, fresh_database, webhook};
use hookbus::domain::webhook::Webhook;
use hookbus::domain::{AttemptOutcome, DeliveryStatus, EventId, EventType, WorkspaceId};
use hookbus::store::{AttemptWrite, DatabaseUrl, DeliveryRecord, EventRecord, PublishWrite, Store, WriteOp};

struct Args {
    postgres: Option<String>,
    events: usize,
    rounds: usize,
    leased: bool,
}

fn args() -> Args {
    let mut args = Args { postgres: None, events: 20_000, rounds: 3, leased: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--postgres" => args.postgres = Some(value("--postgres")),
            "--events" => args.events = value("--events").parse().expect("--events N"),
            "--rounds" => args.rounds = value("--rounds").parse().expect("--rounds N"),
            "--leased" => args.leased = true,
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

/// A shape of load: events per publish batch, webhooks each event goes to.
struct Shape {
    name: &'static str,
    batch: usize,
    fan_out: usize,
    /// Runs `--events` ÷ this many events (a commit per event, or 100 deliveries per event).
    fewer: usize,
}

const SHAPES: &[Shape] = &[
    Shape { name: "1 webhook, batches of 48 (scenario a)", batch: 48, fan_out: 1, fewer: 1 },
    Shape { name: "1 webhook, batches of 1 (idle server)", batch: 1, fan_out: 1, fewer: 10 },
    Shape { name: "100 webhooks, batches of 8 events / 800 records (scenario b)", batch: 8, fan_out: 100, fewer: 10 },
];

fn publish(i: usize, hooks: &[Webhook]) -> PublishWrite {
    let event = EventRecord {
        workspace_id: WorkspaceId::DEFAULT,
        id: EventId::generate(),
        event: EventType::parse("event", "artifact.completed").unwrap(),
        data_json: format!(r#"{{"artifact_id":{i},"status":"ready","sent_us":1795723200000000}}"#),
        body_hash: "0".repeat(64),
        matched_webhooks: hooks.len() as u32,
        created_at: hookbus::domain::now(),
    };
    let deliveries = hooks.iter().map(|h| DeliveryRecord::new_pending(&event, h.id)).collect();
    PublishWrite::new(event, deliveries)
}

/// The record of a first attempt that succeeded with a 204.
fn succeeded(mut delivery: DeliveryRecord) -> AttemptWrite {
    delivery.attempt_count = 1;
    delivery.status = DeliveryStatus::Succeeded;
    delivery.status_code = Some(204);
    let outcome = AttemptOutcome::answered(204, String::new(), None, Duration::from_micros(300));
    let now = hookbus::domain::now();
    AttemptWrite::new(&delivery, now, &outcome, now)
}

/// Writes the shape once on a fresh store; returns (µs per event, µs per record).
async fn run(store: &Store, shape: &Shape, events: usize, leased: bool) -> (f64, f64) {
    let hooks: Vec<Webhook> = (0..shape.fan_out).map(|_| webhook("https://example.com/hook")).collect();
    for hook in &hooks {
        store.insert_webhook(hook).await.unwrap();
    }
    // Every webhook has its lease row from its creation on, at epoch 0.
    let (version, epoch) = if leased { (Some(store.config_version().await.unwrap()), Some(0)) } else { (None, None) };
    let mut publishes: Vec<PublishWrite> = (0..events).map(|i| publish(i, &hooks)).collect();
    publishes.iter_mut().for_each(|p| p.config_version = version);
    let records: Vec<WriteOp> = publishes
        .iter()
        .flat_map(|p| p.deliveries.iter().cloned())
        .map(|d| WriteOp::Attempt(AttemptWrite { epoch, ..succeeded(d) }))
        .collect();
    let publishes: Vec<WriteOp> = publishes.into_iter().map(WriteOp::Publish).collect();

    let started = Instant::now();
    for batch in publishes.chunks(shape.batch) {
        store.write_batch(batch.to_vec()).await.unwrap();
    }
    let per_event = started.elapsed().as_secs_f64() * 1e6 / events as f64;
    let started = Instant::now();
    for batch in records.chunks(shape.batch * shape.fan_out) {
        store.write_batch(batch.to_vec()).await.unwrap();
    }
    let per_record = started.elapsed().as_secs_f64() * 1e6 / records.len() as f64;
    (per_event, per_record)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = match (&args.postgres, args.leased) {
        (Some(_), true) => "PostgreSQL, leased",
        (Some(_), false) => "PostgreSQL",
        (None, _) => "SQLite",
    };
    println!("| shape ({backend}) | events | µs per event (publish batches) | µs per attempt record |");
    println!("|---|---|---|---|");
    for shape in SHAPES {
        let events = args.events / shape.fewer;
        let (mut per_event, mut per_record) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let url = fresh_database(dir.path(), args.postgres.as_deref(), &format!("store{round}"));
            let (event, record) = runtime.block_on(async {
                let store = Store::open(&DatabaseUrl::parse(&url), 4).await.unwrap();
                run(&store, shape, events, args.leased).await
            });
            drop_database(args.postgres.as_deref(), &url);
            per_event.push(event);
            per_record.push(record);
        }
        println!("| {} | {events} | {:.1} | {:.1} |", shape.name, median(per_event), median(per_record));
    }
}
