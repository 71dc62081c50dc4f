//! The actors and who talks to whom:
//!
//! ```text
//!   HTTP routes / embedding app
//!      │ RegisterWebhook, UpdateWebhook, …          │ publish (any thread)
//!      ▼                                            ▼
//!   Registry ── owns the webhooks ──▶ Publisher: matches against the shared routes
//!      │ starts/stops, WebhookChanged               │ Writer::write (publish), then
//!      │ ◀── DisableWebhook, DeliveryFailed ──┐     │ DeliveryEnqueued to each endpoint
//!      ▼                                      │     ▼
//!   EndpointActor (one per enabled webhook) ──┘  awc POST, signed with ring ──▶ receiver
//!      │ AttemptRecorder: records, batched per turn of the thread
//!      ▼
//!   Writer ──▶ Persistence (its own thread): group commit ──▶ Store (SQLite / PostgreSQL)
//!                                                            ◀── Janitor (retention, in batches)
//!
//!   Coordinator (PostgreSQL only: several servers may share the database)
//!      │ heartbeat, lease renewals and claims ──▶ Store
//!      │ TakeLeases, DropLeases, HandOver ──▶ Registry (which endpoints run here)
//!      │ listener: NOTIFY ──▶ RefreshWebhooks, DeliveriesNoticed ──▶ Registry
//! ```

pub mod coordinator;
pub mod endpoint;
pub mod janitor;
pub mod persistence;
pub mod registry;
