//! Settings, layered: compiled-in defaults → TOML file → `HOOKBUS_*` environment → flags.
//! Validated once by [`Config::validate`]; nothing reads the environment after that.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::store::DatabaseUrl;

/// Every setting of a hookbus instance. Field names double as TOML keys and, upper-cased
/// with a `HOOKBUS_` prefix, as environment variables.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub bind: String,
    /// `postgres://…`, `sqlite://path`, `sqlite::memory:`; unset means `<data_dir>/hookbus.db`.
    pub database_url: Option<String>,
    /// Where the SQLite file and the generated admin token live.
    pub data_dir: PathBuf,
    /// Development mode: allows `http://` and private/loopback targets.
    pub dev: bool,
    /// Allows private and loopback targets without the rest of dev mode.
    pub allow_private_targets: bool,
    /// The admin bearer token; generated into `<data_dir>/admin.token` when unset.
    pub admin_token: Option<String>,
    /// Base64 of the 32-byte key that encrypts webhook secrets at rest; generated into
    /// `<data_dir>/master.key` when unset.
    pub master_key: Option<String>,
    /// Largest accepted request body, in bytes.
    pub max_payload_bytes: usize,
    /// Upper bound of any retry wait, in milliseconds.
    pub backoff_max_ms: u64,
    /// How many pending deliveries one webhook keeps in memory; the rest stay in the database.
    pub pending_window: usize,
    /// How many pending deliveries all webhooks together may keep in memory beyond their
    /// own window, so a burst is not paged back from the database.
    pub pending_pool: usize,
    /// Size of the database connection pool.
    pub db_max_connections: usize,
    /// Most writes committed in one group-commit transaction.
    pub max_batch_writes: usize,
    /// How long shutdown waits for attempts in flight, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// How long the previous secret keeps signing after a rotation, in seconds.
    pub secret_rotation_overlap_s: u64,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Consecutive failed attempts that open a webhook's circuit.
    pub failure_threshold: u32,
    /// Wait before the first probe of an open circuit, in milliseconds; doubles per re-open.
    pub circuit_cooldown_ms: u64,
    /// Longest wait between probes, in milliseconds.
    pub circuit_cooldown_max_ms: u64,
    /// A circuit open this long (milliseconds) disables its webhook (`"failing"`).
    pub disable_after_ms: u64,
    /// How long events, deliveries and attempts are kept, in days (fractions allowed).
    /// Event ids stay idempotent for the same window.
    pub retention_days: f64,
    /// How often the retention janitor sweeps, in milliseconds.
    pub janitor_interval_ms: u64,
    /// Management requests per second per workspace API key (`POST /events` is exempt).
    pub api_rate_limit: u32,
    /// Burst allowed above `api_rate_limit`.
    pub api_rate_burst: u32,
    /// Most webhooks one workspace may register.
    pub max_webhooks_per_workspace: usize,
    /// Attempts in flight (open connections) that all webhooks share, beyond the one each
    /// webhook always has to itself.
    pub outbound_connections: usize,
    /// How many of `outbound_connections` one workspace may hold at once.
    pub outbound_connections_per_workspace: usize,
    /// How long registration waits for a target's DNS answer, in milliseconds; a host that
    /// has not answered by then is accepted and checked at every connect.
    pub registration_dns_timeout_ms: u64,
    /// PEM file of CA certificates trusted for HTTPS targets besides the system's store
    /// (a company CA, say).
    pub extra_ca_file: Option<PathBuf>,
    /// Several servers on one PostgreSQL database: how long a server's lease on a webhook
    /// lasts after its last renewal, in milliseconds (a dead server's webhooks move after
    /// this plus their `timeout_ms`).
    pub lease_ttl_ms: u64,
    /// The name other servers and `GET /api/v1/health` show for this server; unset means
    /// `<host name>:<pid>`.
    pub server_name: Option<String>,
    /// Looks host names up (the system's resolver unless an embedding app or a test sets
    /// another). Not a setting of the file or the environment.
    #[serde(skip)]
    pub resolver: crate::delivery::Resolver,
}

impl std::fmt::Debug for Config {
    /// Every setting but the secrets, so a config can be logged safely.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", serde_json::to_string(&self.redacted()).map_err(|_| std::fmt::Error)?)
    }
}

impl Config {
    /// The same settings with the secrets replaced, safe to log or print.
    fn redacted(&self) -> Self {
        let mut shown = self.clone();
        shown.admin_token = shown.admin_token.map(|_| "<redacted>".into());
        shown.master_key = shown.master_key.map(|_| "<redacted>".into());
        shown
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            database_url: None,
            data_dir: PathBuf::from("./hookbus-data"),
            dev: false,
            allow_private_targets: false,
            admin_token: None,
            master_key: None,
            max_payload_bytes: 256 * 1024,
            backoff_max_ms: 3_600_000,
            pending_window: 1_000,
            pending_pool: 100_000,
            db_max_connections: 8,
            max_batch_writes: 1_000,
            shutdown_timeout_ms: 10_000,
            secret_rotation_overlap_s: 24 * 3600,
            workers: 0,
            failure_threshold: 5,
            circuit_cooldown_ms: 30_000,
            circuit_cooldown_max_ms: 600_000,
            disable_after_ms: 72 * 3600 * 1000,
            retention_days: 30.0,
            janitor_interval_ms: 60_000,
            api_rate_limit: 50,
            api_rate_burst: 100,
            max_webhooks_per_workspace: 10_000,
            outbound_connections: 4_096,
            outbound_connections_per_workspace: 3_072,
            registration_dns_timeout_ms: 2_000,
            extra_ca_file: None,
            lease_ttl_ms: 10_000,
            server_name: None,
            resolver: crate::delivery::Resolver::default(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers in charge.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigOverrides {
    /// `--bind`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// `--database-url`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--data-dir`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--dev`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<bool>,
    /// Every other setting given as a flag, by setting name, as typed (parsed like an
    /// environment variable's value).
    #[serde(skip)]
    pub settings: std::collections::BTreeMap<String, String>,
}

/// Settings with a flag of their own in the CLI's code, and secrets, which never come from a
/// flag (a process's arguments are visible to every local user).
const NOT_GENERATED_FLAGS: [&str; 6] = ["bind", "database_url", "data_dir", "dev", "admin_token", "master_key"];

/// The settings that get a generated `--flag` (`retention_days` → `--retention-days`), each
/// with its default as shown in `--help`.
pub fn generated_flags() -> Vec<(String, String)> {
    let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
    setting_names()
        .into_iter()
        .filter(|name| !NOT_GENERATED_FLAGS.contains(&name.as_str()))
        .map(|name| {
            let default = match defaults.get(&name) {
                None | Some(serde_json::Value::Null) => "none".to_owned(),
                Some(value) => value.to_string(),
            };
            (name, default)
        })
        .collect()
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value of the file, the environment or a flag that does not parse, named as the
    /// user wrote it (`retention_days in hookbus.toml`, `HOOKBUS_RETENTION_DAYS`, `--bind`).
    #[error("invalid configuration: {0}")]
    Load(String),
    /// A value is out of range or inconsistent with another.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        Self::Load(describe(error))
    }
}

/// Variables of `HOOKBUS_`'s namespace that are not settings but are used on purpose.
const OTHER_VARIABLES: [&str; 5] =
    ["HOOKBUS_CONFIG", "HOOKBUS_LOG_FORMAT", "HOOKBUS_TEST_POSTGRES_URL", "HOOKBUS_URL", "HOOKBUS_TOKEN"];

/// The setting whose name is within two edits of `name`, if one is.
fn closest_setting(name: &str) -> Option<String> {
    setting_names()
        .into_iter()
        .map(|setting| (strsim::levenshtein(name, &setting), setting))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, setting)| setting)
}

/// figment's errors, each on the user's terms: the key as the file, the environment or the
/// command line spells it, and what is wrong.
fn describe(error: figment::Error) -> String {
    use figment::error::Kind;
    use figment::Source;
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let key = match (&e.kind, e.path.last()) {
                (Kind::UnknownField(field, _), _) => field.clone(),
                (_, Some(key)) => key.clone(),
                (_, None) => String::new(),
            };
            let metadata = e.metadata.as_ref();
            let setting = match metadata.and_then(|m| m.source.as_ref()) {
                Some(Source::File(path)) => format!("{key} in {}", path.display()),
                _ if metadata.is_some_and(|m| m.name.contains("environment")) => {
                    format!("HOOKBUS_{}", key.to_uppercase())
                }
                _ => format!("--{}", key.replace('_', "-")),
            };
            let problem = match &e.kind {
                Kind::UnknownField(field, _) => match closest_setting(field) {
                    Some(setting) => format!("is not a setting; did you mean {setting}?"),
                    None => "is not a setting (the README lists them all)".to_owned(),
                },
                kind => kind.to_string(),
            };
            format!("{setting} {problem}")
        })
        .collect();
    lines.join("; ")
}

/// Warns about `HOOKBUS_*` variables that are no setting but look like one misspelt: they
/// would otherwise be ignored without a word.
fn warn_about_misspelt_variables() {
    for (name, _) in std::env::vars() {
        let Some(setting) = name.strip_prefix("HOOKBUS_").map(str::to_lowercase) else { continue };
        if OTHER_VARIABLES.contains(&name.as_str()) || setting_names().contains(&setting) {
            continue;
        }
        if let Some(close) = closest_setting(&setting) {
            log::warn!("{name} is not a setting and is ignored; did you mean HOOKBUS_{}?", close.to_uppercase());
        }
    }
}

/// The setting names, taken from the struct itself so the list cannot drift: only these
/// `HOOKBUS_*` variables are read (others, such as `HOOKBUS_TEST_POSTGRES_URL`, are not settings).
pub fn setting_names() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => unreachable!("Config serializes as an object"),
    }
}

impl Config {
    /// Loads the layers in order; later layers win.
    pub fn load(file: Option<&Path>, overrides: ConfigOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!("config file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        warn_about_misspelt_variables();
        figment = figment
            .merge(Env::prefixed("HOOKBUS_").only(&setting_names().iter().map(String::as_str).collect::<Vec<_>>()))
            .merge(Serialized::globals(&overrides));
        for (name, raw) in &overrides.settings {
            let Ok(value) = raw.parse::<figment::value::Value>();
            figment = figment.merge(Serialized::global(name, value));
        }
        let config: Config = figment.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// Each setting's effective value (secrets redacted) and where it came from: `flag`,
    /// `environment`, `file` or `default`.
    pub fn origins(&self, file: Option<&Path>, overrides: &ConfigOverrides) -> Vec<(String, String, &'static str)> {
        let shown = serde_json::to_value(self.redacted()).unwrap_or_default();
        let from_file: std::collections::BTreeMap<String, figment::value::Value> =
            file.and_then(|f| Figment::from(Toml::file(f)).extract().ok()).unwrap_or_default();
        let flagged = serde_json::to_value(overrides).unwrap_or_default();
        setting_names()
            .into_iter()
            .map(|name| {
                let origin = if overrides.settings.contains_key(&name) || flagged.get(&name).is_some() {
                    "flag"
                } else if std::env::var_os(format!("HOOKBUS_{}", name.to_uppercase())).is_some() {
                    "environment"
                } else if from_file.contains_key(&name) {
                    "file"
                } else {
                    "default"
                };
                let value = shown.get(&name).map(ToString::to_string).unwrap_or_default();
                (name, value, origin)
            })
            .collect()
    }

    /// An embedded instance on the SQLite file at `path`.
    pub fn sqlite(path: impl AsRef<Path>) -> Self {
        Self { database_url: Some(format!("sqlite://{}", path.as_ref().display())), ..Self::default() }
    }

    /// An embedded instance that keeps nothing on disk (demos, tests).
    pub fn memory() -> Self {
        Self { database_url: Some("sqlite::memory:".into()), ..Self::default() }
    }

    /// Checks every value and the combinations of values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            return invalid("bind must be an address such as 127.0.0.1:8080");
        }
        if self.max_payload_bytes < 1024 {
            return invalid("max_payload_bytes must be at least 1024");
        }
        if self.pending_window < 2 {
            return invalid("pending_window must be at least 2");
        }
        if self.db_max_connections == 0 || self.max_batch_writes == 0 {
            return invalid("db_max_connections and max_batch_writes must be positive");
        }
        if self.failure_threshold == 0 || self.circuit_cooldown_ms == 0 {
            return invalid("failure_threshold and circuit_cooldown_ms must be positive");
        }
        if !(self.retention_days > 0.0 && self.retention_days.is_finite()) || self.janitor_interval_ms == 0 {
            return invalid("retention_days and janitor_interval_ms must be positive");
        }
        if self.circuit_cooldown_max_ms < self.circuit_cooldown_ms {
            return invalid("circuit_cooldown_max_ms must be at least circuit_cooldown_ms");
        }
        if let Some(url) = &self.database_url {
            DatabaseUrl::check(url).map_err(|e| ConfigError::Invalid(format!("database_url (--database-url): {e}")))?;
        }
        if self.registration_dns_timeout_ms == 0 {
            return invalid("registration_dns_timeout_ms must be positive");
        }
        if self.lease_ttl_ms < 1_000 {
            return invalid("lease_ttl_ms must be at least 1000");
        }
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return invalid("admin_token must be at least 16 characters");
        }
        if self.admin_token.as_deref().is_some_and(crate::domain::api_key::looks_like_key) {
            return invalid(
                "admin_token (HOOKBUS_ADMIN_TOKEN) must not start with hbk_: that prefix marks workspace API keys, \
                 so every admin call would be refused as an unknown key",
            );
        }
        Ok(())
    }

    /// Where the data lives: `database_url`, or the SQLite file in `data_dir`.
    pub fn database(&self) -> DatabaseUrl {
        match &self.database_url {
            Some(url) => DatabaseUrl::parse(url),
            None => DatabaseUrl::SqliteFile(self.data_dir.join("hookbus.db")),
        }
    }

    /// Which targets are accepted: `--dev` allows `http://` and internal addresses,
    /// `allow_private_targets` only the latter.
    pub fn url_policy(&self) -> crate::domain::url::UrlPolicy {
        crate::domain::url::UrlPolicy { allow_http: self.dev, allow_private: self.dev || self.allow_private_targets }
    }

    /// `backoff_max_ms` as a duration.
    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }

    /// The circuit breaker's thresholds and cooldowns.
    pub fn circuit(&self) -> crate::domain::circuit::CircuitSettings {
        crate::domain::circuit::CircuitSettings {
            failure_threshold: self.failure_threshold,
            cooldown: Duration::from_millis(self.circuit_cooldown_ms),
            cooldown_max: Duration::from_millis(self.circuit_cooldown_max_ms),
            disable_after: Duration::from_millis(self.disable_after_ms),
        }
    }

    /// `retention_days` as a duration.
    pub fn retention(&self) -> Duration {
        Duration::from_secs_f64(self.retention_days * 86_400.0)
    }

    /// `janitor_interval_ms` as a duration.
    pub fn janitor_interval(&self) -> Duration {
        Duration::from_millis(self.janitor_interval_ms)
    }

    /// How outbound connections are bounded.
    pub fn outbound_limits(&self) -> crate::delivery::OutboundLimits {
        crate::delivery::OutboundLimits {
            shared: self.outbound_connections,
            per_workspace: self.outbound_connections_per_workspace,
        }
    }

    /// The name this server shows to the others.
    pub fn server_name(&self) -> String {
        self.server_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "hookbus".into());
            format!("{host}:{}", std::process::id())
        })
    }

    /// `shutdown_timeout_ms` as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

#[cfg(test)]
// figment's `Jail` API returns its large error type; that is its choice, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_env_which_beats_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "hookbus.toml",
                "bind = \"127.0.0.1:1000\"\npending_window = 7\ndata_dir = \"from-file\"",
            )?;
            jail.set_env("HOOKBUS_BIND", "127.0.0.1:2000");
            jail.set_env("HOOKBUS_DATA_DIR", "from-env");
            jail.set_env("HOOKBUS_TEST_POSTGRES_URL", "postgres://ignored");
            let overrides = ConfigOverrides { data_dir: Some("from-flag".into()), ..Default::default() };
            let config = Config::load(Some(Path::new("hookbus.toml")), overrides).unwrap();
            assert_eq!(config.pending_window, 7);
            assert_eq!(config.bind, "127.0.0.1:2000");
            assert_eq!(config.data_dir, PathBuf::from("from-flag"));
            Ok(())
        });
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "bnid = \"127.0.0.1:1\"")?;
            assert!(Config::load(Some(Path::new("typo.toml")), ConfigOverrides::default()).is_err());
            jail.create_file("bad.toml", "bind = \"nowhere\"")?;
            assert!(Config::load(Some(Path::new("bad.toml")), ConfigOverrides::default()).is_err());
            assert!(Config::load(Some(Path::new("missing.toml")), ConfigOverrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_setting_as_the_user_wrote_it_once() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "retention_day = 3")?;
            let error = Config::load(Some(Path::new("typo.toml")), ConfigOverrides::default()).unwrap_err().to_string();
            assert!(error.contains("retention_day in ") && error.contains("did you mean retention_days?"), "{error}");
            assert!(!error.contains("default."), "{error}");
            jail.create_file("type.toml", "retention_days = \"soon\"")?;
            let error = Config::load(Some(Path::new("type.toml")), ConfigOverrides::default()).unwrap_err().to_string();
            assert!(error.contains("retention_days in ") && error.matches("soon").count() == 1, "{error}");
            jail.set_env("HOOKBUS_RETENTION_DAYS", "soon");
            let error = Config::load(None, ConfigOverrides::default()).unwrap_err().to_string();
            assert!(error.contains("HOOKBUS_RETENTION_DAYS"), "{error}");
            Ok(())
        });
        assert_eq!(closest_setting("retention_day").as_deref(), Some("retention_days"));
        assert_eq!(closest_setting("test_postgres_url"), None);
    }

    #[test]
    fn an_unknown_database_scheme_is_an_error_listing_the_forms() {
        let config = Config { database_url: Some("mysql://x".into()), ..Config::default() };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("mysql") && error.contains("postgres://") && error.contains("sqlite://"), "{error}");
        for fine in ["postgres://u@h/db", "postgresql://h/db", "sqlite://x.db", "sqlite::memory:", "data/x.db"] {
            assert!(Config { database_url: Some(fine.into()), ..Config::default() }.validate().is_ok(), "{fine}");
        }
    }

    #[test]
    fn an_admin_token_shaped_like_a_workspace_key_is_refused() {
        let config = Config { admin_token: Some("hbk_0123456789abcdefghij".into()), ..Config::default() };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("hbk_") && error.contains("HOOKBUS_ADMIN_TOKEN"), "{error}");
        let fine = Config { admin_token: Some("hba_0123456789abcdefghij".into()), ..Config::default() };
        assert!(fine.validate().is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_secrets() {
        let config = Config {
            admin_token: Some("admin-token-secret-123".into()),
            master_key: Some("bWFzdGVyLWtleQ==".into()),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("admin-token-secret-123") && !shown.contains("bWFzdGVyLWtleQ=="));
        assert!(shown.contains("127.0.0.1:8080"));
    }

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let config = Config::default();
        assert_eq!(config.database(), DatabaseUrl::SqliteFile(PathBuf::from("./hookbus-data/hookbus.db")));
        assert_eq!(Config::memory().database(), DatabaseUrl::SqliteMemory);
    }
}
