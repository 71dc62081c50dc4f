//! Tenants cannot hurt each other: one workspace's slow receivers do not starve another's
//! deliveries, a target whose DNS never answers does not freeze the registry, no text
//! input is a 500, authentication comes before anything else, every key can be listed and
//! revoked, and the files on disk are the owner's alone.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

use crate::backend_test;
use crate::helpers::*;

async fn workspace(app: &TestApp, name: &str) -> (String, String) {
    let created = app.post("/api/v1/workspaces", json!({"name": name})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    (created.body["id"].as_str().unwrap().to_owned(), created.body["api_key"].as_str().unwrap().to_owned())
}

/// Waits until `receiver` has had at least `n` requests in flight at once.
async fn wait_for_concurrency(receiver: &TestReceiver, n: usize) {
    let deadline = Instant::now() + SHORT;
    while receiver.max_concurrency() < n {
        assert!(Instant::now() < deadline, "only {} in flight at once, expected {n}", receiver.max_concurrency());
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Successful deliveries to each of `webhooks` webhooks on `receiver`, so their slow-start
/// allowance (one attempt in flight, doubling per success) reaches its maximum.
async fn warm_up(app: &TestApp, receiver: &TestReceiver, webhooks: usize) {
    app.publish_numbered("load.warm", 0..10).await;
    receiver.recv_n(10 * webhooks, SHORT).await;
}

/// A slow receiver holds every attempt for this long: far beyond the 1 s bound below.
const SLOW: Duration = Duration::from_secs(4);

/// The SPEC §5 scenario at a small scale: one workspace's webhooks hold every shared slot
/// on a receiver that answers after 4 s; another workspace's webhook still starts all its
/// attempts within 1 s, in parallel, from the room the first workspace's cap leaves.
#[actix_web::test]
async fn a_slow_tenant_cannot_take_the_connections_of_another() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.outbound_connections = 32;
        c.outbound_connections_per_workspace = 24;
    })
    .await;
    let slow = TestReceiver::start().await;
    for _ in 0..3 {
        app.create_webhook(json!({"url": slow.url(), "events": ["load.*"], "max_in_flight": 40})).await;
    }
    warm_up(&app, &slow, 3).await;
    slow.answer(Answer::status(200).delayed(SLOW));
    app.publish_numbered("load.tick", 0..40).await;
    // Each webhook's own slot plus the workspace's cap of shared ones, and no more.
    wait_for_concurrency(&slow, 3 + 24).await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slow.max_concurrency(), 27, "one workspace holds at most its cap beyond its webhooks' own");

    let (_, key) = workspace(&app, "healthy").await;
    let healthy = TestReceiver::start().await;
    healthy.answer(Answer::status(200).delayed(Duration::from_millis(300)));
    let created = app
        .request_as(&key, "POST", "/api/v1/webhooks", Some(json!({"url": healthy.url(), "events": ["order.*"]})))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let started = Instant::now();
    for i in 0..8 {
        let published = app
            .request_as(&key, "POST", "/api/v1/events", Some(json!({"event": "order.paid", "data": {"i": i}})))
            .await;
        assert_eq!(published.status, 202);
    }
    // Serially (one slot), 8 attempts of 300 ms would take 2.4 s; with the room the cap left
    // they all start at once.
    let received = healthy.recv_n(8, Duration::from_secs(1)).await;
    let last_start = received.iter().map(|r| r.at.duration_since(started)).max().unwrap();
    assert!(
        last_start < Duration::from_secs(1),
        "the healthy tenant's attempts started {last_start:?} after publishing"
    );
    assert!(healthy.max_concurrency() >= 4, "they ran side by side: {}", healthy.max_concurrency());
}

/// Even when one webhook may take every shared slot, every other webhook keeps one attempt
/// of its own, so its deliveries never queue behind the slow receiver.
#[actix_web::test]
async fn every_webhook_keeps_one_attempt_no_other_can_take() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.outbound_connections = 20;
        c.outbound_connections_per_workspace = 20;
    })
    .await;
    let slow = TestReceiver::start().await;
    app.create_webhook(json!({"url": slow.url(), "events": ["load.*"], "max_in_flight": 64})).await;
    warm_up(&app, &slow, 1).await;
    slow.answer(Answer::status(200).delayed(SLOW));
    app.publish_numbered("load.tick", 0..40).await;
    wait_for_concurrency(&slow, 21).await;

    let (_, key) = workspace(&app, "other").await;
    let healthy = TestReceiver::start().await;
    let created = app
        .request_as(&key, "POST", "/api/v1/webhooks", Some(json!({"url": healthy.url(), "events": ["order.*"]})))
        .await;
    assert_eq!(created.status, 201);
    for i in 0..5 {
        let published = Instant::now();
        let reply = app
            .request_as(&key, "POST", "/api/v1/events", Some(json!({"event": "order.paid", "data": {"i": i}})))
            .await;
        assert_eq!(reply.status, 202);
        let got = healthy.recv(Duration::from_secs(1)).await;
        assert!(got.is_some(), "delivery {i} did not start within 1 s of its publish");
        assert!(got.unwrap().at.duration_since(published) < Duration::from_secs(1));
    }
    assert_eq!(slow.max_concurrency(), 21, "the slow webhook never got more than its own slot and the pool");
}

/// Registrations whose DNS never answers take their deadline and no more, and while they
/// wait another workspace's calls, URL changes included, are answered at once.
#[actix_web::test]
async fn a_target_whose_dns_never_answers_does_not_freeze_the_registry() {
    let dns = StubDns::default()
        .answer("fast.example", "93.184.216.34")
        .answer("internal.example", "10.1.2.3")
        .silent("silent-1.example")
        .silent("silent-2.example")
        .silent("silent-3.example");
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.dev = false;
        c.registration_dns_timeout_ms = 1_500;
        c.resolver = dns.resolver();
    })
    .await;
    let (_, key) = workspace(&app, "bystander").await;
    let created = app
        .request_as(&key, "POST", "/api/v1/webhooks", Some(json!({"url": "https://fast.example/", "events": ["*"]})))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let stuck = (1..=3).map(|i| {
        let app = &app;
        async move {
            let body = json!({"url": format!("https://silent-{i}.example/hook"), "events": ["*"]});
            let reply = app.post("/api/v1/webhooks", body).await;
            (reply.status, started.elapsed())
        }
    });
    let bystander = async {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let mut took = Vec::new();
        for (method, path, body) in [
            ("PATCH", format!("/api/v1/webhooks/{id}"), Some(json!({"name": "renamed"}))),
            ("PATCH", format!("/api/v1/webhooks/{id}"), Some(json!({"url": "https://fast.example/v2"}))),
            ("GET", "/api/v1/webhooks".to_owned(), None),
        ] {
            let asked = Instant::now();
            let reply = app.request_as(&key, method, &path, body).await;
            assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
            took.push(asked.elapsed());
        }
        took
    };
    let (stuck, took) = futures_util::future::join(futures_util::future::join_all(stuck), bystander).await;
    for elapsed in &took {
        assert!(*elapsed < Duration::from_millis(500), "another tenant's call waited {elapsed:?}: {took:?}");
    }
    for (status, elapsed) in stuck {
        assert_eq!(status, 201, "a host that does not answer in time is accepted and checked at connect");
        assert!(elapsed < Duration::from_millis(1_500 + 1_000), "answered after {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(1_400), "it did wait for its deadline: {elapsed:?}");
    }

    let internal = app.post("/api/v1/webhooks", json!({"url": "https://internal.example/", "events": ["*"]})).await;
    assert_eq!(internal.status, 422, "{}", internal.body);
    let moved = app
        .request_as(&key, "PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"url": "https://internal.example/"})))
        .await;
    assert_eq!(moved.status, 422, "a URL change is checked as a registration is: {}", moved.body);
    let kept = app.request_as(&key, "GET", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(kept.body["url"], "https://fast.example/v2", "and changes nothing");
    for literal in ["https://[::ffff:0:7f00:1]/", "https://[2001::1]/", "https://[100::1]/", "https://192.88.99.1/"] {
        let reply = app.post("/api/v1/webhooks", json!({"url": literal, "events": ["*"]})).await;
        assert_eq!(reply.status, 422, "{literal}: {}", reply.body);
    }
    let port_zero = app.post("/api/v1/webhooks", json!({"url": "https://fast.example:0/", "events": ["*"]})).await;
    assert_eq!(port_zero.status, 422);
}

/// The text fields the API stores as text, with the body around one value; `{}` is where
/// the value goes (as a JSON string literal).
const TEXT_FIELDS: &[(&str, &str, &str)] = &[
    ("name", "/api/v1/webhooks", r#"{"url": "http://127.0.0.1:9/", "events": ["never.matched"], "name": {}}"#),
    ("url", "/api/v1/webhooks", r#"{"url": {}, "events": ["never.matched"]}"#),
    ("events", "/api/v1/webhooks", r#"{"url": "http://127.0.0.1:9/", "events": [{}]}"#),
    (
        "headers",
        "/api/v1/webhooks",
        r#"{"url": "http://127.0.0.1:9/", "events": ["never.matched"], "headers": {"x-a": {}}}"#,
    ),
    (
        "headers",
        "/api/v1/webhooks",
        r#"{"url": "http://127.0.0.1:9/", "events": ["never.matched"], "headers": {{}: "v"}}"#,
    ),
    ("event", "/api/v1/events", r#"{"event": {}, "data": {}}"#),
    ("id", "/api/v1/events", r#"{"event": "a.b", "data": {"k": 1}, "id": {}}"#),
    ("name", "/api/v1/workspaces", r#"{"name": {}}"#),
];

/// Strings a hostile tenant would try: control characters (NUL first), escaped lone
/// surrogates, long runs, and ordinary text around them.
fn hostile_strings() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\\u0000".to_owned()),
        Just("\\ud800".to_owned()),
        Just("\\udfff".to_owned()),
        (0u32..0x20).prop_map(|c| format!("\\u{c:04x}")),
        prop::sample::select(vec!["\\u007f", "\\u0085", "\\u2028", "\\t", "\\n"]).prop_map(str::to_owned),
        "[a-z.]{1,12}",
        "[\\PC]{1,8}".prop_map(|s| serde_json::to_string(&s).unwrap().trim_matches('"').to_owned()),
        (200usize..3000).prop_map(|n| "x".repeat(n)),
    ];
    prop::collection::vec(piece, 1..5).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

fn generate_strings(n: usize) -> Vec<String> {
    let mut runner = TestRunner::new_with_rng(Default::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[21; 32]));
    let strategy = hostile_strings();
    let mut values: Vec<String> = (0..n).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect();
    values.insert(0, "\"a\\u0000b\"".to_owned());
    values
}

async fn send_raw(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let mut response = app
        .client
        .post(format!("{}{path}", app.base))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_owned())
        .await
        .unwrap();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    (response.status().as_u16(), serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Every stored text field, fed control characters, escaped lone surrogates and long
/// strings: never a 5xx, a 422 names its field, and SQLite and PostgreSQL answer alike.
#[actix_web::test]
async fn no_text_input_is_a_server_error_on_either_backend() {
    let mut apps = vec![spawn_app(Backend::Sqlite).await];
    if postgres_url().is_some() {
        apps.push(spawn_app(Backend::Postgres).await);
    }
    for app in &apps {
        let nul_name =
            send_raw(app, "/api/v1/webhooks", r#"{"url":"http://127.0.0.1:9/","events":["*"],"name":"a\u0000b"}"#)
                .await;
        assert_eq!(nul_name.0, 422, "{}", nul_name.1);
        assert!(nul_name.1["error"]["message"].as_str().unwrap().starts_with("name:"), "{}", nul_name.1);
        let nul_workspace = send_raw(app, "/api/v1/workspaces", r#"{"name":"\u0000"}"#).await;
        assert_eq!(nul_workspace.0, 422, "{}", nul_workspace.1);
    }
    let values = generate_strings(60);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for (field, path, template) in TEXT_FIELDS {
        for value in &values {
            let body = template.replacen("{}", value, 1);
            let mut answers = Vec::new();
            for app in &apps {
                let (status, reply) = send_raw(app, path, &body).await;
                assert!(status < 500, "{path} {body:.200}: {status} {reply}");
                assert!(matches!(status, 200 | 201 | 202 | 400 | 409 | 422), "{path} {body:.200}: {status} {reply}");
                if status == 422 {
                    let message = reply["error"]["message"].as_str().unwrap_or_default();
                    assert!(message.starts_with(field), "{body:.200}: {message}");
                }
                *statuses.entry(status).or_default() += 1;
                answers.push(status);
            }
            assert!(answers.windows(2).all(|w| w[0] == w[1]), "backends disagree on {body:.200}: {answers:?}");
        }
    }
    // The generator reached every kind of answer the rules allow.
    assert!(statuses.contains_key(&422) && statuses.contains_key(&400), "{statuses:?}");
    assert!(statuses.keys().any(|s| (200..300).contains(s)), "{statuses:?}");
    for app in &apps {
        assert_eq!(app.get("/api/v1/webhooks").await.status, 200, "the server still answers");
    }
}

// A bad credential is a 401 whatever else is wrong with the request.
backend_test!(a_bad_credential_is_a_401_before_anything_else, |backend| async move {
    let app = spawn_app(backend).await;
    let huge = "x".repeat(300 * 1024);
    let id = uuid::Uuid::now_v7();
    for token in ["wrong-token-0123456789", "hbk_not-a-real-key", ""] {
        for (method, path, body) in [
            ("GET", "/api/v1/webhooks?workspace_id=garbage".to_owned(), None),
            ("GET", format!("/api/v1/webhooks?workspace_id={id}"), None),
            ("GET", "/api/v1/no-such-route".to_owned(), None),
            ("GET", "/api/v1/webhooks/not-an-id".to_owned(), None),
            ("GET", "/api/v1/webhooks?limit=0".to_owned(), None),
            ("POST", "/api/v1/webhooks".to_owned(), Some("{not json".to_owned())),
            ("POST", "/api/v1/events".to_owned(), Some(huge.clone())),
            ("POST", "/api/v1/workspaces".to_owned(), Some("{}".to_owned())),
        ] {
            let mut request = app.client.request(method.parse().unwrap(), format!("{}{path}", app.base));
            if !token.is_empty() {
                request = request.insert_header(("Authorization", format!("Bearer {token}")));
            }
            let mut response = match body {
                Some(body) => request.insert_header(("Content-Type", "text/plain")).send_body(body).await.unwrap(),
                None => request.send().await.unwrap(),
            };
            let reply: Value = response.json().limit(1 << 20).await.unwrap();
            assert_eq!(response.status().as_u16(), 401, "{token:?} {method} {path}: {reply}");
            assert_eq!(reply["error"]["code"], "unauthorized");
        }
    }
    let mut open = app.client.get(format!("{}/api/v1/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(open.status().as_u16(), 200, "the OpenAPI document needs no token");
    let _ = open.body().limit(10 << 20).await.unwrap();
    // With a good token the same requests get their own answers.
    assert_eq!(app.get("/api/v1/webhooks?workspace_id=garbage").await.status, 404);
    assert_eq!(app.get("/api/v1/no-such-route").await.status, 404);
});

backend_test!(every_key_can_be_listed_and_revoked, |backend| async move {
    let app = spawn_app(backend).await;
    let created = app.post("/api/v1/workspaces", json!({"name": "acme"})).await;
    assert_eq!(created.status, 201);
    let ws = created.body["id"].as_str().unwrap().to_owned();
    let first_key = created.body["api_key"].as_str().unwrap().to_owned();
    let first_id = created.body["api_key_id"].as_str().expect("the first key's id is returned").to_owned();
    let second = app.post(&format!("/api/v1/workspaces/{ws}/keys"), json!({})).await;
    let second_id = second.body["id"].as_str().unwrap().to_owned();
    let second_key = second.body["api_key"].as_str().unwrap().to_owned();

    let listed = app.get(&format!("/api/v1/workspaces/{ws}/keys")).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let keys = listed.body["data"].as_array().unwrap();
    assert_eq!(keys.iter().map(|k| k["id"].as_str().unwrap()).collect::<Vec<_>>(), [&second_id, &first_id]);
    for (entry, key) in keys.iter().zip([&second_key, &first_key]) {
        let prefix = entry["prefix"].as_str().unwrap();
        assert!(prefix.starts_with("hbk_") && prefix.len() >= 10 && key.starts_with(prefix), "{entry}");
        assert!(entry["created_at"].is_string() && entry["last_used_at"].is_null(), "{entry}");
    }
    assert_ne!(keys[0]["prefix"], keys[1]["prefix"], "prefixes tell keys apart");
    let text = listed.body.to_string();
    assert!(!text.contains(&first_key) && !text.contains(&second_key), "never the key itself");

    // A use shows within moments (written in the background, at most once a minute).
    let before_use = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(app.request_as(&first_key, "GET", "/api/v1/webhooks", None).await.status, 200);
    let deadline = Instant::now() + SHORT;
    let used = loop {
        let keys = app.get(&format!("/api/v1/workspaces/{ws}/keys")).await.body["data"].clone();
        let entry = keys.as_array().unwrap().iter().find(|k| k["id"] == first_id.as_str()).unwrap().clone();
        if let Some(at) = entry["last_used_at"].as_str() {
            break chrono::DateTime::parse_from_rfc3339(at).unwrap();
        }
        assert!(Instant::now() < deadline, "last_used_at never set");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(used >= before_use && used <= chrono::Utc::now(), "{used}");

    // The leaked first key is revoked by the id it came with.
    let revoked = app.request("DELETE", &format!("/api/v1/workspaces/{ws}/keys/{first_id}"), None).await;
    assert_eq!(revoked.status, 204);
    assert_eq!(app.request_as(&first_key, "GET", "/api/v1/webhooks", None).await.status, 401);
    let left = app.get(&format!("/api/v1/workspaces/{ws}/keys")).await.body["data"].clone();
    assert_eq!(left.as_array().unwrap().len(), 1, "revoked keys are not listed: {left}");
    // Listing is the admin's: a key sees no such route, an unknown workspace is 404.
    assert_eq!(app.request_as(&second_key, "GET", &format!("/api/v1/workspaces/{ws}/keys"), None).await.status, 404);
    let missing = uuid::Uuid::now_v7();
    assert_eq!(app.get(&format!("/api/v1/workspaces/{missing}/keys")).await.status, 404);
});

#[cfg(unix)]
#[actix_web::test]
async fn the_data_dir_and_its_files_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let config = hookbus::Config {
        bind: "127.0.0.1:0".into(),
        data_dir: data_dir.clone(),
        dev: true,
        workers: 1,
        ..hookbus::Config::default()
    };
    let app = hookbus::Application::build(config.clone()).await.unwrap();
    let receiver = TestReceiver::start().await;
    let registered = app.bus().registry().send(hookbus::RegisterWebhook {
        workspace_id: hookbus::WorkspaceId::DEFAULT,
        input: serde_json::from_value(json!({"url": receiver.url(), "events": ["*"]})).unwrap(),
    });
    registered.await.unwrap().unwrap();
    assert_eq!(mode(&data_dir), 0o700);
    for file in ["hookbus.db", "hookbus.db-wal", "hookbus.db-shm", "admin.token", "master.key"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    drop(app);

    // Files left readable by others (an older version, a copy) are tightened at start.
    for file in ["admin.token", "master.key", "hookbus.db"] {
        std::fs::set_permissions(data_dir.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let _again = hookbus::Application::build(config).await.unwrap();
    for file in ["admin.token", "master.key", "hookbus.db"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file} tightened");
    }
}

#[test]
fn an_admin_token_shaped_like_a_key_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = hookbus_command()
        .args(["serve", "--dev", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("HOOKBUS_ADMIN_TOKEN", "hbk_this-looks-like-a-workspace-key")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HOOKBUS_ADMIN_TOKEN") && stderr.contains("hbk_"), "{stderr}");
}
