//! What endpoints receive, and the retry rules (SPEC §4, §5), against real receivers.

use std::time::Duration;

use serde_json::json;

use crate::backend_test;
use crate::helpers::*;

backend_test!(an_endpoint_receives_the_envelope_with_every_header_and_valid_signatures, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    let webhook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["artifact.*"], "headers": {"X-Tenant": "acme"}}))
        .await;
    let secret = webhook["secret"].as_str().unwrap();
    let published = app.publish("artifact.completed", json!({"artifact_id": "a1", "size": 3})).await;
    assert_eq!(published["matched_webhooks"], 1);

    let received = receiver.recv(SHORT).await.expect("delivered");
    let envelope = received.json();
    assert_eq!(envelope["id"], published["id"]);
    assert_eq!(envelope["event"], "artifact.completed");
    assert_eq!(envelope["webhook_id"], webhook["id"]);
    assert_eq!(envelope["workspace_id"], webhook["workspace_id"]);
    assert_eq!(envelope["data"], json!({"artifact_id": "a1", "size": 3}));
    let timestamp = envelope["timestamp"].as_str().unwrap();
    assert!(timestamp.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(timestamp).is_ok());
    assert!(!String::from_utf8_lossy(&received.body).contains(": "), "compact JSON");

    assert_eq!(received.header("content-type"), "application/json");
    assert_eq!(received.header("user-agent"), concat!("hookbus/", env!("CARGO_PKG_VERSION")));
    assert_eq!(received.header("x-webhook-event"), "artifact.completed");
    assert_eq!(received.header("x-webhook-attempt"), "1");
    assert_eq!(received.header("x-tenant"), "acme");
    let delivery_id = received.header("webhook-id");
    assert_eq!(received.header("x-webhook-delivery"), delivery_id);
    let sent_at: i64 = received.header("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 5);
    assert_eq!(verify_standard_webhooks(secret, &received), 1, "webhook-signature verifies");
    assert!(verify_hex_signature(secret, &received), "X-Webhook-Signature verifies");

    let delivery = app.wait_for_delivery(delivery_id, "succeeded", SHORT).await;
    assert_eq!(delivery["payload"].as_str().unwrap().as_bytes(), received.body.as_slice());
    assert_eq!(delivery["attempt_count"], 1);
    assert_eq!(delivery["status_code"], 200);
});

backend_test!(failures_are_retried_on_the_backoff_schedule_with_the_same_delivery_id, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.script(vec![Answer::status(500), Answer::status(502)]);
    let webhook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["*"], "backoff_base_ms": 200, "max_retries": 3}))
        .await;
    app.publish("source.ready", json!({})).await;
    let attempts = receiver.recv_n(3, LONG).await;
    let ids: Vec<_> = attempts.iter().map(|r| r.header("webhook-id").to_owned()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    let numbers: Vec<_> = attempts.iter().map(|r| r.header("x-webhook-attempt").to_owned()).collect();
    assert_eq!(numbers, ["1", "2", "3"]);
    let first_gap = attempts[1].at - attempts[0].at;
    let second_gap = attempts[2].at - attempts[1].at;
    // 200 ms then 400 ms, each plus up to 10 % jitter.
    assert!(first_gap >= Duration::from_millis(200) && first_gap < Duration::from_millis(400), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(400) && second_gap < Duration::from_millis(700), "{second_gap:?}");
    let delivery = app.wait_for_delivery(&ids[0], "succeeded", SHORT).await;
    assert_eq!(delivery["attempt_count"], 3);
    let recorded: Vec<_> = delivery["attempts"].as_array().unwrap().iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(recorded, [json!(500), json!(502), json!(200)]);
    assert_eq!(delivery["attempts"][0]["error_message"], "HTTP 500");
    assert_eq!(app.deliveries(webhook["id"].as_str().unwrap()).await.len(), 1);
});

backend_test!(a_delivery_fails_after_max_retries, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(500));
    app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "backoff_base_ms": 10, "max_retries": 2})).await;
    app.publish("source.ready", json!({})).await;
    let first = receiver.recv(SHORT).await.unwrap();
    let delivery = app.wait_for_delivery(first.header("webhook-id"), "failed", SHORT).await;
    assert_eq!(delivery["attempt_count"], 3);
    assert_eq!(delivery["next_attempt_at"], serde_json::Value::Null);
    assert!(delivery["completed_at"].is_string());
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.count(), 3);
});

backend_test!(retry_after_on_429_and_503_replaces_the_backoff, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    let in_four_seconds = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(4));
    receiver.script(vec![
        Answer::status(429).header("Retry-After", "1"),
        Answer::status(503).header("Retry-After", &in_four_seconds),
        // On a plain 500 a Retry-After is ignored: the 10 ms backoff applies.
        Answer::status(500).header("Retry-After", "30"),
    ]);
    app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "backoff_base_ms": 10, "max_retries": 5})).await;
    app.publish("source.ready", json!({})).await;
    let attempts = receiver.recv_n(4, LONG).await;
    let gaps: Vec<_> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(990) && gaps[0] < Duration::from_millis(1800), "{gaps:?}");
    // The date was 4 s ahead when scripted, about 1 s before it was sent; it has 1 s resolution.
    assert!(gaps[1] >= Duration::from_millis(1500) && gaps[1] < Duration::from_millis(3500), "{gaps:?}");
    assert!(gaps[2] < Duration::from_millis(500), "{gaps:?}");
});

backend_test!(a_410_fails_the_delivery_and_disables_the_webhook, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(410));
    let webhook = app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "backoff_base_ms": 10})).await;
    let id = webhook["id"].as_str().unwrap();
    app.publish("source.ready", json!({})).await;
    let first = receiver.recv(SHORT).await.unwrap();
    app.wait_for_delivery(first.header("webhook-id"), "failed", SHORT).await;
    let deadline = std::time::Instant::now() + SHORT;
    loop {
        let now = app.get(&format!("/api/v1/webhooks/{id}")).await.body;
        if now["disabled_reason"] == "gone" {
            assert_eq!(now["enabled"], false);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{now}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let later = app.publish("source.ready", json!({})).await;
    assert_eq!(later["matched_webhooks"], 0);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.count(), 1);
});

backend_test!(a_slow_endpoint_times_out_and_is_retried, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.script(vec![Answer::status(200).delayed(Duration::from_millis(1500))]);
    app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "timeout_ms": 200, "backoff_base_ms": 10})).await;
    app.publish("source.ready", json!({})).await;
    let first = receiver.recv(SHORT).await.unwrap();
    let delivery = app.wait_for_delivery(first.header("webhook-id"), "succeeded", SHORT).await;
    assert_eq!(delivery["attempt_count"], 2);
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["error_message"], "timed out after 200 ms");
    assert_eq!(attempt["status_code"], serde_json::Value::Null);
    assert!(attempt["duration_ms"].as_u64().unwrap() < 1000);
});

backend_test!(redirects_are_not_followed_and_count_as_failures, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    let target = format!("{}/elsewhere", receiver.url());
    receiver.answer(Answer::status(307).header("Location", &target));
    app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_retries": 0})).await;
    app.publish("source.ready", json!({})).await;
    let first = receiver.recv(SHORT).await.unwrap();
    let delivery = app.wait_for_delivery(first.header("webhook-id"), "failed", SHORT).await;
    assert_eq!(delivery["status_code"], 307);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.seen().iter().all(|r| r.path == receiver.path()), "the redirect was followed");
});

backend_test!(max_in_flight_caps_concurrent_attempts, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(200).delayed(Duration::from_millis(150)));
    let webhook = app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_in_flight": 3})).await;
    for i in 0..12 {
        app.publish("source.ready", json!({"i": i})).await;
    }
    app.wait_for_all(webhook["id"].as_str().unwrap(), 12, "succeeded", LONG).await;
    assert_eq!(receiver.max_concurrency(), 3);
});

backend_test!(max_in_flight_one_is_strict_fifo_even_across_retries, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.script(vec![Answer::status(500), Answer::status(500)]);
    let webhook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_in_flight": 1, "backoff_base_ms": 100}))
        .await;
    for i in 0..4 {
        app.publish("source.ready", json!({"i": i})).await;
    }
    app.wait_for_all(webhook["id"].as_str().unwrap(), 4, "succeeded", LONG).await;
    let order: Vec<i64> = receiver.seen().iter().map(|r| r.json()["data"]["i"].as_i64().unwrap()).collect();
    assert_eq!(order, [0, 0, 0, 1, 2, 3]);
    assert_eq!(receiver.max_concurrency(), 1);
});

backend_test!(disabled_and_unsubscribed_webhooks_get_nothing, |backend| async move {
    let app = spawn_app(backend).await;
    let control = TestReceiver::start().await;
    let silent = TestReceiver::start().await;
    app.create_webhook(json!({"url": control.url(), "events": ["artifact.completed"]})).await;
    app.create_webhook(json!({"url": silent.url(), "events": ["artifact.*"], "enabled": false})).await;
    app.create_webhook(json!({"url": silent.url(), "events": ["source.*", "artifact"]})).await;
    let published = app.publish("artifact.completed", json!({})).await;
    assert_eq!(published["matched_webhooks"], 1);
    control.recv(SHORT).await.expect("the subscribed webhook gets it");
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(silent.count(), 0);
});

backend_test!(connection_errors_are_recorded_and_retried, |backend| async move {
    let app = spawn_app(backend).await;
    // Bind then free a port so nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let webhook = app
        .create_webhook(json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["*"], "max_retries": 1, "backoff_base_ms": 10}))
        .await;
    app.publish("source.ready", json!({})).await;
    let all = app.wait_for_all(webhook["id"].as_str().unwrap(), 1, "failed", SHORT).await;
    let delivery = app.get(&format!("/api/v1/deliveries/{}", all[0]["id"].as_str().unwrap())).await.body;
    assert_eq!(delivery["attempt_count"], 2);
    assert_eq!(delivery["status_code"], serde_json::Value::Null);
    assert!(!delivery["error_message"].as_str().unwrap().is_empty());
});
