//! The real binary: start-up, the generated admin token, flag precedence, SIGTERM.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, hookbus_command, send_signal, wait_exit, wait_healthy, ServerProcess, ADMIN_TOKEN};

fn hookbus() -> Command {
    let mut command = hookbus_command();
    command.env("RUST_LOG", "debug");
    command
}

fn sigterm(child: &Child) {
    send_signal(child, nix::sys::signal::Signal::SIGTERM);
}

#[actix_web::test]
async fn serve_generates_a_private_admin_token_never_logs_it_and_exits_0_on_sigterm() {
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = data_dir.path().join("server.log");
    let mut child = hookbus()
        .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir.path())
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut child).await;

    let token_path = data_dir.path().join("admin.token");
    let token = std::fs::read_to_string(&token_path).unwrap().trim().to_owned();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(data_dir.path().join("hookbus.db").exists(), "SQLite in the data dir by default");

    let client = awc::Client::default();
    let ok = client
        .get(format!("http://127.0.0.1:{port}/api/v1/webhooks"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("admin.token"), "the token's path is logged");
    assert!(logged.contains("dev mode"), "--dev warns");
    assert!(!logged.contains(&token), "the token itself is never logged");

    // A second start reuses the same token.
    let port = free_port();
    let mut again = hookbus()
        .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut again).await;
    assert_eq!(std::fs::read_to_string(&token_path).unwrap().trim(), token);
    sigterm(&again);
    assert!(wait_exit(&mut again, Duration::from_secs(15)).success());
}

#[actix_web::test]
async fn flags_win_over_environment_and_config_file() {
    let data_dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = data_dir.path().join("hookbus.toml");
    std::fs::write(&config, format!("bind = \"127.0.0.1:{file_port}\"\nadmin_token = \"file-token-0123456789\"\n"))
        .unwrap();
    let mut child = hookbus()
        .env("HOOKBUS_BIND", format!("127.0.0.1:{env_port}"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--bind", &format!("127.0.0.1:{flag_port}")])
        .arg("--data-dir")
        .arg(data_dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(flag_port, &mut child).await;
    // The file's token is used, and no token file is generated.
    assert!(!data_dir.path().join("admin.token").exists());
    let reply = awc::Client::default()
        .get(format!("http://127.0.0.1:{flag_port}/api/v1/webhooks"))
        .insert_header(("Authorization", "Bearer file-token-0123456789"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[actix_web::test]
async fn migrate_creates_the_schema_and_exits() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = data_dir.path().join("migrated.db");
    let migrate = || {
        hookbus()
            .args(["migrate", "--database-url"])
            .arg(format!("sqlite://{}", db.display()))
            .arg("--data-dir")
            .arg(data_dir.path())
            .output()
            .unwrap()
    };
    let output = migrate();
    assert!(output.status.success());
    // Each migration's progress, for a person watching.
    let log = String::from_utf8_lossy(&output.stderr);
    let total = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite")).unwrap().count();
    for step in 1..=total {
        assert!(log.contains(&format!("migration {step}/{total}: ")), "{step}/{total}: {log}");
    }
    assert!(log.contains(&format!("migration {total}/{total}: ")) && log.contains(" done in "), "{log}");
    // Nothing pending the second time.
    let again = migrate();
    assert!(again.status.success() && !String::from_utf8_lossy(&again.stderr).contains("migration 1/"));
    let store = hookbus::store::Store::open(&hookbus::store::DatabaseUrl::SqliteFile(db.clone()), 1).await.unwrap();
    assert!(store.workspace_exists(hookbus::WorkspaceId::DEFAULT).await.unwrap());
}

#[actix_web::test]
async fn a_bad_config_is_a_clear_error_and_a_nonzero_exit() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("bad.toml");
    std::fs::write(&config, "bnid = 1\n").unwrap();
    let output = hookbus().arg("serve").arg("--config").arg(&config).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("bnid").count(), 1, "named once: {stderr}");
    assert!(stderr.contains("did you mean bind?") && stderr.lines().count() == 1, "{stderr}");
}

/// The README's walkthrough, run as written against the real binary (only its ports changed,
/// so it runs beside other tests, and `hookbus` is this build's binary): every command
/// succeeds, the listener it starts checks both signatures of each delivery, and the delivery
/// shown is the one published.
#[actix_web::test]
async fn the_readme_walkthrough_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Walkthrough").expect("the walkthrough section");
    let walkthrough = readme[start..].split("```sh\n").nth(1).and_then(|b| b.split("```").next()).unwrap();
    let alias = "alias hookbus=./target/release/hookbus";
    assert!(walkthrough.contains(alias) && walkthrough.contains("hookbus listen"), "the block moved");
    let (port, receiver_port) = (free_port(), free_port());
    let script = walkthrough
        .replace(alias, &format!("hookbus() {{ {} \"$@\"; }}", env!("CARGO_BIN_EXE_hookbus")))
        .replace("8080", &port.to_string())
        .replace("9000", &receiver_port.to_string());
    let dir = tempfile::tempdir().unwrap();
    let mut server = hookbus()
        .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut server).await;
    // The CLI's default address is 8080: the test's server is elsewhere.
    let script = format!("export HOOKBUS_URL=http://127.0.0.1:{port}\n{script}\nsleep 1");
    // A process group of its own, so the listener the script starts in the background goes
    // with it.
    let mut run = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = nix::unistd::Pid::from_raw(run.id() as i32);
    let (mut stdout, mut stderr) = (run.stdout.take().unwrap(), run.stderr.take().unwrap());
    let status = tokio::task::spawn_blocking(move || run.wait().unwrap()).await.unwrap();
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).ok();
    let (mut out, mut err) = (String::new(), String::new());
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert!(status.success(), "the walkthrough failed:\n{out}\n{err}");
    assert!(!err.contains("Traceback") && !err.contains("error:"), "{out}\n{err}");
    assert!(out.contains("to 1 webhook(s)"), "the event matched the webhook:\n{out}");
    assert!(out.contains("status: succeeded"), "the delivery arrived:\n{out}");
    assert!(out.contains("is pending again") && out.contains("test delivery"), "{out}");
    // The listener printed the event, its redelivery and the test event, each verified.
    let verified = out.lines().filter(|l| l.contains("webhook-signature valid, X-Webhook-Signature valid")).count();
    assert_eq!(verified, 3, "{out}");
    sigterm(&server);
    wait_exit(&mut server, Duration::from_secs(15));
}

#[test]
fn an_unknown_database_scheme_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        hookbus_command().args(["migrate", "--database-url", "mysql://x"]).current_dir(dir.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown scheme 'mysql'") && stderr.contains("postgres://"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no SQLite file named after the URL");
}

/// At the default level the log has one line per management request and none per publish,
/// never the token; `--log-format json` makes every line a JSON object; start-up says where
/// it listens and which database it uses.
#[actix_web::test]
async fn the_default_log_is_one_line_per_management_call_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("server.log");
    let token = "log-test-admin-token-0123456789";
    let mut child = hookbus_command()
        .args(["serve", "--dev", "--log-format", "json", "--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("HOOKBUS_ADMIN_TOKEN", token)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut child).await;
    let client = awc::Client::default();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let created = client
        .post(format!("{api}/webhooks"))
        .bearer_auth(token)
        .send_json(&serde_json::json!({"url": "http://127.0.0.1:9/", "events": ["never.*"]}))
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    for _ in 0..3 {
        let published = client
            .post(format!("{api}/events"))
            .bearer_auth(token)
            .send_json(&serde_json::json!({"event": "a.b", "data": {}}))
            .await
            .unwrap();
        assert_eq!(published.status().as_u16(), 202);
    }
    let refused = client.get(format!("{api}/webhooks")).bearer_auth("wrong-token-0123456789").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let messages: Vec<&str> = lines.iter().map(|l| l["message"].as_str().unwrap()).collect();
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    assert!(has(&format!("listening on http://127.0.0.1:{port}")) && has("database: "), "{text}");
    assert!(has("POST /api/v1/webhooks 201") && has("GET /api/v1/webhooks 401"), "{text}");
    assert!(has("webhook ") && has(" created in workspace "), "{text}");
    assert!(!has("/api/v1/events"), "publishes are DEBUG: {text}");
    assert!(!text.contains(token), "the token is never logged");
    assert!(lines.iter().all(|l| l["level"].is_string() && l["ts"].is_string() && l["target"].is_string()));
}

/// Every setting but the two secrets has a flag, generated from `Config`; `hookbus config`
/// prints each effective value with where it came from, secrets redacted; a bad flag value
/// is an error naming the flag.
#[test]
fn every_setting_has_a_flag_and_config_says_where_each_came_from() {
    let help = String::from_utf8(hookbus_command().args(["serve", "--help"]).output().unwrap().stdout).unwrap();
    for name in hookbus::config::setting_names() {
        let flag = format!("--{}", name.replace('_', "-"));
        let secret = name == "admin_token" || name == "master_key";
        assert_eq!(help.contains(&flag), !secret, "{flag} in serve --help:\n{help}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookbus.toml");
    std::fs::write(&file, "pending_window = 50\n").unwrap();
    let output = hookbus_command()
        .args(["config", "--failure-threshold", "9", "--config"])
        .arg(&file)
        .env("HOOKBUS_RETENTION_DAYS", "7")
        .env("HOOKBUS_ADMIN_TOKEN", "config-admin-token-0123456789")
        .output()
        .unwrap();
    let shown = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{shown}{}", String::from_utf8_lossy(&output.stderr));
    for line in [
        "failure_threshold = 9  # flag",
        "retention_days = 7.0  # environment",
        "pending_window = 50  # file",
        "api_rate_limit = 50  # default",
        "admin_token = \"<redacted>\"  # environment",
    ] {
        assert!(shown.lines().any(|l| l == line), "{line}:\n{shown}");
    }
    assert!(!shown.contains("config-admin-token"), "{shown}");
    let bad = hookbus_command().args(["config", "--retention-days", "soon"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("--retention-days"), "{stderr}");
}

/// One server per SQLite file (SPEC §9): a second `serve` on a file in use, through the same
/// data dir or a `--database-url` naming the same file, exits at once and says why.
#[actix_web::test]
async fn a_second_server_on_a_sqlite_file_in_use_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("hookbus.db");
    let _first = ServerProcess::start(&format!("sqlite://{}", db_path.display()), dir.path()).await;
    let other_dir = tempfile::tempdir().unwrap();
    let same_file = format!("sqlite://{}/./hookbus.db", dir.path().display());
    for (data_dir, database_url) in [(dir.path(), None), (other_dir.path(), Some(same_file.as_str()))] {
        let mut second = hookbus();
        second
            .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{}", free_port())])
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(url) = database_url {
            second.args(["--database-url", url]);
        }
        let started = Instant::now();
        let output = second.env("HOOKBUS_ADMIN_TOKEN", ADMIN_TOKEN).output().unwrap();
        assert!(!output.status.success());
        assert!(started.elapsed() < Duration::from_secs(10), "it exits at once");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("already in use"), "{stderr}");
    }
}

/// Several servers starting at once on an empty PostgreSQL database migrate it once: each
/// starts and answers, and the schema is there once.
#[actix_web::test]
async fn servers_starting_together_on_an_empty_postgres_database_all_start() {
    if crate::helpers::postgres_url().is_none() {
        return;
    }
    let db = crate::helpers::TestDb::new(crate::helpers::Backend::Postgres).await;
    let master_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let mut servers = Vec::new();
    for _ in 0..3 {
        let (dir, port) = (tempfile::tempdir().unwrap(), free_port());
        let child = hookbus()
            .env("HOOKBUS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HOOKBUS_MASTER_KEY", &master_key)
            .args(["serve", "--dev", "--bind", &format!("127.0.0.1:{port}"), "--database-url", &db.url])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        servers.push((child, port, dir));
    }
    for (child, port, _) in &mut servers {
        wait_healthy(*port, child).await;
    }
    for (mut child, _, _) in servers {
        let _ = child.kill();
        let _ = child.wait();
    }
}
