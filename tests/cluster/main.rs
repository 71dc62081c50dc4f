//! Several servers on one PostgreSQL database (SPEC §9): real `hookbus` processes on a fresh
//! database, real receivers, servers killed, stopped, started and cut off for real.
//!
//! A binary of its own, so these processes do not share the machine with the other
//! integration tests, and one scenario at a time (`ONE_AT_A_TIME`): the timing bounds
//! checked here (takeovers, hand-overs) are meant for a machine that is not overloaded.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod faults;
mod one_system;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use helpers::*;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Leases short enough for takeovers in seconds.
const LEASE_TTL_MS: u64 = 2_000;

/// Servers sharing one fresh PostgreSQL database (same admin token and master key), each
/// with a data dir of its own. `None` when PostgreSQL is not configured (outside CI).
pub struct Cluster {
    pub db: TestDb,
    pub servers: Vec<Option<ServerProcess>>,
    dirs: Vec<tempfile::TempDir>,
    master_key: String,
    args: Vec<String>,
    /// The database URL the servers use (a proxy's, to cut them off).
    pub url: String,
}

impl Cluster {
    pub async fn start(n: usize, args: &[&str]) -> Option<Self> {
        postgres_url()?;
        let db = TestDb::new(Backend::Postgres).await;
        let key: Vec<u8> = (0..2).flat_map(|_| uuid::Uuid::new_v4().into_bytes()).collect();
        let url = db.url.clone();
        let mut cluster = Self {
            db,
            servers: Vec::new(),
            dirs: Vec::new(),
            master_key: base64::engine::general_purpose::STANDARD.encode(key),
            args: args.iter().map(|a| a.to_string()).collect(),
            url,
        };
        for _ in 0..n {
            cluster.add().await;
        }
        Some(cluster)
    }

    /// Starts one more server; returns its index.
    pub async fn add(&mut self) -> usize {
        self.dirs.push(tempfile::tempdir().unwrap());
        self.servers.push(None);
        let i = self.servers.len() - 1;
        self.restart(i).await;
        i
    }

    /// Starts server `i` (again, after it exited), on its own data dir.
    pub async fn restart(&mut self, i: usize) {
        let dir = self.dirs[i].path().to_owned();
        let name = format!("server-{i}");
        let server = ServerProcess::start_with(&self.url, &dir, |command| {
            command.env("HOOKBUS_MASTER_KEY", &self.master_key).args(["--server-name", &name]).args(&self.args);
            // More detail in the servers' logs when a scenario is being investigated.
            if let Ok(filter) = std::env::var("HOOKBUS_TEST_SERVER_LOG") {
                command.env("RUST_LOG", filter);
            }
            if !self.args.iter().any(|a| a == "--lease-ttl-ms") {
                command.args(["--lease-ttl-ms", &LEASE_TTL_MS.to_string()]);
            }
        })
        .await;
        self.servers[i] = Some(server);
    }

    /// Server `i`'s log file.
    pub fn log_path(&self, i: usize) -> std::path::PathBuf {
        self.dirs[i].path().join("server.log")
    }

    pub fn server(&self, i: usize) -> &ServerProcess {
        self.servers[i].as_ref().expect("server running")
    }

    pub fn live(&self) -> impl Iterator<Item = (usize, &ServerProcess)> {
        self.servers.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }

    /// A request through server `i`, which must answer.
    pub async fn call(&self, i: usize, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.server(i).request(method, path, body).await.unwrap_or_else(|e| panic!("server {i}: {e}"))
    }

    pub async fn create_webhook(&self, i: usize, body: Value) -> String {
        let reply = self.call(i, "POST", "/api/v1/webhooks", Some(body)).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Publishes event `id` through server `i`; `true` if it was accepted (202). A server that
    /// does not answer (killed) accepts nothing.
    pub async fn publish_through(&self, i: usize, id: &str) -> bool {
        let body = json!({"id": id, "event": "order.paid", "data": {"id": id}});
        match self.servers[i].as_ref() {
            Some(server) => {
                matches!(server.request("POST", "/api/v1/events", Some(body)).await, Ok(r) if r.status == 202)
            }
            None => false,
        }
    }

    /// The admin dashboard through server `i`.
    /// Server `i`'s `/metrics`, parsed.
    pub async fn metrics(&self, i: usize) -> Vec<(String, f64)> {
        let text = awc::Client::default()
            .get(format!("http://127.0.0.1:{}/metrics", self.server(i).port))
            .send()
            .await
            .unwrap()
            .body()
            .await
            .unwrap();
        parse_metrics(std::str::from_utf8(&text).unwrap())
    }

    /// How many webhooks server `i` runs endpoints for (its `hookbus_owned_webhooks`).
    pub async fn owned_webhooks(&self, i: usize) -> f64 {
        sample(&self.metrics(i).await, "hookbus_owned_webhooks")
    }

    pub async fn dashboard(&self, i: usize) -> Value {
        let reply = self.call(i, "GET", "/api/v1/health", None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    /// Polls the dashboard through server `i` until `ready` holds.
    pub async fn dashboard_when(&self, i: usize, within: Duration, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let dashboard = self.dashboard(i).await;
            if ready(&dashboard) {
                return dashboard;
            }
            assert!(Instant::now() < deadline, "the dashboard never got there: {dashboard:#}");
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Owner of each webhook as the dashboard shows it (`None` while unowned).
pub fn owners(dashboard: &Value) -> HashMap<String, Option<String>> {
    dashboard["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_str().unwrap().to_owned(), w["owner"].as_str().map(str::to_owned)))
        .collect()
}

/// Every webhook has an owner among the live servers, and each live server's count of
/// webhooks matches.
pub fn owned_by_live_servers(dashboard: &Value) -> bool {
    let servers: HashMap<&str, u64> = dashboard["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["webhooks"].as_u64().unwrap()))
        .collect();
    let owners = owners(dashboard);
    owners.values().all(|o| o.as_deref().is_some_and(|o| servers.contains_key(o)))
        && servers.values().sum::<u64>() == owners.len() as u64
}

/// Delivery ids (the `webhook-id` header) received, and how many times each.
pub fn received_counts(receiver: &TestReceiver) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for received in receiver.seen() {
        *counts.entry(received.header("webhook-id").to_owned()).or_default() += 1;
    }
    counts
}

/// Event ids received (from the body), once each.
pub fn received_events(receiver: &TestReceiver) -> std::collections::HashSet<String> {
    receiver.seen().iter().filter_map(|r| r.json()["data"]["id"].as_str().map(str::to_owned)).collect()
}
