//! Webhook rows. The registry keeps every webhook in memory; the store is its durable copy.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::records::parse_id;
use super::schema::{deliveries, webhooks};
use super::{from_millis, to_millis, with_conn, Store, StoreError, StoreResult};
use crate::domain::webhook::{DeliverySettings, DisabledReason, PreviousSecret, Webhook};
use crate::domain::{DeliveryStatus, EventPattern, FailureReason, WebhookId, WebhookSecret, WebhookUrl};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhooks, treat_none_as_null = true)]
struct WebhookRow {
    id: String,
    workspace_id: String,
    name: String,
    url: String,
    events: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<i64>,
    enabled: bool,
    disabled_reason: Option<String>,
    timeout_ms: i32,
    max_retries: i32,
    backoff_base_ms: i32,
    max_in_flight: i32,
    rate_limit_per_sec: Option<i32>,
    headers: String,
    created_at: i64,
    updated_at: i64,
}

impl WebhookRow {
    fn new(w: &Webhook, store: &Store) -> Self {
        let patterns: Vec<String> = w.events.iter().map(ToString::to_string).collect();
        Self {
            id: w.id.to_string(),
            workspace_id: w.workspace_id.to_string(),
            name: w.name.clone(),
            url: w.url.to_string(),
            events: serde_json::to_string(&patterns).expect("strings serialize"),
            secret: store.seal(w.secret.expose()),
            previous_secret: w.previous_secret.as_ref().map(|p| store.seal(p.secret.expose())),
            previous_secret_until: w.previous_secret.as_ref().map(|p| to_millis(p.valid_until)),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.map(|r| r.as_str().to_owned()),
            timeout_ms: w.settings.timeout_ms as i32,
            max_retries: w.settings.max_retries as i32,
            backoff_base_ms: w.settings.backoff_base_ms as i32,
            max_in_flight: w.settings.max_in_flight as i32,
            rate_limit_per_sec: w.settings.rate_limit_per_sec.map(|v| v as i32),
            headers: serde_json::to_string(&w.headers).expect("strings serialize"),
            created_at: to_millis(w.created_at),
            updated_at: to_millis(w.updated_at),
        }
    }
}

impl WebhookRow {
    fn into_webhook(self, store: &Store) -> Result<Webhook, StoreError> {
        let r = self;
        let corrupt = |what: &str| StoreError::Corrupt(format!("webhook {}: {what}", r.id));
        let patterns: Vec<String> = serde_json::from_str(&r.events).map_err(|_| corrupt("events"))?;
        let events = patterns
            .iter()
            .map(|p| EventPattern::parse("events", p))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("events"))?;
        let headers: BTreeMap<String, String> = serde_json::from_str(&r.headers).map_err(|_| corrupt("headers"))?;
        let previous_secret = match (r.previous_secret, r.previous_secret_until) {
            (Some(secret), Some(until)) => Some(PreviousSecret {
                secret: WebhookSecret::from_stored(store.unseal(&secret)?),
                valid_until: from_millis(until),
            }),
            _ => None,
        };
        Ok(Webhook {
            id: parse_id(&r.id)?,
            workspace_id: parse_id(&r.workspace_id)?,
            url: WebhookUrl::from_stored(&r.url).map_err(|_| corrupt("url"))?,
            name: r.name,
            events,
            secret: WebhookSecret::from_stored(store.unseal(&r.secret)?),
            previous_secret,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason.as_deref().and_then(DisabledReason::parse),
            settings: DeliverySettings {
                timeout_ms: r.timeout_ms.max(0) as u32,
                max_retries: r.max_retries.max(0) as u32,
                backoff_base_ms: r.backoff_base_ms.max(0) as u32,
                max_in_flight: r.max_in_flight.max(1) as u32,
                rate_limit_per_sec: r.rate_limit_per_sec.map(|v| v.max(1) as u32),
            },
            headers,
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        })
    }
}

impl Store {
    /// Every webhook of every workspace, for the registry at start-up.
    pub async fn load_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let rows: Vec<WebhookRow> = with_conn!(self, |conn| {
            webhooks::table.select(WebhookRow::as_select()).order(webhooks::id).load(conn).await?
        });
        rows.into_iter().map(|row| row.into_webhook(self)).collect()
    }

    pub async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let row = WebhookRow::new(webhook, self);
        with_conn!(self, |conn| diesel::insert_into(webhooks::table).values(&row).execute(conn).await?);
        Ok(())
    }

    /// Inserts a webhook unless its workspace already has `limit`; false if it has. The
    /// workspace's row is written first (changing nothing), so creations in one workspace
    /// take turns: through several servers at once, each counts the others' webhooks.
    pub async fn insert_webhook_if_room(&self, webhook: &Webhook, limit: usize) -> StoreResult<bool> {
        use super::schema::workspaces;
        let row = WebhookRow::new(webhook, self);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let inserted = with_conn!(self, |conn| {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                diesel::update(workspaces::table.find(&row.workspace_id))
                    .set(workspaces::name.eq(workspaces::name))
                    .execute(conn)
                    .await?;
                let registered: i64 = webhooks::table
                    .filter(webhooks::workspace_id.eq(&row.workspace_id))
                    .count()
                    .get_result(conn)
                    .await?;
                if registered >= limit {
                    return Ok(false);
                }
                diesel::insert_into(webhooks::table).values(&row).execute(conn).await?;
                Ok(true)
            })
            .await?
        });
        Ok(inserted)
    }

    pub async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let row = WebhookRow::new(webhook, self);
        with_conn!(self, |conn| diesel::update(webhooks::table.find(&row.id)).set(&row).execute(conn).await?);
        Ok(())
    }

    /// Deletes a webhook and cancels its pending deliveries; returns how many were cancelled.
    pub async fn delete_webhook(&self, id: WebhookId, now: chrono::DateTime<chrono::Utc>) -> StoreResult<usize> {
        let id = id.to_string();
        let now = to_millis(now);
        let cancelled = with_conn!(self, |conn| {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                let cancelled = diesel::update(
                    deliveries::table
                        .filter(deliveries::webhook_id.eq(&id))
                        .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str())),
                )
                .set((
                    deliveries::status.eq(DeliveryStatus::Cancelled.as_str()),
                    deliveries::next_attempt_at.eq(None::<i64>),
                    deliveries::completed_at.eq(Some(now)),
                    deliveries::failure_reason.eq(Some(FailureReason::WebhookDeleted.to_string())),
                ))
                .execute(conn)
                .await?;
                diesel::delete(webhooks::table.find(&id)).execute(conn).await?;
                Ok(cancelled)
            })
            .await?
        });
        Ok(cancelled)
    }
}
