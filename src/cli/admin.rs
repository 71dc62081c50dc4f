//! `hookbus webhooks|publish|deliveries|replay`: the admin API from a terminal, a table for
//! people and the API's own JSON with `--json`.

use clap::{Args, Subcommand};
use comfy_table::Table;
use serde_json::{json, Map, Value};

use super::client::{ApiArgs, ApiClient, ClientError};
use super::progress::follow_replay;

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// List the workspace's webhooks.
    List(ListArgs),
    /// Register a webhook; prints its secret (shown this once).
    Create {
        /// Where deliveries go.
        #[arg(value_name = "URL")]
        endpoint: String,
        #[command(flatten)]
        fields: WebhookFields,
    },
    /// One webhook's settings.
    Show { id: String },
    /// Change some of a webhook's settings.
    Update {
        id: String,
        #[command(flatten)]
        fields: WebhookFields,
    },
    /// Delete a webhook; its pending deliveries are cancelled.
    Delete { id: String },
    /// Send one `webhook.test` event now and print how it went.
    Test { id: String },
}

#[derive(Args)]
pub struct ListArgs {
    /// At most this many (1–500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Where the previous page ended (it printed the cursor).
    #[arg(long)]
    cursor: Option<String>,
}

impl ListArgs {
    /// `limit=…[&cursor=…]` for a list's query string.
    fn query(&self) -> String {
        let cursor =
            self.cursor.as_deref().map(|c| url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>());
        match cursor {
            Some(cursor) => format!("limit={}&cursor={cursor}", self.limit),
            None => format!("limit={}", self.limit),
        }
    }
}

/// Tells a person how to get the next page of a list, if there is one.
fn more(page: &Value) {
    if let Some(cursor) = page["next_cursor"].as_str() {
        eprintln!("more: the same command with --cursor {cursor}");
    }
}

/// A webhook's settings as flags; only those given are sent.
#[derive(Args)]
pub struct WebhookFields {
    /// Where deliveries go (`--url` is the server's address).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Event patterns, comma-separated or repeated: `artifact.*,source.ready`.
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    secret: Option<String>,
    #[arg(long)]
    enabled: Option<bool>,
    #[arg(long)]
    timeout_ms: Option<u32>,
    #[arg(long)]
    max_retries: Option<u32>,
    #[arg(long)]
    backoff_base_ms: Option<u32>,
    #[arg(long)]
    max_in_flight: Option<u32>,
    #[arg(long)]
    rate_limit_per_sec: Option<u32>,
    /// An extra header, `Name: value`; repeat for more.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
}

impl WebhookFields {
    fn body(&self) -> Result<Value, ClientError> {
        let mut body = Map::new();
        let mut put = |name: &str, value: Value| {
            body.insert(name.to_owned(), value);
        };
        if let Some(url) = &self.endpoint_url {
            put("url", json!(url));
        }
        if !self.events.is_empty() {
            put("events", json!(self.events));
        }
        if let Some(name) = &self.name {
            put("name", json!(name));
        }
        if let Some(secret) = &self.secret {
            put("secret", json!(secret));
        }
        if let Some(enabled) = self.enabled {
            put("enabled", json!(enabled));
        }
        for (name, value) in [
            ("timeout_ms", self.timeout_ms),
            ("max_retries", self.max_retries),
            ("backoff_base_ms", self.backoff_base_ms),
            ("max_in_flight", self.max_in_flight),
            ("rate_limit_per_sec", self.rate_limit_per_sec),
        ] {
            if let Some(value) = value {
                put(name, json!(value));
            }
        }
        if !self.headers.is_empty() {
            let mut headers = Map::new();
            for header in &self.headers {
                let (name, value) = header
                    .split_once(':')
                    .ok_or_else(|| ClientError::Usage(format!("--header '{header}': expected 'Name: value'")))?;
                headers.insert(name.trim().to_owned(), json!(value.trim()));
            }
            put("headers", Value::Object(headers));
        }
        Ok(Value::Object(body))
    }
}

#[derive(Args)]
pub struct PublishArgs {
    /// The event type, e.g. `artifact.completed`.
    event: String,
    /// The event's data: a JSON object.
    #[arg(long, default_value = "{}")]
    data: String,
    /// An id that makes the publish idempotent.
    #[arg(long)]
    id: Option<String>,
}

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// A webhook's deliveries, newest first.
    List {
        webhook: String,
        /// pending, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// A delivery, its attempts and the payload sent.
    Show { id: String },
    /// Send a delivery again; its history is kept.
    Redeliver { id: String },
}

#[derive(Args)]
pub struct ReplayArgs {
    webhook: String,
    /// From when: an RFC 3339 time (`2026-04-06T10:30:00Z`) or a time ago (`2h`, `30m`, `3d`).
    #[arg(long)]
    since: String,
    /// Which deliveries: failed (the default), succeeded or cancelled.
    #[arg(long, default_value = "failed")]
    status: String,
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY).set_header(headers.to_vec());
    rows.into_iter().for_each(|row| {
        table.add_row(row);
    });
    table
}

/// `name: value` lines for one object's fields, in the order given.
fn fields(object: &Value, names: &[&str]) -> String {
    names.iter().map(|name| format!("{name}: {}", text(&object[*name]))).collect::<Vec<_>>().join("\n")
}

const WEBHOOK_FIELDS: &[&str] = &[
    "id",
    "name",
    "url",
    "events",
    "enabled",
    "disabled_reason",
    "timeout_ms",
    "max_retries",
    "backoff_base_ms",
    "max_in_flight",
    "rate_limit_per_sec",
    "headers",
    "created_at",
    "updated_at",
];

pub async fn webhooks(api: &ApiArgs, command: WebhooksCommand) -> Result<(), ClientError> {
    let client = ApiClient::new(api)?;
    let answer = match &command {
        WebhooksCommand::List(list) => client.get(&format!("/webhooks?{}", list.query())).await?,
        WebhooksCommand::Create { endpoint, fields } => {
            let mut body = fields.body()?;
            body["url"] = json!(endpoint);
            client.post("/webhooks", &body).await?
        }
        WebhooksCommand::Show { id } => client.get(&format!("/webhooks/{id}")).await?,
        WebhooksCommand::Update { id, fields } => {
            client.call("PATCH", &format!("/webhooks/{id}"), Some(&fields.body()?)).await?
        }
        WebhooksCommand::Delete { id } => client.call("DELETE", &format!("/webhooks/{id}"), None).await?,
        WebhooksCommand::Test { id } => client.post(&format!("/webhooks/{id}/test"), &json!({})).await?,
    };
    if api.json {
        if !answer.is_null() {
            print_json(&answer);
        }
        return Ok(());
    }
    match command {
        WebhooksCommand::List(_) => {
            let rows = answer["data"].as_array().into_iter().flatten().map(|w| {
                let events = w["events"].as_array().into_iter().flatten().map(text).collect::<Vec<_>>().join(",");
                vec![text(&w["id"]), text(&w["name"]), text(&w["url"]), text(&w["enabled"]), events]
            });
            println!("{}", table(&["ID", "NAME", "URL", "ENABLED", "EVENTS"], rows));
            more(&answer);
        }
        WebhooksCommand::Create { .. } => {
            println!("{}", fields(&answer, WEBHOOK_FIELDS));
            println!("secret: {}  (shown this once; `hookbus webhooks` cannot show it again)", text(&answer["secret"]));
        }
        WebhooksCommand::Show { .. } | WebhooksCommand::Update { .. } => {
            println!("{}", fields(&answer, WEBHOOK_FIELDS))
        }
        WebhooksCommand::Delete { id } => println!("deleted {id}"),
        WebhooksCommand::Test { .. } => {
            let outcome = if answer["succeeded"] == true { "succeeded" } else { "failed" };
            println!(
                "test delivery {} {outcome}: status {}, {} ms, error {}",
                text(&answer["delivery_id"]),
                text(&answer["status_code"]),
                text(&answer["duration_ms"]),
                text(&answer["error_message"])
            );
        }
    }
    Ok(())
}

pub async fn publish(api: &ApiArgs, args: PublishArgs) -> Result<(), ClientError> {
    let client = ApiClient::new(api)?;
    let data: Value =
        serde_json::from_str(&args.data).map_err(|e| ClientError::Usage(format!("--data is not JSON: {e}")))?;
    let mut body = json!({"event": args.event, "data": data});
    if let Some(id) = args.id {
        body["id"] = json!(id);
    }
    let answer = client.post("/events", &body).await?;
    if api.json {
        print_json(&answer);
    } else {
        println!(
            "published {} ({}) to {} webhook(s)",
            text(&answer["id"]),
            text(&answer["event"]),
            text(&answer["matched_webhooks"])
        );
    }
    Ok(())
}

pub async fn deliveries(api: &ApiArgs, command: DeliveriesCommand) -> Result<(), ClientError> {
    let client = ApiClient::new(api)?;
    let answer = match &command {
        DeliveriesCommand::List { webhook, status, list } => {
            let mut path = format!("/webhooks/{webhook}/deliveries?{}", list.query());
            if let Some(status) = status {
                path.push_str(&format!("&status={status}"));
            }
            client.get(&path).await?
        }
        DeliveriesCommand::Show { id } => client.get(&format!("/deliveries/{id}")).await?,
        DeliveriesCommand::Redeliver { id } => client.post(&format!("/deliveries/{id}/redeliver"), &json!({})).await?,
    };
    if api.json {
        print_json(&answer);
        return Ok(());
    }
    match command {
        DeliveriesCommand::List { .. } => {
            let rows = answer["data"].as_array().into_iter().flatten().map(|d| {
                ["id", "created_at", "event", "status", "attempt_count", "status_code", "error_message"]
                    .iter()
                    .map(|field| text(&d[*field]))
                    .collect()
            });
            println!("{}", table(&["ID", "CREATED", "EVENT", "STATUS", "ATTEMPTS", "CODE", "ERROR"], rows));
            more(&answer);
        }
        DeliveriesCommand::Show { .. } => {
            let names = ["id", "webhook_id", "event", "event_id", "status", "attempt_count", "created_at"];
            println!("{}", fields(&answer, &names));
            println!("{}", fields(&answer, &["completed_at", "next_attempt_at", "failure_reason"]));
            let rows = answer["attempts"].as_array().into_iter().flatten().map(|a| {
                ["attempt", "started_at", "status_code", "duration_ms", "error_message", "response_body"]
                    .iter()
                    .map(|field| text(&a[*field]))
                    .collect()
            });
            println!("{}", table(&["#", "STARTED", "CODE", "MS", "ERROR", "RESPONSE BODY"], rows));
            println!("payload: {}", text(&answer["payload"]));
        }
        DeliveriesCommand::Redeliver { .. } => {
            println!("{} is pending again (attempts so far: {})", text(&answer["id"]), text(&answer["attempt_count"]));
        }
    }
    Ok(())
}

/// `--since`: an RFC 3339 time, or a time ago such as `2h`.
fn since(raw: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String, ClientError> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&chrono::Utc).to_rfc3339());
    }
    let ago = humantime::parse_duration(raw).map_err(|_| {
        ClientError::Usage(format!("--since '{raw}': expected an RFC 3339 time or a time ago such as 2h or 30m"))
    })?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| ClientError::Usage(format!("--since '{raw}': {e}")))?;
    Ok((now - ago).to_rfc3339())
}

pub async fn replay(api: &ApiArgs, args: ReplayArgs) -> Result<(), ClientError> {
    let client = ApiClient::new(api)?;
    let body = json!({"since": since(&args.since, chrono::Utc::now())?, "status": args.status, "background": true});
    let answer = client.post(&format!("/webhooks/{}/replay", args.webhook), &body).await?;
    follow_replay(&client, api.json, answer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_time_ago() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(since("2h", now).unwrap(), "2026-12-05T10:00:00+00:00");
        assert_eq!(since("1d 30m", now).unwrap(), "2026-12-04T11:30:00+00:00");
        assert_eq!(since("2026-12-01T08:00:00+01:00", now).unwrap(), "2026-12-01T07:00:00+00:00");
        assert!(since("yesterday-ish", now).is_err());
    }

    #[test]
    fn webhook_flags_send_only_what_was_given() {
        let fields = WebhookFields {
            endpoint_url: None,
            events: vec!["a.*".into(), "b.c".into()],
            name: None,
            secret: None,
            enabled: Some(false),
            timeout_ms: None,
            max_retries: Some(0),
            backoff_base_ms: None,
            max_in_flight: None,
            rate_limit_per_sec: None,
            headers: vec!["X-Team: billing".into()],
        };
        assert_eq!(
            fields.body().unwrap(),
            json!({"events": ["a.*", "b.c"], "enabled": false, "max_retries": 0, "headers": {"X-Team": "billing"}})
        );
        let bad = WebhookFields { headers: vec!["no colon".into()], ..fields };
        assert!(bad.body().is_err());
    }
}
