//! Delivery speed against the machine's ceiling: the real `hookbus` release binary, a fast
//! receiver (answers 204, counts, reads each delivery's publish time from its payload) and a
//! publisher, all on this machine, and the same bodies sent straight to the same receiver
//! with awc at the same concurrency (the ceiling). For (a) and (b) the ceiling is also run at
//! hookbus' own delivery concurrency (16 in flight per webhook: 16 in (a), 1,600 in (b)), for
//! information; the targets are judged against the ceiling at the publishers' concurrency.
//!
//! ```sh
//! cargo bench --bench loadgen                                   # every scenario, SQLite
//! cargo bench --bench loadgen -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench loadgen -- --scenarios a,b --scale 0.1    # a quick look
//! ```
//! `cargo bench --bench loadgen -- --help` lists the flags.
//! Scenarios (SPEC issue 6): (a) 1 webhook, 20,000 events; (b) 100 webhooks all subscribed,
//! 2,000 events; (c) 10,000 webhooks, 20,000 events spread over them (2 each); (d) 1 dead
//! webhook + 99 healthy, 2,000 events, beside (d0) the same 99 alone (the two alternate,
//! three runs each, and each row is the median run); (e) a steady 1,000 events/s for 30 s,
//! each to all of 10 webhooks; (f) a healthy tenant's steady 100 events/s for 10 s to one
//! webhook in a workspace of its own, while the default workspace's 17 webhooks
//! (`max_in_flight` 256) want 4,352 connections to a receiver that answers after 25 s,
//! beside (f0) the healthy tenant alone (alternating like (d0) and (d)).

#[allow(dead_code)] // not every benchmark reads CPU time of PostgreSQL
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::{cpu_seconds, drop_database, fresh_database, proc_numbers, rss_kib};
use hdrhistogram::Histogram;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
/// Deliveries still missing after this long without progress are reported as missing.
const STALL: Duration = Duration::from_secs(30);

/// Delivery speed against the machine's ceiling (see the module's documentation).
#[derive(clap::Parser)]
struct Args {
    /// Run on SQLite (the default; off when only --postgres is given).
    #[arg(long)]
    sqlite: bool,
    /// Run on PostgreSQL, creating a database per run through this admin URL.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Which scenarios, comma-separated.
    #[arg(long, default_value = "a,b,c,d,e")]
    scenarios: String,
    /// Publishers and ceiling senders.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Multiplies event counts.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Length of the steady scenarios.
    #[arg(long, default_value_t = 30)]
    steady_seconds: u64,
    /// Publish with a workspace API key instead of the admin token.
    #[arg(long)]
    api_key: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn args() -> Args {
    let mut args = <Args as clap::Parser>::parse();
    args.sqlite |= args.postgres.is_none();
    args
}

fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()
}

// ---------------------------------------------------------------------------------------
// The receiver

/// What the receiver saw.
struct Tally {
    received: AtomicU64,
    last_at_us: AtomicU64,
    /// Publish → first attempt, in µs, read from `data.sent_us` of first attempts.
    latency_us: Mutex<Histogram<u64>>,
}

#[derive(serde::Deserialize)]
struct Delivered {
    data: Stamp,
}

#[derive(serde::Deserialize)]
struct Stamp {
    sent_us: u64,
}

async fn receive(request: HttpRequest, body: web::Bytes, tally: web::Data<Tally>) -> HttpResponse {
    let now = unix_us();
    let first_attempt = request.headers().get("x-webhook-attempt").is_none_or(|v| v == "1");
    if first_attempt {
        if let Ok(delivered) = serde_json::from_slice::<Delivered>(&body) {
            let latency = now.saturating_sub(delivered.data.sent_us).max(1);
            let _ = tally.latency_us.lock().unwrap().record(latency);
        }
    }
    tally.last_at_us.fetch_max(now, Ordering::Relaxed);
    tally.received.fetch_add(1, Ordering::Relaxed);
    HttpResponse::NoContent().finish()
}

/// An actix-web server with `routes` on a random port of 127.0.0.1, on threads of its own.
fn serve_on_thread(
    workers: usize,
    routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
) -> (u16, actix_web::dev::ServerHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = HttpServer::new(move || App::new().configure(routes.clone()))
                .workers(workers)
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
    (port, handle, thread)
}

/// An actix-web server on a random port, on threads of its own.
struct Receiver {
    port: u16,
    tally: web::Data<Tally>,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

impl Receiver {
    fn start() -> Self {
        let tally = web::Data::new(Tally {
            received: AtomicU64::new(0),
            last_at_us: AtomicU64::new(0),
            latency_us: Mutex::new(latency_histogram()),
        });
        let shared = tally.clone();
        let (port, handle, thread) = serve_on_thread(2, move |routes| {
            routes.app_data(shared.clone()).route("/hook/{n}", web::post().to(receive));
        });
        Self { port, tally, handle, thread }
    }

    fn url(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}/hook/{n}", self.port)
    }

    fn received(&self) -> u64 {
        self.tally.received.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.thread.join();
    }
}

// ---------------------------------------------------------------------------------------
// The server under test

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    async fn start(database_url: &str, dir: &Path) -> Self {
        let port = free_port();
        let data_dir = dir.join(format!("data-{port}"));
        let log = dir.join(format!("server-{port}.log"));
        // `LOADGEN_HOOKBUS_BIN=path` runs another build of the server (to compare two builds
        // on the same machine at the same time).
        let binary = std::env::var_os("LOADGEN_HOOKBUS_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hookbus").into());
        let child = Command::new(binary)
            .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}"), "--database-url", database_url])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("HOOKBUS_ADMIN_TOKEN", ADMIN_TOKEN)
            // `LOADGEN_SERVER_LOG=warn` shows failed attempts (quiet by default: logging costs).
            .env("RUST_LOG", std::env::var("LOADGEN_SERVER_LOG").unwrap_or_else(|_| "error".into()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the hookbus binary starts");
        let server = Self { child, port, log };
        let client = awc::Client::default();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(server.url("/health")).send().await {
                if response.status().is_success() {
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "hookbus did not start; see {}", server.log.display());
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn peak_rss_mib(&self) -> f64 {
        rss_kib(self.child.id()).1 as f64 / 1024.0
    }

    /// Bytes the server has had written to storage so far (`write_bytes` of /proc/PID/io:
    /// pages it dirtied, whether or not the kernel has flushed them yet). On PostgreSQL the
    /// database's own processes do the writing, so only SQLite's figure means anything.
    fn disk_write_bytes(&self) -> u64 {
        proc_numbers(self.child.id(), "io", ["write_bytes:"])[0]
    }

    /// User + system CPU seconds the server used so far.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && !l.contains("dev mode"))
            .collect();
        if let Some(first) = problems.first() {
            eprintln!("  server logged {} warnings/errors; first: {first}", problems.len());
        }
        if std::env::var_os("LOADGEN_SERVER_LOG").is_some() {
            let kept = std::env::temp_dir().join(format!("hookbus-loadgen-{}.log", self.port));
            if std::fs::copy(&self.log, &kept).is_ok() {
                eprintln!("  server log: {}", kept.display());
            }
        }
    }
}

fn client(concurrency: usize) -> awc::Client {
    awc::Client::builder().connector(awc::Connector::new().limit(concurrency)).timeout(Duration::from_secs(60)).finish()
}

/// Registers webhooks with the admin token; returns how many were created.
async fn register(server: &Server, hooks: Vec<(String, Vec<String>)>) -> usize {
    register_with(server, ADMIN_TOKEN, hooks, serde_json::json!({})).await
}

/// Registers webhooks with `token`, each with `settings` (an object) on top; returns how
/// many were created.
async fn register_with(
    server: &Server,
    token: &str,
    hooks: Vec<(String, Vec<String>)>,
    settings: serde_json::Value,
) -> usize {
    let client = client(32);
    let next = Rc::new(std::cell::Cell::new(0));
    let hooks = Rc::new(hooks);
    let created = Rc::new(std::cell::Cell::new(0));
    let workers = (0..32).map(|_| {
        let (client, next, hooks, created) = (client.clone(), next.clone(), hooks.clone(), created.clone());
        let (url, settings) = (server.url("/api/v1/webhooks"), settings.clone());
        async move {
            loop {
                let i = next.get();
                let Some((target, events)) = hooks.get(i) else { break };
                next.set(i + 1);
                let mut body = serde_json::json!({"url": target, "events": events, "name": format!("bench-{i}")});
                for (field, value) in settings.as_object().into_iter().flatten() {
                    body[field] = value.clone();
                }
                let mut response = client
                    .post(&url)
                    .bearer_auth(token)
                    .send_json(&body)
                    .await
                    .unwrap_or_else(|e| panic!("register webhook {i}: {e}"));
                let answer = response.body().await.unwrap_or_default();
                assert_eq!(response.status(), 201, "register webhook {i}: {}", String::from_utf8_lossy(&answer));
                created.set(created.get() + 1);
            }
        }
    });
    futures_util::future::join_all(workers).await;
    created.get()
}

// ---------------------------------------------------------------------------------------
// Publishing and the ceiling

/// The `data` of the `seq`th event, stamped with the time it is sent.
fn event_data(seq: usize) -> String {
    format!(
        r#"{{"sent_us":{},"seq":{seq},"artifact_id":"art-{seq:08}","status":"ready","size_bytes":48213,"source":"loadgen"}}"#,
        unix_us()
    )
}

struct Sent {
    started_us: u64,
    accepted: usize,
    elapsed: Duration,
}

/// Sends `count` requests from `concurrency` senders; `request(seq)` sends one and says
/// whether it was accepted. With `interval`, the `seq`th request is not sent before
/// `start + seq × interval` (a steady rate); without, as fast as they are answered.
async fn send_all<F, Fut>(count: usize, concurrency: usize, interval: Option<Duration>, request: F) -> Sent
where
    F: Fn(usize) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = bool>,
{
    let started_us = unix_us();
    let start = Instant::now();
    let next = Rc::new(std::cell::Cell::new(0));
    let accepted = Rc::new(std::cell::Cell::new(0));
    let workers = (0..concurrency).map(|_| {
        let (next, accepted, request) = (next.clone(), accepted.clone(), request.clone());
        async move {
            loop {
                let seq = next.get();
                if seq >= count {
                    break;
                }
                next.set(seq + 1);
                if let Some(interval) = interval {
                    actix_rt::time::sleep_until((start + interval * seq as u32).into()).await;
                }
                if request(seq).await {
                    accepted.set(accepted.get() + 1);
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    Sent { started_us, accepted: accepted.get(), elapsed: start.elapsed() }
}

/// A new API key of the default workspace, where the webhooks are registered.
async fn default_workspace_key(server: &Server) -> String {
    let url = server.url(&format!("/api/v1/workspaces/{}/keys", hookbus::WorkspaceId::DEFAULT));
    let mut response = client(1).post(&url).bearer_auth(ADMIN_TOKEN).send().await.expect("create an API key");
    let answer: serde_json::Value = response.json().await.expect("the key's JSON");
    assert_eq!(response.status(), 201, "create an API key: {answer}");
    answer["api_key"].as_str().expect("api_key in the answer").to_owned()
}

/// The API key of a new workspace.
async fn new_workspace_key(server: &Server) -> String {
    let url = server.url("/api/v1/workspaces");
    let body = serde_json::json!({"name": "healthy tenant"});
    let mut response =
        client(1).post(&url).bearer_auth(ADMIN_TOKEN).send_json(&body).await.expect("create a workspace");
    let answer: serde_json::Value = response.json().await.expect("the workspace's JSON");
    assert_eq!(response.status(), 201, "create a workspace: {answer}");
    answer["api_key"].as_str().expect("api_key in the answer").to_owned()
}

/// (f): the tenant whose receivers are slow (issue 21's attack): in the default workspace,
/// 17 webhooks with `max_in_flight` 256 and `timeout_ms` 30,000 on a receiver that answers
/// after 25 s, with 256 events queued to each, so together they want 4,352 connections.
const SLOW_WEBHOOKS: usize = 17;
const SLOW_IN_FLIGHT: usize = 256;
const SLOW_ANSWER: Duration = Duration::from_secs(25);

struct SlowTenant {
    in_flight: web::Data<AtomicU64>,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

/// Answers `warm.up` events at once (so slow start opens each webhook to its full
/// `max_in_flight`), everything else after [`SLOW_ANSWER`].
async fn answer_slowly(request: HttpRequest, in_flight: web::Data<AtomicU64>) -> HttpResponse {
    if request.headers().get("x-webhook-event").is_some_and(|e| e != "warm.up") {
        in_flight.fetch_add(1, Ordering::Relaxed);
        actix_rt::time::sleep(SLOW_ANSWER).await;
        in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    HttpResponse::NoContent().finish()
}

impl SlowTenant {
    async fn start(server: &Server, args: &Args) -> Self {
        let in_flight = web::Data::new(AtomicU64::new(0));
        let shared = in_flight.clone();
        let (port, handle, thread) = serve_on_thread(1, move |routes| {
            routes.app_data(shared.clone()).default_service(web::to(answer_slowly));
        });
        let slow = Self { in_flight, handle, thread };
        let hooks =
            (0..SLOW_WEBHOOKS).map(|i| (format!("http://127.0.0.1:{port}/slow/{i}"), vec!["*".to_owned()])).collect();
        register_with(
            server,
            ADMIN_TOKEN,
            hooks,
            serde_json::json!({"max_in_flight": SLOW_IN_FLIGHT, "timeout_ms": 30_000}),
        )
        .await;
        let token: Rc<str> = ADMIN_TOKEN.into();
        publish(server, token.clone(), Rc::new(vec!["warm.up".to_owned(); 10]), 1, None).await;
        // Ten successes each open the webhooks' slow start to 256 in flight.
        actix_rt::time::sleep(Duration::from_secs(1)).await;
        publish(server, token, Rc::new(vec!["slow.load".to_owned(); SLOW_IN_FLIGHT]), args.concurrency, None).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = (0, Instant::now());
        while Instant::now() < deadline && last.1.elapsed() < Duration::from_millis(1_000) {
            actix_rt::time::sleep(Duration::from_millis(100)).await;
            let now = slow.in_flight();
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        eprintln!("  the slow tenant holds {} requests in flight on its receiver", slow.in_flight());
        slow
    }

    fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.thread.join();
    }
}

/// Publishes `events` with `token`; also returns the publish round trips (send → 202), in µs.
async fn publish(
    server: &Server,
    token: Rc<str>,
    events: Rc<Vec<String>>,
    concurrency: usize,
    interval: Option<Duration>,
) -> (Sent, Histogram<u64>) {
    let client = client(concurrency);
    let url = server.url("/api/v1/events");
    let count = events.len();
    let round_trips = Rc::new(std::cell::RefCell::new(latency_histogram()));
    let recorded = round_trips.clone();
    let sent = send_all(count, concurrency, interval, move |seq| {
        let (client, url, events, round_trips) = (client.clone(), url.clone(), events.clone(), recorded.clone());
        let token = token.clone();
        async move {
            let body = format!(r#"{{"event":"{}","data":{}}}"#, events[seq], event_data(seq));
            let started = Instant::now();
            match client.post(&url).bearer_auth(&*token).content_type("application/json").send_body(body).await {
                Ok(mut response) => {
                    let _ = response.body().await;
                    let _ = round_trips.borrow_mut().record(started.elapsed().as_micros().max(1) as u64);
                    response.status() == 202
                }
                Err(error) => {
                    eprintln!("    publish {seq}: {error}");
                    false
                }
            }
        }
    })
    .await;
    let round_trips = round_trips.borrow().clone();
    (sent, round_trips)
}

/// How many times (a) and (b) run, each beside a run of the ceiling; the medians count.
const COMPARED_RUNS: usize = 3;

/// Each webhook's in-flight limit: the SPEC's default, which the webhooks here keep.
const MAX_IN_FLIGHT: usize = 16;

/// The same bodies and headers hookbus sends, straight to the receiver: the machine's ceiling.
async fn ceiling(count: usize, concurrency: usize) -> f64 {
    let receiver = Receiver::start();
    let client = client(concurrency);
    let url = receiver.url(0);
    let sent = send_all(count, concurrency, None, move |seq| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = format!(
                r#"{{"id":"0192f3a0-7c1e-7d2a-9b1c-3f4e5d6c7b8a","event":"bench.a","timestamp":"2026-11-26T18:00:00Z","webhook_id":"0192f3a0-7c1e-7d2a-9b1c-3f4e5d6c7b8b","workspace_id":"00000000-0000-0000-0000-000000000000","data":{}}}"#,
                event_data(seq)
            );
            client
                .post(&url)
                .content_type("application/json")
                .insert_header(("webhook-id", "0192f3a0-7c1e-7d2a-9b1c-3f4e5d6c7b8c"))
                .insert_header(("webhook-timestamp", "1795723200"))
                .insert_header(("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="))
                .insert_header(("X-Webhook-Event", "bench.a"))
                .insert_header(("X-Webhook-Delivery", "0192f3a0-7c1e-7d2a-9b1c-3f4e5d6c7b8c"))
                .insert_header(("X-Webhook-Attempt", "1"))
                .send_body(body)
                .await
                .is_ok_and(|r| r.status() == 204)
        }
    })
    .await;
    let elapsed = (receiver.tally.last_at_us.load(Ordering::Relaxed).saturating_sub(sent.started_us)) as f64 / 1e6;
    let rate = receiver.received() as f64 / elapsed;
    receiver.stop().await;
    rate
}

// ---------------------------------------------------------------------------------------
// Scenarios

struct Scenario {
    key: &'static str,
    title: String,
    /// (webhook URL index or `None` for a dead one, subscribed patterns)
    webhooks: Vec<(Option<usize>, Vec<String>)>,
    events: Vec<String>,
    /// Deliveries the receiver must get.
    expected: u64,
    interval: Option<Duration>,
}

impl Scenario {
    /// How many deliveries hookbus may have in flight at once: every healthy webhook's limit.
    fn delivery_concurrency(&self) -> usize {
        self.webhooks.iter().filter(|(url, _)| url.is_some()).count() * MAX_IN_FLIGHT
    }

    /// `healthy` webhooks subscribed to everything (plus a dead one if `dead`), `events`
    /// events of one type; every healthy webhook must get every event.
    fn fan_out(key: &'static str, title: String, healthy: usize, dead: bool, event: &str, events: usize) -> Self {
        let all = || vec!["*".to_string()];
        let dead = dead.then(|| (None, all()));
        Self {
            key,
            title,
            webhooks: dead.into_iter().chain((0..healthy).map(|i| (Some(i), all()))).collect(),
            events: vec![event.to_owned(); events],
            expected: (healthy * events) as u64,
            interval: None,
        }
    }
}

fn scenarios(args: &Args) -> Vec<Scenario> {
    let scaled = |n: usize| ((n as f64 * args.scale).round() as usize).max(1);
    let mut list = Vec::new();
    for key in args.scenarios.split(',').map(str::trim) {
        match key {
            "a" => {
                let n = scaled(20_000);
                list.push(Scenario::fan_out(
                    "a",
                    format!("(a) 1 webhook, {n} events"),
                    1,
                    false,
                    "artifact.completed",
                    n,
                ));
            }
            "b" => {
                let n = scaled(2_000);
                let title = format!("(b) 100 webhooks × {n} events");
                list.push(Scenario::fan_out("b", title, 100, false, "artifact.completed", n));
            }
            "c" => {
                let n = scaled(20_000);
                list.push(Scenario {
                    key: "c",
                    title: format!("(c) 10,000 webhooks, {n} events spread"),
                    webhooks: (0..10_000).map(|i| (Some(i), vec![format!("source.ready{i}")])).collect(),
                    events: (0..n).map(|i| format!("source.ready{}", i % 10_000)).collect(),
                    expected: n as u64,
                    interval: None,
                });
            }
            "d" => {
                let n = scaled(2_000);
                let alone = format!("(d0) 99 healthy webhooks × {n} events");
                list.push(Scenario::fan_out("d0", alone, 99, false, "meeting.completed", n));
                let beside = format!("(d) 1 dead + 99 healthy × {n} events");
                list.push(Scenario::fan_out("d", beside, 99, true, "meeting.completed", n));
            }
            "e" => {
                let n = 1_000 * args.steady_seconds as usize;
                let title = format!("(e) 1,000 events/s × {} s → 10 webhooks", args.steady_seconds);
                let steady = Scenario {
                    interval: Some(Duration::from_millis(1)),
                    ..Scenario::fan_out("e", title, 10, false, "recording.started", n)
                };
                list.push(steady);
            }
            "f" => {
                let n = 100 * args.steady_seconds.min(10) as usize;
                let title = format!("(f0) healthy tenant alone, 100 events/s × {} s", n / 100);
                list.push(Scenario {
                    interval: Some(Duration::from_millis(10)),
                    ..Scenario::fan_out("f0", title, 1, false, "order.paid", n)
                });
                let title = format!(
                    "(f) healthy tenant, 100 events/s × {} s, beside {SLOW_WEBHOOKS} × {SLOW_IN_FLIGHT} slow",
                    n / 100
                );
                list.push(Scenario {
                    interval: Some(Duration::from_millis(10)),
                    ..Scenario::fan_out("f", title, 1, false, "order.paid", n)
                });
            }
            other => panic!("unknown scenario {other:?}; known: a,b,c,d,e,f"),
        }
    }
    list
}

struct Row {
    backend: &'static str,
    key: &'static str,
    title: String,
    expected: u64,
    delivered: u64,
    publish_per_s: f64,
    delivery_per_s: f64,
    latency_ms: [f64; 3],
    peak_rss_mib: f64,
    server_cpu_s: f64,
    /// KiB the server wrote to disk per event published (SQLite only; see `disk_write_bytes`).
    server_write_kib_per_event: Option<f64>,
    ceiling_per_s: Option<f64>,
    /// The ceiling at hookbus' own delivery concurrency (for information).
    same_concurrency_ceiling_per_s: Option<f64>,
}

/// A scenario compared with the ceiling ((a) and (b)) runs three times, each run right after
/// a run of the ceiling; the row is hookbus' median run against the ceiling's median. Single
/// runs of either moved by a third between minutes on a shared VM.
async fn run_compared(
    backend: &'static str,
    postgres: Option<&str>,
    dir: &Path,
    scenario: &Scenario,
    args: &Args,
) -> Row {
    eprintln!("{backend}: {}", scenario.title);
    let (mut ceilings, mut same_ceilings, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    let delivery_concurrency = scenario.delivery_concurrency();
    for round in 1..=COMPARED_RUNS {
        let rate = ceiling(scenario.expected as usize, args.concurrency).await;
        eprintln!("  round {round}: ceiling {rate:.0} requests/s at concurrency {}", args.concurrency);
        ceilings.push(rate);
        let same = ceiling(scenario.expected as usize, delivery_concurrency).await;
        eprintln!(
            "  round {round}: ceiling {same:.0} requests/s at hookbus' delivery concurrency {delivery_concurrency}"
        );
        same_ceilings.push(same);
        let database_url = fresh_database(dir, postgres, &format!("{}{round}", scenario.key));
        runs.push(run(backend, &database_url, dir, scenario, args).await);
        drop_database(postgres, &database_url);
    }
    let (ceiling_median, same_ceiling_median) = (median(&mut ceilings), median(&mut same_ceilings));
    eprintln!("  ceiling median {ceiling_median:.0} of {}", show_rates(&ceilings));
    let mut row = median_run(runs, scenario.expected);
    row.ceiling_per_s = Some(ceiling_median);
    row.same_concurrency_ceiling_per_s = Some(same_ceiling_median);
    row
}

/// (d0) and (d) run alternately, three times each; each row is its scenario's median run, so
/// the loss the target judges is not the difference of two single runs minutes apart.
async fn run_alternating(
    backend: &'static str,
    postgres: Option<&str>,
    dir: &Path,
    pair: [&Scenario; 2],
    args: &Args,
) -> [Row; 2] {
    let mut runs = [Vec::new(), Vec::new()];
    for round in 1..=COMPARED_RUNS {
        for (scenario, runs) in pair.iter().zip(runs.iter_mut()) {
            eprintln!("{backend}: {} (round {round})", scenario.title);
            let database_url = fresh_database(dir, postgres, &format!("{}{round}", scenario.key));
            runs.push(run(backend, &database_url, dir, scenario, args).await);
            drop_database(postgres, &database_url);
        }
    }
    let [alone, beside] = runs;
    [median_run(alone, pair[0].expected), median_run(beside, pair[1].expected)]
}

/// The run with the median delivery rate of `runs`.
fn median_run(mut runs: Vec<Row>, expected: u64) -> Row {
    runs.sort_by(|x, y| x.delivery_per_s.total_cmp(&y.delivery_per_s));
    eprintln!(
        "  median: hookbus {:.0} deliveries/s of {}",
        runs[runs.len() / 2].delivery_per_s,
        show_rates(&runs.iter().map(|r| r.delivery_per_s).collect::<Vec<_>>())
    );
    // A run that lost or repeated a delivery must not hide behind the median: its count is
    // the one the table shows and the verdicts check.
    let wrong_count = runs.iter().map(|r| r.delivered).find(|delivered| *delivered != expected);
    let middle = runs.len() / 2;
    let mut row = runs.swap_remove(middle);
    row.delivered = wrong_count.unwrap_or(row.delivered);
    row
}

fn show_rates(rates: &[f64]) -> String {
    rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
}

/// The middle one of `rates`, which it sorts.
fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// One run of hookbus on a fresh database.
async fn run(backend: &'static str, database_url: &str, dir: &Path, scenario: &Scenario, args: &Args) -> Row {
    let server = Server::start(database_url, dir).await;
    let receiver = Receiver::start();
    let dead = format!("http://127.0.0.1:{}/hook/dead", free_port());
    let hooks = scenario
        .webhooks
        .iter()
        .map(|(target, events)| (target.map_or_else(|| dead.clone(), |n| receiver.url(n)), events.clone()))
        .collect::<Vec<_>>();
    let slow = if scenario.key == "f" { Some(SlowTenant::start(&server, args).await) } else { None };
    let registering = Instant::now();
    let token: Rc<str> = if scenario.key.starts_with('f') {
        // The healthy tenant: a workspace of its own, its webhook registered with its key.
        let key = new_workspace_key(&server).await;
        let created = register_with(&server, &key, hooks, serde_json::json!({})).await;
        eprintln!("  registered {created} webhooks in a workspace of their own in {:.1?}", registering.elapsed());
        key.into()
    } else {
        let created = register(&server, hooks).await;
        eprintln!("  registered {created} webhooks in {:.1?}", registering.elapsed());
        if args.api_key {
            default_workspace_key(&server).await.into()
        } else {
            ADMIN_TOKEN.into()
        }
    };
    let (sent, round_trips) =
        publish(&server, token, Rc::new(scenario.events.clone()), args.concurrency, scenario.interval).await;
    let ms = |q: f64| round_trips.value_at_quantile(q) as f64 / 1000.0;
    eprintln!(
        "  published {}/{} events in {:.2?} ({:.0}/s); publish → 202 p50 {:.1} ms, p99 {:.1} ms",
        sent.accepted,
        scenario.events.len(),
        sent.elapsed,
        sent.accepted as f64 / sent.elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99)
    );
    let mut seen = (receiver.received(), Instant::now());
    while seen.0 < scenario.expected && seen.1.elapsed() < STALL {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        let now = receiver.received();
        if now != seen.0 {
            seen = (now, Instant::now());
        }
    }
    let delivered = receiver.received();
    let last_us = receiver.tally.last_at_us.load(Ordering::Relaxed);
    let delivery_s = last_us.saturating_sub(sent.started_us) as f64 / 1e6;
    let latency = receiver.tally.latency_us.lock().unwrap().clone();
    let row = Row {
        backend,
        key: scenario.key,
        title: scenario.title.clone(),
        expected: scenario.expected,
        delivered,
        publish_per_s: sent.accepted as f64 / sent.elapsed.as_secs_f64(),
        delivery_per_s: delivered as f64 / delivery_s,
        latency_ms: [0.5, 0.95, 0.99].map(|q| latency.value_at_quantile(q) as f64 / 1000.0),
        peak_rss_mib: server.peak_rss_mib(),
        server_cpu_s: server.cpu_seconds(),
        server_write_kib_per_event: (backend == "SQLite")
            .then(|| server.disk_write_bytes() as f64 / 1024.0 / sent.accepted.max(1) as f64),
        ceiling_per_s: None,
        same_concurrency_ceiling_per_s: None,
    };
    eprintln!(
        "  delivered {delivered}/{} in {delivery_s:.2} s ({:.0}/s); p50 {:.1} ms, p99 {:.1} ms; peak RSS {:.1} MiB; server CPU {:.1} s{}",
        scenario.expected,
        row.delivery_per_s,
        row.latency_ms[0],
        row.latency_ms[2],
        row.peak_rss_mib,
        row.server_cpu_s,
        row.server_write_kib_per_event.map(|kib| format!("; wrote {kib:.1} KiB per event")).unwrap_or_default()
    );
    if delivered < scenario.expected {
        eprintln!("  MISSING {} deliveries; server log: {}", scenario.expected - delivered, server.log.display());
    }
    if let Some(slow) = slow {
        slow.stop().await;
    }
    server.stop();
    receiver.stop().await;
    row
}

// ---------------------------------------------------------------------------------------
// The report

fn verdicts(rows: &[Row]) -> Vec<String> {
    let find = |backend: &str, key: &str| rows.iter().find(|r| r.backend == backend && r.key == key);
    let mut lines = Vec::new();
    let mut check = |name: String, met: bool| lines.push(format!("- {name}: {}", if met { "met" } else { "MISSED" }));
    // More arrivals than deliveries means something was sent twice without a failure.
    for row in rows.iter().filter(|r| r.delivered != r.expected) {
        check(
            format!(
                "{} {}: all {} deliveries arrived, each once ({} arrivals)",
                row.backend, row.key, row.expected, row.delivered
            ),
            false,
        );
    }
    for (key, floor) in [("a", 0.30), ("b", 0.50)] {
        if let Some(row) = find("SQLite", key) {
            let ratio = row.delivery_per_s / row.ceiling_per_s.unwrap_or(f64::INFINITY);
            check(
                format!("({key}) SQLite ≥ {:.0} % of the ceiling: {:.0} %", floor * 100.0, ratio * 100.0),
                ratio >= floor,
            );
        }
        if let (Some(sqlite), Some(pg)) = (find("SQLite", key), find("PostgreSQL", key)) {
            let ratio = pg.delivery_per_s / sqlite.delivery_per_s;
            check(format!("({key}) PostgreSQL ≥ 60 % of SQLite: {:.0} %", ratio * 100.0), ratio >= 0.6);
        }
    }
    for row in rows.iter().filter(|r| r.key == "c") {
        check(
            format!("(c) {} peak RSS ≤ 100 MB: {:.1} MB", row.backend, row.peak_rss_mib * 1.048_576),
            row.peak_rss_mib * 1.048_576 <= 100.0,
        );
    }
    for backend in ["SQLite", "PostgreSQL"] {
        if let (Some(alone), Some(beside)) = (find(backend, "d0"), find(backend, "d")) {
            let loss = 1.0 - beside.delivery_per_s / alone.delivery_per_s;
            check(
                format!("(d) {backend} healthy 99 lose ≤ 10 % beside a dead one: {:.1} %", loss * 100.0),
                loss <= 0.10,
            );
        }
    }
    for row in rows.iter().filter(|r| r.key == "e") {
        check(
            format!("(e) {} p99 publish → first attempt ≤ 10 ms: {:.1} ms", row.backend, row.latency_ms[2]),
            row.latency_ms[2] <= 10.0,
        );
    }
    lines
}

fn report(rows: &[Row], args: &Args) {
    println!();
    println!(
        "machine: {} cores, {}; publish and ceiling concurrency {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default(),
        args.concurrency
    );
    println!();
    println!("| backend | scenario | delivered | publish ev/s | delivery /s | p50 ms | p95 ms | p99 ms | peak RSS MiB | server CPU s | server writes KiB/event | ceiling /s | ÷ ceiling | ceiling at hookbus' concurrency /s | ÷ it |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let against = |ceiling: Option<f64>| match ceiling {
            Some(c) => (format!("{c:.0}"), format!("{:.0} %", row.delivery_per_s / c * 100.0)),
            None => ("".into(), "".into()),
        };
        let (ceiling, ratio) = against(row.ceiling_per_s);
        let (same_ceiling, same_ratio) = against(row.same_concurrency_ceiling_per_s);
        println!(
            "| {} | {} | {}/{} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {ceiling} | {ratio} | {same_ceiling} | {same_ratio} |",
            row.backend,
            row.title,
            row.delivered,
            row.expected,
            row.publish_per_s,
            row.delivery_per_s,
            row.latency_ms[0],
            row.latency_ms[1],
            row.latency_ms[2],
            row.peak_rss_mib,
            row.server_cpu_s,
            row.server_write_kib_per_event.map(|kib| format!("{kib:.1}")).unwrap_or_default()
        );
    }
    println!();
    println!("targets:");
    for line in verdicts(rows) {
        println!("{line}");
    }
}

fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let mut backends: Vec<(&'static str, Option<&str>)> = Vec::new();
    if args.sqlite {
        backends.push(("SQLite", None));
    }
    if let Some(admin) = &args.postgres {
        backends.push(("PostgreSQL", Some(admin)));
    }
    let list = scenarios(&args);
    // (d) runs beside (d0) when both are listed, and (f) beside (f0).
    let beside = list.iter().find(|s| s.key == "d").filter(|_| list.iter().any(|s| s.key == "d0"));
    let slow_tenant = list.iter().find(|s| s.key == "f");
    let rows = actix_rt::System::new().block_on(async {
        let mut rows = Vec::new();
        for (backend, postgres) in &backends {
            for scenario in &list {
                match (scenario.key, beside) {
                    ("a" | "b", _) => {
                        rows.push(run_compared(backend, *postgres, dir.path(), scenario, &args).await);
                        continue;
                    }
                    ("d0", Some(beside)) => {
                        let pair = [scenario, beside];
                        rows.extend(run_alternating(backend, *postgres, dir.path(), pair, &args).await);
                        continue;
                    }
                    ("d", Some(_)) | ("f", _) => continue,
                    ("f0", _) => {
                        let pair = [scenario, slow_tenant.expect("(f) is listed with (f0)")];
                        rows.extend(run_alternating(backend, *postgres, dir.path(), pair, &args).await);
                        continue;
                    }
                    _ => {}
                }
                eprintln!("{backend}: {}", scenario.title);
                let database_url = fresh_database(dir.path(), *postgres, scenario.key);
                rows.push(run(backend, &database_url, dir.path(), scenario, &args).await);
                drop_database(*postgres, &database_url);
            }
        }
        rows
    });
    report(&rows, &args);
}
