//! `/dashboard`: a page served from the binary (no CDN, no build step), a client of the admin
//! API. Its headers allow scripts and styles from this server only, so text a receiver or
//! publisher wrote can never run as script even if it reached the page as markup.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// No inline script or style, nothing from elsewhere, no framing, no form posts; the page
/// talks to this server's API only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // Assets change with the binary; a browser asks again rather than keep an old one.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// `GET /dashboard`
pub async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /dashboard/`: the page's relative asset links need the address without the slash.
pub async fn without_slash(req: HttpRequest) -> HttpResponse {
    let target = req.path().trim_end_matches('/').to_owned();
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, target)).finish()
}

/// `GET /dashboard/app.js`
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /dashboard/app.css`
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}
