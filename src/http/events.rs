//! `POST /api/v1/events`

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Caller;
use super::body::JsonBody;
use super::ApiState;
use crate::actors::registry::Publish;
use crate::domain::ValidationError;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    event: Option<String>,
    data: Option<serde_json::Value>,
    id: Option<String>,
}

#[utoipa::path(
    operation_id = "events_publish",
    post,
    path = "/api/v1/events",
    tag = "events",
    request_body = super::openapi::PublishInput,
    responses(
        (status = 202, body = super::openapi::PublishedObject),
        (status = 409, description = "an event id reused with a different body", body = super::openapi::ErrorBody),
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
