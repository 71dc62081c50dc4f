//! Any server answers for all: changes through one bind the next publish through another,
//! admin routes answer alike, keys and revocations reach every server within a second.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;
use crate::*;

#[actix_web::test]
async fn a_change_through_one_server_binds_the_very_next_publish_through_another() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start(2, &[]).await else { return };
    let receiver = TestReceiver::start().await;
    // Created through A, published through B at once: matched and delivered, every time.
    let mut ids = Vec::new();
    for round in 0..10 {
        let id = cluster.create_webhook(0, json!({"url": receiver.url(), "events": [format!("round{round}.*")]})).await;
        let event = json!({"event": format!("round{round}.done"), "data": {"id": format!("r{round}")}});
        let reply = cluster.call(1, "POST", "/api/v1/events", Some(event)).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(reply.body["matched_webhooks"], 1, "round {round}: B did not see A's new webhook");
        ids.push(id);
    }
    let received = receiver.recv_n(10, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 10, "every publish through B was delivered");

    // Every admin route answers the same through either server.
    for path in [format!("/api/v1/webhooks/{}", ids[0]), "/api/v1/webhooks".into()] {
        let (a, b) = (cluster.call(0, "GET", &path, None).await, cluster.call(1, "GET", &path, None).await);
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{path}");
    }

    // Changed through A: B's next publish no longer matches.
    let patch = json!({"events": ["elsewhere.*"]});
    let reply = cluster.call(0, "PATCH", &format!("/api/v1/webhooks/{}", ids[0]), Some(patch)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = cluster.call(1, "POST", "/api/v1/events", Some(json!({"event": "round0.done", "data": {}}))).await;
    assert_eq!(reply.body["matched_webhooks"], 0, "B still matched the old subscription");
    // Disabled through B: A's next publish no longer matches.
    let reply =
        cluster.call(1, "PATCH", &format!("/api/v1/webhooks/{}", ids[1]), Some(json!({"enabled": false}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = cluster.call(0, "POST", "/api/v1/events", Some(json!({"event": "round1.done", "data": {}}))).await;
    assert_eq!(reply.body["matched_webhooks"], 0, "A still matched a disabled webhook");
    // Deleted through A: B's next publish no longer matches, and B no longer finds it.
    let reply = cluster.call(0, "DELETE", &format!("/api/v1/webhooks/{}", ids[2]), None).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let reply = cluster.call(1, "POST", "/api/v1/events", Some(json!({"event": "round2.done", "data": {}}))).await;
    assert_eq!(reply.body["matched_webhooks"], 0, "B still matched a deleted webhook");
    assert_eq!(cluster.call(1, "GET", &format!("/api/v1/webhooks/{}", ids[2]), None).await.status, 404);
}

/// The server that creates a webhook owns it before it answers: the first events published
/// through it go to its endpoint at once and, with `max_in_flight = 1`, in order.
#[actix_web::test]
async fn the_server_that_creates_a_webhook_owns_it_from_the_start() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start(2, &[]).await else { return };
    let receiver = TestReceiver::start().await;
    for creator in [0, 1] {
        let owned_before = cluster.owned_webhooks(creator).await;
        let event = format!("first{creator}.done");
        let body = json!({"url": receiver.url(), "events": [event], "max_in_flight": 1});
        let id = cluster.create_webhook(creator, body).await;
        assert_eq!(
            cluster.owned_webhooks(creator).await,
            owned_before + 1.0,
            "server {creator} runs {id} when it answers"
        );
        for i in 0..20 {
            let reply =
                cluster.call(creator, "POST", "/api/v1/events", Some(json!({"event": event, "data": {"i": i}}))).await;
            assert_eq!(reply.status, 202, "{}", reply.body);
        }
    }
    let received = receiver.recv_n(40, Duration::from_secs(20)).await;
    for creator in [0, 1] {
        let order: Vec<i64> = received
            .iter()
            .map(|r| r.json())
            .filter(|body| body["event"] == format!("first{creator}.done"))
            .map(|body| body["data"]["i"].as_i64().unwrap())
            .collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>(), "strict order from the first event");
    }
    // Published through the other server: announced to the owner at once (the sweep, the
    // backstop, would take 10 s).
    for (creator, via) in [(0, 1), (1, 0)] {
        let event = json!({"event": format!("first{creator}.done"), "data": {"via": via}});
        let published = Instant::now();
        assert_eq!(cluster.call(via, "POST", "/api/v1/events", Some(event)).await.status, 202);
        let received = receiver.recv(Duration::from_secs(2)).await.expect("announced to the owner");
        assert_eq!(received.json()["data"]["via"], via, "{:?}", published.elapsed());
    }
}

/// Each server's `/metrics` shows the queues of the webhooks it runs, and no other's.
#[actix_web::test]
async fn each_server_shows_the_queue_depth_of_what_it_owns() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start(2, &[]).await else { return };
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(500));
    // Created through A, so A owns it; a failed attempt holds the delivery pending for a minute.
    let body = json!({"url": receiver.url(), "events": ["held.*"], "backoff_base_ms": 60000});
    let id = cluster.create_webhook(0, body).await;
    let event = json!({"event": "held.once", "data": {}});
    assert_eq!(cluster.call(1, "POST", "/api/v1/events", Some(event)).await.status, 202);
    receiver.recv(Duration::from_secs(5)).await.expect("the first attempt");
    let series = format!(r#"hookbus_queue_depth{{webhook_id="{id}"}}"#);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.metrics(0).await.iter().find(|(s, _)| *s == series).map(|s| s.1) != Some(1.0) {
        assert!(Instant::now() < deadline, "the owner never showed its queue of 1");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let other = cluster.metrics(1).await;
    assert!(other.iter().all(|(s, _)| *s != series), "the other server shows a queue it does not run: {other:?}");
}

#[actix_web::test]
async fn workspaces_keys_and_revocations_reach_every_server_within_a_second() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start(2, &[]).await else { return };
    let reply = cluster.call(0, "POST", "/api/v1/workspaces", Some(json!({"name": "acme"}))).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let (key, key_id) =
        (reply.body["api_key"].as_str().unwrap().to_owned(), reply.body["api_key_id"].as_str().unwrap().to_owned());
    let workspace = reply.body["id"].as_str().unwrap().to_owned();
    let with_key = |i: usize| {
        let key = key.clone();
        let port = cluster.server(i).port;
        async move {
            awc::Client::default()
                .get(format!("http://127.0.0.1:{port}/api/v1/webhooks"))
                .insert_header(("Authorization", format!("Bearer {key}")))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The new key works through the other server at once (it was never seen there).
    assert_eq!(with_key(1).await, 200);
    assert_eq!(with_key(0).await, 200);
    // Revoked through A: refused through B within a second, though B had it in memory.
    let revoke = format!("/api/v1/workspaces/{workspace}/keys/{key_id}");
    let reply = cluster.call(0, "DELETE", &revoke, None).await;
    assert!(reply.status == 204 || reply.status == 200, "{}: {}", reply.status, reply.body);
    let revoked = Instant::now();
    while with_key(1).await != 401 {
        assert!(revoked.elapsed() < Duration::from_secs(1), "B still accepts a key revoked through A");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("revocation reached the other server after {:?}", revoked.elapsed());
}

/// `max_webhooks_per_workspace` holds for the system, not per server: creations through
/// both servers at once stop at the limit.
#[actix_web::test]
async fn creations_through_several_servers_at_once_stop_at_the_workspace_limit() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start(2, &["--max-webhooks-per-workspace", "5"]).await else { return };
    let body = json!({"url": "http://127.0.0.1:9/", "events": ["*"]});
    let creations = (0..16).map(|n| cluster.call(n % 2, "POST", "/api/v1/webhooks", Some(body.clone())));
    let replies = futures_util::future::join_all(creations).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    for refused in replies.iter().filter(|r| r.status != 201) {
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert_eq!(refused.body["error"]["code"], "validation_failed", "{}", refused.body);
    }
    assert_eq!(created, 5, "16 creations at once through two servers with a limit of 5");
    for i in 0..2 {
        let listed = cluster.call(i, "GET", "/api/v1/webhooks?limit=100", None).await;
        assert_eq!(listed.body["data"].as_array().unwrap().len(), 5, "server {i}: {}", listed.body);
    }
}

/// A successful test, or `enabled: true`, closes the circuit (SPEC §3) whichever server it
/// goes through: the owner, which runs the circuit, hears it from another server at once
/// rather than after the cooldown.
#[actix_web::test]
async fn a_test_or_an_enable_through_another_server_closes_the_owner_s_circuit() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let args = ["--failure-threshold", "3", "--circuit-cooldown-ms", "60000", "--circuit-cooldown-max-ms", "60000"];
    let Some(cluster) = Cluster::start(2, &args).await else { return };
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(503));
    // Created through server 0, which therefore owns it.
    let body = json!({"url": receiver.url(), "events": ["order.*"], "max_retries": 20, "backoff_base_ms": 10});
    let id = cluster.create_webhook(0, body).await;
    let circuit_is = |state: &'static str| {
        let id = id.clone();
        move |d: &serde_json::Value| {
            d["webhooks"].as_array().unwrap().iter().any(|w| w["id"] == id.as_str() && w["circuit"] == state)
        }
    };

    cluster.publish_through(0, "first").await;
    cluster.dashboard_when(0, Duration::from_secs(10), circuit_is("open")).await;
    receiver.answer(Answer::status(200));
    let tested = cluster.call(1, "POST", &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!((tested.status, tested.body["succeeded"].as_bool()), (200, Some(true)), "{}", tested.body);
    let closed_at = Instant::now();
    cluster.dashboard_when(0, Duration::from_secs(2), circuit_is("closed")).await;
    // The held delivery goes out now, not after the 60 s cooldown.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !receiver.seen().iter().any(|r| r.header("x-webhook-event") == "order.paid" && r.json()["id"] == "first") {
        assert!(Instant::now() < deadline, "the held delivery never went out");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("closed through the other server in {:?}", closed_at.elapsed());

    receiver.answer(Answer::status(503));
    cluster.publish_through(0, "second").await;
    cluster.dashboard_when(0, Duration::from_secs(10), circuit_is("open")).await;
    let enabled = cluster.call(1, "PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"enabled": true}))).await;
    assert_eq!(enabled.status, 200, "{}", enabled.body);
    cluster.dashboard_when(0, Duration::from_secs(2), circuit_is("closed")).await;
}
