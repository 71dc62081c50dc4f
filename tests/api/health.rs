//! The health dashboard and `/metrics`, checked field by field against a scripted scenario.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backend_test;
use crate::helpers::*;

fn webhook<'a>(dashboard: &'a Value, id: &Value) -> &'a Value {
    webhook_in(dashboard, id.as_str().unwrap())
}

backend_test!(the_dashboard_reports_every_field_from_live_state, |backend| async move {
    let app = spawn_app_with(backend, |c| {
        c.failure_threshold = 2;
        c.circuit_cooldown_ms = 60_000;
        c.circuit_cooldown_max_ms = 60_000;
    })
    .await;
    let good = TestReceiver::start().await;
    good.answer(Answer::status(200).delayed(Duration::from_millis(20)));
    let bad = TestReceiver::start().await;
    bad.answer(Answer::status(500));
    let healthy = app.create_webhook(json!({"url": good.url(), "events": ["artifact.*"], "name": "good"})).await;
    let failing = app
        .create_webhook(
            json!({"url": bad.url(), "events": ["artifact.*"], "name": "bad", "backoff_base_ms": 10, "max_retries": 5}),
        )
        .await;
    let paused = app
        .create_webhook(json!({"url": good.url(), "events": ["artifact.*"], "name": "paused", "enabled": false}))
        .await;

    for i in 0..3 {
        app.publish("artifact.completed", json!({"i": i})).await;
    }
    // 3 events; the good webhook gets 3 successes, the bad one opens after 2 failures and
    // holds its 3 deliveries pending.
    let board = app
        .dashboard_when(|b| {
            b["totals"]["succeeded"] == 3
                && b["totals"]["attempts"] == 5
                && webhook(b, &failing["id"])["circuit"] == "open"
        })
        .await;
    assert_eq!(board["status"], "degraded");
    assert!(board["uptime_s"].is_u64());
    let backend_name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(board["database"]["backend"], backend_name);
    assert_eq!(board["database"]["ok"], true);
    assert!(board["database"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(board["totals"], json!({"events": 3, "pending": 3, "succeeded": 3, "failed": 0, "attempts": 5}));
    assert_eq!(board["webhooks"].as_array().unwrap().len(), 3);
    assert_eq!(board["webhooks"][0]["id"], paused["id"], "newest first");

    let good_health = webhook(&board, &healthy["id"]);
    assert_eq!(good_health["name"], "good");
    assert_eq!(good_health["url"], good.url());
    assert_eq!(good_health["enabled"], true);
    assert_eq!(good_health["disabled_reason"], Value::Null);
    assert_eq!(good_health["circuit"], "closed");
    assert_eq!(good_health["consecutive_failures"], 0);
    assert_eq!(good_health["queue_depth"], 0);
    assert_eq!(good_health["in_flight"], 0);
    assert_eq!(good_health["success_rate_5m"], 1.0);
    for p in ["p50", "p95", "p99"] {
        let ms = good_health["latency_ms"][p].as_f64().unwrap();
        assert!((15.0..2000.0).contains(&ms), "{p} = {ms}: the receiver answers after 20 ms");
    }
    assert!(good_health["last_success_at"].is_string());
    assert_eq!(good_health["last_failure_at"], Value::Null);
    assert_eq!(good_health["last_error"], Value::Null);
    assert_eq!(good_health["next_attempt_at"], Value::Null);

    let bad_health = webhook(&board, &failing["id"]);
    assert_eq!(bad_health["circuit"], "open");
    assert_eq!(bad_health["consecutive_failures"], 2);
    assert_eq!(bad_health["queue_depth"], 3);
    assert_eq!(bad_health["in_flight"], 0);
    assert_eq!(bad_health["success_rate_5m"], 0.0);
    assert_eq!(bad_health["last_error"], "HTTP 500");
    assert!(bad_health["last_failure_at"].is_string());
    assert_eq!(bad_health["last_success_at"], Value::Null);
    let probe_at = chrono::DateTime::parse_from_rfc3339(bad_health["next_attempt_at"].as_str().unwrap()).unwrap();
    let ahead = probe_at.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((50..=60).contains(&ahead), "the probe is due after the 60 s cooldown, in {ahead} s");

    let paused_health = webhook(&board, &paused["id"]);
    assert_eq!(paused_health["enabled"], false);
    assert_eq!(paused_health["disabled_reason"], "manual");
    assert_eq!(paused_health["circuit"], "closed");
    assert_eq!(paused_health["queue_depth"], 0);
    assert_eq!(paused_health["success_rate_5m"], Value::Null);
    assert_eq!(paused_health["latency_ms"], json!({"p50": null, "p95": null, "p99": null}));

    // Deleting the failing webhook leaves only closed circuits: the status is ok again.
    assert_eq!(
        app.request("DELETE", &format!("/api/v1/webhooks/{}", failing["id"].as_str().unwrap()), None).await.status,
        204
    );
    let board = app.dashboard_when(|b| b["webhooks"].as_array().unwrap().len() == 2).await;
    assert_eq!(board["status"], "ok");
});

backend_test!(metrics_parse_and_show_no_urls_secrets_or_payloads, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.script(vec![Answer::status(500)]);
    let webhook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["*"], "secret": "metrics-secret-value-123", "backoff_base_ms": 10}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    app.publish("artifact.completed", json!({"payload_marker": "do-not-leak-me"})).await;
    app.publish("artifact.completed", json!({"payload_marker": "do-not-leak-me"})).await;
    app.wait_for_all(id, 2, "succeeded", SHORT).await;

    // Without a token: `/metrics` needs no auth.
    let text = app.metrics().await;
    for secret in [receiver.url().as_str(), "127.0.0.1", "metrics-secret-value-123", "do-not-leak-me", ADMIN_TOKEN] {
        assert!(!text.contains(secret), "/metrics shows {secret}");
    }
    let samples = parse_metrics(&text);
    assert_eq!(sample(&samples, "hookbus_events_published_total"), 2.0);
    assert_eq!(sample(&samples, r#"hookbus_attempts_total{outcome="success"}"#), 2.0);
    assert_eq!(sample(&samples, r#"hookbus_attempts_total{outcome="http_error"}"#), 1.0);
    assert_eq!(sample(&samples, r#"hookbus_deliveries_completed_total{status="succeeded"}"#), 2.0);
    assert_eq!(sample(&samples, &format!(r#"hookbus_circuit_state{{webhook_id="{id}"}}"#)), 0.0);
    assert_eq!(sample(&samples, "hookbus_attempt_duration_seconds_count"), 3.0);
    assert!(samples.iter().any(|(s, _)| s.starts_with("hookbus_attempt_duration_seconds_bucket{le=")));

    // Queue depth is counted at scrape time: hold deliveries pending behind a long backoff.
    receiver.answer(Answer::status(500));
    app.publish("artifact.completed", json!({})).await;
    app.request("PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"backoff_base_ms": 60000}))).await;
    receiver.recv_n(3, SHORT).await;
    let deadline = Instant::now() + SHORT;
    loop {
        let samples = parse_metrics(&app.metrics().await);
        let depth = samples.iter().find(|(s, _)| *s == format!(r#"hookbus_queue_depth{{webhook_id="{id}"}}"#));
        if depth.map(|d| d.1) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "queue depth never showed 1: {text}");
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
});
