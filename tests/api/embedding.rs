//! Embedding (SPEC §7): the whole system in-process, driven with actor messages, with the
//! admin routes mounted under a scope of the host app — the flow of `examples/embedded.rs`.

use actix_web::{test, web, App};
use serde_json::json;

use hookbus::{
    Config, DeleteWebhook, Hookbus, Publish, PublishInFlight, RegisterWebhook, RegistryError, StartPublish,
    UpdateWebhook, WebhookInput, WebhookPatch, WorkspaceId,
};

use crate::helpers::*;

/// A hookbus on an in-memory database, started in this test's actix system; the directory
/// holds its data files while it lives.
async fn start_embedded() -> (Hookbus, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config {
        dev: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        data_dir: data_dir.path().to_path_buf(),
        ..Config::memory()
    };
    (Hookbus::start(config).await.unwrap(), data_dir)
}

#[actix_web::test]
async fn an_actix_app_embeds_hookbus_and_publishes_through_the_registry() {
    let (bus, _data_dir) = start_embedded().await;
    let registry = bus.registry();
    let receiver = TestReceiver::start().await;

    let input =
        WebhookInput { url: Some(receiver.url()), events: Some(vec!["artifact.*".into()]), ..Default::default() };
    let webhook = registry.send(RegisterWebhook { workspace_id: WorkspaceId::DEFAULT, input }).await.unwrap().unwrap();
    let published = registry
        .send(Publish::new(WorkspaceId::DEFAULT, "artifact.completed", json!({"artifact": 1})).with_id("evt-embedded"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(published.matched_webhooks, 1);
    let received = receiver.recv(SHORT).await.expect("delivered from the embedded bus");
    assert_eq!(received.json()["id"], "evt-embedded");
    assert_eq!(verify_standard_webhooks(webhook.secret.expose(), &received), 1);

    // Invalid input through messages gets the same rules as HTTP.
    let invalid = registry.send(Publish::new(WorkspaceId::DEFAULT, "Not Valid", json!({}))).await.unwrap().unwrap_err();
    assert!(matches!(invalid, hookbus::RegistryError::Invalid(ref e) if e.field == "event"));

    let app = test::init_service(App::new().service(web::scope("/webhooks-admin").configure(bus.admin_routes()))).await;
    let request = test::TestRequest::get()
        .uri("/webhooks-admin/api/v1/webhooks")
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .to_request();
    let listed: serde_json::Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(listed["data"][0]["id"], webhook.id.to_string());
    let health = test::TestRequest::get().uri("/webhooks-admin/health").to_request();
    let health: serde_json::Value = test::call_and_read_body_json(&app, health).await;
    assert_eq!(health["status"], "ok");
    bus.shutdown().await;
}

/// `StartPublish` hands the publish back before its commit; the commit can then be awaited on
/// another thread (as the HTTP workers do), with the same answers as `Publish`.
#[actix_web::test]
async fn a_started_publish_is_finished_on_another_thread() {
    let (bus, _data_dir) = start_embedded().await;
    let registry = bus.registry();
    let receiver = TestReceiver::start().await;
    let input = WebhookInput { url: Some(receiver.url()), events: Some(vec!["*".into()]), ..Default::default() };
    registry.send(RegisterWebhook { workspace_id: WorkspaceId::DEFAULT, input }).await.unwrap().unwrap();

    let start = |data: serde_json::Value| {
        let publish = Publish::new(WorkspaceId::DEFAULT, "source.ready", data).with_id("evt-started");
        registry.send(StartPublish(publish))
    };
    // Finished on a thread of its own, with an actix system of its own.
    let finish_elsewhere = |in_flight: PublishInFlight| {
        std::thread::spawn(move || actix_rt::System::new().block_on(in_flight.finish())).join().unwrap()
    };
    let first = finish_elsewhere(start(json!({"n": 1})).await.unwrap().unwrap()).unwrap();
    assert_eq!(first.matched_webhooks, 1);
    assert_eq!(receiver.recv(SHORT).await.expect("delivered").json()["id"], "evt-started");

    // The same id and body: the first answer, and nothing delivered again.
    let again = finish_elsewhere(start(json!({"n": 1})).await.unwrap().unwrap()).unwrap();
    assert_eq!(again, first);
    // The same id with another body: a conflict.
    let conflict = finish_elsewhere(start(json!({"n": 2})).await.unwrap().unwrap()).unwrap_err();
    assert!(matches!(conflict, RegistryError::Conflict(ref id) if id == "evt-started"), "{conflict:?}");
    assert!(receiver.recv(SHORT).await.is_none(), "delivered twice");
    assert_eq!(receiver.count(), 1);
    bus.shutdown().await;
}

/// A `Publisher` matches events on the caller's thread against the registry's webhooks as
/// they are at that moment: one registered, changed or deleted through the registry is seen
/// by the very next publish, from any thread.
#[actix_web::test]
async fn a_publisher_on_another_thread_follows_the_registrys_webhooks() {
    let (bus, _data_dir) = start_embedded().await;
    let registry = bus.registry();
    let publisher = bus.publisher();
    let receiver = TestReceiver::start().await;
    // Started and finished on a thread of its own, with an actix system of its own; this
    // thread keeps running its actors meanwhile.
    let publish_elsewhere = |event: &str| {
        let (publisher, publish) = (publisher.clone(), Publish::new(WorkspaceId::DEFAULT, event, json!({})));
        let (done, published) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let result = actix_rt::System::new().block_on(async move { publisher.start(publish)?.finish().await });
            let _ = done.send(result);
        });
        async move { published.await.unwrap() }
    };
    assert_eq!(publish_elsewhere("source.ready").await.unwrap().matched_webhooks, 0);

    let input = WebhookInput { url: Some(receiver.url()), events: Some(vec!["source.*".into()]), ..Default::default() };
    let webhook = registry.send(RegisterWebhook { workspace_id: WorkspaceId::DEFAULT, input }).await.unwrap().unwrap();
    assert_eq!(publish_elsewhere("source.ready").await.unwrap().matched_webhooks, 1);
    assert_eq!(receiver.recv(SHORT).await.expect("delivered").json()["event"], "source.ready");
    assert_eq!(publish_elsewhere("artifact.completed").await.unwrap().matched_webhooks, 0);

    let patch = WebhookPatch { events: Some(vec!["artifact.*".into()]), ..Default::default() };
    let update = UpdateWebhook { workspace_id: WorkspaceId::DEFAULT, webhook_id: webhook.id, patch };
    registry.send(update).await.unwrap().unwrap();
    assert_eq!(publish_elsewhere("source.ready").await.unwrap().matched_webhooks, 0);
    assert_eq!(publish_elsewhere("artifact.completed").await.unwrap().matched_webhooks, 1);
    assert_eq!(receiver.recv(SHORT).await.expect("delivered").json()["event"], "artifact.completed");

    registry.send(DeleteWebhook { workspace_id: WorkspaceId::DEFAULT, webhook_id: webhook.id }).await.unwrap().unwrap();
    assert_eq!(publish_elsewhere("artifact.completed").await.unwrap().matched_webhooks, 0);
    // Checked like any publish: the reserved namespace is refused.
    assert!(matches!(publish_elsewhere("hookbus.webhook.disabled").await, Err(RegistryError::Invalid(_))));
    assert!(receiver.recv(SHORT).await.is_none(), "delivered after the delete");
    assert_eq!(receiver.count(), 2);
    bus.shutdown().await;
}

/// A publish made the moment `Hookbus::start` returns reaches a webhook registered in an
/// earlier run: its endpoint is already running (were it not, the publisher would match the
/// webhook without an endpoint, and an endpoint that started idle would never look).
#[actix_web::test]
async fn a_publish_right_after_start_reaches_a_webhook_from_the_last_run() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = || Config {
        dev: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        data_dir: data_dir.path().to_path_buf(),
        ..Config::sqlite(data_dir.path().join("hookbus.db"))
    };
    let receiver = TestReceiver::start().await;
    let first_run = Hookbus::start(config()).await.unwrap();
    let input = WebhookInput { url: Some(receiver.url()), events: Some(vec!["*".into()]), ..Default::default() };
    first_run.registry().send(RegisterWebhook { workspace_id: WorkspaceId::DEFAULT, input }).await.unwrap().unwrap();
    first_run.shutdown().await;
    drop(first_run);

    let bus = Hookbus::start(config()).await.unwrap();
    let publish = Publish::new(WorkspaceId::DEFAULT, "source.ready", json!({})).with_id("evt-right-away");
    let in_flight = bus.publisher().start(publish).unwrap();
    assert_eq!(in_flight.finish().await.unwrap().matched_webhooks, 1);
    assert_eq!(receiver.recv(SHORT).await.expect("delivered").json()["id"], "evt-right-away");
    bus.shutdown().await;
}

/// The admin routes mounted twice are one API: a key revoked through one mount is refused by
/// the other at once, and the two mounts draw on one rate budget per key.
#[actix_web::test]
async fn admin_routes_mounted_twice_share_revocations_and_rate_limits() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config {
        dev: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        data_dir: data_dir.path().to_path_buf(),
        api_rate_limit: 1,
        api_rate_burst: 2,
        ..Config::memory()
    };
    let bus = Hookbus::start(config).await.unwrap();
    let app = test::init_service(
        App::new()
            .service(web::scope("/one").configure(bus.admin_routes()))
            .service(web::scope("/two").configure(bus.admin_routes())),
    )
    .await;
    let call = |method: &str, uri: &str, token: &str| {
        test::TestRequest::default()
            .method(method.parse().unwrap())
            .uri(uri)
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request()
    };
    let created: serde_json::Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::post()
            .uri("/one/api/v1/workspaces")
            .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
            .set_json(json!({"name": "shared"}))
            .to_request(),
    )
    .await;
    let (workspace, key) = (created["id"].as_str().unwrap(), created["api_key"].as_str().unwrap());

    // A burst of 2 in all: one request through each mount, then the budget is spent.
    assert_eq!(test::call_service(&app, call("GET", "/one/api/v1/webhooks", key)).await.status(), 200);
    assert_eq!(test::call_service(&app, call("GET", "/two/api/v1/webhooks", key)).await.status(), 200);
    assert_eq!(test::call_service(&app, call("GET", "/one/api/v1/webhooks", key)).await.status(), 429);

    // Publishing is never throttled; the second mount has the key in its cache now.
    let publish = |mount: &str| {
        test::TestRequest::post()
            .uri(&format!("/{mount}/api/v1/events"))
            .insert_header(("Authorization", format!("Bearer {key}")))
            .set_json(json!({"event": "source.ready", "data": {}}))
            .to_request()
    };
    assert_eq!(test::call_service(&app, publish("two")).await.status(), 202);
    // Revoked through mount one: mount two refuses it at once.
    let key_id = bus.store().find_api_key(&hookbus::domain::api_key::hash_key(key)).await.unwrap().unwrap().key_id;
    let revoked = test::call_service(
        &app,
        call("DELETE", &format!("/one/api/v1/workspaces/{workspace}/keys/{key_id}"), ADMIN_TOKEN),
    )
    .await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(test::call_service(&app, publish("two")).await.status(), 401, "revoked through the other mount");
    bus.shutdown().await;
}
