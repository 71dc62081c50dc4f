//! `GET /health`: is the database answering?

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiState;

pub async fn health(state: web::Data<ApiState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(error) => {
            log::warn!("health check: database unavailable: {error}");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"}))
        }
    }
}
