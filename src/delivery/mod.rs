//! Outbound HTTP: the shared `awc` client, the budget of connections, the resolver, and
//! one signed attempt of a delivery.

mod budget;
mod resolve;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use actix_tls::connect::Resolve;
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;

pub use self::budget::{ConnectionBudget, ConnectionSlot};
use self::resolve::{guard_host, public_addresses, Addresses};
pub use self::resolve::{resolves_to_internal, DnsResolver, Resolver};
pub use self::tls::{TrustError, TrustedRoots};
use crate::domain::retry::parse_retry_after;
use crate::domain::signature::{hex_signature, standard_signature_header};
use crate::domain::webhook::Webhook;
use crate::domain::{AttemptOutcome, AttemptResult, DeliveryId, EventType, WebhookSecret, WebhookUrl};

/// How much of a response body is kept.
pub const RESPONSE_BODY_LIMIT: usize = 1024;

const USER_AGENT_VALUE: &str = concat!("hookbus/", env!("CARGO_PKG_VERSION"));

/// The resolver's error for a host with no address the guard allows; found again by type
/// in [`classify_send_error`].
#[derive(Debug, thiserror::Error)]
#[error("{}", crate::domain::BLOCKED_TARGET)]
struct BlockedTarget;

/// Looks host names up and keeps only public addresses, so a name that resolves (or
/// re-resolves, as in DNS rebinding) to an internal address is never connected to.
struct GuardedResolver(Resolver);

impl Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(async move {
            match guard_host(host, port) {
                Addresses::Blocked => Err(BlockedTarget.into()),
                Addresses::Literal(address) => Ok(vec![address]),
                Addresses::Lookup => {
                    let resolved = self.0.lookup(host.to_owned(), port).await?;
                    public_addresses(resolved).ok_or_else(|| BlockedTarget.into())
                }
            }
        })
    }
}

/// Looks host names up through the configured resolver, guard off.
struct PlainResolver(Resolver);

impl Resolve for PlainResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(async move { Ok(self.0.lookup(host.to_owned(), port).await?) })
    }
}

/// How outbound connections are bounded: see [`ConnectionBudget`].
#[derive(Debug, Clone, Copy)]
pub struct OutboundLimits {
    pub shared: usize,
    pub per_workspace: usize,
}

/// Everything outbound: the `awc` client (pooled keep-alive connections, redirects never
/// followed: a 3xx is a failure), the budget of attempts in flight and whether the target
/// guard is on.
#[derive(Clone)]
pub struct Outbound {
    client: awc::Client,
    budget: ConnectionBudget,
    guard: bool,
}

impl Outbound {
    pub fn new(guard: bool, resolver: Resolver, limits: OutboundLimits, trust: &TrustedRoots) -> Self {
        let resolver = if guard {
            actix_tls::connect::Resolver::custom(GuardedResolver(resolver))
        } else {
            actix_tls::connect::Resolver::custom(PlainResolver(resolver))
        };
        let connector = awc::Connector::new()
            .connector(actix_tls::connect::Connector::new(resolver).service())
            .rustls_0_23(trust.client_config())
            .timeout(Duration::from_secs(30))
            // No limit of the client's own: the budget bounds connections, fairly, and a
            // second, first-come limit behind it would let one webhook starve the others.
            .limit(0)
            .conn_keep_alive(Duration::from_secs(30));
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            // Our own deadline (per webhook) wraps each attempt, so the client's is off.
            .disable_timeout()
            .finish();
        Self { client, budget: ConnectionBudget::new(limits.shared, limits.per_workspace), guard }
    }

    /// Waits for the right to open one more connection for `webhook`: an attempt holds it
    /// while in flight.
    pub async fn connection_slot(&self, webhook: &Webhook) -> ConnectionSlot {
        self.budget.acquire(webhook.workspace_id, webhook.id).await
    }

    /// One attempt of a delivery to `webhook`, signed and sent, as the endpoint and
    /// `POST …/test` make it, on a connection `_slot` of the budget.
    pub async fn attempt(&self, _slot: &ConnectionSlot, webhook: &Webhook, delivery: &DeliveryRef<'_>) -> SentAttempt {
        let started_at = crate::domain::now();
        let request = AttemptRequest {
            url: &webhook.url,
            delivery_id: delivery.id,
            event: delivery.event,
            attempt: delivery.attempt,
            body: delivery.body.clone(),
            secrets: webhook.signing_secrets(started_at),
            headers: &webhook.headers,
            timeout: webhook.settings.timeout(),
        };
        SentAttempt { started_at, outcome: self.send(request).await }
    }

    /// Sends one attempt, unless the guard refuses its address.
    async fn send(&self, request: AttemptRequest<'_>) -> AttemptOutcome {
        // An IP literal is never resolved, so the resolver cannot check it: do it here.
        if self.guard && request.url.is_internal() {
            return AttemptOutcome { result: AttemptResult::Blocked, duration: Duration::ZERO };
        }
        send_attempt(&self.client, request).await
    }
}

/// What a request that got no answer ran into.
fn classify_send_error(error: awc::error::SendRequestError) -> AttemptResult {
    use awc::error::{ConnectError, SendRequestError};
    if let SendRequestError::Connect(ConnectError::Resolver(cause)) = &error {
        if cause.is::<BlockedTarget>() {
            return AttemptResult::Blocked;
        }
    }
    match tls::handshake_failure(&error) {
        Some(reason) => AttemptResult::Tls(reason),
        None => AttemptResult::Connection(error.to_string()),
    }
}

/// Which delivery an attempt is for, and the body it sends.
pub struct DeliveryRef<'a> {
    pub id: DeliveryId,
    pub event: &'a EventType,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    pub body: Bytes,
}

/// An attempt that was made: when it started and how it ended.
pub struct SentAttempt {
    pub started_at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
}

/// Everything one request needs.
struct AttemptRequest<'a> {
    url: &'a WebhookUrl,
    delivery_id: DeliveryId,
    event: &'a EventType,
    attempt: u32,
    body: Bytes,
    /// Current secret first, then the previous one during a rotation.
    secrets: Vec<&'a WebhookSecret>,
    headers: &'a BTreeMap<String, String>,
    timeout: Duration,
}

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const X_WEBHOOK_EVENT: HeaderName = HeaderName::from_static("x-webhook-event");
const X_WEBHOOK_DELIVERY: HeaderName = HeaderName::from_static("x-webhook-delivery");
const X_WEBHOOK_ATTEMPT: HeaderName = HeaderName::from_static("x-webhook-attempt");
const X_WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("x-webhook-signature");

/// A header value that takes over `value`'s buffer. Callers pass only what this module
/// generated: a UUID or a signature in base64 or hex, all visible ASCII.
fn shared_value(value: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(value)).expect("UUIDs and signatures are visible ASCII")
}

/// Sends one signed POST and classifies what came back. Never panics, never errors:
/// every way an attempt can end is an [`AttemptOutcome`].
async fn send_attempt(client: &awc::Client, request: AttemptRequest<'_>) -> AttemptOutcome {
    let started = Instant::now();
    let timestamp = Utc::now().timestamp();
    let msg_id = request.delivery_id.to_string();
    let standard_signature = standard_signature_header(&request.secrets, &msg_id, timestamp, &request.body);
    let hex_signature = hex_signature(request.secrets[0], &request.body);
    // Names are static and lowercase and values are built once and shared, so no header is
    // parsed or copied again: this runs for every attempt.
    let msg_id = shared_value(msg_id);
    let mut builder = client
        .post(request.url.as_str())
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE)))
        .insert_header((WEBHOOK_ID, msg_id.clone()))
        .insert_header((WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp)))
        .insert_header((WEBHOOK_SIGNATURE, shared_value(standard_signature)))
        .insert_header((X_WEBHOOK_DELIVERY, msg_id))
        .insert_header((X_WEBHOOK_ATTEMPT, HeaderValue::from(request.attempt)))
        .insert_header((X_WEBHOOK_SIGNATURE, shared_value(hex_signature)));
    // Validated when parsed, but read back from storage: never trusted not to panic.
    if let Ok(event) = HeaderValue::from_str(request.event.as_str()) {
        builder = builder.insert_header((X_WEBHOOK_EVENT, event));
    }
    for (name, value) in request.headers {
        // Validated at registration; a bad pair here would only be skipped.
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            builder = builder.insert_header((name, value));
        }
    }
    let exchange = async {
        let mut response = builder.send_body(request.body).await.map_err(classify_send_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .filter(|_| status == 429 || status == 503)
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut kept = Vec::new();
        while kept.len() < RESPONSE_BODY_LIMIT {
            match response.next().await {
                Some(Ok(chunk)) => kept.extend_from_slice(&chunk),
                // A broken body after the status line does not change the status.
                Some(Err(_)) | None => break,
            }
        }
        kept.truncate(RESPONSE_BODY_LIMIT);
        // PostgreSQL text cannot hold NUL; a receiver's NUL would make the record unwritable.
        let body = String::from_utf8_lossy(&kept).replace('\0', "\u{FFFD}");
        Ok::<_, AttemptResult>((status, retry_after, body))
    };
    let result = actix_rt::time::timeout(request.timeout, exchange).await;
    let duration = started.elapsed();
    let result = match result {
        Ok(Ok((status, retry_after, body))) => AttemptResult::Answered { status, body, retry_after },
        Ok(Err(failed)) => failed,
        Err(_) => AttemptResult::TimedOut(request.timeout),
    };
    AttemptOutcome { result, duration }
}
