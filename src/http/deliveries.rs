//! `/api/v1/deliveries…` and `/api/v1/webhooks/{id}/deliveries`

use actix_web::{web, HttpResponse};

use super::auth::Caller;
use super::{path_id, ApiState, ListQuery};
use crate::actors::registry::{GetWebhook, Redeliver};
use crate::domain::envelope::Envelope;
use crate::domain::{DeliveryId, DeliveryStatus, Page, ValidationError};
use crate::error::ApiError;

pub async fn list(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let webhook_id = path_id(&id, "webhook")?;
    state.registry.send(GetWebhook { workspace_id: caller.workspace_id, webhook_id }).await??;
    let status = query
        .status
        .as_deref()
        .map(|raw| {
            DeliveryStatus::parse(raw)
                .ok_or_else(|| ValidationError::new("status", "must be pending, succeeded, failed or cancelled"))
        })
        .transpose()?;
    let (data, next_cursor) =
        state.store.list_deliveries(caller.workspace_id, webhook_id, status, query.cursor()?, query.limit()?).await?;
    Ok(HttpResponse::Ok().json(Page { data, next_cursor }))
}

pub async fn get(state: web::Data<ApiState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let delivery_id: DeliveryId = path_id(&id, "delivery")?;
    let (pending, attempts) =
        state.store.get_delivery(caller.workspace_id, delivery_id).await?.ok_or(ApiError::NotFound("delivery"))?;
    let delivery = &pending.delivery;
    let payload = Envelope {
        event_id: &delivery.event_id,
        event: &delivery.event,
        timestamp: pending.event_created_at,
        webhook_id: delivery.webhook_id,
        workspace_id: delivery.workspace_id,
        data_json: &pending.data_json,
    }
    .to_body();
    let mut object = serde_json::to_value(delivery).expect("a delivery serializes");
    object["payload"] = payload.into();
    object["attempts"] = serde_json::to_value(attempts).expect("attempts serialize");
    Ok(HttpResponse::Ok().json(object))
}

pub async fn redeliver(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let delivery_id: DeliveryId = path_id(&id, "delivery")?;
    let delivery = state.registry.send(Redeliver { workspace_id: caller.workspace_id, delivery_id }).await??;
    Ok(HttpResponse::Accepted().json(delivery))
}
