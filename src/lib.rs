//! # hookbus — webhook delivery as an actor-based event bus
//!
//! Applications publish events; hookbus signs each with HMAC-SHA256 and POSTs it to every
//! webhook that subscribed, retries failures with exponential backoff, and records every
//! attempt. It runs as a server (`hookbus serve`) or inside any actix application.
//!
//! ## Map
//!
//! - [`domain`]: pure rules — ids, [`domain::WebhookUrl`], [`domain::EventPattern`],
//!   secrets and signatures, the envelope, [`domain::RetryPolicy`]. No I/O.
//! - [`actors`]: [`Registry`] (webhook configs, fan-out), one
//!   [`actors::endpoint::EndpointActor`] per enabled webhook (queue window, in-flight limit,
//!   retry timers, sends), [`actors::persistence::Persistence`] (group commit).
//! - [`delivery`]: the `awc` client and one signed attempt.
//! - [`store`]: diesel / diesel-async over SQLite or PostgreSQL.
//! - [`http`]: the admin API; [`error`] maps every failure to the SPEC error body once.
//! - [`bus`]: [`Hookbus`], the system started in-process; [`server`]: the HTTP server.
//!
//! ## Embedding
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use actix_web::{web, App};
//! use serde_json::json;
//!
//! let bus = hookbus::Hookbus::start(hookbus::Config::sqlite("app.db")).await?;
//! let registry = bus.registry();
//! let workspace = hookbus::WorkspaceId::DEFAULT;
//! registry.send(hookbus::Publish::new(workspace, "artifact.completed", json!({"id": 1}))).await??;
//! let routes = bus.admin_routes();
//! let app = App::new().service(web::scope("/webhooks-admin").configure(routes));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

#[doc(hidden)]
pub mod actors;
pub mod bus;
pub mod config;
#[doc(hidden)]
pub mod delivery;
#[doc(hidden)]
pub mod domain;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod files;
#[doc(hidden)]
pub mod http;
#[doc(hidden)]
pub mod metrics;
pub mod server;
#[doc(hidden)]
pub mod store;

// The embedding surface: everything an application needs to run hookbus inside itself.
pub use actors::registry::{
    DeleteWebhook, GetWebhook, HealthSnapshot, ListWebhooks, Publish, PublishInFlight, Published, Publisher, Redeliver,
    RegisterWebhook, Registry, RegistryError, ReplayDeliveries, RotateSecret, RotatedSecret, StartPublish, StartReplay,
    TestResult, TestWebhook, UpdateWebhook, WebhookHealth,
};
pub use bus::{Hookbus, StartError};
pub use config::Config;
pub use delivery::{DnsResolver, Resolver};
pub use domain::webhook::{DeliverySettings, DisabledReason, Webhook, WebhookInput, WebhookPatch};
pub use domain::{DeliveryId, DeliveryStatus, EventId, EventType, Page, WebhookId, WorkspaceId};
pub use server::Application;
pub use store::DeliveryRecord;
