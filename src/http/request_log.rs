//! One log line per request: method, path, status and duration, never headers (the
//! Authorization header), query strings or bodies. Management calls log at INFO; publishes,
//! probes, dashboards and scrapes at DEBUG, so load does not flood the log.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use log::Level;

const TARGET: &str = "hookbus::requests";

/// The level a request is logged at.
fn level(method: &Method, path: &str) -> Level {
    let publish = method == Method::POST && path.ends_with("/api/v1/events");
    let polled = method == Method::GET && (path.ends_with("/health") || path.ends_with("/metrics"));
    if publish || polled {
        Level::Debug
    } else {
        Level::Info
    }
}

pub async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let level = level(req.method(), req.path());
    // The publish path pays one level check when its line is not wanted.
    if !log::log_enabled!(target: TARGET, level) {
        return next.call(req).await;
    }
    let (method, path, started) = (req.method().clone(), req.path().to_owned(), Instant::now());
    let response = next.call(req).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    log::log!(target: TARGET, level, "{method} {path} {} {ms:.1} ms", response.status().as_u16());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_calls_are_info_and_traffic_is_debug() {
        assert_eq!(level(&Method::POST, "/api/v1/webhooks"), Level::Info);
        assert_eq!(level(&Method::DELETE, "/admin/api/v1/webhooks/x"), Level::Info);
        assert_eq!(level(&Method::POST, "/api/v1/events"), Level::Debug);
        assert_eq!(level(&Method::GET, "/health"), Level::Debug);
        assert_eq!(level(&Method::GET, "/api/v1/health"), Level::Debug);
        assert_eq!(level(&Method::GET, "/metrics"), Level::Debug);
    }
}
