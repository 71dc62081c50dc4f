//! `hookbus listen`: a receiver on this machine for people building their endpoint. It
//! prints each delivery, checks both signatures and the timestamp as a receiver should, and
//! can pass the delivery on to the endpoint being built (`--forward-to`), answering hookbus
//! with that endpoint's answer, so retries and the circuit see what it did.

use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Args;
use serde_json::json;

use hookbus::domain::signature::{check_signatures, SignatureCheck};
use hookbus::domain::WebhookSecret;

#[derive(Args)]
pub struct ListenArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The webhook's signing secret (`hookbus webhooks create` printed it).
    #[arg(long, env = "HOOKBUS_LISTEN_SECRET", hide_env_values = true)]
    secret: String,
    /// Pass each delivery on to this URL and answer with its answer.
    #[arg(long, value_name = "URL")]
    forward_to: Option<url::Url>,
    /// One JSON object per delivery instead of text.
    #[arg(long)]
    json: bool,
}

struct Listener {
    secret: WebhookSecret,
    forward_to: Option<url::Url>,
    json: bool,
}

/// Headers hookbus sends that the endpoint being built needs to see too.
const FORWARDED_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-webhook-event",
    "x-webhook-delivery",
    "x-webhook-attempt",
    "x-webhook-signature",
];

pub async fn listen(args: ListenArgs) -> Result<(), Box<dyn std::error::Error>> {
    let secret = WebhookSecret::parse("--secret", &args.secret)?;
    let listener = web::Data::new(Listener { secret, forward_to: args.forward_to.clone(), json: args.json });
    let server = HttpServer::new(move || {
        // awc's client belongs to one thread: one per worker.
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).disable_redirects().finish();
        App::new()
            .app_data(listener.clone())
            .app_data(web::Data::new(client))
            .app_data(web::PayloadConfig::new(4 << 20))
            .default_service(web::to(receive))
    })
    .workers(1)
    .bind((args.host.as_str(), args.port))?;
    let address = server.addrs().first().map(ToString::to_string).unwrap_or_default();
    eprintln!("listening on http://{address}/ — point a webhook here; Ctrl-C stops");
    if let Some(target) = &args.forward_to {
        eprintln!("forwarding each delivery to {target}");
    }
    server.run().await?;
    Ok(())
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    listener: web::Data<Listener>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let now = chrono::Utc::now().timestamp();
    let check = check_signatures(
        &listener.secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        header("x-webhook-signature"),
        &body,
        now,
    );
    let (event, delivery, attempt) = (header("x-webhook-event"), header("webhook-id"), header("x-webhook-attempt"));
    let forwarded = match &listener.forward_to {
        Some(target) => Some(forward(&client, target, &req, &body).await),
        None => None,
    };
    if listener.json {
        let line = json!({
            "event": event,
            "delivery_id": delivery,
            "attempt": attempt.parse::<u32>().ok(),
            "signature_valid": check.standard,
            "hex_signature_valid": check.hex,
            "timestamp_fresh": check.fresh,
            "body": String::from_utf8_lossy(&body),
            "forwarded_status": forwarded.as_ref().map(|f| f.as_ref().map(|(status, _)| *status).ok()),
        });
        println!("{line}");
    } else {
        println!("{event}  delivery {delivery}  attempt {attempt}  {}", verdict(check));
        println!("  {}", String::from_utf8_lossy(&body));
        match &forwarded {
            Some(Ok((status, _))) => println!("  forwarded: {status}"),
            Some(Err(error)) => println!("  forwarding failed: {error}"),
            None => {}
        }
    }
    match forwarded {
        Some(Ok((status, answer))) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
        )
        .body(answer),
        Some(Err(error)) => HttpResponse::BadGateway().body(error),
        None if check.standard && check.hex && check.fresh => HttpResponse::Ok().body("ok"),
        None => HttpResponse::Unauthorized().body(verdict(check)),
    }
}

/// What a person reads about a delivery's signatures.
fn verdict(check: SignatureCheck) -> String {
    let ok = |good: bool| if good { "valid" } else { "INVALID" };
    format!(
        "webhook-signature {}, X-Webhook-Signature {}, timestamp {}",
        ok(check.standard),
        ok(check.hex),
        if check.fresh { "fresh" } else { "STALE (over 5 minutes off)" }
    )
}

/// The delivery as received, to `target`: its status and (the first 64 KiB of) its body.
async fn forward(
    client: &awc::Client,
    target: &url::Url,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<(u16, web::Bytes), String> {
    let mut request = client.post(target.as_str());
    for name in FORWARDED_HEADERS {
        if let Some(value) = req.headers().get(*name) {
            request = request.insert_header((*name, value.clone()));
        }
    }
    let mut response = request.send_body(body.clone()).await.map_err(|e| format!("{target}: {e}"))?;
    let answer = response.body().limit(64 << 10).await.map_err(|e| format!("{target}: {e}"))?;
    Ok((response.status().as_u16(), answer))
}
