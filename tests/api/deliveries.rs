//! Reading deliveries and their attempts, and redelivery.

use serde_json::json;

use crate::backend_test;
use crate::helpers::*;

backend_test!(deliveries_list_filters_by_status_and_a_delivery_shows_its_attempts, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.script(vec![Answer::status(200), Answer::status(500), Answer::status(500)]);
    let webhook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_retries": 1, "backoff_base_ms": 10, "max_in_flight": 1}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    app.publish("artifact.completed", json!({"n": 1})).await;
    app.publish("artifact.completed", json!({"n": 2})).await;
    receiver.recv_n(3, SHORT).await;
    let deadline = std::time::Instant::now() + SHORT;
    let failed = loop {
        let failed = app.get(&format!("/api/v1/webhooks/{id}/deliveries?status=failed")).await.body;
        if failed["data"].as_array().unwrap().len() == 1 {
            break failed;
        }
        assert!(std::time::Instant::now() < deadline);
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let succeeded = app.get(&format!("/api/v1/webhooks/{id}/deliveries?status=succeeded")).await.body;
    assert_eq!(succeeded["data"].as_array().unwrap().len(), 1);

    let failed_id = failed["data"][0]["id"].as_str().unwrap();
    let detail = app.get(&format!("/api/v1/deliveries/{failed_id}")).await.body;
    for field in
        ["id", "webhook_id", "event_id", "event", "status", "attempt_count", "created_at", "completed_at", "payload"]
    {
        assert!(!detail[field].is_null(), "{field}");
    }
    assert_eq!(detail["error_message"], "HTTP 500");
    assert_eq!(detail["response_body"], "ok");
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[1]["attempt"], 2);
    for field in ["started_at", "duration_ms", "status_code", "error_message", "response_body"] {
        assert!(attempts[0].get(field).is_some(), "{field}");
    }
    let payload: serde_json::Value = serde_json::from_str(detail["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"], json!({"n": 2}));
});

backend_test!(redelivery_keeps_history_and_continues_attempt_numbers, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(500));
    app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_retries": 1, "backoff_base_ms": 10})).await;
    app.publish("artifact.completed", json!({})).await;
    let first = receiver.recv(SHORT).await.unwrap();
    let delivery_id = first.header("webhook-id").to_owned();
    app.wait_for_delivery(&delivery_id, "failed", SHORT).await;
    receiver.recv(SHORT).await.unwrap();

    receiver.answer(Answer::status(200));
    let redelivered = app.post(&format!("/api/v1/deliveries/{delivery_id}/redeliver"), json!({})).await;
    assert_eq!(redelivered.status, 202, "{}", redelivered.body);
    assert_eq!(redelivered.body["status"], "pending");
    let third = receiver.recv(SHORT).await.unwrap();
    assert_eq!(third.header("webhook-id"), delivery_id);
    assert_eq!(third.header("x-webhook-attempt"), "3");
    let done = app.wait_for_delivery(&delivery_id, "succeeded", SHORT).await;
    assert_eq!(done["attempt_count"], 3);
    assert_eq!(done["attempts"].as_array().unwrap().len(), 3);
});

backend_test!(a_response_body_with_nul_bytes_is_recorded, |backend| async move {
    // PostgreSQL text cannot hold NUL: stored as is, the attempt record could never be written.
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.script(vec![Answer::status(500).body(b"bad\0body\xff")]);
    let webhook = app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_retries": 0})).await;
    let id = webhook["id"].as_str().unwrap();
    app.publish("artifact.completed", json!({"n": 1})).await;
    receiver.recv_n(1, SHORT).await;
    let deadline = std::time::Instant::now() + SHORT;
    let failed = loop {
        let failed = app.get(&format!("/api/v1/webhooks/{id}/deliveries?status=failed")).await.body;
        if failed["data"].as_array().unwrap().len() == 1 {
            break failed;
        }
        assert!(std::time::Instant::now() < deadline, "the failed attempt was never recorded");
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(failed["data"][0]["response_body"], "bad\u{FFFD}body\u{FFFD}");
    let detail = app.get(&format!("/api/v1/deliveries/{}", failed["data"][0]["id"].as_str().unwrap())).await.body;
    assert_eq!(detail["attempts"][0]["response_body"], "bad\u{FFFD}body\u{FFFD}");
});

backend_test!(activity_counts_each_minute_s_deliveries_by_outcome_with_their_latency, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    // Three fast successes, then one slow success, then two failures (no retries).
    receiver.script(vec![
        Answer::status(200),
        Answer::status(200),
        Answer::status(200),
        Answer::status(200).delayed(std::time::Duration::from_millis(300)),
        Answer::status(500),
        Answer::status(500),
    ]);
    let webhook =
        app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_retries": 0, "max_in_flight": 1})).await;
    let id = webhook["id"].as_str().unwrap();
    app.publish_numbered("artifact.completed", 0..6).await;
    let deadline = std::time::Instant::now() + SHORT;
    while app.deliveries(id).await.iter().any(|d| d["status"] == "pending") {
        assert!(std::time::Instant::now() < deadline, "deliveries still pending");
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let reply = app.get(&format!("/api/v1/webhooks/{id}/activity?minutes=5")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let minutes = reply.body["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 5);
    let times: Vec<&str> = minutes.iter().map(|m| m["minute"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "oldest first: {times:?}");
    let total = |field: &str| minutes.iter().map(|m| m[field].as_i64().unwrap()).sum::<i64>();
    assert_eq!((total("succeeded"), total("failed"), total("pending"), total("cancelled")), (4, 2, 0, 0));
    // The slow attempt is the p99 of its minute (unless the minute turned in between).
    let p99 = minutes.iter().filter_map(|m| m["p99_ms"].as_i64()).max().unwrap();
    assert!(p99 >= 300, "{minutes:?}");
    let p50 = minutes.iter().filter_map(|m| m["p50_ms"].as_i64()).min().unwrap();
    assert!(p50 < 300, "{minutes:?}");

    // Bad input is a 422 or 400; another workspace's webhook, a 404.
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}/activity?minutes=0")).await.status, 422);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}/activity?minutes=1441")).await.status, 422);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}/activity?minutes=x")).await.status, 400);
    let other = app.post("/api/v1/workspaces", json!({"name": "other"})).await.body;
    let key = other["api_key"].as_str().unwrap();
    let reply = app.request_as(key, "GET", &format!("/api/v1/webhooks/{id}/activity"), None).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
});
