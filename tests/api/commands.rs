//! The command line's client commands (`webhooks`, `publish`, `deliveries`, `replay`,
//! `listen`, `completions`): the real binary against the real server.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// `hookbus <args>` against `app` with the admin token from the environment, run off the
/// test's thread (the server answers on it).
async fn hookbus(app: &TestApp, args: &[&str]) -> Output {
    let mut command = hookbus_command();
    command.args(args).env("HOOKBUS_URL", &app.base).env("HOOKBUS_TOKEN", ADMIN_TOKEN).env_remove("RUST_LOG");
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

/// Runs and expects success; the JSON it printed.
async fn hookbus_json(app: &TestApp, args: &[&str]) -> Value {
    let output = hookbus(app, &[args, &["--json"]].concat()).await;
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&output)))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[actix_web::test]
async fn webhooks_publish_and_deliveries_from_the_command_line() {
    let app = spawn_app(Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;

    let created = hookbus_json(
        &app,
        &[
            "webhooks",
            "create",
            &receiver.url(),
            "--events",
            "artifact.*,source.ready",
            "--name",
            "Orders",
            "--max-retries",
            "0",
            "--header",
            "X-Team: billing",
        ],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["events"], json!(["artifact.*", "source.ready"]));
    assert_eq!(created["headers"], json!({"X-Team": "billing"}));

    // A table for people.
    let listed = hookbus(&app, &["webhooks", "list"]).await;
    assert!(listed.status.success());
    let table = stdout(&listed);
    assert!(table.contains("NAME") && table.contains("Orders") && table.contains(&id), "{table}");
    assert_eq!(hookbus_json(&app, &["webhooks", "list"]).await["data"].as_array().unwrap().len(), 1);

    let updated = hookbus_json(&app, &["webhooks", "update", &id, "--name", "Orders v2", "--enabled", "true"]).await;
    assert_eq!(updated["name"], "Orders v2");
    let shown = hookbus(&app, &["webhooks", "show", &id]).await;
    assert!(stdout(&shown).contains("name: Orders v2"), "{}", stdout(&shown));

    let tested = hookbus(&app, &["webhooks", "test", &id]).await;
    assert!(stdout(&tested).contains("succeeded"), "{}", stdout(&tested));
    assert_eq!(receiver.recv(SHORT).await.unwrap().json()["event"], "webhook.test");

    let published =
        hookbus_json(&app, &["publish", "artifact.completed", "--data", r#"{"n": 1}"#, "--id", "evt-1"]).await;
    assert_eq!((published["id"].as_str(), published["matched_webhooks"].as_u64()), (Some("evt-1"), Some(1)));
    let received = receiver.recv(SHORT).await.unwrap();
    assert_eq!(received.json()["data"], json!({"n": 1}));
    let delivery_id = received.header("webhook-id").to_owned();
    app.wait_for_delivery(&delivery_id, "succeeded", SHORT).await;

    let deliveries = hookbus_json(&app, &["deliveries", "list", &id, "--status", "succeeded"]).await;
    assert_eq!(deliveries["data"].as_array().unwrap().len(), 2, "the test event and the published one");
    // One at a time: the table says how to get the next page, which holds the other one.
    let first = hookbus(&app, &["deliveries", "list", &id, "--limit", "1"]).await;
    let hint = stderr(&first);
    let cursor = hint.trim().strip_prefix("more: the same command with --cursor ").expect(&hint).to_owned();
    let second = hookbus_json(&app, &["deliveries", "list", &id, "--limit", "1", "--cursor", &cursor]).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert!(!stdout(&first).contains(second["data"][0]["id"].as_str().unwrap()), "another delivery");
    let table = stdout(&hookbus(&app, &["deliveries", "show", &delivery_id]).await);
    assert!(
        table.contains("status: succeeded") && table.contains("RESPONSE BODY") && table.contains(r#""data":{"n":1}"#),
        "{table}"
    );
    let redelivered = hookbus_json(&app, &["deliveries", "redeliver", &delivery_id]).await;
    assert_eq!(redelivered["status"], "pending");
    assert_eq!(receiver.recv(SHORT).await.unwrap().header("x-webhook-attempt"), "2");

    // The API's errors, with their code and message, and a non-zero exit.
    let missing = hookbus(&app, &["webhooks", "show", "01a244d3-0000-7000-8000-000000000000"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).starts_with("error: not_found: "), "{}", stderr(&missing));
    let invalid = hookbus(&app, &["webhooks", "create", "ftp://example.com", "--events", "a.b"]).await;
    assert_eq!(invalid.status.code(), Some(1));
    assert!(stderr(&invalid).contains("validation_failed: url"), "{}", stderr(&invalid));
    let mut anonymous = hookbus_command();
    anonymous.args(["webhooks", "list", "--url", &app.base]).env_remove("HOOKBUS_TOKEN");
    let anonymous = tokio::task::spawn_blocking(move || anonymous.output().unwrap()).await.unwrap();
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(stderr(&anonymous).contains("no token"), "{}", stderr(&anonymous));
    let refused = hookbus(&app, &["webhooks", "list", "--token", "wrong-token"]).await;
    assert!(stderr(&refused).starts_with("error: unauthorized: "), "{}", stderr(&refused));

    let deleted = hookbus(&app, &["webhooks", "delete", &id]).await;
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert_eq!(hookbus_json(&app, &["webhooks", "list"]).await["data"], json!([]));
}

#[actix_web::test]
async fn replay_runs_in_the_background_and_the_command_follows_it_to_the_end() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.failure_threshold = 100_000).await;
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(500));
    let webhook = app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_retries": 0})).await;
    let id = webhook["id"].as_str().unwrap();
    app.publish_numbered("source.ready", 0..600).await;
    app.dashboard_when(|d| d["totals"]["failed"] == 600).await;

    receiver.answer(Answer::status(200));
    let output = hookbus(&app, &["replay", id, "--since", "10m", "--json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let replay: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (replay["state"].as_str(), replay["requeued"].as_u64(), replay["total"].as_u64()),
        (Some("finished"), Some(600), Some(600))
    );
    // Progress went to stderr, for a person watching.
    assert!(stderr(&output).contains("of 600 requeued"), "{}", stderr(&output));
    app.dashboard_when(|d| d["totals"]["succeeded"] == 600).await;

    let bad = hookbus(&app, &["replay", id, "--since", "last tuesday"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("--since"), "{}", stderr(&bad));
}

/// `hookbus listen` as a child process, its stdout read line by line.
struct Listening {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    url: String,
    port: u16,
}

impl Listening {
    fn start(secret: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let mut child = hookbus_command()
            .args(["listen", "--port", &port.to_string(), "--secret", secret, "--json"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
        Self { child, lines, url: format!("http://127.0.0.1:{port}/hook"), port }
    }

    /// Waits until it accepts connections.
    async fn ready(self) -> Self {
        let deadline = std::time::Instant::now() + SHORT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "listen never listened");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        self
    }

    async fn next(&self) -> Value {
        let deadline = std::time::Instant::now() + SHORT;
        loop {
            if let Ok(line) = self.lines.try_recv() {
                return serde_json::from_str(&line).unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "listen printed nothing");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn listen_prints_each_delivery_checks_its_signatures_and_forwards_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let app_endpoint = TestReceiver::start().await;
    app_endpoint.answer(Answer::status(202).body(b"taken"));
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let listening = Listening::start(secret, &["--forward-to", &app_endpoint.url()]).ready().await;
    let webhook =
        app.create_webhook(json!({"url": listening.url, "events": ["*"], "secret": secret, "max_retries": 0})).await;
    let published = app.publish("artifact.completed", json!({"n": 7})).await;
    app.wait_for_all(webhook["id"].as_str().unwrap(), 1, "succeeded", SHORT).await;
    let printed = listening.next().await;
    assert_eq!(printed["event"], "artifact.completed");
    assert_eq!(printed["attempt"], 1);
    assert_eq!(
        (printed["signature_valid"].as_bool(), printed["hex_signature_valid"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(printed["timestamp_fresh"], true);
    assert_eq!(printed["forwarded_status"], 202);
    let body: Value = serde_json::from_str(printed["body"].as_str().unwrap()).unwrap();
    assert_eq!((body["id"].clone(), body["data"].clone()), (published["id"].clone(), json!({"n": 7})));
    // Forwarded whole, with hookbus' headers, and hookbus saw the app's answer.
    let forwarded = app_endpoint.recv(SHORT).await.unwrap();
    assert_eq!(forwarded.header("webhook-id"), printed["delivery_id"].as_str().unwrap());
    assert_eq!(verify_standard_webhooks(secret, &forwarded), 1);
    let delivery = app.get(&format!("/api/v1/deliveries/{}", printed["delivery_id"].as_str().unwrap())).await.body;
    assert_eq!((delivery["status_code"].as_u64(), delivery["response_body"].as_str()), (Some(202), Some("taken")));

    // A listener with another secret refuses the delivery and says why.
    let wrong = Listening::start("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &[]).ready().await;
    let other =
        app.create_webhook(json!({"url": wrong.url, "events": ["source.*"], "secret": secret, "max_retries": 0})).await;
    app.publish("source.ready", json!({})).await;
    let printed = wrong.next().await;
    assert_eq!(
        (printed["signature_valid"].as_bool(), printed["hex_signature_valid"].as_bool()),
        (Some(false), Some(false))
    );
    let failed = app.wait_for_all(other["id"].as_str().unwrap(), 1, "failed", SHORT).await;
    assert_eq!(failed[0]["status_code"], 401);
}

#[actix_web::test]
async fn completions_are_printed_for_each_shell() {
    let app = spawn_app(Backend::Sqlite).await;
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef hookbus"), ("fish", "complete -c hookbus")] {
        let output = hookbus(&app, &["completions", shell]).await;
        assert!(output.status.success(), "{shell}");
        let script = stdout(&output);
        assert!(
            script.contains(marker) && script.contains("webhooks") && script.contains("replay"),
            "{shell}: {script}"
        );
    }
}
