//! `POST /api/v1/events`

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Caller;
use super::body::JsonBody;
use super::ApiState;
use crate::actors::registry::Publish;
use crate::domain::ValidationError;
use crate::error::ApiError;

/// An event to publish.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// The event type, such as `artifact.completed`.
    #[schema(required = true)]
    event: Option<String>,
    /// A JSON object.
    #[schema(required = true, value_type = Object)]
    data: Option<serde_json::Value>,
    /// An id of your own (≤ 128 characters): publishing it again is answered with the first
    /// result and delivers nothing twice.
    id: Option<String>,
}

#[utoipa::path(
    operation_id = "events_publish",
    post,
    path = "/api/v1/events",
    tag = "events",
    request_body = PublishBody,
    responses(
        (status = 202, body = crate::actors::registry::Published),
        (status = 409, description = "an event id reused with a different body", body = super::responses::ErrorBody),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn publish(
    state: web::Data<ApiState>,
    caller: Caller,
    body: JsonBody<PublishBody>,
) -> Result<HttpResponse, ApiError> {
    let PublishBody { event, data, id } = body.0;
    let event = event.ok_or_else(|| ValidationError::new("event", "is required"))?;
    let data = data.ok_or_else(|| ValidationError::new("data", "is required (a JSON object)"))?;
    let publish = Publish { workspace_id: caller.workspace_id, event, data, id };
    // Matched and awaited here, on this worker, not on the registry's thread.
    let published = state.publisher.start(publish)?.finish().await?;
    Ok(HttpResponse::Accepted().json(published))
}
