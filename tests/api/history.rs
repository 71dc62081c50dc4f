//! The delivery history tells the truth: `attempt_count` is the number of attempts listed,
//! `status_code` … `duration_ms` are the last attempt's outcome, and why a delivery ended is
//! `failure_reason`, whatever disable, delete, redeliver and replay meet an attempt in flight.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

use crate::backend_test;
use crate::helpers::*;

/// What is wrong with a delivery object and its attempts, if anything.
fn broken_rule(d: &Value) -> Option<String> {
    let attempts = d["attempts"].as_array()?;
    let count = d["attempt_count"].as_u64()? as usize;
    if count != attempts.len() {
        return Some(format!("attempt_count {count} but {} attempts listed", attempts.len()));
    }
    let numbers: Vec<u64> = attempts.iter().filter_map(|a| a["attempt"].as_u64()).collect();
    if numbers != (1..=count as u64).collect::<Vec<_>>() {
        return Some(format!("attempts numbered {numbers:?}"));
    }
    let last = attempts.last();
    for field in ["status_code", "error_message", "duration_ms"] {
        let expected = last.map_or(&Value::Null, |a| &a[field]);
        if &d[field] != expected {
            return Some(format!("{field} is {} but the last attempt's is {expected}", d[field]));
        }
    }
    let ended = matches!(d["status"].as_str(), Some("failed" | "cancelled"));
    if ended != d["failure_reason"].is_string() {
        return Some(format!("status {} with failure_reason {}", d["status"], d["failure_reason"]));
    }
    None
}

/// Checks every rule on `ids`, on each delivery as one read shows it: the row and its
/// attempts come from one snapshot, so every read must hold them all.
async fn check_history(app: &TestApp, ids: &[String], step: &str) {
    for id in ids {
        let reply = app.get(&format!("/api/v1/deliveries/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if let Some(rule) = broken_rule(&reply.body) {
            panic!("after {step}: delivery {id}: {rule}\n{:#}", reply.body);
        }
    }
}

async fn delivery_ids(app: &TestApp, webhook_id: &str) -> Vec<String> {
    app.deliveries(webhook_id).await.iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect()
}

backend_test!(a_410_fails_the_delivery_with_its_attempt_and_says_why, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    receiver.answer(Answer::status(410));
    let webhook = app.create_webhook(json!({"url": receiver.url(), "events": ["*"]})).await;
    let id = webhook["id"].as_str().unwrap();
    app.publish("artifact.completed", json!({})).await;
    let failed = app.wait_for_all(id, 1, "failed", SHORT).await;
    let detail = app.get(&format!("/api/v1/deliveries/{}", failed[0]["id"].as_str().unwrap())).await.body;
    assert_eq!(detail["attempt_count"], 1, "{detail:#}");
    assert_eq!(detail["status_code"], 410);
    assert_eq!(detail["error_message"], "HTTP 410", "the attempt's outcome, not why the delivery ended");
    assert_eq!(detail["failure_reason"], "gone");
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.body["disabled_reason"], "gone");
});

backend_test!(a_disable_or_delete_that_meets_an_attempt_in_flight_keeps_the_attempt, |backend| async move {
    let app = spawn_app(backend).await;
    let receiver = TestReceiver::start().await;
    for (action, answer, status, reason) in [
        ("disable", 500, "failed", Some("webhook disabled (manual)")),
        ("disable", 200, "succeeded", None),
        ("delete", 500, "cancelled", Some("webhook deleted")),
    ] {
        receiver.answer(Answer::status(answer).delayed(Duration::from_millis(400)));
        let webhook = app.create_webhook(json!({"url": receiver.url(), "events": ["*"], "max_retries": 0})).await;
        let id = webhook["id"].as_str().unwrap().to_owned();
        app.publish("artifact.completed", json!({})).await;
        let in_flight = receiver.recv(SHORT).await.expect("the attempt started");
        let delivery_id = in_flight.header("webhook-id").to_owned();
        let ended = match action {
            "disable" => app.request("PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"enabled": false}))).await,
            _ => app.request("DELETE", &format!("/api/v1/webhooks/{id}"), None).await,
        };
        assert!(ended.status < 300, "{}", ended.body);
        let deadline = Instant::now() + SHORT;
        let detail = loop {
            let detail = app.get(&format!("/api/v1/deliveries/{delivery_id}")).await.body;
            if detail["attempt_count"] == 1 && detail["status"] == status {
                break detail;
            }
            assert!(Instant::now() < deadline, "{action} with a {answer} in flight: {detail:#}");
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(detail["status_code"], answer, "{detail:#}");
        assert_eq!(detail["failure_reason"], json!(reason), "{detail:#}");
        assert_eq!(broken_rule(&detail), None, "{detail:#}");
    }
});

/// One thing that happens to a webhook and its deliveries.
#[derive(Debug, Clone)]
enum Step {
    Publish,
    /// The receiver answers this from now on, after this many milliseconds.
    Answer(u16, u64),
    Disable,
    Enable,
    Redeliver(usize),
    Replay,
    /// Delete the webhook and register a new one on the same receiver.
    Delete,
    /// Let attempts and retries happen.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Publish),
        3 => (prop::sample::select(vec![200u16, 500, 503, 410]), prop::sample::select(vec![0u64, 150])).prop_map(|(s, d)| Step::Answer(s, d)),
        2 => Just(Step::Disable),
        2 => Just(Step::Enable),
        2 => (0usize..64).prop_map(Step::Redeliver),
        1 => Just(Step::Replay),
        1 => Just(Step::Delete),
        2 => (0u64..200).prop_map(Step::Wait),
    ]
}

// Random sequences of outcomes interleaved with disable, delete, redeliver and replay; the
// rules are checked on every delivery after every step.
backend_test!(the_history_rules_hold_after_every_step_of_random_sequences, |backend| async move {
    let app = spawn_app_with(backend, |c| c.failure_threshold = 1000).await;
    let receiver = TestReceiver::start().await;
    let since = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let settings = json!({"events": ["*"], "max_retries": 2, "backoff_base_ms": 20, "url": receiver.url()});
    let mut runner = TestRunner::new_with_rng(Default::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[22; 32]));
    let sequences = prop::collection::vec(step(), 16..24);
    // The webhooks not deleted; the last one is the case's own.
    let (mut webhooks, mut ids): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for case in 0..4 {
        let steps = sequences.new_tree(&mut runner).unwrap().current();
        receiver.answer(Answer::status(200));
        webhooks.push(app.create_webhook(settings.clone()).await["id"].as_str().unwrap().to_owned());
        for (i, step) in steps.iter().enumerate() {
            let webhook = webhooks.last().unwrap().clone();
            match step {
                Step::Publish => {
                    app.publish("order.paid", json!({"case": case, "step": i})).await;
                }
                Step::Answer(status, delay) => {
                    receiver.answer(Answer::status(*status).delayed(Duration::from_millis(*delay)))
                }
                Step::Disable | Step::Enable => {
                    let enabled = matches!(step, Step::Enable);
                    let path = format!("/api/v1/webhooks/{webhook}");
                    let reply = app.request("PATCH", &path, Some(json!({"enabled": enabled}))).await;
                    assert_eq!(reply.status, 200, "{}", reply.body);
                }
                Step::Redeliver(pick) if !ids.is_empty() => {
                    let id = &ids[pick % ids.len()];
                    let reply = app.post(&format!("/api/v1/deliveries/{id}/redeliver"), json!({})).await;
                    assert!(matches!(reply.status, 202 | 422), "{}", reply.body);
                }
                Step::Redeliver(_) => {}
                Step::Replay => {
                    let path = format!("/api/v1/webhooks/{webhook}/replay");
                    let reply = app.post(&path, json!({"since": since, "status": "failed"})).await;
                    assert!(matches!(reply.status, 202 | 422), "{}", reply.body);
                }
                Step::Delete => {
                    assert_eq!(app.request("DELETE", &format!("/api/v1/webhooks/{webhook}"), None).await.status, 204);
                    // Its deliveries stay in `ids`, read by their own ids from now on.
                    webhooks.retain(|w| *w != webhook);
                    webhooks.push(app.create_webhook(settings.clone()).await["id"].as_str().unwrap().to_owned());
                }
                Step::Wait(ms) => actix_rt::time::sleep(Duration::from_millis(*ms)).await,
            }
            for webhook in &webhooks {
                for id in delivery_ids(&app, webhook).await {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
            check_history(&app, &ids, &format!("case {case} step {i} {step:?}")).await;
        }
    }
    assert!(ids.len() >= 10, "the sequences made deliveries to check: {}", ids.len());
});
