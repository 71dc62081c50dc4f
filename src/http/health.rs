//! `GET /health` (is the database answering?), `GET /api/v1/health` (the dashboard) and
//! `GET /metrics` (Prometheus).

use std::collections::HashMap;

use actix_web::{web, HttpResponse};

use super::auth::{Caller, Principal};
use super::responses::{
    DashboardObject, DatabaseHealth, IndexObject, ServerObject, StatusObject, Totals, WebhookHealth,
};
use super::ApiState;
use crate::actors::coordinator::LiveServers;
use crate::actors::registry::{HealthSnapshot, RunningWebhooks};
use crate::domain::circuit::CircuitState;
use crate::domain::DeliveryStatus;
use crate::error::ApiError;

#[utoipa::path(
    operation_id = "health_health",
    get,
    path = "/health",
    tag = "health",
    security(),
    responses(
        (status = 200, body = StatusObject),
        (status = 503, body = StatusObject),
    ),
)]
pub async fn health(state: web::Data<ApiState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(_) => HttpResponse::Ok().json(StatusObject { status: "ok" }),
        Err(error) => {
            log::warn!("health check: database unavailable: {error}");
            HttpResponse::ServiceUnavailable().json(StatusObject { status: "unavailable" })
        }
    }
}

/// The health dashboard of the caller's workspace, from live actor state and the database.
#[utoipa::path(
    operation_id = "health_dashboard",
    get,
    path = "/api/v1/health",
    tag = "health",
    params(("workspace_id" = Option<String>, Query)),
    responses(
        (status = 200, body = DashboardObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn dashboard(state: web::Data<ApiState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let ping = state.store.ping().await;
    let totals = match &ping {
        Ok(_) => Some(state.store.workspace_totals(caller.workspace_id).await?),
        Err(_) => None,
    };
    // Asked after the totals, so live state is never older than the counts beside it.
    let snapshot = state.registry.send(HealthSnapshot { workspace_id: caller.workspace_id }).await?;
    let mut pending_by_webhook = HashMap::new();
    let mut by_status: HashMap<DeliveryStatus, u64> = HashMap::new();
    for count in totals.iter().flat_map(|t| &t.deliveries) {
        *by_status.entry(count.status).or_default() += count.count;
        if count.status == DeliveryStatus::Pending {
            pending_by_webhook.insert(count.webhook_id, count.count);
        }
    }
    let degraded =
        ping.is_err() || snapshot.iter().any(|h| h.webhook.enabled && h.endpoint.circuit != CircuitState::Closed);
    let clustered = state.coordinator.is_some();
    let webhooks = snapshot
        .into_iter()
        .map(|h| WebhookHealth {
            owner: clustered.then_some(h.owner),
            id: h.webhook.id,
            name: h.webhook.name.clone(),
            url: h.webhook.url.as_str().to_owned(),
            enabled: h.webhook.enabled,
            disabled_reason: h.webhook.disabled_reason,
            queue_depth: totals.as_ref().map(|_| pending_by_webhook.get(&h.webhook.id).copied().unwrap_or(0)),
            live: h.endpoint,
        })
        .collect();
    let servers = match (&state.coordinator, caller.principal) {
        (Some(coordinator), Principal::Admin) => {
            let live = coordinator.send(LiveServers).await.unwrap_or_default();
            Some(
                live.into_iter()
                    .map(|s| ServerObject {
                        id: s.id,
                        name: s.name,
                        started_at: crate::store::from_millis(s.started_at),
                        last_seen_at: crate::store::from_millis(s.last_seen_at),
                        webhooks: s.webhooks.max(0) as u64,
                    })
                    .collect(),
            )
        }
        _ => None,
    };
    let count = |status| by_status.get(&status).copied().unwrap_or(0);
    let body = DashboardObject {
        status: if degraded { "degraded" } else { "ok" },
        uptime_s: state.started_at.elapsed().as_secs(),
        database: DatabaseHealth {
            backend: state.store.backend(),
            ok: ping.is_ok(),
            latency_ms: ping.as_ref().ok().map(|d| (d.as_secs_f64() * 1e5).round() / 100.0),
        },
        totals: totals.as_ref().map(|t| Totals {
            events: t.events,
            pending: count(DeliveryStatus::Pending),
            succeeded: count(DeliveryStatus::Succeeded),
            failed: count(DeliveryStatus::Failed),
            attempts: t.attempts,
        }),
        webhooks,
        servers,
    };
    Ok(HttpResponse::Ok().json(body))
}

/// Prometheus text format. Queue depths are counted in the database at scrape time.
pub async fn metrics(req: actix_web::HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    // With several servers, each shows the queues of the webhooks it owns.
    let running = match &state.coordinator {
        Some(_) => state.registry.send(RunningWebhooks).await.ok(),
        None => None,
    };
    match state.store.queue_depths().await {
        Ok(depths) => state
            .metrics
            .set_queue_depths(depths.into_iter().filter(|(id, _)| running.as_ref().is_none_or(|r| r.contains(id)))),
        Err(error) => log::warn!("metrics: could not count pending deliveries: {error}"),
    }
    // OpenMetrics only for a scraper that asks for it; the text format 0.0.4 for the rest.
    let openmetrics = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if openmetrics {
        HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(state.metrics.render_openmetrics())
    } else {
        HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render_text())
    }
}

/// `GET /`: what this is and where to go, for a person who opens the server's address: a
/// page of links for a browser, the same as JSON for anything else.
pub async fn index(req: actix_web::HttpRequest) -> HttpResponse {
    // Mounted under an app's own scope, the links keep that scope's prefix.
    let base = req.path().trim_end_matches('/');
    let index = IndexObject {
        service: "hookbus",
        version: env!("CARGO_PKG_VERSION"),
        dashboard: format!("{base}/dashboard"),
        health: format!("{base}/health"),
        metrics: format!("{base}/metrics"),
        api: format!("{base}/api/v1"),
        openapi: format!("{base}/api/v1/openapi.json"),
    };
    let wants_html = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return HttpResponse::Ok().json(index);
    }
    let link = |href: &str, text: &str| format!("<li><a href=\"{}\">{text}</a></li>", escape_html(href));
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hookbus</title></head><body>\
         <h1>hookbus {}</h1><p>Webhook delivery server.</p><ul>{}{}{}{}</ul></body></html>",
        index.version,
        link(&index.dashboard, "Dashboard: endpoints, deliveries, redelivery"),
        link(&index.health, "Health check"),
        link(&index.metrics, "Prometheus metrics"),
        link(&index.openapi, "Admin API (OpenAPI document)"),
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CONTENT_SECURITY_POLICY, "default-src 'none'"))
        .body(page)
}

/// The request path goes into the page's links: escaped, so it stays text.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
