//! Webhook registration, reading, patching, deleting, secrets and the test route.

use serde_json::json;

use crate::backend_test;
use crate::helpers::*;

backend_test!(a_created_webhook_shows_its_secret_once_and_reads_back_without_it, |backend| async move {
    let app = spawn_app(backend).await;
    let created = app
        .create_webhook(
            json!({"url": "http://127.0.0.1:9/hook", "events": ["artifact.*", "source.ready"], "name": "CI"}),
        )
        .await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    for field in ["id", "workspace_id", "created_at", "updated_at"] {
        assert!(created[field].is_string(), "{field}");
    }
    assert_eq!(created["disabled_reason"], serde_json::Value::Null);
    assert_eq!(created["timeout_ms"], 10000);
    assert_eq!(created["max_retries"], 3);
    assert_eq!(created["backoff_base_ms"], 1000);
    assert_eq!(created["max_in_flight"], 16);
    assert_eq!(created["rate_limit_per_sec"], serde_json::Value::Null);

    let id = created["id"].as_str().unwrap();
    let fetched = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert!(fetched.body.get("secret").is_none());
    assert_eq!(fetched.body["events"], json!(["artifact.*", "source.ready"]));
    assert_eq!(fetched.body["name"], "CI");

    let shown = app.get(&format!("/api/v1/webhooks/{id}/secret")).await;
    assert_eq!(shown.body["secret"], secret);
});

backend_test!(lists_are_newest_first_and_paginate_with_a_cursor, |backend| async move {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let w = app.create_webhook(json!({"url": format!("http://127.0.0.1:9/{i}"), "events": ["*"]})).await;
        ids.push(w["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let first = app.get("/api/v1/webhooks?limit=2").await;
    let page: Vec<_> =
        first.body["data"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(page, ids[0..2]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("/api/v1/webhooks?limit=2&cursor={cursor}")).await;
    let page: Vec<_> =
        second.body["data"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(page, ids[2..4]);
    let cursor = second.body["next_cursor"].as_str().unwrap();
    let last = app.get(&format!("/api/v1/webhooks?limit=2&cursor={cursor}")).await;
    assert_eq!(last.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(last.body["next_cursor"], serde_json::Value::Null);
});

backend_test!(patch_changes_given_fields_and_survives_a_restart, |backend| async move {
    let app = spawn_app(backend).await;
    let created =
        app.create_webhook(json!({"url": "http://127.0.0.1:9/a", "events": ["*"], "rate_limit_per_sec": 5})).await;
    let id = created["id"].as_str().unwrap();
    let patched = app
        .request(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"name": "renamed", "max_retries": 7, "rate_limit_per_sec": null})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["name"], "renamed");
    assert_eq!(patched.body["max_retries"], 7);
    assert_eq!(patched.body["rate_limit_per_sec"], serde_json::Value::Null);
    assert_eq!(patched.body["url"], "http://127.0.0.1:9/a");

    let disabled = app.request("PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"enabled": false}))).await;
    assert_eq!(disabled.body["enabled"], false);
    assert_eq!(disabled.body["disabled_reason"], "manual");

    // A second server on the same database sees what the first one wrote; on SQLite a second
    // server is refused while the first runs (one server per file).
    let mut config = test_config(&app.db);
    config.admin_token = Some(ADMIN_TOKEN.into());
    let stored = app.db.url.clone();
    let second = hookbus::Hookbus::start(hookbus::Config { database_url: Some(stored), ..config }).await;
    if backend == Backend::Sqlite {
        let refused = second.err().expect("a second server on a SQLite file in use is refused").to_string();
        assert!(refused.contains("already in use"), "{refused}");
        return;
    }
    let reloaded = second.unwrap();
    let webhooks = reloaded
        .registry()
        .send(hookbus::ListWebhooks { workspace_id: hookbus::WorkspaceId::DEFAULT, cursor: None, limit: 10 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(webhooks.data.len(), 1);
    assert_eq!(webhooks.data[0].name, "renamed");
    assert_eq!(webhooks.data[0].settings.max_retries, 7);
    assert!(!webhooks.data[0].enabled);
});

backend_test!(deleted_webhooks_are_gone_and_their_pending_deliveries_cancelled, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(500));
    let created = app
        .create_webhook(json!({"url": receiver.url(), "events": ["*"], "backoff_base_ms": 60000, "max_retries": 5}))
        .await;
    let id = created["id"].as_str().unwrap();
    app.publish("artifact.completed", json!({})).await;
    receiver.recv(SHORT).await.expect("the first attempt arrives");
    let delivery = app.deliveries(id).await[0].clone();
    let delivery_id = delivery["id"].as_str().unwrap();
    app.wait_for_delivery(delivery_id, "pending", SHORT).await;

    let deleted = app.request("DELETE", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.status, 404);
    let after = app.get(&format!("/api/v1/deliveries/{delivery_id}")).await;
    assert_eq!(after.body["status"], "cancelled");
    assert_eq!(receiver.count(), 1);
});

backend_test!(the_test_route_makes_one_recorded_attempt_regardless_of_subscription, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    let created =
        app.create_webhook(json!({"url": receiver.url(), "events": ["source.ready"], "enabled": false})).await;
    let id = created["id"].as_str().unwrap();
    let result = app.post(&format!("/api/v1/webhooks/{id}/test"), json!({})).await;
    assert_eq!(result.status, 200, "{}", result.body);
    assert_eq!(result.body["succeeded"], true);
    assert_eq!(result.body["status_code"], 200);
    let received = receiver.recv(SHORT).await.unwrap();
    assert_eq!(received.header("x-webhook-event"), "webhook.test");
    assert_eq!(received.json()["data"], json!({}));
    let delivery_id = result.body["delivery_id"].as_str().unwrap();
    let delivery = app.get(&format!("/api/v1/deliveries/{delivery_id}")).await;
    assert_eq!(delivery.body["status"], "succeeded");
    assert_eq!(delivery.body["attempts"].as_array().unwrap().len(), 1);

    receiver.answer(Answer::status(503));
    let failed = app.post(&format!("/api/v1/webhooks/{id}/test"), json!({})).await;
    assert_eq!(failed.body["succeeded"], false);
    assert_eq!(failed.body["status_code"], 503);
    assert_eq!(failed.body["error_message"], "HTTP 503");
});

backend_test!(rotating_the_secret_signs_with_both_until_the_overlap_ends, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    let created = app.create_webhook(json!({"url": receiver.url(), "events": ["*"]})).await;
    let id = created["id"].as_str().unwrap();
    let old = created["secret"].as_str().unwrap().to_owned();
    let rotated =
        app.post(&format!("/api/v1/webhooks/{id}/secret/rotate"), json!({"secret": "a-brand-new-secret-123"})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.body["secret"], "a-brand-new-secret-123");
    assert!(rotated.body["previous_valid_until"].is_string());
    app.publish("artifact.completed", json!({"n": 1})).await;
    let received = receiver.recv(SHORT).await.unwrap();
    assert_eq!(received.header("webhook-signature").split(' ').count(), 2);
    assert_eq!(verify_standard_webhooks("a-brand-new-secret-123", &received), 1);
    assert_eq!(verify_standard_webhooks(&old, &received), 1);
    assert!(verify_hex_signature("a-brand-new-secret-123", &received));
    // The new secret comes first.
    let first = received.header("webhook-signature").split(' ').next().unwrap().to_owned();
    let only_new = Received {
        headers: [("webhook-signature".to_owned(), first)]
            .into_iter()
            .chain(received.headers.clone().into_iter().filter(|(k, _)| k != "webhook-signature"))
            .collect(),
        ..received
    };
    assert_eq!(verify_standard_webhooks("a-brand-new-secret-123", &only_new), 1);
});
