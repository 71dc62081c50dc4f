//! `/api/v1/deliveries…` and `/api/v1/webhooks/{id}/deliveries`

use actix_web::{web, HttpResponse};

use super::auth::Caller;
use super::body::JsonBody;
use super::responses::{ActivityObject, DeliveryObject, Page, ReplayAnswer, ReplayObject, ReplayedObject};
use super::{path_id, ApiState, ListQuery};
use crate::actors::registry::{GetWebhook, Redeliver, ReplayDeliveries, StartReplay};
use crate::domain::{activity, DeliveryId, DeliveryStatus, ValidationError};
use crate::error::ApiError;

#[utoipa::path(
    operation_id = "deliveries_list",
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    tag = "deliveries",
    params(("id" = String, Path, description = "webhook id"), ("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query), ("workspace_id" = Option<String>, Query)),
    responses(
        (status = 200, body = Page<DeliveryObject>),
        super::openapi::ErrorResponses,
    ),
)]
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
    Ok(HttpResponse::Ok().json(Page::of(data, next_cursor, DeliveryObject::new)))
}

#[utoipa::path(
    operation_id = "deliveries_get",
    get,
    path = "/api/v1/deliveries/{id}",
    tag = "deliveries",
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 200, body = DeliveryObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn get(state: web::Data<ApiState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let delivery_id: DeliveryId = path_id(&id, "delivery")?;
    let (pending, attempts) =
        state.store.get_delivery(caller.workspace_id, delivery_id).await?.ok_or(ApiError::NotFound("delivery"))?;
    let payload = pending.body();
    Ok(HttpResponse::Ok().json(DeliveryObject::in_full(pending.delivery, payload, attempts)))
}

#[utoipa::path(
    operation_id = "deliveries_redeliver",
    post,
    path = "/api/v1/deliveries/{id}/redeliver",
    tag = "deliveries",
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 202, body = DeliveryObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn redeliver(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let delivery_id: DeliveryId = path_id(&id, "delivery")?;
    let delivery = state.registry.send(Redeliver { workspace_id: caller.workspace_id, delivery_id }).await??;
    Ok(HttpResponse::Accepted().json(DeliveryObject::new(delivery)))
}

/// Which deliveries to put back in `pending`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// RFC 3339; deliveries created at or after it.
    #[schema(required = true)]
    since: Option<String>,
    /// `failed` (the default), `succeeded` or `cancelled`.
    status: Option<String>,
    /// Answer at once with a replay to follow (`GET /api/v1/replays/{id}`) instead of after
    /// the last delivery is requeued.
    #[serde(default)]
    background: bool,
}

#[utoipa::path(
    operation_id = "deliveries_replay",
    post,
    path = "/api/v1/webhooks/{id}/replay",
    tag = "deliveries",
    params(("id" = String, Path, description = "webhook id")),
    request_body = ReplayBody,
    responses(
        (status = 202, description = "`{\"requeued\"}` once done; with `background`, the replay to follow", body = ReplayAnswer),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn replay(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
    body: JsonBody<ReplayBody>,
) -> Result<HttpResponse, ApiError> {
    let webhook_id = path_id(&id, "webhook")?;
    let since = body.0.since.ok_or_else(|| ValidationError::new("since", "is required (an RFC 3339 time)"))?;
    let since = chrono::DateTime::parse_from_rfc3339(&since)
        .map_err(|_| ValidationError::new("since", "must be an RFC 3339 time such as 2026-04-06T10:30:00Z"))?
        .with_timezone(&chrono::Utc);
    let status = match body.0.status.as_deref() {
        None => DeliveryStatus::Failed,
        Some(raw) => DeliveryStatus::parse(raw)
            .ok_or_else(|| ValidationError::new("status", "must be failed, succeeded or cancelled"))?,
    };
    if body.0.background {
        let replay = state
            .registry
            .send(StartReplay(ReplayDeliveries { workspace_id: caller.workspace_id, webhook_id, since, status }))
            .await??;
        return Ok(HttpResponse::Accepted()
            .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/replays/{}", replay.id)))
            .json(ReplayObject::from(replay)));
    }
    let requeued = state
        .registry
        .send(ReplayDeliveries { workspace_id: caller.workspace_id, webhook_id, since, status })
        .await??;
    Ok(HttpResponse::Accepted().json(ReplayedObject { requeued }))
}

#[utoipa::path(
    operation_id = "replays_get",
    get,
    path = "/api/v1/replays/{id}",
    tag = "deliveries",
    params(("id" = String, Path, description = "replay id"), ("workspace_id" = Option<String>, Query)),
    responses(
        (status = 200, body = ReplayObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn get_replay(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let replay_id = path_id(&id, "replay")?;
    let replay = state.store.get_replay(caller.workspace_id, replay_id).await?.ok_or(ApiError::NotFound("replay"))?;
    Ok(HttpResponse::Ok().json(ReplayObject::from(replay)))
}

/// `?minutes=` of the activity chart.
#[derive(Debug, serde::Deserialize)]
pub struct ActivityQuery {
    minutes: Option<i64>,
}

#[utoipa::path(
    operation_id = "deliveries_activity",
    get,
    path = "/api/v1/webhooks/{id}/activity",
    tag = "deliveries",
    params(
        ("id" = String, Path, description = "webhook id"),
        ("minutes" = Option<i64>, Query, description = "how many minutes back, 1–1440 (default 60)"),
        ("workspace_id" = Option<String>, Query),
    ),
    responses(
        (status = 200, body = ActivityObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn activity(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let webhook_id = path_id(&id, "webhook")?;
    let minutes = match query.minutes {
        None => 60,
        Some(n @ 1..=1440) => n,
        Some(_) => return Err(ValidationError::new("minutes", "must be between 1 and 1440").into()),
    };
    state.registry.send(GetWebhook { workspace_id: caller.workspace_id, webhook_id }).await??;
    // The current minute is the last one shown, partly filled.
    let last_minute = crate::domain::now().timestamp().div_euclid(60);
    let first_minute = last_minute - minutes + 1;
    let since = chrono::DateTime::from_timestamp(first_minute * 60, 0).unwrap_or_default();
    let counts = state.store.delivery_minutes(caller.workspace_id, webhook_id, since).await?;
    Ok(HttpResponse::Ok()
        .json(ActivityObject { webhook_id, minutes: activity::by_minute(first_minute, minutes as usize, &counts) }))
}
