//! The OpenAPI 3 document of the admin API (`GET /api/v1/openapi.json`), generated from the
//! handlers' annotations and the types they accept and answer with ([`super::responses`]).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::responses::ErrorBody;

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
        super::deliveries::activity,
        super::deliveries::get_replay,
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
