//! Memory under backlog: the real `hookbus` binary's peak RSS with
//! (1) 1,000,000 pending deliveries for a dead endpoint, and (2) 10,000 registered webhooks.
//!
//! ```sh
//! cargo bench --bench memory                       # both scenarios, SQLite
//! cargo bench --bench memory -- --pending 200000   # a smaller backlog
//! cargo bench --bench memory -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! ```
//! The database is filled directly through the store (fast), then the server is started on
//! it and its RSS sampled from /proc for `--seconds` (default 15).

#[allow(dead_code)] // not every benchmark reads CPU time
mod common;

use common::{drop_database, fresh_database, rss_kib, webhook};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookbus::domain::webhook::Webhook;
use hookbus::domain::{EventId, EventType, WorkspaceId};
use hookbus::store::{DatabaseUrl, DeliveryRecord, EventRecord, PublishWrite, Store, WriteOp};

struct Args {
    pending: usize,
    webhooks: usize,
    seconds: u64,
    postgres: Option<String>,
}

fn args() -> Args {
    let mut args = Args { pending: 1_000_000, webhooks: 10_000, seconds: 15, postgres: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--pending" => args.pending = it.next().and_then(|v| v.parse().ok()).expect("--pending N"),
            "--webhooks" => args.webhooks = it.next().and_then(|v| v.parse().ok()).expect("--webhooks N"),
            "--seconds" => args.seconds = it.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--postgres" => args.postgres = it.next(),
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

fn dead_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}/hook")
}

async fn fill_pending(store: &Store, hook: &Webhook, n: usize) {
    let started = Instant::now();
    let mut written = 0;
    while written < n {
        let ops: Vec<WriteOp> = (written..(written + 5_000).min(n))
            .map(|i| {
                let event = EventRecord {
                    workspace_id: WorkspaceId::DEFAULT,
                    id: EventId::parse("id", &format!("bench-{i}")).unwrap(),
                    event: EventType::parse("event", "artifact.completed").unwrap(),
                    data_json: format!(r#"{{"artifact_id":{i},"status":"ready"}}"#),
                    body_hash: String::new(),
                    matched_webhooks: 1,
                    created_at: hookbus::domain::now(),
                };
                let delivery = DeliveryRecord::new_pending(&event, hook.id);
                WriteOp::Publish(PublishWrite::new(event, vec![delivery]))
            })
            .collect();
        written += ops.len();
        store.write_batch(ops).await.unwrap();
    }
    eprintln!("  wrote {n} events + pending deliveries in {:.1?}", started.elapsed());
}

/// Starts the server on `database_url`, samples its RSS, stops it; returns (last, peak) in MiB.
fn measure(database_url: &str, data_dir: &std::path::Path, seconds: u64) -> (f64, f64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_hookbus"))
        .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}"), "--database-url", database_url])
        .arg("--data-dir")
        .arg(data_dir)
        .env("HOOKBUS_ADMIN_TOKEN", "bench-admin-token-0123456789")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the hookbus binary starts");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut last = (0, 0);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        last = rss_kib(child.id());
    }
    // Show that the server really holds the backlog: pending count and circuit state.
    let health = Command::new("curl")
        .args(["-s", "-H", "Authorization: Bearer bench-admin-token-0123456789"])
        .arg(format!("http://127.0.0.1:{port}/api/v1/health"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let health: serde_json::Value = serde_json::from_str(&health).unwrap_or_default();
    eprintln!(
        "  server: {} webhooks, {} pending, first circuit {}",
        health["webhooks"].as_array().map_or(0, Vec::len),
        health["totals"]["pending"],
        health["webhooks"][0]["circuit"]
    );
    let _ = child.kill();
    let _ = child.wait();
    (last.0 as f64 / 1024.0, last.1 as f64 / 1024.0)
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = if args.postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    let mut rows = Vec::new();

    if args.pending > 0 {
        eprintln!("scenario 1: {} pending deliveries for a dead endpoint ({backend})", args.pending);
        let url = fresh_database(dir.path(), args.postgres.as_deref(), "pending");
        let hook = webhook(&dead_url());
        runtime.block_on(async {
            let store = Store::open(&DatabaseUrl::parse(&url), 4).await.unwrap();
            store.insert_webhook(&hook).await.unwrap();
            fill_pending(&store, &hook, args.pending).await;
        });
        let (now, peak) = measure(&url, dir.path(), args.seconds);
        drop_database(args.postgres.as_deref(), &url);
        rows.push((format!("{} pending deliveries, dead endpoint", args.pending), now, peak, 150.0));
    }
    if args.webhooks > 0 {
        eprintln!("scenario 2: {} registered webhooks ({backend})", args.webhooks);
        let url = fresh_database(dir.path(), args.postgres.as_deref(), "webhooks");
        runtime.block_on(async {
            let store = Store::open(&DatabaseUrl::parse(&url), 4).await.unwrap();
            let started = Instant::now();
            for _ in 0..args.webhooks {
                store.insert_webhook(&webhook("https://example.com/hook")).await.unwrap();
            }
            eprintln!("  registered {} webhooks in {:.1?}", args.webhooks, started.elapsed());
        });
        let (now, peak) = measure(&url, dir.path(), args.seconds);
        drop_database(args.postgres.as_deref(), &url);
        rows.push((format!("{} registered webhooks", args.webhooks), now, peak, 100.0));
    }

    println!("\n| scenario ({backend}) | RSS after {} s | peak RSS | target |", args.seconds);
    println!("|---|---|---|---|");
    for (name, now, peak, target) in rows {
        let verdict = if peak < target { "met" } else { "MISSED" };
        println!("| {name} | {now:.1} MiB | {peak:.1} MiB | < {target} MiB: {verdict} |");
    }
}
