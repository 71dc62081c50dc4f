//! The admin API as the command line sees it: one request, its JSON answer, or the API's
//! error with its code and message.

use std::time::Duration;

use serde_json::Value;

/// Where the server is and who is asking; shared by every API command.
#[derive(clap::Args, Clone)]
pub struct ApiArgs {
    /// The server's address.
    #[arg(long, env = "HOOKBUS_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// The admin token or a workspace key (`hbk_…`).
    #[arg(long, env = "HOOKBUS_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// With the admin token: the workspace to act on (default: `default`).
    #[arg(long, global = true)]
    pub workspace: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{code}: {message} (HTTP {status})")]
    Api { status: u16, code: String, message: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("no token: pass --token or set HOOKBUS_TOKEN")]
    NoToken,
    #[error("{0}")]
    Usage(String),
}

pub struct ApiClient {
    base: String,
    token: String,
    workspace: Option<String>,
    http: awc::Client,
}

impl ApiClient {
    pub fn new(args: &ApiArgs) -> Result<Self, ClientError> {
        let token = args.token.clone().filter(|t| !t.is_empty()).ok_or(ClientError::NoToken)?;
        Ok(Self {
            base: args.url.trim_end_matches('/').to_owned(),
            token,
            workspace: args.workspace.clone(),
            // Synchronous test sends wait up to the webhook's timeout (30 s at most).
            http: awc::Client::builder().timeout(Duration::from_secs(60)).finish(),
        })
    }

    /// `method` on `/api/v1{path}`, with `body` as JSON; the answer's JSON (`null` for 204).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let mut url = format!("{}/api/v1{path}", self.base);
        if let Some(workspace) = &self.workspace {
            let separator = if path.contains('?') { '&' } else { '?' };
            let workspace: String = url::form_urlencoded::byte_serialize(workspace.as_bytes()).collect();
            url.push_str(&format!("{separator}workspace_id={workspace}"));
        }
        let method = actix_web::http::Method::from_bytes(method.as_bytes())
            .map_err(|_| ClientError::Usage(format!("bad method {method}")))?;
        let request =
            self.http.request(method, &url).insert_header(("Authorization", format!("Bearer {}", self.token)));
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let unreachable = |reason: String| ClientError::Unreachable { url: self.base.clone(), reason };
        let mut response = sent.map_err(|e| unreachable(e.to_string()))?;
        let bytes = response.body().limit(64 << 20).await.map_err(|e| unreachable(e.to_string()))?;
        let json: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        let status = response.status();
        if status.is_success() {
            return Ok(json);
        }
        let error = &json["error"];
        Err(ClientError::Api {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("http_error").to_owned(),
            message: error["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call("POST", path, Some(body)).await
    }
}
