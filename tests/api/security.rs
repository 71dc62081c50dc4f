//! The target guard (SPEC §6): internal addresses are refused at registration and again
//! at every connect; `--dev` / `allow_private_targets` lifts it.

use std::time::Duration;

use serde_json::json;

use hookbus::domain::url::UrlPolicy;
use hookbus::domain::webhook::{Webhook, WebhookInput};
use hookbus::domain::{WebhookUrl, WorkspaceId};
use hookbus::store::{DatabaseUrl, Store};

use crate::backend_test;
use crate::helpers::*;

const REFUSED: &[&str] = &[
    "https://127.0.0.1/hook",
    "https://2130706433/hook",
    "https://127.1/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[64:ff9b::a00:1]/hook",
    "https://[2002:c0a8:0101::1]/hook",
    "https://10.1.2.3/hook",
    "https://172.16.5.4/hook",
    "https://192.168.0.10/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",
    "https://[fd00::1]/hook",
    "https://[fe80::1]/hook",
    "https://224.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://localhost/hook",
];

backend_test!(internal_targets_and_plain_http_are_refused_without_dev, |backend| async move {
    let app = spawn_app_with(backend, |c| c.dev = false).await;
    for url in REFUSED {
        let reply = app.post("/api/v1/webhooks", json!({"url": url, "events": ["*"]})).await;
        assert_eq!(reply.status, 422, "{url}: {}", reply.body);
        assert!(reply.body["error"]["message"].as_str().unwrap().starts_with("url"), "{url}");
    }
    let http = app.post("/api/v1/webhooks", json!({"url": "http://example.com/hook", "events": ["*"]})).await;
    assert_eq!(http.status, 422);
    assert!(http.body["error"]["message"].as_str().unwrap().contains("https"));

    // A name that resolves to loopback through the resolver (not a literal, not "localhost").
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let resolves_local = std::net::ToSocketAddrs::to_socket_addrs(&(hostname.as_str(), 443))
        .map(|mut a| a.any(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    assert!(
        resolves_local,
        "this test needs the machine's name ({hostname}) to resolve to loopback, as /etc/hosts has it"
    );
    let by_name =
        app.post("/api/v1/webhooks", json!({"url": format!("https://{hostname}/hook"), "events": ["*"]})).await;
    assert_eq!(by_name.status, 422, "{}", by_name.body);
    assert!(by_name.body["error"]["message"].as_str().unwrap().contains("resolves to"));
    // Changing the URL of an existing webhook is checked the same way.
    let public = app.post("/api/v1/webhooks", json!({"url": "https://93.184.215.14/hook", "events": ["*"]})).await;
    assert_eq!(public.status, 201, "{}", public.body);
    let id = public.body["id"].as_str().unwrap();
    let patched = app
        .request("PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"url": "https://[::ffff:10.0.0.1]/"})))
        .await;
    assert_eq!(patched.status, 422);
    assert_eq!(app.get("/api/v1/webhooks").await.body["data"].as_array().unwrap().len(), 1);
});

backend_test!(allow_private_targets_lifts_the_guard_but_not_the_https_rule, |backend| async move {
    let app = spawn_app_with(backend, |c| {
        c.dev = false;
        c.allow_private_targets = true;
    })
    .await;
    for url in REFUSED {
        let reply = app.post("/api/v1/webhooks", json!({"url": url, "events": ["*"]})).await;
        assert_eq!(reply.status, 201, "{url}: {}", reply.body);
    }
    let http = app.post("/api/v1/webhooks", json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]})).await;
    assert_eq!(http.status, 422);
});

backend_test!(the_guard_refuses_internal_addresses_again_at_connect_time, |backend| async move {
    // Webhooks that reached the database while the guard was off (or whose name later
    // resolves inward) must still never be contacted.
    let db = TestDb::new(backend).await;
    let receiver = TestReceiver::start().await;
    let store = Store::open(&DatabaseUrl::parse(&db.url), 1).await.unwrap();
    let lax = UrlPolicy { allow_http: true, allow_private: true };
    let mut ids = Vec::new();
    for url in [receiver.url(), format!("http://localhost:{}{}", receiver.port, receiver.path())] {
        let input =
            WebhookInput { url: Some(url), events: Some(vec!["*".into()]), max_retries: Some(0), ..Default::default() };
        let webhook = Webhook::create(WorkspaceId::DEFAULT, input, lax, hookbus::domain::now()).unwrap();
        store.insert_webhook(&webhook).await.unwrap();
        ids.push(webhook.id.to_string());
    }
    drop(store);
    let mut config = test_config(&db);
    config.dev = false;
    let app = hookbus::Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_rt::spawn(app.run());
    let client = awc::Client::default();
    let publish = client
        .post(format!("{base}/api/v1/events"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send_json(&json!({"event": "a.b", "data": {}}))
        .await
        .unwrap();
    assert_eq!(publish.status().as_u16(), 202);
    for id in &ids {
        let deadline = std::time::Instant::now() + SHORT;
        loop {
            let mut response = client
                .get(format!("{base}/api/v1/webhooks/{id}/deliveries"))
                .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = response.json().await.unwrap();
            if body["data"][0]["status"] == "failed" {
                assert_eq!(body["data"][0]["error_message"], "blocked target address");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{body}");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(receiver.count(), 0, "no request reached the internal address");
});

#[actix_web::test]
async fn resolution_at_registration_sees_through_names() {
    let lax = UrlPolicy { allow_http: true, allow_private: true };
    let resolver = StubDns::default()
        .answer("internal.example", "93.184.216.34")
        .answer("internal.example", "10.0.0.7")
        .answer("public.example", "93.184.216.34")
        .silent("silent.example")
        .resolver();
    let check = |raw: &str| {
        let url = WebhookUrl::parse("url", raw, lax).unwrap();
        let resolver = resolver.clone();
        async move { hookbus::delivery::resolves_to_internal(&resolver, &url, Duration::from_millis(300)).await }
    };
    assert!(check("https://internal.example/").await, "one internal answer is enough");
    assert!(!check("https://public.example/").await);
    assert!(!check("https://8.8.8.8/").await, "a literal is not looked up");
    assert!(!check("https://unknown.example/").await, "unresolvable: checked at connect");
    let started = std::time::Instant::now();
    assert!(!check("https://silent.example/").await, "no answer in time: checked at connect");
    assert!(started.elapsed() < Duration::from_secs(2), "the deadline holds: {:?}", started.elapsed());
}

backend_test!(webhook_secrets_are_encrypted_at_rest, |backend| async move {
    let app = spawn_app(backend).await;
    let created = app
        .create_webhook(
            json!({"url": "http://127.0.0.1:9/", "events": ["*"], "secret": "plain-text-secret-value-1234"}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let rotated = app.post(&format!("/api/v1/webhooks/{id}/secret/rotate"), json!({})).await;
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    // The API still shows the secret to its owner…
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}/secret")).await.body["secret"], new_secret.as_str());
    // …but the rows hold ciphertext: read them without the key.
    let raw = Store::open(&DatabaseUrl::parse(&app.db.url), 1).await.unwrap().load_webhooks().await.unwrap();
    let stored_current = raw[0].secret.expose();
    let stored_previous = raw[0].previous_secret.as_ref().unwrap().secret.expose();
    for stored in [stored_current, stored_previous] {
        assert!(stored.starts_with("enc:v1:"), "{stored}");
        assert!(!stored.contains("plain-text-secret") && !stored.contains(&new_secret[6..]));
    }
    if backend == Backend::Sqlite {
        let path = app.db.url.trim_start_matches("sqlite://").to_owned();
        for file in [path.clone(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("plain-text-secret-value-1234"), "{file} holds the secret in clear");
            assert!(!text.contains(&new_secret), "{file} holds the secret in clear");
        }
    }
});

backend_test!(a_wrong_master_key_is_a_clear_start_up_error, |backend| async move {
    let db = TestDb::new(backend).await;
    let mut config = test_config(&db);
    config.master_key = Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]));
    let first = hookbus::Hookbus::start(config.clone()).await.expect("the first key is accepted and remembered");
    first.shutdown().await;
    drop(first);
    config.master_key = Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [2u8; 32]));
    let Err(error) = hookbus::Hookbus::start(config.clone()).await else { panic!("a wrong key must not start") };
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains("master key does not match"), "{chain}");
    config.master_key = Some("too-short".into());
    assert!(hookbus::Hookbus::start(config).await.is_err());
    // Without a configured key, one is generated into the data dir with mode 0600.
    let generated = tempfile::tempdir().unwrap();
    let other = TestDb::new(backend).await;
    let mut config = test_config(&other);
    config.data_dir = generated.path().to_path_buf();
    hookbus::Hookbus::start(config).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(generated.path().join("master.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
});

backend_test!(after_the_rotation_overlap_only_the_new_secret_signs, |backend| async move {
    let app = spawn_app_with(backend, |c| c.secret_rotation_overlap_s = 1).await;
    let receiver = TestReceiver::start().await;
    let created = app.create_webhook(json!({"url": receiver.url(), "events": ["*"]})).await;
    let (id, old) = (created["id"].as_str().unwrap(), created["secret"].as_str().unwrap().to_owned());
    let rotated = app.post(&format!("/api/v1/webhooks/{id}/secret/rotate"), json!({})).await;
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    app.publish("a.b", json!({})).await;
    let during = receiver.recv(SHORT).await.unwrap();
    assert_eq!((verify_standard_webhooks(&new, &during), verify_standard_webhooks(&old, &during)), (1, 1));
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    app.publish("a.b", json!({})).await;
    let after = receiver.recv(SHORT).await.unwrap();
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);
    assert_eq!((verify_standard_webhooks(&new, &after), verify_standard_webhooks(&old, &after)), (1, 0));
    assert!(verify_hex_signature(&new, &after));
});

#[actix_web::test]
async fn no_token_key_secret_or_payload_reaches_the_log() {
    let db = TestDb::new(Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    receiver.script(vec![Answer::status(500)]);
    let log_path = db.data_dir().join("server.log");
    let port = free_port();
    let mut child = hookbus_command()
        .env("HOOKBUS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "trace")
        .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}"), "--database-url", &db.url])
        .arg("--data-dir")
        .arg(db.data_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut child).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = awc::Client::default();
    let call = |method: &str, path: &str, token: &str, body: serde_json::Value| {
        client
            .request(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap(), format!("{base}{path}"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send_json(&body)
    };
    let mut ws = call("POST", "/api/v1/workspaces", ADMIN_TOKEN, json!({"name": "logged"})).await.unwrap();
    let ws: serde_json::Value = ws.json().await.unwrap();
    let key = ws["api_key"].as_str().unwrap().to_owned();
    let hook =
        json!({"url": receiver.url(), "events": ["*"], "secret": "log-test-secret-value-42", "backoff_base_ms": 10});
    let mut created = call("POST", "/api/v1/webhooks", &key, hook).await.unwrap();
    let created: serde_json::Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let mut rotated = call("POST", &format!("/api/v1/webhooks/{id}/secret/rotate"), &key, json!({})).await.unwrap();
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    let event = json!({"event": "user.signed_up", "data": {"password": "hunter2-payload-marker"}});
    assert_eq!(call("POST", "/api/v1/events", &key, event).await.unwrap().status().as_u16(), 202);
    receiver.recv_n(2, SHORT).await; // a failed attempt (logged at WARN), then a success
    call("POST", &format!("/api/v1/webhooks/{id}/test"), &key, json!({})).await.unwrap();
    call("GET", "/api/v1/webhooks", "wrong-token-attempt-xyz", json!({})).await.unwrap();
    send_signal(&child, nix::sys::signal::Signal::SIGTERM);
    assert!(wait_exit(&mut child, LONG).success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the log was captured at full verbosity");
    assert!(log.contains("failed"), "the failed attempt was logged");
    let master_key = std::fs::read_to_string(db.data_dir().join("master.key")).unwrap();
    for secret in [
        ADMIN_TOKEN,
        key.as_str(),
        &key[4..],
        "log-test-secret-value-42",
        rotated["secret"].as_str().unwrap(),
        "hunter2-payload-marker",
        master_key.trim(),
        "wrong-token-attempt-xyz",
    ] {
        assert!(!log.contains(secret), "the log contains {secret}");
    }
}

/// A deleted `master.key` beside a database written with it stops start-up before anything
/// is written: no new key takes the old one's place on disk.
#[actix_web::test]
async fn a_missing_master_key_beside_its_database_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let config = hookbus::Config {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        dev: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        workers: 1,
        ..hookbus::Config::default()
    };
    drop(hookbus::Application::build(config.clone()).await.unwrap());
    let key_file = dir.path().join("master.key");
    std::fs::remove_file(&key_file).unwrap();
    let error = hookbus::Application::build(config).await.err().expect("start-up fails").to_string();
    assert!(error.contains("master.key is missing") && error.contains("HOOKBUS_MASTER_KEY"), "{error}");
    assert!(!key_file.exists(), "no new key was written in its place");
}

/// Start-up errors name the address or database and what to check.
#[actix_web::test]
async fn start_up_errors_say_where_and_what_to_check() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let db = TestDb::new(Backend::Sqlite).await;
    let config = hookbus::Config { bind: address.clone(), ..test_config(&db) };
    let error = hookbus::Application::build(config).await.err().expect("the port is taken").to_string();
    assert!(error.contains(&address) && error.contains("--bind"), "{error}");

    let unreachable = "postgres://hookbus:secret-password@127.0.0.1:1/nowhere";
    let config = hookbus::Config { database_url: Some(unreachable.into()), ..test_config(&db) };
    let error = hookbus::Application::build(config).await.err().expect("nothing listens there");
    let shown = error.to_string();
    assert!(shown.contains("127.0.0.1:1/nowhere") && shown.contains("is PostgreSQL running"), "{shown}");
    assert!(!shown.contains("secret-password"), "the password is never shown: {shown}");
}
