#![warn(missing_docs)]
//! Webhook registrations: the raw inputs of create/patch and the validated [`Webhook`].

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::url::UrlPolicy;
use super::{EventPattern, EventType, RetryPolicy, ValidationError, WebhookId, WebhookSecret, WebhookUrl, WorkspaceId};

const MAX_PATTERNS: usize = 100;
const MAX_HEADERS: usize = 20;
const TIMEOUT_MS: RangeInclusive<i64> = 100..=30_000;
const MAX_RETRIES: RangeInclusive<i64> = 0..=20;
const BACKOFF_BASE_MS: RangeInclusive<i64> = 10..=60_000;
const MAX_IN_FLIGHT: RangeInclusive<i64> = 1..=256;
const RATE_LIMIT: RangeInclusive<i64> = 1..=10_000;

/// The body of `POST /api/v1/webhooks` (and of the `RegisterWebhook` message), unvalidated.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// The endpoint (`https://`; `http://` and private hosts in dev mode).
    pub url: Option<String>,
    /// Event patterns: `artifact.completed`, `artifact.*` or `*`.
    pub events: Option<Vec<String>>,
    /// A name for people.
    pub name: Option<String>,
    /// The signing secret (`whsec_` + base64); generated when absent.
    pub secret: Option<String>,
    /// Whether it receives deliveries (default true).
    pub enabled: Option<bool>,
    /// Per-attempt timeout, 1,000–60,000 ms (default 10,000).
    pub timeout_ms: Option<i64>,
    /// Retries after the first attempt, 0–20 (default 3).
    pub max_retries: Option<i64>,
    /// First retry delay, 100–600,000 ms (default 1,000).
    pub backoff_base_ms: Option<i64>,
    /// Attempts in flight at once, 1–256 (default 16).
    pub max_in_flight: Option<i64>,
    /// Attempts per second, 1–10,000 (default none).
    pub rate_limit_per_sec: Option<i64>,
    /// Extra headers sent with every attempt.
    pub headers: Option<BTreeMap<String, String>>,
}

/// The body of `PATCH /api/v1/webhooks/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// The endpoint.
    pub url: Option<String>,
    /// Event patterns.
    pub events: Option<Vec<String>>,
    /// A name for people.
    pub name: Option<String>,
    /// Refused with a pointer to the rotate route, so no overlap window is skipped by accident.
    pub secret: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Per-attempt timeout in ms.
    pub timeout_ms: Option<i64>,
    /// Retries after the first attempt.
    pub max_retries: Option<i64>,
    /// First retry delay in ms.
    pub backoff_base_ms: Option<i64>,
    /// Attempts in flight at once.
    pub max_in_flight: Option<i64>,
    /// `null` removes the limit, so absent and null differ.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    pub rate_limit_per_sec: Option<Option<i64>>,
    /// Extra headers (replace the current ones).
    pub headers: Option<BTreeMap<String, String>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Why a webhook is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// `PATCH {"enabled": false}`.
    Manual,
    /// The endpoint answered 410.
    Gone,
    /// The circuit stayed open for `disable_after_ms`.
    Failing,
}

impl DisabledReason {
    /// The reason as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Gone => "gone",
            Self::Failing => "failing",
        }
    }

    /// Reads a reason back from storage.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "manual" => Some(Self::Manual),
            "gone" => Some(Self::Gone),
            "failing" => Some(Self::Failing),
            _ => None,
        }
    }
}

/// How deliveries to one webhook are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Per-attempt timeout in ms.
    pub timeout_ms: u32,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First retry delay in ms.
    pub backoff_base_ms: u32,
    /// Attempts in flight at once.
    pub max_in_flight: u32,
    /// Attempts per second, if limited.
    pub rate_limit_per_sec: Option<u32>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self { timeout_ms: 10_000, max_retries: 3, backoff_base_ms: 1_000, max_in_flight: 16, rate_limit_per_sec: None }
    }
}

impl DeliverySettings {
    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.into())
    }

    /// The retry schedule, capped at `backoff_max`.
    pub fn retry_policy(&self, backoff_max: Duration) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            backoff_base: Duration::from_millis(self.backoff_base_ms.into()),
            backoff_max,
        }
    }
}

/// The previous secret during a rotation, and until when it still signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// The previous secret.
    pub secret: WebhookSecret,
    /// Until when it still signs.
    pub valid_until: DateTime<Utc>,
}

/// A validated webhook registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// A name for people.
    pub name: String,
    /// The endpoint.
    pub url: WebhookUrl,
    /// What it subscribes to.
    pub events: Vec<EventPattern>,
    /// The current signing secret.
    pub secret: WebhookSecret,
    /// The previous secret during a rotation.
    pub previous_secret: Option<PreviousSecret>,
    /// Whether it receives deliveries.
    pub enabled: bool,
    /// Why it is disabled, if it is.
    pub disabled_reason: Option<DisabledReason>,
    /// How deliveries to it are made.
    pub settings: DeliverySettings,
    /// Extra request headers, validated names and values.
    pub headers: BTreeMap<String, String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Webhook {
    /// Validates a create request into a new webhook.
    pub fn create(
        workspace_id: WorkspaceId,
        input: WebhookInput,
        policy: UrlPolicy,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationError> {
        let url = input.url.ok_or_else(|| ValidationError::new("url", "is required"))?;
        let events = input.events.ok_or_else(|| ValidationError::new("events", "is required"))?;
        let defaults = DeliverySettings::default();
        let enabled = input.enabled.unwrap_or(true);
        Ok(Self {
            id: WebhookId::generate(),
            workspace_id,
            name: parse_name(input.name)?.unwrap_or_else(|| "Webhook".to_owned()),
            url: WebhookUrl::parse("url", &url, policy)?,
            events: parse_patterns(&events)?,
            secret: match input.secret {
                Some(raw) => WebhookSecret::parse("secret", &raw)?,
                None => WebhookSecret::generate(),
            },
            previous_secret: None,
            enabled,
            disabled_reason: (!enabled).then_some(DisabledReason::Manual),
            settings: DeliverySettings {
                timeout_ms: ranged("timeout_ms", input.timeout_ms, TIMEOUT_MS)?.unwrap_or(defaults.timeout_ms),
                max_retries: ranged("max_retries", input.max_retries, MAX_RETRIES)?.unwrap_or(defaults.max_retries),
                backoff_base_ms: ranged("backoff_base_ms", input.backoff_base_ms, BACKOFF_BASE_MS)?
                    .unwrap_or(defaults.backoff_base_ms),
                max_in_flight: ranged("max_in_flight", input.max_in_flight, MAX_IN_FLIGHT)?
                    .unwrap_or(defaults.max_in_flight),
                rate_limit_per_sec: ranged("rate_limit_per_sec", input.rate_limit_per_sec, RATE_LIMIT)?,
            },
            headers: parse_headers(input.headers.unwrap_or_default())?,
            created_at: now,
            updated_at: now,
        })
    }

    /// The webhook with `patch` applied; `self` is untouched when the patch is invalid.
    pub fn patched(&self, patch: WebhookPatch, policy: UrlPolicy, now: DateTime<Utc>) -> Result<Self, ValidationError> {
        if patch.secret.is_some() {
            return Err(ValidationError::new(
                "secret",
                "cannot be patched; use POST /api/v1/webhooks/{id}/secret/rotate",
            ));
        }
        let mut next = self.clone();
        if let Some(name) = parse_name(patch.name)? {
            next.name = name;
        }
        if let Some(url) = patch.url {
            next.url = WebhookUrl::parse("url", &url, policy)?;
        }
        if let Some(events) = patch.events {
            next.events = parse_patterns(&events)?;
        }
        let s = &mut next.settings;
        if let Some(v) = ranged("timeout_ms", patch.timeout_ms, TIMEOUT_MS)? {
            s.timeout_ms = v;
        }
        if let Some(v) = ranged("max_retries", patch.max_retries, MAX_RETRIES)? {
            s.max_retries = v;
        }
        if let Some(v) = ranged("backoff_base_ms", patch.backoff_base_ms, BACKOFF_BASE_MS)? {
            s.backoff_base_ms = v;
        }
        if let Some(v) = ranged("max_in_flight", patch.max_in_flight, MAX_IN_FLIGHT)? {
            s.max_in_flight = v;
        }
        if let Some(rate) = patch.rate_limit_per_sec {
            s.rate_limit_per_sec = ranged("rate_limit_per_sec", rate, RATE_LIMIT)?;
        }
        if let Some(headers) = patch.headers {
            next.headers = parse_headers(headers)?;
        }
        match patch.enabled {
            Some(true) => {
                next.enabled = true;
                next.disabled_reason = None;
            }
            Some(false) if self.enabled => {
                next.enabled = false;
                next.disabled_reason = Some(DisabledReason::Manual);
            }
            _ => {}
        }
        next.updated_at = now;
        Ok(next)
    }

    /// Disables the webhook on hookbus' own decision (410, circuit open too long).
    pub fn disable(&mut self, reason: DisabledReason, now: DateTime<Utc>) {
        self.enabled = false;
        self.disabled_reason = Some(reason);
        self.updated_at = now;
    }

    /// Whether it receives `event`.
    pub fn subscribes_to(&self, event: &EventType) -> bool {
        self.events.iter().any(|pattern| pattern.matches(event))
    }

    /// The secrets that sign at `now`: the current one, then the previous one during a rotation.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&WebhookSecret> {
        let mut secrets = vec![&self.secret];
        if let Some(previous) = self.previous_secret.as_ref().filter(|p| p.valid_until > now) {
            secrets.push(&previous.secret);
        }
        secrets
    }

    /// Replaces the secret, keeping the old one valid for `overlap`.
    pub fn rotate_secret(&mut self, new: WebhookSecret, overlap: Duration, now: DateTime<Utc>) -> DateTime<Utc> {
        let valid_until = now + chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
        let old = std::mem::replace(&mut self.secret, new);
        self.previous_secret = Some(PreviousSecret { secret: old, valid_until });
        self.updated_at = now;
        valid_until
    }
}

fn parse_name(name: Option<String>) -> Result<Option<String>, ValidationError> {
    name.map(|n| super::name::parse_name("name", n)).transpose()
}

fn parse_patterns(raw: &[String]) -> Result<Vec<EventPattern>, ValidationError> {
    if raw.is_empty() || raw.len() > MAX_PATTERNS {
        return Err(ValidationError::new("events", "must hold 1 to 100 patterns"));
    }
    raw.iter().map(|p| EventPattern::parse("events", p)).collect()
}

fn ranged(field: &str, value: Option<i64>, range: RangeInclusive<i64>) -> Result<Option<u32>, ValidationError> {
    match value {
        None => Ok(None),
        Some(v) if range.contains(&v) => Ok(Some(v as u32)),
        Some(_) => Err(ValidationError::new(field, format!("must be between {} and {}", range.start(), range.end()))),
    }
}

/// Header names the user may not set: ours, and those the HTTP client owns.
fn is_reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("webhook-")
        || name.starts_with("x-webhook-")
        || name.starts_with("content-")
        || name.contains("signature")
        || matches!(name.as_str(), "host" | "connection" | "transfer-encoding" | "te" | "upgrade" | "keep-alive")
}

fn parse_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ValidationError> {
    use actix_web::http::header::{HeaderName, HeaderValue};
    if headers.len() > MAX_HEADERS {
        return Err(ValidationError::new("headers", "must hold at most 20 headers"));
    }
    for (name, value) in &headers {
        if HeaderName::try_from(name.as_str()).is_err() {
            return Err(ValidationError::new("headers", format!("'{name}' is not a valid header name")));
        }
        if is_reserved_header(name) {
            return Err(ValidationError::new(
                "headers",
                format!("'{name}' is set by hookbus and cannot be overridden"),
            ));
        }
        if HeaderValue::from_str(value).is_err() {
            return Err(ValidationError::new("headers", format!("the value of '{name}' is not a valid header value")));
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: UrlPolicy = UrlPolicy { allow_http: true, allow_private: true };

    fn input() -> WebhookInput {
        WebhookInput {
            url: Some("https://example.com/hook".into()),
            events: Some(vec!["artifact.*".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        let w = Webhook::create(WorkspaceId::DEFAULT, input(), DEV, Utc::now()).unwrap();
        assert_eq!(w.name, "Webhook");
        assert!(w.enabled && w.disabled_reason.is_none());
        assert_eq!(w.settings, DeliverySettings::default());
        assert!(w.secret.expose().starts_with("whsec_"));
    }

    #[test]
    fn every_range_names_its_field() {
        let cases: Vec<(&str, WebhookInput)> = vec![
            ("timeout_ms", WebhookInput { timeout_ms: Some(99), ..input() }),
            ("max_retries", WebhookInput { max_retries: Some(21), ..input() }),
            ("backoff_base_ms", WebhookInput { backoff_base_ms: Some(9), ..input() }),
            ("max_in_flight", WebhookInput { max_in_flight: Some(0), ..input() }),
            ("rate_limit_per_sec", WebhookInput { rate_limit_per_sec: Some(10_001), ..input() }),
            ("events", WebhookInput { events: Some(vec![]), ..input() }),
            ("events", WebhookInput { events: Some(vec!["Bad".into()]), ..input() }),
            ("name", WebhookInput { name: Some("n".repeat(256)), ..input() }),
            ("url", WebhookInput { url: None, ..input() }),
            ("secret", WebhookInput { secret: Some("short".into()), ..input() }),
        ];
        for (field, case) in cases {
            let err = Webhook::create(WorkspaceId::DEFAULT, case, DEV, Utc::now()).unwrap_err();
            assert_eq!(err.field, field);
        }
    }

    #[test]
    fn reserved_and_too_many_headers_are_refused() {
        for name in ["webhook-signature", "X-Webhook-Event", "Host", "content-type", "X-Signature"] {
            let headers = BTreeMap::from([(name.to_owned(), "v".to_owned())]);
            let case = WebhookInput { headers: Some(headers), ..input() };
            assert_eq!(Webhook::create(WorkspaceId::DEFAULT, case, DEV, Utc::now()).unwrap_err().field, "headers");
        }
        let many = (0..21).map(|i| (format!("x-h{i}"), "v".to_owned())).collect();
        let case = WebhookInput { headers: Some(many), ..input() };
        assert!(Webhook::create(WorkspaceId::DEFAULT, case, DEV, Utc::now()).is_err());
        let ok = BTreeMap::from([("X-Tenant".to_owned(), "acme".to_owned())]);
        assert!(Webhook::create(WorkspaceId::DEFAULT, WebhookInput { headers: Some(ok), ..input() }, DEV, Utc::now())
            .is_ok());
    }

    #[test]
    fn patch_changes_only_given_fields_and_null_clears_the_rate_limit() {
        let mut w = Webhook::create(WorkspaceId::DEFAULT, input(), DEV, Utc::now()).unwrap();
        w.settings.rate_limit_per_sec = Some(5);
        let patch: WebhookPatch = serde_json::from_str(r#"{"name":"renamed","rate_limit_per_sec":null}"#).unwrap();
        let next = w.patched(patch, DEV, Utc::now()).unwrap();
        assert_eq!(next.name, "renamed");
        assert_eq!(next.settings.rate_limit_per_sec, None);
        assert_eq!(next.url, w.url);
        let untouched: WebhookPatch = serde_json::from_str(r#"{"name":"again"}"#).unwrap();
        assert_eq!(w.patched(untouched, DEV, Utc::now()).unwrap().settings.rate_limit_per_sec, Some(5));
    }

    #[test]
    fn enabling_clears_the_disabled_reason() {
        let mut w = Webhook::create(WorkspaceId::DEFAULT, input(), DEV, Utc::now()).unwrap();
        w.disable(DisabledReason::Gone, Utc::now());
        let patch: WebhookPatch = serde_json::from_str(r#"{"enabled":true}"#).unwrap();
        let next = w.patched(patch, DEV, Utc::now()).unwrap();
        assert!(next.enabled && next.disabled_reason.is_none());
        let off: WebhookPatch = serde_json::from_str(r#"{"enabled":false}"#).unwrap();
        assert_eq!(next.patched(off, DEV, Utc::now()).unwrap().disabled_reason, Some(DisabledReason::Manual));
    }

    #[test]
    fn rotation_signs_with_both_secrets_until_the_overlap_ends() {
        let mut w = Webhook::create(WorkspaceId::DEFAULT, input(), DEV, Utc::now()).unwrap();
        let now = Utc::now();
        let until = w.rotate_secret(WebhookSecret::generate(), Duration::from_secs(60), now);
        assert_eq!(w.signing_secrets(now).len(), 2);
        assert_eq!(w.signing_secrets(until).len(), 1);
    }
}
