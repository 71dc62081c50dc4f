//! Test fixtures with real parts: a fresh database per test (SQLite file or a PostgreSQL
//! database created and dropped for the test), the real server on a random port, and
//! receivers that are real actix-web servers that count, delay, fail and record.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tempfile::TempDir;
use tokio::sync::mpsc;

use hookbus::config::Config;
use hookbus::Application;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `backend_test!(name, |backend| async move { … })`.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[actix_web::test]
            async fn on_sqlite() {
                ($body)($crate::helpers::Backend::Sqlite).await;
            }

            #[actix_web::test]
            async fn on_postgres() {
                if $crate::helpers::postgres_url().is_some() {
                    ($body)($crate::helpers::Backend::Postgres).await;
                }
            }
        }
    };
}

/// The PostgreSQL server for tests; under `CI` its absence is a failure, not a skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var("HOOKBUS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("HOOKBUS_TEST_POSTGRES_URL must be set under CI: PostgreSQL tests may not be skipped")
        }
        _ => {
            eprintln!("HOOKBUS_TEST_POSTGRES_URL is not set: skipping the PostgreSQL variant");
            None
        }
    }
}

/// A database of its own for one test; a PostgreSQL one is dropped when this is dropped.
pub struct TestDb {
    pub url: String,
    dir: TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => {
                Self { url: format!("sqlite://{}", dir.path().join("hookbus.db").display()), dir, postgres: None }
            }
            Backend::Postgres => {
                let admin = postgres_url().expect("checked by the caller");
                let name = format!("hookbus_test_{}", uuid::Uuid::new_v4().simple());
                run_admin_sql(&admin, &format!("CREATE DATABASE {name}"));
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                Self { url: url.to_string(), dir, postgres: Some((admin, name)) }
            }
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Drops the PostgreSQL database now, cutting every connection (a real outage).
    pub fn drop_postgres_now(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            run_admin_sql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.drop_postgres_now();
    }
}

/// Runs one statement against the admin database on a plain thread with its own runtime,
/// so it works from `Drop` and from inside the actix test runtime alike.
fn run_admin_sql(admin_url: &str, sql: &str) {
    let (admin_url, sql) = (admin_url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let mut conn = AsyncPgConnection::establish(&admin_url).await.expect("PostgreSQL answers");
            conn.batch_execute(&sql).await.expect("admin statement runs");
        });
    })
    .join()
    .unwrap();
}

/// A DNS resolver for tests: fixed answers per name, names that never answer, and every
/// other name unknown. No test asks a real DNS server.
#[derive(Default)]
pub struct StubDns {
    answers: HashMap<String, Vec<std::net::IpAddr>>,
    silent: std::collections::HashSet<String>,
}

impl StubDns {
    pub fn answer(mut self, host: &str, ip: &str) -> Self {
        self.answers.entry(host.to_owned()).or_default().push(ip.parse().unwrap());
        self
    }

    /// A name whose lookup never finishes, like a DNS server that reads and drops.
    pub fn silent(mut self, host: &str) -> Self {
        self.silent.insert(host.to_owned());
        self
    }

    pub fn resolver(self) -> hookbus::delivery::Resolver {
        hookbus::delivery::Resolver::new(self)
    }
}

impl hookbus::delivery::DnsResolver for StubDns {
    fn lookup(
        &self,
        host: String,
        port: u16,
    ) -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<std::net::SocketAddr>>> {
        if self.silent.contains(&host) {
            return Box::pin(std::future::pending());
        }
        let found =
            self.answers.get(&host).map(|ips| ips.iter().map(|ip| std::net::SocketAddr::new(*ip, port)).collect());
        Box::pin(std::future::ready(found.ok_or_else(|| std::io::Error::other(format!("{host}: no such name")))))
    }
}

/// The server under test.
pub struct TestApp {
    pub base: String,
    pub client: awc::Client,
    pub db: TestDb,
}

pub fn test_config(db: &TestDb) -> Config {
    Config {
        bind: "127.0.0.1:0".into(),
        database_url: Some(db.url.clone()),
        data_dir: db.data_dir().to_path_buf(),
        dev: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        workers: 1,
        db_max_connections: 4,
        shutdown_timeout_ms: 2_000,
        ..Config::default()
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    // Server logs go to the test's captured output, shown when a test fails.
    let _ = env_logger::builder().is_test(true).filter_level(log::LevelFilter::Info).try_init();
    let db = TestDb::new(backend).await;
    let mut config = test_config(&db);
    adjust(&mut config);
    let app = Application::build(config).await.expect("the app starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_rt::spawn(app.run());
    TestApp { base, client: awc::Client::builder().timeout(Duration::from_secs(30)).finish(), db }
}

/// A response: status, body and headers.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.request_as(ADMIN_TOKEN, method, path, body).await
    }

    /// A request with another bearer token (a workspace key).
    pub async fn request_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .insert_header(("Authorization", format!("Bearer {token}")));
        let mut response = match body {
            Some(body) => request.send_json(&body).await.unwrap(),
            None => request.send().await.unwrap(),
        };
        let bytes = response.body().limit(10 << 20).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status: response.status().as_u16(), body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request("POST", path, Some(body)).await
    }

    /// Registers a webhook (dev URLs allowed) and returns its object, secret included.
    pub async fn create_webhook(&self, body: Value) -> Value {
        let reply = self.post("/api/v1/webhooks", body).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body
    }

    pub async fn publish(&self, event: &str, data: Value) -> Value {
        let reply = self.post("/api/v1/events", json!({"event": event, "data": data})).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        reply.body
    }

    /// Publishes `event` once per number, each with `{"i": number}` as its data, in order.
    pub async fn publish_numbered(&self, event: &str, numbers: std::ops::Range<usize>) {
        for i in numbers {
            self.publish(event, json!({"i": i})).await;
        }
    }

    /// `GET /metrics` (no token), which must answer 200; the text exposition.
    pub async fn metrics(&self) -> String {
        let mut response = self.client.get(format!("{}/metrics", self.base)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "no auth needed");
        String::from_utf8(response.body().await.unwrap().to_vec()).unwrap()
    }

    pub async fn deliveries(&self, webhook_id: &str) -> Vec<Value> {
        let reply = self.get(&format!("/api/v1/webhooks/{webhook_id}/deliveries?limit=500")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["data"].as_array().unwrap().clone()
    }

    /// Polls until the delivery has `status`; returns the full delivery object.
    pub async fn wait_for_delivery(&self, delivery_id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let reply = self.get(&format!("/api/v1/deliveries/{delivery_id}")).await;
            if reply.body["status"] == status {
                return reply.body;
            }
            assert!(Instant::now() < deadline, "delivery never became {status}: {}", reply.body);
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `GET /api/v1/health` until `ready` holds; returns that dashboard.
    pub async fn dashboard_when(&self, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + LONG;
        loop {
            let reply = self.get("/api/v1/health").await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            if ready(&reply.body) {
                return reply.body;
            }
            assert!(Instant::now() < deadline, "the dashboard never got there: {}", reply.body);
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls until the webhook has `n` deliveries all in `status`.
    pub async fn wait_for_all(&self, webhook_id: &str, n: usize, status: &str, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let all = self.deliveries(webhook_id).await;
            if all.len() == n && all.iter().all(|d| d["status"] == status) {
                return all;
            }
            if Instant::now() >= deadline {
                let statuses: Vec<_> = all.iter().map(|d| d["status"].as_str().unwrap_or("?")).collect();
                panic!("{} deliveries never all became {status}: {statuses:?}", all.len());
            }
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// One webhook's entry in a health dashboard.
pub fn webhook_in<'a>(dashboard: &'a Value, id: &str) -> &'a Value {
    dashboard["webhooks"].as_array().unwrap().iter().find(|w| w["id"] == id).expect("the webhook is on the dashboard")
}

/// What a receiver answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
    /// The response body; "ok" unless set.
    pub body: Vec<u8>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self { status, delay: Duration::ZERO, headers: vec![], body: b"ok".to_vec() }
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str).unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Shared {
    /// The receiver's own path (`/hook/<random>`): a request to any other path is another
    /// test's, sent to a dead port of its own that this receiver happened to get next, and is
    /// not counted.
    path: String,
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    seen: Mutex<Vec<Received>>,
    tx: mpsc::UnboundedSender<Received>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A webhook receiver on 127.0.0.1:<random port>.
pub struct TestReceiver {
    pub port: u16,
    scheme: &'static str,
    shared: Arc<Shared>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    if !req.path().starts_with(&shared.path) {
        return HttpResponse::NotFound().finish();
    }
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let received = Received {
        path: req.path().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    };
    shared.seen.lock().unwrap().push(received.clone());
    let _ = shared.tx.send(received);
    let answer = shared.script.lock().unwrap().pop_front().unwrap_or_else(|| shared.default.lock().unwrap().clone());
    if !answer.delay.is_zero() {
        actix_rt::time::sleep(answer.delay).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.status).unwrap());
    for (name, value) in &answer.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    response.body(answer.body)
}

impl TestReceiver {
    /// A receiver on a port of its own, answering on a path of its own.
    pub async fn start() -> Self {
        Self::serve("127.0.0.1:0", format!("/hook/{}", uuid::Uuid::new_v4().simple())).await
    }

    /// A receiver on `addr` (a dead endpoint's port coming back), answering on `/hook`.
    pub async fn start_on(addr: &str) -> Self {
        Self::serve(addr, "/hook".to_owned()).await
    }

    /// A receiver serving HTTPS with `tls` (its certificate chain and key).
    pub async fn start_tls(tls: rustls::ServerConfig) -> Self {
        Self::serve_with("127.0.0.1:0", format!("/hook/{}", uuid::Uuid::new_v4().simple()), Some(tls)).await
    }

    async fn serve(addr: &str, path: String) -> Self {
        Self::serve_with(addr, path, None).await
    }

    async fn serve_with(addr: &str, path: String, tls: Option<rustls::ServerConfig>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            path,
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Answer::status(200)),
            seen: Mutex::new(Vec::new()),
            tx,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(tls) => server.bind_rustls_0_23(addr, tls),
            None => server.bind(addr),
        }
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        actix_rt::spawn(server);
        Self { port, scheme, shared, rx: tokio::sync::Mutex::new(rx) }
    }

    pub fn url(&self) -> String {
        self.url_at("127.0.0.1")
    }

    /// The URL with `host` in place of the address (a name a stub resolver answers).
    pub fn url_at(&self, host: &str) -> String {
        format!("{}://{host}:{}{}", self.scheme, self.port, self.shared.path)
    }

    /// The path this receiver answers on (and below).
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// What every request gets unless a scripted answer is queued.
    pub fn answer(&self, answer: Answer) {
        *self.shared.default.lock().unwrap() = answer;
    }

    /// Answers for the next requests, in order.
    pub fn script(&self, answers: Vec<Answer>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    pub async fn recv(&self, within: Duration) -> Option<Received> {
        actix_rt::time::timeout(within, self.rx.lock().await.recv()).await.ok().flatten()
    }

    pub async fn recv_n(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        let mut all = Vec::new();
        while all.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                Some(r) => all.push(r),
                None => panic!("received {} of {n} requests in {within:?}", all.len()),
            }
        }
        all
    }

    pub fn count(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Received> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn max_concurrency(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

/// Verifies `webhook-signature` the way the Standard Webhooks libraries do, written
/// independently of hookbus' own signing code. Returns how many entries verified.
pub fn verify_standard_webhooks(secret: &str, received: &Received) -> usize {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64.decode(encoded).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
    let signed = format!(
        "{}.{}.{}",
        received.header("webhook-id"),
        received.header("webhook-timestamp"),
        String::from_utf8_lossy(&received.body)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    received.header("webhook-signature").split(' ').filter(|entry| *entry == expected).count()
}

/// Verifies `X-Webhook-Signature: sha256=<hex HMAC(secret, body)>`.
pub fn verify_hex_signature(secret: &str, received: &Received) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&received.body);
    received.header("x-webhook-signature") == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub const SHORT: Duration = Duration::from_secs(5);
pub const LONG: Duration = Duration::from_secs(20);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `hookbus` with a clean environment for the settings tests set themselves.
pub fn hookbus_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookbus"));
    command.env_remove("HOOKBUS_ADMIN_TOKEN").env_remove("HOOKBUS_BIND").env("RUST_LOG", "info");
    command
}

/// Polls `/health` until it answers 200; fails if the process exits first.
pub async fn wait_healthy(port: u16, child: &mut std::process::Child) {
    let client = awc::Client::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/health")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the server exited early");
        assert!(Instant::now() < deadline, "the server never answered");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn send_signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

pub fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit in {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real `hookbus` binary, started as a child process; killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub port: u16,
    pub client: awc::Client,
}

impl ServerProcess {
    /// `hookbus serve --dev` on a free port with the test admin token, answering `/health`.
    pub async fn start(database_url: &str, data_dir: &std::path::Path) -> Self {
        Self::start_with(database_url, data_dir, |_| {}).await
    }

    /// The same, with more arguments or environment set by `adjust`.
    pub async fn start_with(
        database_url: &str,
        data_dir: &std::path::Path,
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> Self {
        let port = free_port();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("server.log")).unwrap();
        let mut command = hookbus_command();
        command
            .env("HOOKBUS_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}"), "--database-url", database_url])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(log);
        adjust(&mut command);
        let mut child = command.spawn().unwrap();
        if child.try_wait().unwrap().is_none() {
            // The log says why a server that exits at once did.
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if child.try_wait().unwrap().is_some() {
            let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
            panic!("the server exited at once:\n{log}");
        }
        wait_healthy(port, &mut child).await;
        Self { child, port, client: awc::Client::builder().timeout(Duration::from_secs(30)).finish() }
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Reply, String> {
        self.request("POST", path, Some(body)).await
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        send_signal(&self.child, signal);
    }

    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        wait_exit(&mut self.child, within)
    }
}

impl ServerProcess {
    /// A request with the admin token; `Err` if the server does not answer (it was killed).
    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Reply, String> {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let request = self
            .client
            .request(method, format!("http://127.0.0.1:{}{path}", self.port))
            .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")));
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| e.to_string())?;
        let bytes = response.body().limit(10 << 20).await.map_err(|e| e.to_string())?;
        Ok(Reply { status: response.status().as_u16(), body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
    }
}

/// A TCP proxy in front of PostgreSQL that a test can cut and restore.
pub struct Proxy {
    pub port: u16,
    up: Arc<Mutex<bool>>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(Mutex::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, connections2) = (up.clone(), connections.clone());
        actix_rt::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*up2.lock().unwrap() {
                    continue; // dropped: the connection closes at once
                }
                let task = actix_rt::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections2.lock().unwrap().push(task);
            }
        });
        Self { port, up, connections }
    }

    /// A proxy in front of the PostgreSQL database at `database_url`, and the URL that
    /// reaches the same database through it.
    pub async fn in_front_of(database_url: &str) -> (Self, String) {
        let target: url::Url = database_url.parse().unwrap();
        let address = format!("{}:{}", target.host_str().unwrap(), target.port().unwrap_or(5432));
        let proxy = Self::start(address.parse().unwrap()).await;
        let mut through_proxy = target;
        through_proxy.set_port(Some(proxy.port)).unwrap();
        (proxy, through_proxy.to_string())
    }

    pub fn cut(&self) {
        *self.up.lock().unwrap() = false;
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        *self.up.lock().unwrap() = true;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses the Prometheus text format into (series with labels, value) pairs.
pub fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
            let value = value.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {line}"));
            (series.to_owned(), value)
        })
        .collect()
}

/// The value of `series`; panics if it is missing.
pub fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples.iter().find(|(s, _)| s == series).unwrap_or_else(|| panic!("no series {series} in {samples:?}")).1
}
