//! The listening connection: `LISTEN` on hookbus' channels, each notification turned into a
//! message. A connection of its own (pooled ones are shared and recycled); when it fails it
//! is opened again, and what may have been missed meanwhile is looked up.

use std::pin::pin;
use std::time::Duration;

use actix::Addr;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::{FutureExt, StreamExt};

use super::{Coordinator, TickNow};
use crate::actors::registry::{CloseCircuit, DeliveriesNoticed, RefreshWebhooks, Registry, SweepEndpoints};
use crate::store::cluster::{channel, Announcements};

/// How long the connection may stay silent before it is checked with a query.
const IDLE_CHECK: Duration = Duration::from_secs(5);
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Most notifications handled together.
const MAX_BATCH: usize = 256;

pub(super) fn spawn(url: String, registry: Addr<Registry>, coordinator: Addr<Coordinator>) {
    actix_rt::spawn(async move {
        let mut reconnecting = false;
        loop {
            match listen(&url, &registry, &coordinator, reconnecting).await {
                Ok(()) => return,
                Err(error) => log::warn!("cluster: the listening connection failed ({error}); reconnecting"),
            }
            reconnecting = true;
            actix_rt::time::sleep(RECONNECT_DELAY).await;
            if !registry.connected() {
                return;
            }
        }
    });
}

/// Listens until the connection fails (`Err`) or the registry is gone (`Ok`).
async fn listen(
    url: &str,
    registry: &Addr<Registry>,
    coordinator: &Addr<Coordinator>,
    reconnecting: bool,
) -> Result<(), diesel::result::Error> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
    let channels = [channel::CONFIG, channel::DELIVERIES, channel::LEASES, channel::CIRCUIT];
    let listen = channels.iter().map(|c| format!("LISTEN {c};")).collect::<String>();
    conn.batch_execute(&listen).await?;
    // Changes made while nobody listened: read them now.
    registry.do_send(RefreshWebhooks { newer_than: None });
    coordinator.do_send(TickNow);
    if reconnecting {
        registry.do_send(SweepEndpoints { catch_up: true });
    }
    loop {
        let next = {
            let mut notifications = pin!(conn.notifications_stream());
            match actix_rt::time::timeout(IDLE_CHECK, notifications.next()).await {
                // Whatever else has arrived goes with it: one read of the database for a
                // burst of other servers' publishes.
                Ok(Some(first)) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match notifications.next().now_or_never() {
                            Some(Some(more)) => batch.push(more),
                            _ => break,
                        }
                    }
                    Ok(Some(batch))
                }
                Ok(None) => Ok(None),
                Err(idle) => Err(idle),
            }
        };
        match next {
            Ok(Some(batch)) => {
                let (mut announced, mut config, mut leases) = (Announcements::default(), None, false);
                for notification in batch {
                    let notification = notification?;
                    match notification.channel.as_str() {
                        channel::CONFIG => {
                            let version = notification.payload.parse::<i64>().unwrap_or(i64::MAX);
                            config = config.max(Some(version));
                        }
                        channel::DELIVERIES => announced.add(&notification.payload),
                        channel::LEASES => leases = true,
                        channel::CIRCUIT => {
                            if let Ok(webhook_id) = notification.payload.parse() {
                                registry.do_send(CloseCircuit(webhook_id));
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(version) = config {
                    registry.do_send(RefreshWebhooks { newer_than: Some(version.saturating_sub(1)) });
                }
                if !announced.is_empty() {
                    registry.do_send(DeliveriesNoticed(announced));
                }
                // A new or re-enabled webhook needs an owner; released leases want claiming.
                if config.is_some() || leases {
                    coordinator.do_send(TickNow);
                }
            }
            Ok(None) => return Err(diesel::result::Error::BrokenTransactionManager),
            Err(_idle) => {
                if !registry.connected() {
                    return Ok(());
                }
                actix_rt::time::timeout(IDLE_CHECK, conn.batch_execute("SELECT 1"))
                    .await
                    .map_err(|_| diesel::result::Error::QueryBuilderError("no answer".into()))??;
            }
        }
    }
}
