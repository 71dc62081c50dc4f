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

/// `GET /metrics` with an `Accept` header or none: its content type and body.
async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let mut request = app.client.get(format!("{}/metrics", app.base));
    if let Some(accept) = accept {
        request = request.insert_header(("Accept", accept));
    }
    let mut response = request.send().await.unwrap();
    let content_type = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    (content_type, String::from_utf8(response.body().await.unwrap().to_vec()).unwrap())
}

/// `promtool check metrics` on `text`: `None` if promtool is not installed (a failure under
/// CI, whose `.ci/run` installs it).
fn promtool_check(text: &str) -> Option<std::process::Output> {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!("promtool is not installed: skipping its check (apt-get install prometheus)");
            return None;
        }
        Err(e) => panic!("promtool must run under CI: {e}"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    Some(child.wait_with_output().unwrap())
}

const FAMILIES: [&str; 7] = [
    "hookbus_events_published_total",
    "hookbus_attempts_total",
    "hookbus_deliveries_completed_total",
    "hookbus_queue_depth",
    "hookbus_circuit_state",
    "hookbus_pending_pool_used",
    "hookbus_attempt_duration_seconds",
];

backend_test!(metrics_are_the_text_format_a_real_parser_and_promtool_accept, |backend| async move {
    let app = spawn_app_with(backend, |c| {
        c.failure_threshold = 4;
        c.circuit_cooldown_ms = 60_000;
        c.circuit_cooldown_max_ms = 60_000;
    })
    .await;
    let (content_type, text) = scrape(&app, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let scraped = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    // Per-webhook families have samples once there are webhooks; the others from the start.
    for family in FAMILIES.iter().filter(|f| !f.ends_with("queue_depth") && !f.ends_with("circuit_state")) {
        assert!(scraped.docs.contains_key(*family), "{family} has its help text from the start:\n{text}");
    }
    let zero_failures = scraped
        .samples
        .iter()
        .find(|s| s.metric == "hookbus_attempts_total" && s.labels.get("outcome") == Some("http_error"));
    assert!(
        matches!(zero_failures.map(|s| &s.value), Some(prometheus_parse::Value::Counter(v)) if *v == 0.0),
        "{text}"
    );

    // Delivered, retried, failed for good, and a circuit opened: every family has samples.
    let good = TestReceiver::start().await;
    let bad = TestReceiver::start().await;
    bad.answer(Answer::status(500));
    app.create_webhook(json!({"url": good.url(), "events": ["*"]})).await;
    // Fails each delivery for good at its first attempt (3 failures stay under the threshold).
    app.create_webhook(json!({"url": bad.url(), "events": ["*"], "max_retries": 0})).await;
    // Retries until its circuit opens.
    let retrying = json!({"url": bad.url(), "events": ["*"], "max_retries": 5, "backoff_base_ms": 10});
    let failing = app.create_webhook(retrying).await;
    let failing_id = failing["id"].as_str().unwrap();
    app.publish_numbered("order.paid", 0..3).await;
    let deadline = Instant::now() + SHORT;
    let (text, scraped) = loop {
        let (_, text) = scrape(&app, None).await;
        let scraped = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let value = |metric: &str, label: (&str, &str)| {
            scraped.samples.iter().find(|s| s.metric == metric && s.labels.get(label.0) == Some(label.1)).map(|s| {
                match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                    _ => f64::NAN,
                }
            })
        };
        let done = value("hookbus_deliveries_completed_total", ("status", "failed")).is_some_and(|v| v >= 1.0)
            && value("hookbus_circuit_state", ("webhook_id", failing_id)) == Some(2.0)
            && value("hookbus_attempts_total", ("outcome", "success")).is_some_and(|v| v >= 3.0);
        if done {
            break (text, scraped);
        }
        assert!(Instant::now() < deadline, "never delivered, failed and opened a circuit:\n{text}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    for family in FAMILIES {
        assert!(scraped.docs.contains_key(family), "{family} has its help text:\n{text}");
    }
    let healthy_depth = scraped
        .samples
        .iter()
        .find(|s| s.metric == "hookbus_queue_depth" && s.labels.get("webhook_id") != Some(failing_id));
    assert!(healthy_depth.is_some(), "a webhook with nothing pending shows a depth of 0:\n{text}");
    for family in ["hookbus_attempts_total", "hookbus_deliveries_completed_total", "hookbus_events_published_total"] {
        let typed = scraped.samples.iter().filter(|s| s.metric == family);
        assert!(
            typed.clone().count() > 0 && typed.clone().all(|s| matches!(s.value, prometheus_parse::Value::Counter(_))),
            "{family} is a counter:\n{text}"
        );
    }
    assert!(
        scraped.samples.iter().any(|s| s.metric == "hookbus_attempt_duration_seconds"
            && matches!(s.value, prometheus_parse::Value::Histogram(_))),
        "{text}"
    );
    if let Some(checked) = promtool_check(&text) {
        assert!(
            checked.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    // OpenMetrics when the scraper asks for it.
    let (content_type, openmetrics) =
        scrape(&app, Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")).await;
    assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(openmetrics.ends_with("# EOF\n") && openmetrics.contains("# TYPE hookbus_attempts counter"));
});

#[actix_web::test]
async fn the_root_says_what_this_is_and_where_to_go() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut response = app.client.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "no token needed");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["service"], "hookbus");
    for (link, status) in [("dashboard", 200), ("health", 200), ("metrics", 200), ("openapi", 200), ("api", 401)] {
        let path = body[link].as_str().unwrap();
        let mut linked = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(linked.status().as_u16(), status, "{link}: {path}");
        let _ = linked.body().limit(10 << 20).await;
    }

    // A browser gets a page of links, the dashboard and the health check among them.
    let mut response =
        app.client.get(format!("{}/", app.base)).insert_header(("Accept", "text/html")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
    let page = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert!(page.contains(r#"href="/dashboard""#) && page.contains(r#"href="/health""#), "{page}");
}

#[actix_web::test]
async fn the_dashboard_is_served_from_the_binary_and_runs_only_its_own_script() {
    let app = spawn_app(Backend::Sqlite).await;
    for (path, content_type) in
        [("/dashboard", "text/html"), ("/dashboard/app.js", "text/javascript"), ("/dashboard/app.css", "text/css")]
    {
        let mut response = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert!(header("content-type").unwrap().starts_with(content_type), "{path}");
        let csp = header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
        let body = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
        // Nothing from elsewhere (the SVG namespace is a name, not a fetch), and nothing that
        // parses markup from data.
        let fetched = body.replace("http://www.w3.org/2000/svg", "");
        assert!(!fetched.contains("http://") && !fetched.contains("https://"), "{path}");
        assert!(!body.contains("innerHTML") && !body.contains("insertAdjacentHTML"), "{path}");
    }
    let not_following = awc::Client::builder().disable_redirects().finish();
    let response = not_following.get(format!("{}/dashboard/", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(response.headers().get("location").unwrap(), "/dashboard");
}
