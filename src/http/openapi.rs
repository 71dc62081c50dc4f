//! The OpenAPI 3 document of the admin API (`GET /api/v1/openapi.json`), generated from the
//! handlers' annotations. The schemas here describe the JSON the API sends and accepts.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// `{"error": {"code", "message"}}`
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    code: String,
    message: String,
}

/// The errors any authenticated route can answer, each with the SPEC error body
/// (`409 conflict`, only for publishing, is listed on that route).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its description is used
pub enum ErrorResponses {
    #[response(status = 400, description = "malformed JSON, wrong types or unknown fields")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "missing or wrong token")]
    Unauthorized(ErrorBody),
    #[response(status = 404, description = "no such resource in the caller's workspace")]
    NotFound(ErrorBody),
    #[response(status = 413, description = "body over max_payload_bytes")]
    PayloadTooLarge(ErrorBody),
    #[response(status = 415, description = "body without Content-Type: application/json")]
    UnsupportedMediaType(ErrorBody),
    #[response(status = 422, description = "a value is invalid; the message names the field")]
    ValidationFailed(ErrorBody),
    #[response(status = 429, description = "a workspace key over its rate limit")]
    RateLimited(ErrorBody),
    #[response(status = 503, description = "the database cannot be reached")]
    Unavailable(ErrorBody),
}

/// A webhook, as every route but create shows it (no secret).
#[derive(Serialize, ToSchema)]
pub struct WebhookObject {
    id: uuid::Uuid,
    workspace_id: uuid::Uuid,
    name: String,
    url: String,
    events: Vec<String>,
    enabled: bool,
    #[schema(nullable)]
    disabled_reason: Option<String>,
    timeout_ms: u32,
    max_retries: u32,
    backoff_base_ms: u32,
    max_in_flight: u32,
    #[schema(nullable)]
    rate_limit_per_sec: Option<u32>,
    headers: std::collections::BTreeMap<String, String>,
    created_at: String,
    updated_at: String,
    /// Only in the answer to create.
    secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookPage {
    data: Vec<WebhookObject>,
    #[schema(nullable)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SecretObject {
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct RotateInput {
    secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RotatedObject {
    secret: String,
    previous_valid_until: String,
}

#[derive(Serialize, ToSchema)]
pub struct TestResultObject {
    delivery_id: uuid::Uuid,
    succeeded: bool,
    #[schema(nullable)]
    status_code: Option<u16>,
    duration_ms: u64,
    #[schema(nullable)]
    error_message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PublishInput {
    event: String,
    data: serde_json::Map<String, serde_json::Value>,
    id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PublishedObject {
    id: String,
    event: String,
    matched_webhooks: u32,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryObject {
    id: uuid::Uuid,
    webhook_id: uuid::Uuid,
    event_id: String,
    event: String,
    status: String,
    attempt_count: u32,
    #[schema(nullable)]
    next_attempt_at: Option<String>,
    #[schema(nullable)]
    status_code: Option<u16>,
    #[schema(nullable)]
    error_message: Option<String>,
    #[schema(nullable)]
    response_body: Option<String>,
    #[schema(nullable)]
    duration_ms: Option<u64>,
    created_at: String,
    #[schema(nullable)]
    completed_at: Option<String>,
    /// Why a `failed` or `cancelled` delivery ended: `retries exhausted`, `gone`,
    /// `webhook disabled (manual|gone|failing)`, `webhook deleted`, `test attempt failed`.
    #[schema(nullable)]
    failure_reason: Option<String>,
    /// Only on `GET /api/v1/deliveries/{id}`: the exact body sent.
    payload: Option<String>,
    /// Only on `GET /api/v1/deliveries/{id}`.
    attempts: Option<Vec<AttemptObject>>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptObject {
    attempt: u32,
    started_at: String,
    duration_ms: u64,
    #[schema(nullable)]
    status_code: Option<u16>,
    #[schema(nullable)]
    error_message: Option<String>,
    #[schema(nullable)]
    response_body: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    data: Vec<DeliveryObject>,
    #[schema(nullable)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayInput {
    since: String,
    status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayedObject {
    requeued: u64,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceInput {
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceObject {
    id: uuid::Uuid,
    name: String,
    created_at: String,
    /// Only in the answer to create.
    api_key: Option<String>,
    /// Only in the answer to create: the id of `api_key`, to revoke it.
    api_key_id: Option<uuid::Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspacePage {
    data: Vec<WorkspaceObject>,
    #[schema(nullable)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyObject {
    id: uuid::Uuid,
    api_key: String,
}

/// A live key: never the key itself.
#[derive(Serialize, ToSchema)]
pub struct KeyInfo {
    id: uuid::Uuid,
    /// `hbk_` and the key's next 8 characters (keys made before hookbus kept them: `hbk_`).
    prefix: String,
    created_at: String,
    /// Within a minute of the key's last use; null if never used.
    #[schema(nullable)]
    last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyInfoPage {
    data: Vec<KeyInfo>,
    #[schema(nullable)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatusObject {
    status: String,
}

/// The health dashboard (see the README for every field).
#[derive(Serialize, ToSchema)]
pub struct DashboardObject {
    status: String,
    uptime_s: u64,
    database: serde_json::Value,
    #[schema(nullable)]
    totals: Option<serde_json::Value>,
    webhooks: Vec<serde_json::Value>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "hookbus admin API", description = "Webhook delivery: signed, retried, recorded. Every route but this document needs `Authorization: Bearer <admin token or workspace key>`; errors are `{\"error\": {\"code\", \"message\"}}`; lists are `{\"data\", \"next_cursor\"}`, newest first, with `limit` (1–500, default 50) and `cursor`."),
    paths(
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::get,
        super::webhooks::update,
        super::webhooks::delete,
        super::webhooks::secret,
        super::webhooks::rotate_secret,
        super::webhooks::test,
        super::deliveries::list,
        super::deliveries::get,
        super::deliveries::redeliver,
        super::deliveries::replay,
        super::events::publish,
        super::workspaces::create,
        super::workspaces::list,
        super::workspaces::create_key,
        super::workspaces::list_keys,
        super::workspaces::revoke_key,
        super::health::dashboard,
        super::health::health,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

pub async fn document() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(ApiDoc::openapi())
}
