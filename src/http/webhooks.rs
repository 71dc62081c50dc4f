//! `/api/v1/webhooks…`

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::body::{JsonBody, OptionalJsonBody};
use super::{path_id, ApiState, ListQuery};
use crate::actors::registry::{
    DeleteWebhook, GetWebhook, ListWebhooks, RegisterWebhook, RotateSecret, TestWebhook, UpdateWebhook,
};
use crate::domain::webhook::{WebhookInput, WebhookPatch};
use crate::domain::WebhookId;
use crate::error::ApiError;

fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    path_id(raw, "webhook")
}

#[utoipa::path(
    operation_id = "webhooks_create",
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    request_body = crate::domain::webhook::WebhookInput,
    responses(
        (status = 201, body = super::openapi::WebhookObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn create(
    state: web::Data<ApiState>,
    caller: Caller,
    body: JsonBody<WebhookInput>,
) -> Result<HttpResponse, ApiError> {
    let webhook = state.registry.send(RegisterWebhook { workspace_id: caller.workspace_id, input: body.0 }).await??;
    let mut object = serde_json::to_value(&*webhook).expect("a webhook serializes");
    object["secret"] = json!(webhook.secret.expose());
    Ok(HttpResponse::Created().json(object))
}

#[utoipa::path(
    operation_id = "webhooks_list",
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query), ("workspace_id" = Option<String>, Query)),
    responses(
        (status = 200, body = super::openapi::WebhookPage),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn list(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .registry
        .send(ListWebhooks { workspace_id: caller.workspace_id, cursor: query.cursor()?, limit: query.limit()? })
        .await??;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(
    operation_id = "webhooks_get",
    get,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses(
        (status = 200, body = super::openapi::WebhookObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn get(state: web::Data<ApiState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let webhook_id = webhook_id(&id)?;
    let webhook = state.registry.send(GetWebhook { workspace_id: caller.workspace_id, webhook_id }).await??;
    Ok(HttpResponse::Ok().json(&*webhook))
}

#[utoipa::path(
    operation_id = "webhooks_update",
    patch,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    request_body = crate::domain::webhook::WebhookPatch,
    responses(
        (status = 200, body = super::openapi::WebhookObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn update(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
    body: JsonBody<WebhookPatch>,
) -> Result<HttpResponse, ApiError> {
    let webhook_id = webhook_id(&id)?;
    let webhook =
        state.registry.send(UpdateWebhook { workspace_id: caller.workspace_id, webhook_id, patch: body.0 }).await??;
    Ok(HttpResponse::Ok().json(&*webhook))
}

#[utoipa::path(
    operation_id = "webhooks_delete",
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses(
        (status = 204),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn delete(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let webhook_id = webhook_id(&id)?;
    state.registry.send(DeleteWebhook { workspace_id: caller.workspace_id, webhook_id }).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    operation_id = "webhooks_secret",
    get,
    path = "/api/v1/webhooks/{id}/secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses(
        (status = 200, body = super::openapi::SecretObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn secret(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let webhook_id = webhook_id(&id)?;
    let webhook = state.registry.send(GetWebhook { workspace_id: caller.workspace_id, webhook_id }).await??;
    Ok(HttpResponse::Ok().json(json!({"secret": webhook.secret.expose()})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    secret: Option<String>,
}

#[utoipa::path(
    operation_id = "webhooks_rotate_secret",
    post,
    path = "/api/v1/webhooks/{id}/secret/rotate",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    request_body = super::openapi::RotateInput,
    responses(
        (status = 200, body = super::openapi::RotatedObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn rotate_secret(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
    body: OptionalJsonBody<RotateBody>,
) -> Result<HttpResponse, ApiError> {
    let webhook_id = webhook_id(&id)?;
    let rotated = state
        .registry
        .send(RotateSecret { workspace_id: caller.workspace_id, webhook_id, secret: body.0.secret })
        .await??;
    Ok(HttpResponse::Ok().json(rotated))
}

#[utoipa::path(
    operation_id = "webhooks_test",
    post,
    path = "/api/v1/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses(
        (status = 200, body = super::openapi::TestResultObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn test(state: web::Data<ApiState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let webhook_id = webhook_id(&id)?;
    let result = state.registry.send(TestWebhook { workspace_id: caller.workspace_id, webhook_id }).await??;
    Ok(HttpResponse::Ok().json(result))
}
