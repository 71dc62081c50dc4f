//! Several servers on one PostgreSQL database (SPEC §9): the real `hookbus` release binary
//! started 1, 2 and 3 times on a fresh database, 100 webhooks, events published through
//! every server in turn (each to one webhook, so most reach a webhook owned by another server
//! than the one that took them), a fast receiver on this machine.
//!
//! ```sh
//! cargo bench --bench cluster -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench cluster -- --postgres … --servers 1,2 --rounds 3 --events 100000
//! ```
//! Per run: deliveries/s (from the first publish to the last delivery), publish → delivery
//! p50/p99, split by whether the event was published through the webhook's owner; the
//! database's cost per delivery (transactions, rows written, WAL bytes); and what the
//! servers cost the database when idle (heartbeats and lease renewals). The configurations
//! alternate (1, 2, 3, 1, 2, 3, …); each row is a configuration's median run. Last, with
//! the largest configuration: how long after a SIGKILL every webhook has a live owner again.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::{cpu_seconds, cpu_seconds_named, drop_database, fresh_database, rss_kib};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Several servers on one PostgreSQL (see the module's documentation).
#[derive(clap::Parser)]
struct Args {
    /// PostgreSQL admin URL; a database is created per run.
    #[arg(long, value_name = "URL")]
    postgres: String,
    /// Server counts to compare, comma-separated.
    #[arg(long, default_value = "1,2,3")]
    servers: String,
    /// Runs per server count (alternated).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Events per run (one delivery each). Runs of a few seconds measure the machine's
    /// drift as much as the servers; 100,000 take 7–10 s each.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    #[arg(long, default_value_t = 100)]
    webhooks: usize,
    /// Publishers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Publish each event through its webhook's owner (as a load balancer that knew the
    /// owners would): what several servers cost without announcing deliveries to each other.
    #[arg(long)]
    through_owner: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 2).unwrap()
}

/// What the receiver saw: first attempts' publish → delivery latency, split by whether the
/// event went through the webhook's owner.
struct Tally {
    received: AtomicU64,
    last_at_us: AtomicU64,
    /// Owner server index of each webhook (index = the `/hook/{n}` path).
    owners: Mutex<Vec<usize>>,
    through_owner: Mutex<Histogram<u64>>,
    elsewhere: Mutex<Histogram<u64>>,
}

async fn receive(request: HttpRequest, body: web::Bytes, tally: web::Data<Arc<Tally>>) -> HttpResponse {
    let now = unix_us();
    let n: usize = request.match_info().get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    if request.headers().get("x-webhook-attempt").is_none_or(|v| v == "1") {
        if let Ok(body) = serde_json::from_slice::<Value>(&body) {
            let (sent, via) = (body["data"]["sent_us"].as_u64().unwrap_or(now), body["data"]["via"].as_u64());
            let latency = now.saturating_sub(sent).max(1);
            let owner = tally.owners.lock().unwrap().get(n).copied();
            let histogram = if via.map(|v| v as usize) == owner { &tally.through_owner } else { &tally.elsewhere };
            let _ = histogram.lock().unwrap().record(latency);
        }
    }
    tally.last_at_us.fetch_max(now, Ordering::Relaxed);
    tally.received.fetch_add(1, Ordering::Relaxed);
    HttpResponse::NoContent().finish()
}

struct Receiver {
    port: u16,
    tally: Arc<Tally>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start() -> Self {
        let tally = Arc::new(Tally {
            received: AtomicU64::new(0),
            last_at_us: AtomicU64::new(0),
            owners: Mutex::new(Vec::new()),
            through_owner: Mutex::new(histogram()),
            elsewhere: Mutex::new(histogram()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = tally.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new().app_data(web::Data::new(shared.clone())).route("/hook/{n}", web::post().to(receive))
                })
                .workers(2)
                .backlog(4096)
                .bind(("127.0.0.1", 0))
                .unwrap();
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).unwrap();
                let _ = server.await;
            })
        });
        let (port, handle) = rx.recv().unwrap();
        Self { port, tally, handle }
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    async fn start(database_url: &str, dir: &Path, name: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let binary = std::env::var_os("LOADGEN_HOOKBUS_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hookbus").into());
        let child = Command::new(binary)
            .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}"), "--database-url", database_url])
            .args(["--server-name", name, "--data-dir"])
            .arg(dir.join(name))
            .env("HOOKBUS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HOOKBUS_MASTER_KEY", MASTER_KEY)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
            .spawn()
            .expect("the hookbus binary starts");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.get("/health").await.is_none() {
            assert!(Instant::now() < deadline, "hookbus did not start");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let mut response = awc::Client::default()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        response.status().is_success().then_some(())?;
        serde_json::from_slice(&response.body().limit(1 << 24).await.ok()?).ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every webhook has a live owner and `servers` servers are live; returns each
/// webhook's owner as an index into `servers` (by name), in `/hook/{n}` order.
async fn settled(via: &Server, servers: usize, webhooks: &[String], within: Duration) -> Option<Vec<usize>> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(dashboard) = via.get("/api/v1/health").await {
            let names: Vec<(String, usize)> = dashboard["servers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let index = s["name"].as_str()?.strip_prefix("bench-")?.parse().ok()?;
                    Some((s["id"].as_str()?.to_owned(), index))
                })
                .collect();
            let owner_of = |id: &str| -> Option<usize> {
                let webhook = dashboard["webhooks"].as_array()?.iter().find(|w| w["id"] == id)?;
                let owner = webhook["owner"].as_str()?;
                names.iter().find(|(id, _)| id == owner).map(|(_, i)| *i)
            };
            let owners: Option<Vec<usize>> = webhooks.iter().map(|id| owner_of(id)).collect();
            if names.len() == servers {
                if let Some(owners) = owners {
                    return Some(owners);
                }
            }
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The database's counters, to difference around a run.
#[derive(Clone, Copy, Default)]
struct DbCounters {
    transactions: i64,
    rows_written: i64,
    wal_bytes: i64,
}

fn db_counters(admin: &str, database: &str) -> DbCounters {
    let sql = format!(
        "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted, \
         pg_current_wal_lsn() - '0/0' FROM pg_stat_database WHERE datname = '{database}'"
    );
    let out = Command::new("psql").arg(admin).args(["-XAtqc", &sql]).output().expect("psql runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<i64> =
        text.trim().split('|').filter_map(|f| f.trim().parse::<f64>().ok().map(|v| v as i64)).collect();
    match fields[..] {
        [transactions, rows_written, wal_bytes] => DbCounters { transactions, rows_written, wal_bytes },
        _ => DbCounters::default(),
    }
}

struct Run {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    owner_p50_ms: f64,
    elsewhere_p50_ms: f64,
    elsewhere_p99_ms: f64,
    per_delivery: [f64; 3],
    idle_per_s: [f64; 3],
    /// The largest peak RSS of the servers, MiB.
    peak_rss_mib: f64,
    /// CPU milliseconds per 1,000 deliveries while publishing and delivering: all servers,
    /// all PostgreSQL processes, and this benchmark (publishers and receiver).
    cpu_ms_per_1k: [f64; 3],
}

/// CPU seconds used so far by the servers, PostgreSQL and this process.
fn cpu_now(processes: &[Server]) -> [f64; 3] {
    [
        processes.iter().map(|p| cpu_seconds(p.child.id())).sum(),
        cpu_seconds_named("postgres"),
        cpu_seconds(std::process::id()),
    ]
}

async fn run(args: &Args, servers: usize, round: usize, dir: &Path) -> Run {
    let url = fresh_database(dir, Some(&args.postgres), &format!("cluster{servers}r{round}"));
    let database = url::Url::parse(&url).unwrap().path().trim_start_matches('/').to_owned();
    let mut processes = Vec::new();
    for i in 0..servers {
        processes.push(Server::start(&url, dir, &format!("bench-{i}")).await);
    }
    let receiver = Receiver::start();
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(args.concurrency))
        .timeout(Duration::from_secs(60))
        .finish();
    let mut webhooks = Vec::new();
    for n in 0..args.webhooks {
        let body =
            json!({"url": format!("http://127.0.0.1:{}/hook/{n}", receiver.port), "events": [format!("bench.{n}")]});
        let via = &processes[n % servers];
        let mut response = client
            .post(format!("http://127.0.0.1:{}/api/v1/webhooks", via.port))
            .bearer_auth(ADMIN_TOKEN)
            .send_json(&body)
            .await
            .unwrap();
        let created: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
        webhooks.push(created["id"].as_str().expect("created").to_owned());
    }
    let owners = settled(&processes[0], servers, &webhooks, Duration::from_secs(30)).await.expect("leases settle");
    *receiver.tally.owners.lock().unwrap() = owners.clone();
    let owners = Rc::new(owners);

    // What the servers cost the database while nothing happens (after the registrations'
    // own statements have reached the statistics, which lag up to a second).
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    let idle = Duration::from_secs(10);
    let before_idle = db_counters(&args.postgres, &database);
    actix_rt::time::sleep(idle).await;
    let after_idle = db_counters(&args.postgres, &database);

    let before = db_counters(&args.postgres, &database);
    let cpu_before = cpu_now(&processes);
    let started_us = unix_us();
    let next = Rc::new(std::cell::Cell::new(0usize));
    let ports: Rc<Vec<u16>> = Rc::new(processes.iter().map(|p| p.port).collect());
    let publishers = (0..args.concurrency).map(|_| {
        let (next, ports, client, owners) = (next.clone(), ports.clone(), client.clone(), owners.clone());
        let (events, webhooks, through_owner) = (args.events, args.webhooks, args.through_owner);
        async move {
            loop {
                let seq = next.get();
                if seq >= events {
                    break;
                }
                next.set(seq + 1);
                // Each webhook's events go through every server in turn, whichever created it.
                let via = if through_owner { owners[seq % webhooks] } else { (seq + seq / webhooks) % ports.len() };
                let body = format!(
                    r#"{{"event":"bench.{}","data":{{"sent_us":{},"via":{via},"seq":{seq}}}}}"#,
                    seq % webhooks,
                    unix_us()
                );
                let sent = client
                    .post(format!("http://127.0.0.1:{}/api/v1/events", ports[via]))
                    .bearer_auth(ADMIN_TOKEN)
                    .content_type("application/json")
                    .send_body(body)
                    .await;
                if let Ok(mut response) = sent {
                    let _ = response.body().await;
                }
            }
        }
    });
    futures_util::future::join_all(publishers).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.tally.received.load(Ordering::Relaxed) < args.events as u64 && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after = cpu_now(&processes);
    // Records land up to 10 ms after the attempt.
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let after = db_counters(&args.postgres, &database);
    let received = receiver.tally.received.load(Ordering::Relaxed);
    assert!(received >= args.events as u64, "only {received} of {} delivered", args.events);
    let elapsed_s = (receiver.tally.last_at_us.load(Ordering::Relaxed) - started_us) as f64 / 1e6;
    let ms = |h: &Mutex<Histogram<u64>>, q: f64| h.lock().unwrap().value_at_quantile(q) as f64 / 1000.0;
    let all = {
        let mut all = receiver.tally.through_owner.lock().unwrap().clone();
        all.add(&*receiver.tally.elsewhere.lock().unwrap()).unwrap();
        Mutex::new(all)
    };
    let per = |a: i64, b: i64| (a - b) as f64 / args.events as f64;
    let idle_s = idle.as_secs_f64();
    let cpu_ms_per_1k = std::array::from_fn(|i| (cpu_after[i] - cpu_before[i]) * 1e6 / args.events as f64);
    let result = Run {
        peak_rss_mib: 0.0,
        cpu_ms_per_1k,
        rate: args.events as f64 / elapsed_s,
        p50_ms: ms(&all, 0.5),
        p99_ms: ms(&all, 0.99),
        owner_p50_ms: ms(&receiver.tally.through_owner, 0.5),
        elsewhere_p50_ms: ms(&receiver.tally.elsewhere, 0.5),
        elsewhere_p99_ms: ms(&receiver.tally.elsewhere, 0.99),
        per_delivery: [
            per(after.transactions, before.transactions),
            per(after.rows_written, before.rows_written),
            per(after.wal_bytes, before.wal_bytes),
        ],
        idle_per_s: [
            (after_idle.transactions - before_idle.transactions) as f64 / idle_s,
            (after_idle.rows_written - before_idle.rows_written) as f64 / idle_s,
            (after_idle.wal_bytes - before_idle.wal_bytes) as f64 / idle_s,
        ],
    };
    let peak_rss_mib = processes.iter().map(|p| rss_kib(p.child.id()).1).max().unwrap_or(0) as f64 / 1024.0;
    receiver.handle.stop(false).await;
    drop(processes);
    drop_database(Some(&args.postgres), &url);
    Run { peak_rss_mib, ..result }
}

/// With `servers` servers: SIGKILL one, and time until every webhook has a live owner.
async fn takeover(args: &Args, servers: usize, dir: &Path) -> Duration {
    let url = fresh_database(dir, Some(&args.postgres), "clustertakeover");
    let mut processes = Vec::new();
    for i in 0..servers {
        processes.push(Server::start(&url, dir, &format!("bench-{i}")).await);
    }
    let mut webhooks = Vec::new();
    for n in 0..args.webhooks {
        let body = json!({"url": format!("http://127.0.0.1:9/hook/{n}"), "events": ["never.published"]});
        let mut response = awc::Client::default()
            .post(format!("http://127.0.0.1:{}/api/v1/webhooks", processes[0].port))
            .bearer_auth(ADMIN_TOKEN)
            .send_json(&body)
            .await
            .unwrap();
        let created: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
        webhooks.push(created["id"].as_str().unwrap().to_owned());
    }
    settled(&processes[0], servers, &webhooks, Duration::from_secs(30)).await.expect("leases settle");
    let victim = processes.pop().unwrap();
    let killed = Instant::now();
    drop(victim);
    settled(&processes[0], servers - 1, &webhooks, Duration::from_secs(60)).await.expect("webhooks move");
    let took = killed.elapsed();
    drop(processes);
    drop_database(Some(&args.postgres), &url);
    took
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[actix_rt::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    let counts: Vec<usize> = args.servers.split(',').map(|s| s.trim().parse().expect("a server count")).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut runs: Vec<Vec<Run>> = counts.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        for (i, &servers) in counts.iter().enumerate() {
            let result = run(&args, servers, round, dir.path()).await;
            let [servers_cpu, postgres_cpu, bench_cpu] = result.cpu_ms_per_1k;
            eprintln!(
                "round {round}, {servers} server(s): {:.0} deliveries/s; CPU ms per 1,000: servers {servers_cpu:.0}, \
                 PostgreSQL {postgres_cpu:.0}, benchmark {bench_cpu:.0}",
                result.rate
            );
            runs[i].push(result);
        }
    }
    println!(
        "\n{} webhooks, {} events (one delivery each) published through every server in turn, {} publishers",
        args.webhooks, args.events, args.concurrency
    );
    println!(
        "| servers | deliveries/s (runs) | median | p50 / p99 ms | p50 via owner / via another: p50, p99 ms | \
         per delivery: transactions, rows, WAL bytes | idle, per s: transactions, rows, WAL bytes | \
         peak RSS per server, MiB | CPU ms per 1,000 deliveries: servers, PostgreSQL, benchmark |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let one = runs.first().map(|r| median(r.iter().map(|r| r.rate).collect()));
    for (servers, runs) in counts.iter().zip(&runs) {
        let rates: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rate)).collect();
        let med = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
        let rate = med(|r| r.rate);
        let share = one.map_or(String::new(), |one| format!(" ({:.0} %)", rate / one * 100.0));
        println!(
            "| {servers} | {} | {rate:.0}{share} | {:.1} / {:.1} | {:.1} / {:.1}, {:.1} | {:.2}, {:.2}, {:.0} | \
             {:.1}, {:.1}, {:.0} | {:.0} | {:.0}, {:.0}, {:.0} |",
            rates.join(" / "),
            med(|r| r.p50_ms),
            med(|r| r.p99_ms),
            med(|r| r.owner_p50_ms),
            med(|r| r.elsewhere_p50_ms),
            med(|r| r.elsewhere_p99_ms),
            med(|r| r.per_delivery[0]),
            med(|r| r.per_delivery[1]),
            med(|r| r.per_delivery[2]),
            med(|r| r.idle_per_s[0]),
            med(|r| r.idle_per_s[1]),
            med(|r| r.idle_per_s[2]),
            med(|r| r.peak_rss_mib),
            med(|r| r.cpu_ms_per_1k[0]),
            med(|r| r.cpu_ms_per_1k[1]),
            med(|r| r.cpu_ms_per_1k[2]),
        );
    }
    // The machine's speed drifts by tens of percent within minutes; each run against the
    // first count's run of the same round shows how much of a spread is that drift.
    if let Some((first, first_runs)) = counts.first().zip(runs.first()) {
        for (servers, runs) in counts.iter().zip(&runs).skip(1) {
            let paired: Vec<f64> =
                runs.iter().zip(first_runs).map(|(run, base)| run.rate / base.rate * 100.0).collect();
            let shown: Vec<String> = paired.iter().map(|share| format!("{share:.0} %")).collect();
            println!(
                "{servers} servers against {first} in the same round: {} (median {:.0} %)",
                shown.join(" / "),
                median(paired)
            );
        }
    }
    if let Some(&servers) = counts.iter().filter(|&&n| n > 1).max() {
        let took = takeover(&args, servers, dir.path()).await;
        println!(
            "\nSIGKILL one of {servers} servers ({} webhooks, default lease_ttl_ms 10000 and timeout_ms 10000): \
             every webhook had a live owner again after {:.1} s",
            args.webhooks,
            took.as_secs_f64()
        );
    }
}
