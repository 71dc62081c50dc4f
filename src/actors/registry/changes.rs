//! Webhook changes: register, update, disable, delete and rotate. Each is atomic (the
//! registry waits for its database write before its next message); the DNS check of a new
//! target runs before that, outside the atomic part.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::messages::{ApplyUpdate, InsertWebhook};
use super::operational::WebhookDisabledEvent;
use super::*;

impl Registry {
    /// The registry's own count; the database counts again as it inserts (other servers
    /// may be creating webhooks in the same workspace).
    fn check_room(&self, workspace_id: WorkspaceId) -> Result<(), RegistryError> {
        let registered = self.by_workspace.get(&workspace_id).map_or(0, BTreeSet::len);
        if registered >= self.settings.max_webhooks_per_workspace {
            return Err(workspace_full(self.settings.max_webhooks_per_workspace));
        }
        Ok(())
    }

    /// The registration half of the target guard: a host name that resolves to an internal
    /// address is refused (the connect-time half re-checks every connection). Runs outside
    /// the atomic part, within `registration_dns_timeout`.
    fn dns_check(&self) -> impl Fn(&WebhookUrl) -> futures_util::future::BoxFuture<'static, Result<(), RegistryError>> {
        let guard = !self.settings.url_policy.allow_private;
        let (resolver, deadline) = (self.settings.resolver.clone(), self.settings.registration_dns_timeout);
        move |url| {
            let (resolver, url) = (resolver.clone(), url.clone());
            Box::pin(async move {
                if guard && crate::delivery::resolves_to_internal(&resolver, &url, deadline).await {
                    let message = "resolves to a private, loopback or otherwise internal address";
                    return Err(ValidationError::new("url", message).into());
                }
                Ok(())
            })
        }
    }
}

fn workspace_full(limit: usize) -> RegistryError {
    ValidationError::new("webhooks", format!("the workspace already has the maximum of {limit}")).into()
}

impl Handler<RegisterWebhook> for Registry {
    type Result = ResponseFuture<Result<Arc<Webhook>, RegistryError>>;

    fn handle(&mut self, msg: RegisterWebhook, ctx: &mut Context<Self>) -> Self::Result {
        let webhook = self.check_room(msg.workspace_id).and_then(|()| {
            Ok(Webhook::create(msg.workspace_id, msg.input, self.settings.url_policy, crate::domain::now())?)
        });
        let webhook = match webhook {
            Ok(webhook) => Arc::new(webhook),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let (dns_check, registry) = (self.dns_check(), ctx.address());
        Box::pin(async move {
            dns_check(&webhook.url).await?;
            registry.send(InsertWebhook { webhook }).await?
        })
    }
}

impl Handler<InsertWebhook> for Registry {
    type Result = AtomicResponse<Self, Result<Arc<Webhook>, RegistryError>>;

    fn handle(&mut self, msg: InsertWebhook, _: &mut Context<Self>) -> Self::Result {
        // Checked again: other registrations may have filled the workspace meanwhile.
        if let Err(full) = self.check_room(msg.webhook.workspace_id) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(full))));
        }
        let (store, webhook) = (self.store.clone(), msg.webhook);
        let (written, claimant) = (webhook.clone(), self.ownership.claimant());
        let limit = self.settings.max_webhooks_per_workspace;
        let register = async move {
            if !store.insert_webhook_if_room(&written, limit).await? {
                return Err(workspace_full(limit));
            }
            // Several servers: this one owns what it creates from the start, so the first
            // deliveries published through it go straight to its endpoint, in order.
            let Some((server_id, ttl)) = claimant else { return Ok(None) };
            let sent_at = Instant::now();
            match store.claim_lease(&server_id, ttl, written.id).await {
                Ok(claimed) => Ok(claimed.map(|lease| (lease, sent_at))),
                Err(error) => {
                    log::warn!("webhook {}: could not claim its lease (the coordinator will): {error}", written.id);
                    Ok(None)
                }
            }
        };
        AtomicResponse::new(Box::pin(register.into_actor(self).map(
            move |result: Result<_, RegistryError>, act, ctx| {
                if let Some((lease, sent_at)) = result? {
                    act.ownership.take_claimed(lease, sent_at);
                }
                log::info!("webhook {} created in workspace {}", webhook.id, webhook.workspace_id);
                act.idle.insert(webhook.id);
                act.apply(webhook.clone(), ctx);
                Ok(webhook)
            },
        )))
    }
}

impl Handler<UpdateWebhook> for Registry {
    type Result = ResponseFuture<Result<Arc<Webhook>, RegistryError>>;

    fn handle(&mut self, msg: UpdateWebhook, ctx: &mut Context<Self>) -> Self::Result {
        // Only a new target needs a lookup; its URL is judged whole in the atomic part.
        let new_url = match (&msg.patch.url, self.find(msg.workspace_id, msg.webhook_id)) {
            (_, Err(e)) => return Box::pin(std::future::ready(Err(e))),
            (Some(raw), Ok(before)) => {
                WebhookUrl::parse("url", raw, self.settings.url_policy).ok().filter(|url| *url != before.url)
            }
            (None, Ok(_)) => None,
        };
        let (dns_check, registry) = (self.dns_check(), ctx.address());
        Box::pin(async move {
            if let Some(url) = new_url {
                dns_check(&url).await?;
            }
            registry.send(ApplyUpdate(msg)).await?
        })
    }
}

impl Handler<ApplyUpdate> for Registry {
    type Result = AtomicResponse<Self, Result<Arc<Webhook>, RegistryError>>;

    fn handle(&mut self, ApplyUpdate(msg): ApplyUpdate, _: &mut Context<Self>) -> Self::Result {
        if msg.patch.enabled == Some(true) {
            // Explicitly enabling closes the circuit (a disabled webhook starts afresh anyway).
            self.close_circuit(msg.webhook_id);
        }
        let patched = self.find(msg.workspace_id, msg.webhook_id).and_then(|before| {
            let after = before.patched(msg.patch, self.settings.url_policy, crate::domain::now())?;
            Ok((before, after))
        });
        match patched {
            Ok((before, after)) => {
                log::info!("webhook {} changed", after.id);
                AtomicResponse::new(self.commit_change(before, after, None))
            }
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}

impl Handler<DisableWebhook> for Registry {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: DisableWebhook, _: &mut Context<Self>) -> Self::Result {
        let Some(before) = self.webhook(&msg.webhook_id).filter(|w| w.enabled) else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        log::warn!("webhook {} disabled: {}", msg.webhook_id, msg.reason.as_str());
        let mut after = (*before).clone();
        after.disable(msg.reason, crate::domain::now());
        AtomicResponse::new(Box::pin(self.commit_change(before, after, msg.ended_by).map(move |result, _, _| {
            if let Err(error) = result {
                log::error!("could not disable webhook {}: {error}", msg.webhook_id);
            }
        })))
    }
}

impl Handler<DeleteWebhook> for Registry {
    type Result = AtomicResponse<Self, Result<(), RegistryError>>;

    fn handle(&mut self, msg: DeleteWebhook, _: &mut Context<Self>) -> Self::Result {
        let webhook = match self.find(msg.workspace_id, msg.webhook_id) {
            Ok(webhook) => webhook,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        // Out of the routes and stopped first: no publish adds a delivery the delete would
        // miss, and no attempt reaches the URL once the delete is answered.
        self.unroute(msg.webhook_id);
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.delete_webhook(msg.webhook_id, crate::domain::now()).await }.into_actor(self).map(
                move |result, act, ctx| match result {
                    Ok(cancelled) => {
                        log::info!("webhook {} deleted; {cancelled} pending deliveries cancelled", msg.webhook_id);
                        act.metrics.deliveries_completed(FinalStatus::Cancelled, cancelled as u64);
                        act.forget(msg.workspace_id, msg.webhook_id);
                        Ok(())
                    }
                    Err(e) => {
                        // Not deleted: put it back.
                        act.apply(webhook, ctx);
                        Err(e.into())
                    }
                },
            ),
        ))
    }
}

impl Handler<RotateSecret> for Registry {
    type Result = AtomicResponse<Self, Result<RotatedSecret, RegistryError>>;

    fn handle(&mut self, msg: RotateSecret, _: &mut Context<Self>) -> Self::Result {
        let rotated = self.find(msg.workspace_id, msg.webhook_id).and_then(|before| {
            let secret = match msg.secret {
                Some(raw) => WebhookSecret::parse("secret", &raw)?,
                None => WebhookSecret::generate(),
            };
            let mut after = (*before).clone();
            let valid_until = after.rotate_secret(secret, self.settings.rotation_overlap, crate::domain::now());
            Ok((before, after, valid_until))
        });
        match rotated {
            Ok((before, after, previous_valid_until)) => {
                AtomicResponse::new(Box::pin(self.commit_change(before, after, None).map(move |result, _, _| {
                    let webhook = result?;
                    Ok(RotatedSecret { secret: webhook.secret.expose().to_owned(), previous_valid_until })
                })))
            }
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}

impl Registry {
    /// Persists a changed webhook, then applies it in memory; fails pending deliveries
    /// (but `ended_by`'s) when it went from enabled to disabled.
    fn commit_change(
        &mut self,
        before: Arc<Webhook>,
        after: Webhook,
        ended_by: Option<DeliveryId>,
    ) -> ResponseActFuture<Self, Result<Arc<Webhook>, RegistryError>> {
        let store = self.store.clone();
        let after = Arc::new(after);
        let written = after.clone();
        let disabled_now = before.enabled && !after.enabled;
        Box::pin(
            async move {
                store.update_webhook(&written).await?;
                if !disabled_now {
                    return Ok(0);
                }
                let reason = FailureReason::WebhookDisabled(written.disabled_reason.unwrap_or(DisabledReason::Manual));
                let failed = store
                    .fail_pending_deliveries(written.id, &reason.to_string(), ended_by, crate::domain::now())
                    .await?;
                Ok::<_, RegistryError>(failed)
            }
            .into_actor(self)
            .map(move |result, act, ctx| {
                let failed = result?;
                act.apply(after.clone(), ctx);
                if disabled_now {
                    act.metrics.deliveries_completed(FinalStatus::Failed, failed as u64);
                    let data = WebhookDisabledEvent {
                        webhook_id: after.id,
                        name: &after.name,
                        reason: after.disabled_reason,
                        failed_deliveries: failed,
                    };
                    act.publish_operational(after.workspace_id, "hookbus.webhook.disabled", &data, ctx);
                }
                Ok(after)
            }),
        )
    }
}
