//! Workspaces and API keys: tenancy, isolation on every route, revocation, limits.

use serde_json::{json, Value};

use crate::backend_test;
use crate::helpers::*;

async fn as_key(app: &TestApp, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    app.request_as(key, method, path, body).await
}

async fn workspace(app: &TestApp, name: &str) -> (String, String) {
    let created = app.post("/api/v1/workspaces", json!({"name": name})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    (created.body["id"].as_str().unwrap().to_owned(), created.body["api_key"].as_str().unwrap().to_owned())
}

backend_test!(workspaces_and_keys_are_created_listed_and_revoked, |backend| async move {
    let app = spawn_app(backend).await;
    let created = app.post("/api/v1/workspaces", json!({"name": "acme"})).await;
    assert_eq!(created.status, 201);
    for field in ["id", "name", "created_at", "api_key"] {
        assert!(created.body[field].is_string(), "{field}");
    }
    let id = created.body["id"].as_str().unwrap();
    let first_key = created.body["api_key"].as_str().unwrap();
    assert!(first_key.starts_with("hbk_"));

    let listed = app.get("/api/v1/workspaces").await;
    assert!(listed.body["data"].as_array().unwrap().iter().any(|w| w["id"] == id && w["name"] == "acme"));
    assert!(!listed.body.to_string().contains("hbk_"), "keys are shown once, never listed");

    let second = app.post(&format!("/api/v1/workspaces/{id}/keys"), json!({})).await;
    assert_eq!(second.status, 201);
    let (second_key, second_id) = (second.body["api_key"].as_str().unwrap(), second.body["id"].as_str().unwrap());
    assert_eq!(as_key(&app, second_key, "GET", "/api/v1/webhooks", None).await.status, 200);
    let revoked = app.request("DELETE", &format!("/api/v1/workspaces/{id}/keys/{second_id}"), None).await;
    assert_eq!(revoked.status, 204);
    assert_eq!(as_key(&app, second_key, "GET", "/api/v1/webhooks", None).await.status, 401, "revoked at once");
    assert_eq!(as_key(&app, first_key, "GET", "/api/v1/webhooks", None).await.status, 200, "other keys still work");
    assert_eq!(app.request("DELETE", &format!("/api/v1/workspaces/{id}/keys/{second_id}"), None).await.status, 404);
    assert_eq!(as_key(&app, "hbk_not-a-real-key", "GET", "/api/v1/webhooks", None).await.status, 401);

    // Admin-only routes do not exist for a workspace key.
    assert_eq!(as_key(&app, first_key, "GET", "/api/v1/workspaces", None).await.status, 404);
    assert_eq!(as_key(&app, first_key, "POST", "/api/v1/workspaces", Some(json!({"name": "x"}))).await.status, 404);
    assert_eq!(
        as_key(&app, first_key, "POST", &format!("/api/v1/workspaces/{id}/keys"), Some(json!({}))).await.status,
        404
    );
    let missing = uuid::Uuid::now_v7();
    assert_eq!(app.post(&format!("/api/v1/workspaces/{missing}/keys"), json!({})).await.status, 404);
    assert_eq!(app.post("/api/v1/workspaces", json!({})).await.status, 422);
});

backend_test!(a_key_never_reaches_another_workspace_on_any_route, |backend| async move {
    let app = spawn_app(backend).await;
    let (a_id, a_key) = workspace(&app, "a").await;
    let (b_id, b_key) = workspace(&app, "b").await;
    let receiver = TestReceiver::start().await;

    let b_hook =
        as_key(&app, &b_key, "POST", "/api/v1/webhooks", Some(json!({"url": receiver.url(), "events": ["*"]}))).await;
    assert_eq!(b_hook.status, 201, "{}", b_hook.body);
    assert_eq!(b_hook.body["workspace_id"], b_id);
    let b_hook_id = b_hook.body["id"].as_str().unwrap().to_owned();
    let published =
        as_key(&app, &b_key, "POST", "/api/v1/events", Some(json!({"event": "a.b", "data": {}, "id": "same"}))).await;
    assert_eq!(published.status, 202);
    let received = receiver.recv(SHORT).await.unwrap();
    assert_eq!(received.json()["workspace_id"], b_id);
    let b_delivery = received.header("webhook-id").to_owned();

    let a_hook =
        as_key(&app, &a_key, "POST", "/api/v1/webhooks", Some(json!({"url": receiver.url(), "events": ["x.*"]}))).await;
    assert_eq!(a_hook.status, 201);

    let since = json!({"since": "2000-01-01T00:00:00Z"});
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/webhooks/{b_hook_id}"), None),
        ("PATCH", format!("/api/v1/webhooks/{b_hook_id}"), Some(json!({"name": "stolen"}))),
        ("GET", format!("/api/v1/webhooks/{b_hook_id}/secret"), None),
        ("POST", format!("/api/v1/webhooks/{b_hook_id}/secret/rotate"), Some(json!({}))),
        ("POST", format!("/api/v1/webhooks/{b_hook_id}/test"), Some(json!({}))),
        ("GET", format!("/api/v1/webhooks/{b_hook_id}/deliveries"), None),
        ("POST", format!("/api/v1/webhooks/{b_hook_id}/replay"), Some(since)),
        ("GET", format!("/api/v1/deliveries/{b_delivery}"), None),
        ("POST", format!("/api/v1/deliveries/{b_delivery}/redeliver"), Some(json!({}))),
        ("GET", format!("/api/v1/webhooks?workspace_id={b_id}"), None),
        ("GET", format!("/api/v1/health?workspace_id={b_id}"), None),
        ("DELETE", format!("/api/v1/webhooks/{b_hook_id}"), None),
    ];
    for (method, path, body) in routes {
        let reply = as_key(&app, &a_key, method, &path, body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "not_found");
    }
    // B's webhook is untouched and invisible to A.
    let still = as_key(&app, &b_key, "GET", &format!("/api/v1/webhooks/{b_hook_id}"), None).await;
    assert_eq!(still.body["name"], "Webhook");
    let a_list = as_key(&app, &a_key, "GET", "/api/v1/webhooks", None).await;
    assert_eq!(a_list.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(a_list.body["data"][0]["workspace_id"], a_id);
    let a_board = as_key(&app, &a_key, "GET", "/api/v1/health", None).await;
    assert_eq!(a_board.body["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(a_board.body["totals"]["events"], 0);
    // Event ids are per workspace.
    let a_same =
        as_key(&app, &a_key, "POST", "/api/v1/events", Some(json!({"event": "x.y", "data": {}, "id": "same"}))).await;
    assert_eq!(a_same.status, 202);
    assert_eq!(a_same.body["event"], "x.y");
    // The admin token reaches B explicitly.
    let admin_view = app.get(&format!("/api/v1/webhooks?workspace_id={b_id}")).await;
    assert_eq!(admin_view.body["data"][0]["id"], b_hook_id.as_str());
    assert_eq!(app.get("/api/v1/webhooks").await.body["data"], json!([]), "default workspace is separate");
});

backend_test!(workspace_keys_are_rate_limited_except_for_publishing, |backend| async move {
    let app = spawn_app_with(backend, |c| {
        c.api_rate_limit = 2;
        c.api_rate_burst = 4;
    })
    .await;
    let (_, key) = workspace(&app, "busy").await;
    for _ in 0..4 {
        assert_eq!(as_key(&app, &key, "GET", "/api/v1/webhooks", None).await.status, 200);
    }
    let limited = as_key(&app, &key, "GET", "/api/v1/webhooks", None).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["error"]["code"], "rate_limited");
    let mut response = app
        .client
        .get(format!("{}/api/v1/webhooks", app.base))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers().get("Retry-After").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after));
    let _ = response.body().await;
    for i in 0..10 {
        let reply = as_key(&app, &key, "POST", "/api/v1/events", Some(json!({"event": "a.b", "data": {"i": i}}))).await;
        assert_eq!(reply.status, 202, "publishing is never throttled");
    }
    for _ in 0..10 {
        assert_eq!(app.get("/api/v1/webhooks").await.status, 200, "the admin token is not rate-limited");
    }
    actix_rt::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(as_key(&app, &key, "GET", "/api/v1/webhooks", None).await.status, 200, "tokens refill");
});

backend_test!(a_workspace_cannot_exceed_its_webhook_quota, |backend| async move {
    let app = spawn_app_with(backend, |c| c.max_webhooks_per_workspace = 2).await;
    for _ in 0..2 {
        app.create_webhook(json!({"url": "http://127.0.0.1:9/", "events": ["*"]})).await;
    }
    let over = app.post("/api/v1/webhooks", json!({"url": "http://127.0.0.1:9/", "events": ["*"]})).await;
    assert_eq!(over.status, 422);
    assert!(over.body["error"]["message"].as_str().unwrap().starts_with("webhooks"));
    assert_eq!(app.get("/api/v1/webhooks").await.body["data"].as_array().unwrap().len(), 2);
});
