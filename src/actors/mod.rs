//! The actors and who talks to whom:
//!
//! ```text
//!   HTTP routes / embedding app
//!            │  RegisterWebhook, UpdateWebhook, Publish, …
//!            ▼
//!        Registry ──── DeliveryEnqueued, WebhookChanged ───▶ EndpointActor (one per enabled webhook)
//!            │   ◀──────────── DisableWebhook ────────────────────│        │ awc POST, signed with ring
//!            │ PersistWrite (publish)                             │        ▼
//!            ▼                                                    │     receiver
//!       Persistence ◀──────── RecordAttempts (batched) ───────────┘
//!            │ group commit
//!            ▼
//!          Store (SQLite / PostgreSQL) ◀── Janitor (retention, in batches)
//! ```

pub mod endpoint;
pub mod janitor;
pub mod persistence;
pub mod registry;
