//! Which webhooks an event can reach, found without testing every webhook of the workspace:
//! exact subscriptions are looked up by event type; only `*` and `prefix.*` subscribers are
//! tested one by one. With 10,000 webhooks on exact types, a publish touches a handful.

use std::collections::{BTreeSet, HashMap};

use crate::domain::event::EventPattern;
use crate::domain::webhook::Webhook;
use crate::domain::{EventType, WebhookId, WorkspaceId};

#[derive(Default)]
pub(super) struct Subscriptions {
    exact: HashMap<(WorkspaceId, EventType), BTreeSet<WebhookId>>,
    /// Per workspace, the webhooks with at least one wildcard pattern.
    wildcard: HashMap<WorkspaceId, BTreeSet<WebhookId>>,
}

impl Subscriptions {
    pub fn add(&mut self, webhook: &Webhook) {
        for pattern in &webhook.events {
            match pattern {
                EventPattern::Exact(event) => {
                    self.exact.entry((webhook.workspace_id, event.clone())).or_default().insert(webhook.id);
                }
                EventPattern::All | EventPattern::Prefix(_) => {
                    self.wildcard.entry(webhook.workspace_id).or_default().insert(webhook.id);
                }
            }
        }
    }

    pub fn remove(&mut self, webhook: &Webhook) {
        for pattern in &webhook.events {
            match pattern {
                EventPattern::Exact(event) => {
                    let key = (webhook.workspace_id, event.clone());
                    if let Some(ids) = self.exact.get_mut(&key) {
                        ids.remove(&webhook.id);
                        if ids.is_empty() {
                            self.exact.remove(&key);
                        }
                    }
                }
                EventPattern::All | EventPattern::Prefix(_) => {
                    if let Some(ids) = self.wildcard.get_mut(&webhook.workspace_id) {
                        ids.remove(&webhook.id);
                    }
                }
            }
        }
    }

    /// Webhooks that may subscribe to `event`, in id order, each once; the caller still
    /// checks `subscribes_to` (a wildcard webhook need not match) and `enabled`.
    pub fn candidates(&self, workspace_id: WorkspaceId, event: &EventType) -> BTreeSet<WebhookId> {
        let mut ids = self.exact.get(&(workspace_id, event.clone())).cloned().unwrap_or_default();
        if let Some(wildcard) = self.wildcard.get(&workspace_id) {
            ids.extend(wildcard);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::url::UrlPolicy;
    use crate::domain::webhook::WebhookInput;

    fn webhook(events: &[&str]) -> Webhook {
        let input = WebhookInput {
            url: Some("https://example.com/hook".into()),
            events: Some(events.iter().map(|e| e.to_string()).collect()),
            ..Default::default()
        };
        Webhook::create(WorkspaceId::DEFAULT, input, UrlPolicy::default(), crate::domain::now()).unwrap()
    }

    fn event(raw: &str) -> EventType {
        EventType::parse("event", raw).unwrap()
    }

    #[test]
    fn candidates_are_exact_subscribers_plus_wildcards_and_follow_changes() {
        let exact = webhook(&["source.ready", "artifact.completed"]);
        let prefix = webhook(&["artifact.*"]);
        let other = webhook(&["meeting.completed"]);
        let mut subscriptions = Subscriptions::default();
        for w in [&exact, &prefix, &other] {
            subscriptions.add(w);
        }
        let found = subscriptions.candidates(WorkspaceId::DEFAULT, &event("source.ready"));
        assert_eq!(found, BTreeSet::from([exact.id, prefix.id]));
        let found = subscriptions.candidates(WorkspaceId::DEFAULT, &event("meeting.completed"));
        assert_eq!(found, BTreeSet::from([other.id, prefix.id]));

        subscriptions.remove(&exact);
        subscriptions.remove(&prefix);
        assert!(subscriptions.candidates(WorkspaceId::DEFAULT, &event("source.ready")).is_empty());
        assert!(subscriptions.exact.keys().all(|(_, e)| e.as_str() == "meeting.completed"));
    }
}
