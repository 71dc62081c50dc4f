//! The dashboard in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver), against the real server and real receivers. Screenshots of each step are
//! kept in `target/browser-screenshots/` as the test's artifacts.
//!
//! A binary of its own, so the browser does not share the machine with the other
//! integration tests. Without chromedriver the tests are skipped, except under `CI`, where
//! `.ci/run` installs it and its absence is a failure.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use helpers::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest wait for the page to show something (it refreshes every 5 s).
const PAGE_WAIT: Duration = Duration::from_secs(20);

/// What a hostile receiver answers: markup that would run script if the page parsed it.
const HOSTILE_BODY: &str = "<img src=x onerror=\"window.__pwned='img'\"><script>window.__pwned='script'</script>";
const HOSTILE_NAME: &str = "<img src=x onerror=\"window.__pwned='name'\">Billing";

/// chromedriver and one headless Chromium session; both end with it.
struct Browser {
    driver: Child,
    client: Client,
    shots: PathBuf,
}

impl Browser {
    async fn start() -> Option<Self> {
        if !std::path::Path::new(CHROMEDRIVER).exists() {
            assert!(std::env::var_os("CI").is_none(), "{CHROMEDRIVER} is missing; .ci/run installs chromium-driver");
            eprintln!("{CHROMEDRIVER} is missing: skipping (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1400,1000", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-default-apps",
                    "--disable-domain-reliability", "--dns-prefetch-disable",
                    // No name is ever looked up: the page and its API are on 127.0.0.1.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("waiting for chromedriver: {error}");
                    actix_rt::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("no browser session: {error}"),
            }
        };
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Some(Self { driver, client, shots })
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs `script` (a function body that returns a value) in the page.
    async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Polls `script` until it returns `true`.
    async fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + PAGE_WAIT;
        while self.eval(script).await != Value::Bool(true) {
            if Instant::now() > deadline {
                self.screenshot(&format!("timeout-{}", what.replace(' ', "-"))).await;
                panic!("the page never showed {what}");
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client.wait().at_most(PAGE_WAIT).for_element(Locator::Css(selector)).await.unwrap()
    }

    async fn text_of(&self, selector: &str) -> String {
        self.css(selector).await.text().await.unwrap()
    }

    async fn sign_in(&self, token: &str) {
        let field = self.css("#token").await;
        field.clear().await.unwrap();
        field.send_keys(token).await.unwrap();
        field.send_keys(&Key::Enter.to_string()).await.unwrap();
    }

    async fn end(mut self) {
        self.client.close().await.unwrap();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The page's own state that hostile text must not touch: nothing ran, the token is still
/// in session storage and in no URL.
async fn assert_untouched(browser: &Browser, token: &str) {
    let checked = browser
        .eval(
            "return {pwned: window.__pwned ?? null, token: sessionStorage.getItem('hookbus.token'), \
             href: location.href, images: document.querySelectorAll('main img').length, \
             inline: [...document.scripts].filter((s) => !s.src).length};",
        )
        .await;
    assert_eq!(checked["pwned"], Value::Null, "hostile text ran: {checked}");
    assert_eq!(checked["token"], token, "{checked}");
    assert!(!checked["href"].as_str().unwrap().contains(token), "{checked}");
    assert_eq!(checked["images"], 0, "hostile markup became elements: {checked}");
    assert_eq!(checked["inline"], 0, "{checked}");
}

#[actix_web::test]
async fn a_person_signs_in_finds_the_failing_endpoint_and_redelivers_its_failed_delivery() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let healthy = TestReceiver::start().await;
    let failing = TestReceiver::start().await;
    failing.answer(Answer::status(500).body(HOSTILE_BODY.as_bytes()));
    app.create_webhook(json!({"name": "Orders", "url": healthy.url(), "events": ["*"]})).await;
    let hostile = app
        .create_webhook(json!({"name": HOSTILE_NAME, "url": failing.url(), "events": ["*"], "max_retries": 0}))
        .await;
    let hostile_id = hostile["id"].as_str().unwrap().to_owned();
    app.create_webhook(json!({"name": "Analytics", "url": healthy.url(), "events": ["*"]})).await;
    for n in 0..3 {
        app.publish("artifact.completed", json!({"n": n})).await;
    }
    let failed = app.wait_for_all(&hostile_id, 3, "failed", LONG).await;
    let failed_id = failed[0]["id"].as_str().unwrap().to_owned();

    // The page and its headers.
    let mut response = app.client.get(format!("{}/dashboard", app.base)).send().await.unwrap();
    let csp = response.headers().get("content-security-policy").unwrap().to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(String::from_utf8(response.body().await.unwrap().to_vec()).unwrap().contains("dashboard/app.js"));

    browser.client.goto(&format!("{}/dashboard", app.base)).await.unwrap();
    browser.screenshot("1-sign-in").await;

    // A wrong token: the API's own words, and nothing kept.
    browser.sign_in("not-the-token").await;
    browser.until("the sign-in error", "return !document.getElementById('error').hidden;").await;
    let error = browser.text_of("#error").await;
    assert!(error.starts_with("unauthorized:"), "{error}");
    assert_eq!(browser.eval("return sessionStorage.getItem('hookbus.token');").await, Value::Null);

    browser.sign_in(ADMIN_TOKEN).await;
    browser.until("three endpoints", "return document.querySelectorAll('#endpoint-rows tr').length === 3;").await;
    // Failing first, its name shown as the text it is.
    let first = browser.css("#endpoint-rows tr:first-child").await;
    assert_eq!(first.attr("data-webhook").await.unwrap().as_deref(), Some(hostile_id.as_str()));
    let name = browser.text_of("#endpoint-rows tr:first-child button").await;
    assert_eq!(name, HOSTILE_NAME);
    assert_eq!(first.attr("class").await.unwrap().as_deref(), Some("failing"));
    browser.screenshot("2-endpoints").await;

    // Sorted by name, ascending, then descending.
    let names = "return [...document.querySelectorAll('#endpoint-rows tr button')].map((b) => b.textContent).join('|')";
    browser.css("th button[data-sort='name']").await.click().await.unwrap();
    let ascending = format!("{HOSTILE_NAME}|Analytics|Orders");
    browser.until("the endpoints sorted by name", &format!("{names} === {};", json!(ascending))).await;
    browser.css("th button[data-sort='name']").await.click().await.unwrap();
    let descending = format!("Orders|Analytics|{HOSTILE_NAME}");
    browser.until("the endpoints sorted by name, descending", &format!("{names} === {};", json!(descending))).await;

    // With the keyboard: focus the failing endpoint's button and press Enter.
    let open = browser.css(&format!("#endpoint-rows button[data-webhook='{hostile_id}']")).await;
    open.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser
        .until(
            "the endpoint's failed deliveries",
            "return document.querySelectorAll('#delivery-rows tr[data-status=failed]').length === 3;",
        )
        .await;
    browser.until("the chart", "return document.querySelectorAll('#outcome-chart rect.failed').length > 0;").await;
    browser.screenshot("3-endpoint").await;

    browser.css(&format!("#delivery-rows button[data-delivery='{failed_id}']")).await.click().await.unwrap();
    browser.until("the attempts", "return document.querySelectorAll('#attempt-rows tr').length === 1;").await;
    assert_eq!(browser.text_of("#attempt-rows .response-body").await, HOSTILE_BODY);
    assert_eq!(browser.text_of("#attempt-rows td:nth-child(3)").await, "500");
    let payload: Value = serde_json::from_str(&browser.text_of("#payload").await).unwrap();
    assert_eq!(payload["event"], "artifact.completed", "{payload}");
    browser.screenshot("4-failed-delivery").await;
    assert_untouched(&browser, ADMIN_TOKEN).await;

    // The receiver is fixed; redeliver from the page.
    failing.answer(Answer::status(200));
    browser.css("#redeliver").await.click().await.unwrap();
    let redelivered = app.wait_for_delivery(&failed_id, "succeeded", LONG).await;
    assert_eq!(redelivered["attempt_count"], 2);
    browser
        .until(
            "the redelivered delivery",
            "return document.getElementById('delivery-status').textContent === 'succeeded';",
        )
        .await;
    assert_eq!(browser.eval("return document.querySelectorAll('#attempt-rows tr').length;").await, 2);
    browser.screenshot("5-redelivered").await;
    assert_untouched(&browser, ADMIN_TOKEN).await;

    // A workspace key sees its own workspace only.
    let workspace = app.post("/api/v1/workspaces", json!({"name": "tenant"})).await.body;
    let key = workspace["api_key"].as_str().unwrap().to_owned();
    let own = app
        .request_as(
            &key,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "Tenant hook", "url": healthy.url(), "events": ["*"]})),
        )
        .await;
    assert_eq!(own.status, 201, "{}", own.body);
    browser.css("#sign-out").await.click().await.unwrap();
    assert_eq!(browser.eval("return sessionStorage.getItem('hookbus.token');").await, Value::Null);
    browser.sign_in(&key).await;
    browser.until("the tenant's endpoint", "return document.querySelectorAll('#endpoint-rows tr').length === 1;").await;
    assert_eq!(browser.text_of("#endpoint-rows button").await, "Tenant hook");
    assert!(browser.css("#workspace-picker").await.attr("hidden").await.unwrap().is_some());
    assert_untouched(&browser, &key).await;

    browser.end().await;
}

#[actix_web::test]
async fn the_actions_ask_first_and_show_the_api_s_answer() {
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    let webhook = app.create_webhook(json!({"name": "Orders", "url": receiver.url(), "events": ["*"]})).await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    let secret = webhook["secret"].as_str().unwrap().to_owned();

    browser.client.goto(&format!("{}/dashboard", app.base)).await.unwrap();
    browser.sign_in(ADMIN_TOKEN).await;
    browser.css(&format!("#endpoint-rows button[data-webhook='{id}']")).await.click().await.unwrap();
    browser.css("#send-test").await;

    // A test event: sent now, and the outcome said.
    browser.css("#send-test").await.click().await.unwrap();
    browser
        .until(
            "the test's outcome",
            "return document.getElementById('action-result').textContent.includes('succeeded');",
        )
        .await;
    let received = receiver.recv(SHORT).await.expect("the test event arrives");
    assert_eq!(received.json()["event"], "webhook.test");

    // Rotating the secret asks first; cancelled, nothing changes.
    browser.css("#rotate-secret").await.click().await.unwrap();
    browser.until("the confirmation", "return document.getElementById('confirm').open;").await;
    browser.screenshot("6-confirm-rotation").await;
    browser.css("#confirm-cancel").await.click().await.unwrap();
    let unchanged = app.get(&format!("/api/v1/webhooks/{id}/secret")).await.body;
    assert_eq!(unchanged["secret"], secret.as_str());
    browser.css("#rotate-secret").await.click().await.unwrap();
    browser.css("#confirm-ok").await.click().await.unwrap();
    browser
        .until(
            "the new secret",
            "return document.getElementById('action-result').textContent.startsWith('New secret: whsec_');",
        )
        .await;
    let rotated = app.get(&format!("/api/v1/webhooks/{id}/secret")).await.body;
    assert_ne!(rotated["secret"], secret.as_str());
    assert!(browser.text_of("#action-result").await.contains(rotated["secret"].as_str().unwrap()));

    // Disabling asks first too, then the API's state shows.
    browser.css("#toggle-enabled").await.click().await.unwrap();
    browser.css("#confirm-ok").await.click().await.unwrap();
    browser
        .until("the disabled state", "return document.getElementById('toggle-enabled').textContent === 'Enable';")
        .await;
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.body["enabled"], false);
    browser.css("#toggle-enabled").await.click().await.unwrap();
    browser
        .until("the enabled state", "return document.getElementById('toggle-enabled').textContent === 'Disable';")
        .await;
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.body["enabled"], true);

    // Replay of a failed delivery: it runs in the background, and the page follows it to
    // the end.
    let reply = app.request("PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"max_retries": 0}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    receiver.answer(Answer::status(500));
    app.publish("artifact.completed", json!({})).await;
    let failed = receiver.recv(SHORT).await.unwrap().header("webhook-id").to_owned();
    app.wait_for_delivery(&failed, "failed", SHORT).await;
    receiver.answer(Answer::status(200));
    browser.css("#replay button").await.click().await.unwrap();
    browser
        .until(
            "the replay's end",
            "return document.getElementById('action-result').textContent.startsWith('Replay finished: 1 of 1');",
        )
        .await;
    app.wait_for_delivery(&failed, "succeeded", SHORT).await;

    // The webhook deleted behind the page's back: the API's error, as it words it.
    let reply = app.request("DELETE", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(reply.status, 204);
    browser.css("#send-test").await.click().await.unwrap();
    browser.until("the API error", "return !document.getElementById('error').hidden;").await;
    let error = browser.text_of("#error").await;
    assert!(error.starts_with("not_found:"), "{error}");
    browser.screenshot("7-api-error").await;

    browser.end().await;
}

/// Several servers on one PostgreSQL database: any server's page shows which server owns
/// each endpoint, and the live servers.
#[actix_web::test]
async fn with_several_servers_any_server_s_page_shows_each_endpoint_s_owner() {
    if postgres_url().is_none() {
        return;
    }
    let Some(browser) = Browser::start().await else { return };
    let db = TestDb::new(Backend::Postgres).await;
    let master_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut servers = Vec::new();
    for (dir, name) in dirs.iter().zip(["browser-a", "browser-b"]) {
        let server = helpers::ServerProcess::start_with(&db.url, dir.path(), |command| {
            command.env("HOOKBUS_MASTER_KEY", master_key).args(["--server-name", name]);
        })
        .await;
        servers.push(server);
    }
    let receiver = TestReceiver::start().await;
    // Created through the first server, which therefore owns it.
    let body = json!({"name": "Orders", "url": receiver.url(), "events": ["*"]});
    let created = servers[0].post("/api/v1/webhooks", body).await.unwrap();
    assert_eq!(created.status, 201, "{}", created.body);

    browser.client.goto(&format!("http://127.0.0.1:{}/dashboard", servers[1].port)).await.unwrap();
    browser.sign_in(ADMIN_TOKEN).await;
    browser
        .until(
            "the owner column",
            "return document.querySelector('#endpoint-rows td:last-child')?.textContent === 'browser-a';",
        )
        .await;
    let header = browser.text_of("#endpoint-columns th:last-child").await;
    assert!(header.starts_with("Owner"), "{header}");
    browser
        .until(
            "both servers",
            "const t = document.getElementById('servers').textContent; return t.includes('browser-a (1 webhooks)') && t.includes('browser-b (0 webhooks)');",
        )
        .await;
    browser.screenshot("8-several-servers").await;
    browser.end().await;
    for mut server in servers {
        server.signal(nix::sys::signal::Signal::SIGTERM);
        server.wait_exit(Duration::from_secs(15));
    }
}
