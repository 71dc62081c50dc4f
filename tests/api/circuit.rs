//! The circuit breaker, isolation between webhooks, and the per-webhook rate limit,
//! against real sockets.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backend_test;
use crate::helpers::*;

async fn health(app: &TestApp) -> Value {
    let reply = app.get("/api/v1/health").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn webhook_health(app: &TestApp, id: &str) -> Value {
    webhook_in(&health(app).await, id).clone()
}

/// Polls the dashboard until `check` holds for the webhook.
async fn wait_for_health(app: &TestApp, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    webhook_in(&app.dashboard_when(|board| check(webhook_in(board, id))).await, id).clone()
}

async fn publish_many(app: &TestApp, event: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(20) {
        let sends = chunk.iter().map(|i| app.post("/api/v1/events", json!({"event": event, "data": {"i": i}})));
        for reply in futures_util::future::join_all(sends).await {
            assert_eq!(reply.status, 202, "{}", reply.body);
        }
    }
}

backend_test!(a_dead_endpoint_sees_only_the_threshold_and_probes_then_drains_without_failures, |backend| async move {
    let app = spawn_app_with(backend, |c| {
        c.failure_threshold = 5;
        c.circuit_cooldown_ms = 200;
        c.circuit_cooldown_max_ms = 800;
    })
    .await;
    let port = free_port();
    let webhook = app
        .create_webhook(json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["*"], "backoff_base_ms": 50}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    let dead_since = Instant::now();
    publish_many(&app, "artifact.completed", 1000).await;
    let open = wait_for_health(&app, id, |w| w["circuit"] == "open").await;
    // Five opened it; failed probes since then count too.
    assert!(open["consecutive_failures"].as_u64().unwrap() >= 5, "{open}");
    assert!(open["next_attempt_at"].is_string(), "the probe time is shown: {open}");
    assert_eq!(health(&app).await["status"], "degraded");
    actix_rt::time::sleep(Duration::from_millis(1500)).await;

    let receiver = TestReceiver::start_on(&format!("127.0.0.1:{port}")).await;
    let dead_for = dead_since.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    let totals = loop {
        let totals = health(&app).await["totals"].clone();
        if totals["succeeded"] == 1000 {
            break totals;
        }
        assert!(Instant::now() < deadline, "not all delivered: {totals}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(totals["failed"], 0);
    assert_eq!(totals["succeeded"], 1000);
    let failed_attempts = totals["attempts"].as_u64().unwrap() - 1000;
    // Probes come at most once per base cooldown (they back off from there).
    let probes_bound = (dead_for.as_millis() / 200) as u64 + 1;
    assert!(
        (5..=5 + probes_bound).contains(&failed_attempts),
        "{failed_attempts} failed attempts while dead for {dead_for:?}"
    );
    eprintln!("dead endpoint: {failed_attempts} failed attempts for 1000 deliveries while dead for {dead_for:?}");
    assert!(failed_attempts < 5 + 12, "{failed_attempts}: the circuit did not hold back");
    assert_eq!(receiver.count(), 1000, "each delivery reached the receiver once");
    let closed = webhook_health(&app, id).await;
    assert_eq!(closed["circuit"], "closed");
    assert_eq!(closed["consecutive_failures"], 0);
});

backend_test!(a_successful_test_or_explicit_enable_closes_an_open_circuit, |backend| async move {
    let app = spawn_app_with(backend, |c| {
        c.failure_threshold = 2;
        c.circuit_cooldown_ms = 60_000;
        c.circuit_cooldown_max_ms = 60_000;
    })
    .await;
    let port = free_port();
    let webhook = app
        .create_webhook(json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["*"], "backoff_base_ms": 10}))
        .await;
    let id = webhook["id"].as_str().unwrap();
    publish_many(&app, "source.ready", 3).await;
    wait_for_health(&app, id, |w| w["circuit"] == "open").await;

    // Open with a 60 s cooldown: once the two failures are recorded, no attempt is made…
    let deadline = Instant::now() + SHORT;
    while health(&app).await["totals"]["attempts"].as_u64().unwrap() < 2 {
        assert!(Instant::now() < deadline);
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    let attempts_while_open = health(&app).await["totals"]["attempts"].as_u64().unwrap();
    assert_eq!(attempts_while_open, 2);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health(&app).await["totals"]["attempts"].as_u64().unwrap(), attempts_while_open);
    // …until enabling explicitly closes the circuit, and attempts resume at once.
    let patched = app.request("PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"enabled": true}))).await;
    assert_eq!(patched.status, 200);
    let deadline = Instant::now() + SHORT;
    while health(&app).await["totals"]["attempts"].as_u64().unwrap() == attempts_while_open {
        assert!(Instant::now() < deadline, "no attempt after the circuit was closed");
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    // Still dead, so it opens again…
    wait_for_health(&app, id, |w| w["circuit"] == "open").await;

    // …until the receiver is back and a test attempt succeeds: the queue then drains at once.
    let receiver = TestReceiver::start_on(&format!("127.0.0.1:{port}")).await;
    let tested = app.post(&format!("/api/v1/webhooks/{id}/test"), json!({})).await;
    assert_eq!(tested.body["succeeded"], true, "{}", tested.body);
    wait_for_health(&app, id, |w| w["circuit"] == "closed").await;
    app.wait_for_all(id, 4, "succeeded", LONG).await;
    assert_eq!(receiver.seen().iter().filter(|r| r.header("x-webhook-event") == "source.ready").count(), 3);
});

backend_test!(a_circuit_open_for_disable_after_disables_the_webhook_and_alerts, |backend| async move {
    let app = spawn_app_with(backend, |c| {
        c.failure_threshold = 1;
        c.circuit_cooldown_ms = 100;
        c.circuit_cooldown_max_ms = 100;
        c.disable_after_ms = 500;
    })
    .await;
    let alerts = TestReceiver::start().await;
    app.create_webhook(json!({"url": alerts.url(), "events": ["hookbus.*"]})).await;
    let port = free_port();
    let webhook = app
        .create_webhook(
            json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["artifact.*"], "backoff_base_ms": 10}),
        )
        .await;
    let id = webhook["id"].as_str().unwrap();
    publish_many(&app, "artifact.completed", 3).await;

    let alert = alerts.recv(LONG).await.expect("an operational event arrives");
    assert_eq!(alert.header("x-webhook-event"), "hookbus.webhook.disabled");
    let data = alert.json()["data"].clone();
    assert_eq!(data["webhook_id"], id);
    assert_eq!(data["reason"], "failing");
    let disabled = app.get(&format!("/api/v1/webhooks/{id}")).await.body;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["disabled_reason"], "failing");
    let deliveries = app.wait_for_all(id, 3, "failed", SHORT).await;
    assert!(deliveries.iter().all(|d| d["status"] == "failed"));
    let detail = app.get(&format!("/api/v1/deliveries/{}", deliveries[0]["id"].as_str().unwrap())).await.body;
    assert_eq!(detail["failure_reason"], "webhook disabled (failing)");
    assert_eq!(detail["attempt_count"], detail["attempts"].as_array().unwrap().len());
});

backend_test!(a_delivery_that_fails_for_good_is_announced_but_never_about_itself, |backend| async move {
    let app = spawn_app(backend).await;
    let alerts = TestReceiver::start().await;
    // The alerting endpoint is broken too: its own failure must not start a loop.
    alerts.answer(Answer::status(500));
    app.create_webhook(json!({"url": alerts.url(), "events": ["hookbus.delivery.failed"], "max_retries": 0})).await;
    let broken = TestReceiver::start().await;
    broken.answer(Answer::status(500));
    let webhook = app.create_webhook(json!({"url": broken.url(), "events": ["*"], "max_retries": 0})).await;
    let published = app.publish("meeting.completed", json!({"m": 1})).await;

    let alert = alerts.recv(SHORT).await.expect("the failure is announced");
    assert_eq!(alert.header("x-webhook-event"), "hookbus.delivery.failed");
    let data = alert.json()["data"].clone();
    assert_eq!(data["webhook_id"], webhook["id"]);
    assert_eq!(data["event_id"], published["id"]);
    assert_eq!(data["event"], "meeting.completed");
    assert_eq!(data["status_code"], 500);
    assert_eq!(data["attempt_count"], 1);
    // `*` does not match operational events, so the broken webhook never saw it.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(broken.count(), 1);
    assert_eq!(alerts.count(), 1, "the failed alert did not trigger another");
    assert_eq!(health(&app).await["totals"]["events"], 1, "operational events are not the clients'");

    let reserved = app.post("/api/v1/events", json!({"event": "hookbus.webhook.disabled", "data": {}})).await;
    assert_eq!(reserved.status, 422);
});

backend_test!(operational_events_are_created_only_when_someone_listens, |backend| async move {
    // The circuit stays closed, so every delivery fails for good at once.
    let app = spawn_app_with(backend, |c| c.failure_threshold = 100).await;
    let broken = TestReceiver::start().await;
    broken.answer(Answer::status(500));
    let webhook = app.create_webhook(json!({"url": broken.url(), "events": ["*"], "max_retries": 0})).await;
    let id = webhook["id"].as_str().unwrap();
    app.publish_numbered("meeting.completed", 0..8).await;
    app.wait_for_all(id, 8, "failed", SHORT).await;
    // A `*` subscriber and an alerting webhook that is disabled do not listen.
    let alerts = TestReceiver::start().await;
    let off = json!({"url": alerts.url(), "events": ["hookbus.*"], "enabled": false});
    app.create_webhook(off).await;
    app.publish_numbered("meeting.completed", 8..10).await;
    app.wait_for_all(id, 10, "failed", SHORT).await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let published = |metrics: &str| sample(&parse_metrics(metrics), "hookbus_events_published_total");
    assert_eq!(published(&app.metrics().await), 10.0, "no operational event was stored");
    assert_eq!(health(&app).await["totals"]["events"], 10);

    // Once someone listens, each failure is announced; the clients' count stays theirs.
    app.create_webhook(json!({"url": alerts.url(), "events": ["hookbus.delivery.failed"]})).await;
    app.publish_numbered("meeting.completed", 10..12).await;
    alerts.recv_n(2, SHORT).await;
    assert_eq!(published(&app.metrics().await), 14.0, "12 of the clients' events and 2 announcements");
    assert_eq!(health(&app).await["totals"]["events"], 12);
});

#[derive(Clone, Copy, PartialEq)]
enum Neighbours {
    None,
    Healthy,
    /// One dead (nothing listens), one slow (answers after 2 s).
    Sick,
}

/// Time from the first publish until a healthy webhook has received every delivery.
async fn healthy_run(neighbours: Neighbours, backend: Backend, events: usize) -> Duration {
    let app = spawn_app(backend).await;
    let healthy = TestReceiver::start().await;
    let healthy_hook = app.create_webhook(json!({"url": healthy.url(), "events": ["*"]})).await;
    let other = TestReceiver::start().await;
    match neighbours {
        Neighbours::None => {}
        Neighbours::Healthy => {
            app.create_webhook(json!({"url": other.url(), "events": ["*"]})).await;
            app.create_webhook(json!({"url": other.url(), "events": ["*"]})).await;
        }
        Neighbours::Sick => {
            other.answer(Answer::status(200).delayed(Duration::from_secs(2)));
            let dead = format!("http://127.0.0.1:{}/hook", free_port());
            app.create_webhook(json!({"url": dead, "events": ["*"], "backoff_base_ms": 10})).await;
            app.create_webhook(json!({"url": other.url(), "events": ["*"], "timeout_ms": 5000})).await;
        }
    }
    let started = Instant::now();
    publish_many(&app, "source.ready", events).await;
    healthy.recv_n(events, Duration::from_secs(60)).await;
    let took = started.elapsed();
    app.wait_for_all(healthy_hook["id"].as_str().unwrap(), events, "succeeded", LONG).await;
    took
}

backend_test!(a_dead_and_a_slow_neighbour_do_not_slow_a_healthy_webhook, |backend| async move {
    const EVENTS: usize = 500;
    let alone = healthy_run(Neighbours::None, backend, EVENTS).await;
    // Each neighbourhood twice, alternated, and its faster run kept: the rest of the suite
    // shares the two cores, and a run it slowed says nothing about the neighbours.
    let (mut healthy, mut sick) = (Duration::MAX, Duration::MAX);
    for _ in 0..2 {
        healthy = healthy.min(healthy_run(Neighbours::Healthy, backend, EVENTS).await);
        sick = sick.min(healthy_run(Neighbours::Sick, backend, EVENTS).await);
    }
    eprintln!(
        "{backend:?}: {EVENTS} deliveries to a healthy webhook took {alone:?} alone, \
         {healthy:?} beside two healthy webhooks, {sick:?} beside a dead and a slow one (faster of two runs each)"
    );
    // Same fan-out and storage work in both runs: sickness next door must not cost more
    // than 20 % (plus a little absolute slack for a shared 2-core machine).
    assert!(sick <= healthy.mul_f64(1.2) + Duration::from_millis(200), "healthy {healthy:?}, sick {sick:?}");
});

backend_test!(the_rate_limit_paces_deliveries_without_failing_them, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    let webhook = app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "rate_limit_per_sec": 5})).await;
    publish_many(&app, "source.ready", 20).await;
    let received = receiver.recv_n(20, LONG).await;
    let span = received.last().unwrap().at - received[0].at;
    assert!(span >= Duration::from_millis(2900), "20 deliveries at 5/s took {span:?}");
    let all = app.wait_for_all(webhook["id"].as_str().unwrap(), 20, "succeeded", LONG).await;
    assert!(all.iter().all(|d| d["attempt_count"] == 1), "waiting for a token is not a failure");
    assert_eq!(webhook_health(&app, webhook["id"].as_str().unwrap()).await["consecutive_failures"], 0);
});
