//! The admin HTTP API (SPEC §3). Handlers parse, authenticate, send one registry message
//! or one store query, and shape the JSON; the rules live in `domain` and the actors.

pub mod auth;
mod auth_cache;
pub mod body;
mod dashboard;
mod deliveries;
mod events;
mod health;
pub mod openapi;
mod request_log;
pub mod responses;
mod webhooks;
mod workspaces;

use std::str::FromStr;

use actix::Addr;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::actors::registry::{Publisher, Registry};
use crate::error::ApiError;
use crate::store::Store;
use auth::AdminToken;
pub use auth_cache::AuthCache;

/// What every handler can reach.
pub struct ApiState {
    pub registry: Addr<Registry>,
    pub publisher: Publisher,
    pub store: Store,
    pub admin_token: AdminToken,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub started_at: std::time::Instant,
    pub key_limits: std::sync::Arc<KeyLimits>,
    pub auth_cache: std::sync::Arc<AuthCache>,
    /// On PostgreSQL: the servers sharing the database.
    pub coordinator: Option<Addr<crate::actors::coordinator::Coordinator>>,
}

/// Per-key token buckets for `api_rate_limit` (burst `api_rate_burst`).
pub struct KeyLimits {
    pub rate: u32,
    pub burst: u32,
    pub buckets: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, crate::domain::rate_limit::TokenBucket>>,
}

impl ApiState {
    /// Takes a token for a workspace key, or says when to retry.
    fn throttle(&self, key_id: uuid::Uuid) -> Result<(), ApiError> {
        let now = std::time::Instant::now();
        let limits = &self.key_limits;
        let mut buckets = limits.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets
            .entry(key_id)
            .or_insert_with(|| crate::domain::rate_limit::TokenBucket::with_burst(limits.rate, limits.burst, now));
        bucket
            .try_take(now)
            .map_err(|wait| ApiError::RateLimited { retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64 })
    }
}

/// Registers `/health` and every `/api/v1` route on `cfg`.
pub fn configure(
    state: web::Data<ApiState>,
    body_limit: usize,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state.clone())
            .app_data(body::json_config(body_limit))
            .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
            .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound("resource").into()))
            .service(
                web::scope("/api/v1")
                    .wrap(actix_web::middleware::from_fn(auth::require_caller))
                    // Outermost, so a refused credential is logged too.
                    .wrap(actix_web::middleware::from_fn(request_log::log_requests))
                    // First: routes are tried in order, and every `{id}` route before it
                    // would cost a regex match on each publish, the hot path.
                    .route("/events", web::post().to(events::publish))
                    .route("/openapi.json", web::get().to(openapi::document))
                    .route("/health", web::get().to(health::dashboard))
                    .service(
                        web::resource("/webhooks")
                            .route(web::post().to(webhooks::create))
                            .route(web::get().to(webhooks::list)),
                    )
                    .service(
                        web::resource("/webhooks/{id}")
                            .route(web::get().to(webhooks::get))
                            .route(web::patch().to(webhooks::update))
                            .route(web::delete().to(webhooks::delete)),
                    )
                    .route("/webhooks/{id}/secret", web::get().to(webhooks::secret))
                    .route("/webhooks/{id}/secret/rotate", web::post().to(webhooks::rotate_secret))
                    .route("/webhooks/{id}/test", web::post().to(webhooks::test))
                    .route("/webhooks/{id}/deliveries", web::get().to(deliveries::list))
                    .route("/webhooks/{id}/replay", web::post().to(deliveries::replay))
                    .route("/webhooks/{id}/activity", web::get().to(deliveries::activity))
                    .service(
                        web::resource("/workspaces")
                            .route(web::post().to(workspaces::create))
                            .route(web::get().to(workspaces::list)),
                    )
                    .service(
                        web::resource("/workspaces/{id}/keys")
                            .route(web::post().to(workspaces::create_key))
                            .route(web::get().to(workspaces::list_keys)),
                    )
                    .route("/workspaces/{id}/keys/{key_id}", web::delete().to(workspaces::revoke_key))
                    .route("/deliveries/{id}", web::get().to(deliveries::get))
                    .route("/deliveries/{id}/redeliver", web::post().to(deliveries::redeliver))
                    .route("/replays/{id}", web::get().to(deliveries::get_replay))
                    .default_service(web::to(not_found)),
            );
        // Each resource wrapped on its own: a scope without a prefix would match every path
        // and hide the routes an embedding app registers after these.
        let logged = |path| web::resource(path).wrap(actix_web::middleware::from_fn(request_log::log_requests));
        cfg.service(logged("/").route(web::get().to(health::index)))
            .service(logged("/health").route(web::get().to(health::health)))
            .service(logged("/metrics").route(web::get().to(health::metrics)))
            .service(logged("/dashboard").route(web::get().to(dashboard::page)))
            .service(logged("/dashboard/").route(web::get().to(dashboard::without_slash)))
            .service(logged("/dashboard/app.js").route(web::get().to(dashboard::script)))
            .service(logged("/dashboard/app.css").route(web::get().to(dashboard::style)));
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("route"))
}

/// `?limit=&cursor=` of every list, plus the optional `status` filter.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
}

impl ListQuery {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n @ 1..=500) => Ok(n as usize),
            Some(_) => Err(crate::domain::ValidationError::new("limit", "must be between 1 and 500").into()),
        }
    }

    fn cursor<T: FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor
            .as_deref()
            .map(|raw| {
                raw.parse().map_err(|_| {
                    crate::domain::ValidationError::new("cursor", "is not a cursor from a previous page").into()
                })
            })
            .transpose()
    }
}

/// An id from the path; one that does not parse names nothing, so it is a 404.
fn path_id<T: FromStr>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}
