//! What the benchmarks share: fresh databases, and a process's memory read from /proc.

use std::path::Path;
use std::process::Command;

/// A fresh database: a SQLite file in `dir`, or a new PostgreSQL database created through
/// `admin` (drop it with [`drop_database`]).
pub fn fresh_database(dir: &Path, postgres: Option<&str>, name: &str) -> String {
    match postgres {
        None => format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
        Some(admin) => {
            let db = format!("hookbus_bench_{name}_{}", std::process::id());
            psql(admin, &format!("DROP DATABASE IF EXISTS {db}"));
            psql(admin, &format!("CREATE DATABASE {db}"));
            let mut url = url::Url::parse(admin).expect("a PostgreSQL URL");
            url.set_path(&db);
            url.to_string()
        }
    }
}

/// Drops a database made by [`fresh_database`]; a SQLite file goes with its directory.
pub fn drop_database(postgres: Option<&str>, database_url: &str) {
    if let Some(admin) = postgres {
        let db = url::Url::parse(database_url).expect("a PostgreSQL URL").path().trim_start_matches('/').to_owned();
        psql(admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    }
}

/// A webhook for `url`, subscribed to everything, for filling a store directly.
#[allow(dead_code)] // loadgen registers its webhooks through the API
pub fn webhook(url: &str) -> hookbus::domain::webhook::Webhook {
    use hookbus::domain::url::UrlPolicy;
    use hookbus::domain::webhook::{Webhook, WebhookInput};
    let input = WebhookInput { url: Some(url.into()), events: Some(vec!["*".into()]), ..Default::default() };
    Webhook::create(
        hookbus::domain::WorkspaceId::DEFAULT,
        input,
        UrlPolicy { allow_http: true, allow_private: true },
        hookbus::domain::now(),
    )
    .unwrap()
}

fn psql(admin: &str, sql: &str) {
    let status = Command::new("psql").arg(admin).args(["-qc", sql]).status().expect("psql runs");
    assert!(status.success(), "psql failed: {sql}");
}

/// (current, peak) resident memory of a process in KiB; zeros once it is gone.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let [current, peak] = proc_numbers(pid, "status", ["VmRSS:", "VmHWM:"]);
    (current, peak)
}

/// The numbers after `names` in `/proc/<pid>/<file>` (`Name: value …` lines); zero for any
/// that is missing, and for all once the process is gone.
pub fn proc_numbers<const N: usize>(pid: u32, file: &str, names: [&str; N]) -> [u64; N] {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    names.map(|name| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    })
}

/// User + system CPU seconds a process has used so far; zero once it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used so far by every process whose command name is `name` (PostgreSQL runs
/// a process per connection, so its share is the sum over all of them).
pub fn cpu_seconds_named(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == name))
        .map(cpu_seconds)
        .sum()
}
