//! Hostile input: thousands of random and mutated bodies against the create, patch and
//! publish routes. Only the SPEC error shape in 4xx comes back, nothing invalid is created,
//! and the server keeps answering. Values are generated with proptest strategies.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

use hookbus::domain::url::UrlPolicy;
use hookbus::domain::webhook::{Webhook, WebhookInput, WebhookPatch};

use crate::helpers::*;

const CASES_PER_ROUTE: usize = 1200;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop_oneof![Just("*"), Just("a.b"), Just("http://127.0.0.1:9/"), Just("whsec_"), Just("")]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly real field names, so bodies get past the shape and into validation.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "url", "events", "name", "secret", "enabled", "timeout_ms", "max_retries", "backoff_base_ms",
            "max_in_flight", "rate_limit_per_sec", "headers", "event", "data", "id",
        ]).prop_map(str::to_owned),
        1 => "[a-z_]{1,12}",
    ]
}

/// A valid body with bytes flipped, inserted or cut.
fn mutated(valid: String) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    prop::collection::vec((0..len, any::<u8>(), 0..3u8), 1..4).prop_map(move |edits| {
        let mut bytes = valid.clone().into_bytes();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len().saturating_sub(1));
            match kind {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        bytes
    })
}

fn bodies(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        mutated(valid.to_string()),
        // A valid body with one field replaced by anything.
        (field_name(), json_value()).prop_map(move |(field, value)| {
            let mut body = valid.clone();
            body[field] = value;
            body.to_string().into_bytes()
        }),
    ]
}

fn generate(strategy: impl Strategy<Value = Vec<u8>>, n: usize, seed: u8) -> Vec<Vec<u8>> {
    let mut runner = TestRunner::new_with_rng(
        Default::default(),
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]),
    );
    (0..n).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
}

const DEV: UrlPolicy = UrlPolicy { allow_http: true, allow_private: true };

/// What the server should answer, judged independently through the domain types.
fn create_is_valid(body: &[u8]) -> bool {
    serde_json::from_slice::<WebhookInput>(body)
        .ok()
        .is_some_and(|input| Webhook::create(hookbus::WorkspaceId::DEFAULT, input, DEV, chrono::Utc::now()).is_ok())
}

fn publish_is_valid(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        event: String,
        data: serde_json::Map<String, Value>,
        id: Option<String>,
    }
    serde_json::from_slice::<Body>(body).ok().is_some_and(|b| {
        hookbus::domain::EventType::parse("event", &b.event).is_ok_and(|e| !e.is_operational())
            && b.id.as_deref().is_none_or(|id| hookbus::domain::EventId::parse("id", id).is_ok())
    })
}

async fn send(app: &TestApp, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut response = app
        .client
        .request(method, format!("{}{path}", app.base))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .expect("the server keeps answering");
    let bytes = response.body().await.unwrap();
    (response.status().as_u16(), serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn assert_error_shape(status: u16, body: &Value, input: &[u8]) {
    assert!((400..500).contains(&status), "{status} for {:?}: {body}", String::from_utf8_lossy(input));
    let error = &body["error"];
    assert!(error["code"].as_str().is_some_and(|c| !c.is_empty()), "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[actix_web::test]
async fn random_and_mutated_bodies_get_4xx_and_change_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let anchor = app.create_webhook(json!({"url": "http://127.0.0.1:9/", "events": ["*"]})).await;
    let anchor_id = anchor["id"].as_str().unwrap();
    let valid_create = json!({"url": "http://127.0.0.1:9/x", "events": ["a.*"], "name": "n", "max_retries": 2});
    let valid_patch = json!({"name": "renamed", "timeout_ms": 500, "rate_limit_per_sec": null});
    let valid_event = json!({"event": "artifact.completed", "data": {"k": [1, 2]}, "id": "e-1"});

    let mut created = 0;
    for body in generate(bodies(valid_create), CASES_PER_ROUTE, 1) {
        let (status, reply) = send(&app, "POST", "/api/v1/webhooks", body.clone()).await;
        if create_is_valid(&body) {
            assert_eq!(status, 201, "{reply}");
            created += 1;
        } else {
            assert_error_shape(status, &reply, &body);
        }
    }
    let listed = app.get("/api/v1/webhooks?limit=500").await.body["data"].as_array().unwrap().len();
    assert_eq!(listed, created + 1, "exactly the valid bodies created webhooks");

    let before = app.get(&format!("/api/v1/webhooks/{anchor_id}")).await.body;
    let mut patched = false;
    for body in generate(bodies(valid_patch), CASES_PER_ROUTE, 2) {
        let (status, reply) = send(&app, "PATCH", &format!("/api/v1/webhooks/{anchor_id}"), body.clone()).await;
        let valid = serde_json::from_slice::<WebhookPatch>(&body).ok().is_some_and(|patch| {
            let current = Webhook::create(
                hookbus::WorkspaceId::DEFAULT,
                WebhookInput {
                    url: Some("http://127.0.0.1:9/".into()),
                    events: Some(vec!["*".into()]),
                    ..Default::default()
                },
                DEV,
                chrono::Utc::now(),
            )
            .unwrap();
            current.patched(patch, DEV, chrono::Utc::now()).is_ok()
        });
        if valid {
            assert_eq!(status, 200, "{reply}");
            patched = true;
        } else {
            assert_error_shape(status, &reply, &body);
        }
    }
    if !patched {
        assert_eq!(
            app.get(&format!("/api/v1/webhooks/{anchor_id}")).await.body,
            before,
            "rejected patches changed nothing"
        );
    }

    let mut accepted = 0;
    for body in generate(bodies(valid_event), CASES_PER_ROUTE, 3) {
        let (status, reply) = send(&app, "POST", "/api/v1/events", body.clone()).await;
        if publish_is_valid(&body) {
            assert!(status == 202 || status == 409, "{status}: {reply}");
            accepted += usize::from(status == 202);
        } else {
            assert_error_shape(status, &reply, &body);
        }
    }
    let events = app.get("/api/v1/health").await.body["totals"]["events"].as_u64().unwrap() as usize;
    assert!(events <= accepted, "only accepted bodies created events ({events} > {accepted})");
    assert_eq!(app.get("/health").await.status, 200, "still answering");
    eprintln!("{} bodies per route: {created} valid creates, {accepted} valid publishes", CASES_PER_ROUTE);
}

#[actix_web::test]
async fn deeply_nested_json_is_refused_without_harm() {
    let app = spawn_app(Backend::Sqlite).await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let body = format!(r#"{{"event":"a.b","data":{{"x":{deep}}}}}"#);
    let (status, reply) = send(&app, "POST", "/api/v1/events", body.into_bytes()).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["code"], "bad_request");
    assert_eq!(app.get("/health").await.status, 200);
}
