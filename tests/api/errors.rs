//! Every status of the SPEC error table, with the SPEC error body, and nothing changed.

use serde_json::{json, Value};

use crate::backend_test;
use crate::helpers::*;

async fn raw(app: &TestApp, path: &str, content_type: Option<&str>, token: Option<&str>, body: &str) -> Reply {
    let mut request = app.client.post(format!("{}{path}", app.base));
    if let Some(content_type) = content_type {
        request = request.insert_header(("Content-Type", content_type));
    }
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut response = request.send_body(body.to_owned()).await.unwrap();
    let bytes = response.body().await.unwrap();
    Reply { status: response.status().as_u16(), body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    assert!(reply.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn assert_no_webhooks(app: &TestApp) {
    assert_eq!(app.get("/api/v1/webhooks").await.body["data"], json!([]));
}

backend_test!(malformed_bodies_are_400_and_create_nothing, |backend| async move {
    let app = spawn_app(backend).await;
    let json_type = Some("application/json");
    for body in [
        "{not json",
        r#"{"url": "http://127.0.0.1:9/", "events": ["*"], "colour": "red"}"#,
        r#"{"url": 42, "events": ["*"]}"#,
        r#"{"url": "http://127.0.0.1:9/", "events": "*"}"#,
        r#"{"url": "http://127.0.0.1:9/", "events": ["*"], "timeout_ms": "fast"}"#,
        "[]",
    ] {
        let reply = raw(&app, "/api/v1/webhooks", json_type, Some(ADMIN_TOKEN), body).await;
        assert_error(&reply, 400, "bad_request");
    }
    let unknown_publish_field =
        raw(&app, "/api/v1/events", json_type, Some(ADMIN_TOKEN), r#"{"event":"a","data":{},"x":1}"#).await;
    assert_error(&unknown_publish_field, 400, "bad_request");
    assert_no_webhooks(&app).await;
});

backend_test!(missing_or_wrong_tokens_are_401, |backend| async move {
    let app = spawn_app(backend).await;
    let body = r#"{"url": "http://127.0.0.1:9/", "events": ["*"]}"#;
    assert_error(&raw(&app, "/api/v1/webhooks", Some("application/json"), None, body).await, 401, "unauthorized");
    assert_error(
        &raw(&app, "/api/v1/webhooks", Some("application/json"), Some("nope-nope-nope-nope"), body).await,
        401,
        "unauthorized",
    );
    let mut response = app.client.get(format!("{}/api/v1/webhooks", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_no_webhooks(&app).await;
});

backend_test!(unknown_resources_are_404, |backend| async move {
    let app = spawn_app(backend).await;
    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/api/v1/webhooks/{missing}"),
        "/api/v1/webhooks/not-a-uuid".to_owned(),
        format!("/api/v1/deliveries/{missing}"),
        format!("/api/v1/webhooks/{missing}/deliveries"),
        "/api/v1/nothing-here".to_owned(),
        format!("/api/v1/webhooks?workspace_id={missing}"),
    ] {
        assert_error(&app.get(&path).await, 404, "not_found");
    }
    assert_error(&app.request("DELETE", &format!("/api/v1/webhooks/{missing}"), None).await, 404, "not_found");
    assert_error(&app.post(&format!("/api/v1/deliveries/{missing}/redeliver"), json!({})).await, 404, "not_found");
});

backend_test!(a_reused_event_id_with_another_body_is_409, |backend| async move {
    let app = spawn_app(backend).await;
    assert_eq!(app.post("/api/v1/events", json!({"event": "a.b", "data": {"v": 1}, "id": "dup"})).await.status, 202);
    let reply = app.post("/api/v1/events", json!({"event": "a.c", "data": {"v": 1}, "id": "dup"})).await;
    assert_error(&reply, 409, "conflict");
});

backend_test!(bodies_over_the_limit_are_413_and_create_nothing, |backend| async move {
    let app = spawn_app_with(backend, |c| c.max_payload_bytes = 4096).await;
    let big = json!({"url": "http://127.0.0.1:9/", "events": ["*"], "name": "x".repeat(5000)}).to_string();
    let reply = raw(&app, "/api/v1/webhooks", Some("application/json"), Some(ADMIN_TOKEN), &big).await;
    assert_error(&reply, 413, "payload_too_large");
    let event = json!({"event": "a.b", "data": {"blob": "y".repeat(5000)}}).to_string();
    assert_error(
        &raw(&app, "/api/v1/events", Some("application/json"), Some(ADMIN_TOKEN), &event).await,
        413,
        "payload_too_large",
    );
    assert_no_webhooks(&app).await;
});

backend_test!(bodies_without_a_json_content_type_are_415, |backend| async move {
    let app = spawn_app(backend).await;
    let body = r#"{"url": "http://127.0.0.1:9/", "events": ["*"]}"#;
    assert_error(&raw(&app, "/api/v1/webhooks", None, Some(ADMIN_TOKEN), body).await, 415, "unsupported_media_type");
    assert_error(
        &raw(&app, "/api/v1/webhooks", Some("text/plain"), Some(ADMIN_TOKEN), body).await,
        415,
        "unsupported_media_type",
    );
    assert_no_webhooks(&app).await;
});

backend_test!(invalid_values_are_422_naming_the_field, |backend| async move {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({"events": ["*"]}), "url"),
        (json!({"url": "ftp://example.com/", "events": ["*"]}), "url"),
        (json!({"url": "http://u:p@example.com/", "events": ["*"]}), "url"),
        (json!({"url": "http://127.0.0.1:9/", "events": []}), "events"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["Bad Pattern"]}), "events"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["*"], "timeout_ms": 50}), "timeout_ms"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["*"], "max_retries": 21}), "max_retries"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["*"], "backoff_base_ms": 1}), "backoff_base_ms"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["*"], "max_in_flight": 257}), "max_in_flight"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["*"], "rate_limit_per_sec": 0}), "rate_limit_per_sec"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["*"], "secret": "short"}), "secret"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["*"], "headers": {"webhook-id": "x"}}), "headers"),
    ];
    for (body, field) in cases {
        let reply = app.post("/api/v1/webhooks", body.clone()).await;
        assert_error(&reply, 422, "validation_failed");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body} → {message}");
    }
    assert_no_webhooks(&app).await;
    for (body, field) in [
        (json!({"event": "Not Valid", "data": {}}), "event"),
        (json!({"event": "a.b", "data": [1, 2]}), "data"),
        (json!({"event": "a.b", "data": {}, "id": "x".repeat(129)}), "id"),
    ] {
        let reply = app.post("/api/v1/events", body).await;
        assert_error(&reply, 422, "validation_failed");
        assert!(reply.body["error"]["message"].as_str().unwrap().starts_with(field));
    }
    assert_error(&app.get("/api/v1/webhooks?limit=501").await, 422, "validation_failed");
});

#[actix_web::test]
async fn an_unreachable_database_is_503_and_accepts_nothing() {
    if postgres_url().is_none() {
        return;
    }
    let mut app = spawn_app(Backend::Postgres).await;
    assert_eq!(app.get("/health").await.status, 200);
    app.db.drop_postgres_now();
    let reply = app.post("/api/v1/events", json!({"event": "a.b", "data": {}})).await;
    assert_error(&reply, 503, "unavailable");
    let health = app.get("/health").await;
    assert_eq!(health.status, 503);
    assert_eq!(health.body, json!({"status": "unavailable"}));
}

#[actix_web::test]
async fn the_openapi_document_describes_every_route_once() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut response = app.client.get(format!("{}/api/v1/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "served without a token");
    let doc: Value = response.json().limit(1 << 20).await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, methods) in paths {
        for (method, operation) in methods.as_object().unwrap() {
            operations.push(format!("{} {path}", method.to_uppercase()));
            assert!(operation["operationId"].is_string());
        }
    }
    operations.sort();
    let expected = [
        "DELETE /api/v1/webhooks/{id}",
        "DELETE /api/v1/workspaces/{id}/keys/{key_id}",
        "GET /api/v1/deliveries/{id}",
        "GET /api/v1/health",
        "GET /api/v1/replays/{id}",
        "GET /api/v1/webhooks",
        "GET /api/v1/webhooks/{id}",
        "GET /api/v1/webhooks/{id}/activity",
        "GET /api/v1/webhooks/{id}/deliveries",
        "GET /api/v1/webhooks/{id}/secret",
        "GET /api/v1/workspaces",
        "GET /api/v1/workspaces/{id}/keys",
        "GET /health",
        "PATCH /api/v1/webhooks/{id}",
        "POST /api/v1/deliveries/{id}/redeliver",
        "POST /api/v1/events",
        "POST /api/v1/webhooks",
        "POST /api/v1/webhooks/{id}/replay",
        "POST /api/v1/webhooks/{id}/secret/rotate",
        "POST /api/v1/webhooks/{id}/test",
        "POST /api/v1/workspaces",
        "POST /api/v1/workspaces/{id}/keys",
    ];
    assert_eq!(operations, expected);
    let ids: std::collections::HashSet<_> =
        paths.values().flat_map(|m| m.as_object().unwrap().values()).map(|o| o["operationId"].to_string()).collect();
    assert_eq!(ids.len(), expected.len(), "operation ids are unique");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

backend_test!(a_rotation_body_may_be_left_out_but_a_broken_one_is_400_and_rotates_nothing, |backend| async move {
    let app = spawn_app(backend).await;
    let webhook = app.create_webhook(json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]})).await;
    let id = webhook["id"].as_str().unwrap();
    let rotate = format!("/api/v1/webhooks/{id}/secret/rotate");
    let secret = || async { app.get(&format!("/api/v1/webhooks/{id}/secret")).await.body["secret"].clone() };

    let broken = raw(&app, &rotate, Some("application/json"), Some(ADMIN_TOKEN), "{\"secret\": ").await;
    assert_error(&broken, 400, "bad_request");
    let untyped = raw(&app, &rotate, Some("text/plain"), Some(ADMIN_TOKEN), "{}").await;
    assert_error(&untyped, 415, "unsupported_media_type");
    assert_eq!(secret().await, webhook["secret"], "nothing rotated");

    let bodiless = raw(&app, &rotate, None, Some(ADMIN_TOKEN), "").await;
    assert_eq!(bodiless.status, 200, "{}", bodiless.body);
    assert_eq!(secret().await, bodiless.body["secret"]);
    assert_ne!(bodiless.body["secret"], webhook["secret"]);
});
