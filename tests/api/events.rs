//! Publishing: fan-out, idempotent ids, durability of the 202.

use serde_json::json;

use crate::backend_test;
use crate::helpers::*;

backend_test!(an_event_fans_out_to_every_matching_webhook, |backend| async move {
    let app = spawn_app(backend).await;
    let receivers = [TestReceiver::start().await, TestReceiver::start().await, TestReceiver::start().await];
    app.create_webhook(json!({"url": receivers[0].url(), "events": ["*"]})).await;
    app.create_webhook(json!({"url": receivers[1].url(), "events": ["meeting.*"]})).await;
    app.create_webhook(json!({"url": receivers[2].url(), "events": ["meeting.completed"]})).await;
    let published = app.publish("meeting.completed", json!({"meeting": 7})).await;
    assert_eq!(published["matched_webhooks"], 3);
    assert_eq!(published["event"], "meeting.completed");
    for receiver in &receivers {
        let received = receiver.recv(SHORT).await.expect("every subscriber gets it");
        assert_eq!(received.json()["id"], published["id"]);
    }
});

backend_test!(the_same_event_id_and_body_is_accepted_once, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    let webhook = app.create_webhook(json!({"url": receiver.url(), "events": ["*"]})).await;
    let body = json!({"event": "recording.started", "data": {"r": 1}, "id": "evt_42"});
    let first = app.post("/api/v1/events", body.clone()).await;
    assert_eq!(first.status, 202);
    assert_eq!(first.body["id"], "evt_42");
    // A webhook added later does not change the original answer.
    app.create_webhook(json!({"url": receiver.url(), "events": ["*"]})).await;
    let again = app.post("/api/v1/events", body).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body, first.body);
    receiver.recv(SHORT).await.unwrap();
    assert_eq!(app.deliveries(webhook["id"].as_str().unwrap()).await.len(), 1);

    let conflict =
        app.post("/api/v1/events", json!({"event": "recording.started", "data": {"r": 2}, "id": "evt_42"})).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.body["error"]["code"], "conflict");
});

backend_test!(a_202_means_the_deliveries_are_committed, |backend| async move {
    let app = spawn_app(backend).await;
    // Nothing listens: deliveries stay pending with their retries ahead.
    let webhook =
        app.create_webhook(json!({"url": "http://127.0.0.1:9/hook", "events": ["*"], "backoff_base_ms": 60000})).await;
    for i in 0..20 {
        app.publish("artifact.completed", json!({"i": i})).await;
    }
    // Read straight from the database, not through the server.
    let store = hookbus::store::Store::open(&hookbus::store::DatabaseUrl::parse(&app.db.url), 1).await.unwrap();
    let id: hookbus::WebhookId = webhook["id"].as_str().unwrap().parse().unwrap();
    let (rows, _) = store.list_deliveries(hookbus::WorkspaceId::DEFAULT, id, None, None, 100).await.unwrap();
    assert_eq!(rows.len(), 20);
});
