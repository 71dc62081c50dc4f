//! `/api/v1/webhooks…`

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Caller;
use super::body::{JsonBody, OptionalJsonBody};
use super::responses::{Page, SecretObject, WebhookObject};
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
        (status = 201, body = WebhookObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn create(
    state: web::Data<ApiState>,
    caller: Caller,
    body: JsonBody<WebhookInput>,
) -> Result<HttpResponse, ApiError> {
    let webhook = state.registry.send(RegisterWebhook { workspace_id: caller.workspace_id, input: body.0 }).await??;
    Ok(HttpResponse::Created().json(WebhookObject::with_secret(&webhook)))
}

#[utoipa::path(
    operation_id = "webhooks_list",
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query), ("workspace_id" = Option<String>, Query)),
    responses(
        (status = 200, body = Page<WebhookObject>),
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
    Ok(HttpResponse::Ok().json(Page::of(page.data, page.next_cursor, |w| WebhookObject::new(&w))))
}

#[utoipa::path(
    operation_id = "webhooks_get",
    get,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses(
        (status = 200, body = WebhookObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn get(state: web::Data<ApiState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let webhook_id = webhook_id(&id)?;
    let webhook = state.registry.send(GetWebhook { workspace_id: caller.workspace_id, webhook_id }).await??;
    Ok(HttpResponse::Ok().json(WebhookObject::new(&webhook)))
}

#[utoipa::path(
    operation_id = "webhooks_update",
    patch,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    request_body = crate::domain::webhook::WebhookPatch,
    responses(
        (status = 200, body = WebhookObject),
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
    Ok(HttpResponse::Ok().json(WebhookObject::new(&webhook)))
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
        (status = 200, body = SecretObject),
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
    Ok(HttpResponse::Ok().json(SecretObject { secret: webhook.secret.expose().to_owned() }))
}

/// `{"secret"}`: the new secret (`whsec_` and base64 of 24 to 64 bytes); generated when
/// absent. The body itself may be left out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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
    request_body = RotateBody,
    responses(
        (status = 200, body = crate::actors::registry::RotatedSecret),
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
        (status = 200, body = crate::actors::registry::TestResult),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn test(state: web::Data<ApiState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let webhook_id = webhook_id(&id)?;
    let result = state.registry.send(TestWebhook { workspace_id: caller.workspace_id, webhook_id }).await??;
    Ok(HttpResponse::Ok().json(result))
}
