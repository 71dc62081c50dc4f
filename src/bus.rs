//! [`Hookbus`]: the whole system started in-process, for the server and for embedding apps.

use std::collections::HashSet;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::web;

use crate::actors::coordinator::{ClusterSettings, Coordinator, Leave, StopClaiming};
use crate::actors::endpoint::LeaseClock;
use crate::actors::janitor::Janitor;
use crate::actors::persistence::{FlushWrites, Persistence, Writer};
use crate::actors::registry::{DrainDeliveries, Ownership, Publisher, Registry, RegistrySettings};
use crate::config::{Config, ConfigError};
use crate::delivery::TrustedRoots;
use crate::domain::WebhookId;
use crate::http::auth::AdminToken;
use crate::http::{self, ApiState, AuthCache, KeyLimits};
use crate::metrics::Metrics;
use crate::store::cipher::MasterKey;
use crate::store::{Store, StoreError};

/// Why [`Hookbus::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened.
    #[error("could not open the database at {at} ({hint})")]
    Database {
        /// Where (password hidden).
        at: String,
        /// What usually fixes it.
        hint: &'static str,
        /// What the driver said.
        #[source]
        source: StoreError,
    },
    /// The database failed while starting.
    #[error("the database failed")]
    Store(#[from] StoreError),
    /// The admin token or master key could not be read or made.
    #[error(transparent)]
    Secret(#[from] crate::files::SecretError),
    /// The writer's thread could not start.
    #[error("could not start the writer thread")]
    WriterThread(#[source] std::io::Error),
    /// `extra_ca_file` could not be used.
    #[error(transparent)]
    Trust(#[from] crate::delivery::TrustError),
    /// The SQLite file is another server's (or could not be claimed).
    #[error(transparent)]
    DatabaseClaim(#[from] crate::files::ClaimError),
    /// The address to listen on is taken or not allowed.
    #[error("could not listen on {address} (is another server using it? choose another with --bind or HOOKBUS_BIND)")]
    Bind {
        /// The address.
        address: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// A running hookbus: its actors, its store and its admin routes. Must be started
/// inside an actix `System` (the registry and endpoints live on the current arbiter, the
/// writer on a thread of its own).
pub struct Hookbus {
    config: Arc<Config>,
    store: Store,
    registry: Addr<Registry>,
    publisher: Publisher,
    writer: Writer,
    _writer_thread: WriterThread,
    admin_token: AdminToken,
    metrics: Arc<Metrics>,
    /// Shared by every mount of the admin routes, so a revoke through one reaches all and a
    /// key has one rate budget however many times the routes are mounted.
    auth_cache: Arc<AuthCache>,
    key_limits: Arc<KeyLimits>,
    started_at: std::time::Instant,
    /// This server's claim on its SQLite file, held while it runs.
    _claim: Option<crate::files::DatabaseClaim>,
    /// On PostgreSQL: leases, heartbeats and other servers' notifications.
    coordinator: Option<Addr<Coordinator>>,
}

impl Hookbus {
    /// Opens the database (running migrations), loads the webhooks and starts the actors.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let trust = TrustedRoots::load(config.extra_ca_file.as_deref())?;
        if config.dev {
            log::warn!("dev mode: http:// and private/loopback targets are allowed; never use --dev in production");
        }
        let database = config.database();
        // Before anything is written: a second server on the same SQLite file stops here.
        let claim = match &database {
            crate::store::DatabaseUrl::SqliteFile(path) => Some(crate::files::claim_sqlite_file(path)?),
            _ => None,
        };
        let mut store = Store::open(&database, config.db_max_connections)
            .await
            .map_err(|source| StartError::Database { at: database.describe(), hint: database.hint(), source })?;
        log::info!(
            "database: {} ({:?}); data dir: {}",
            database.describe(),
            database.backend(),
            config.data_dir.display()
        );
        let in_use = store.has_master_key().await?;
        let master_key = MasterKey::resolve(config.master_key.as_deref(), &config.data_dir, in_use)?;
        store.use_master_key(&master_key).await?;
        // The version first: the webhooks read after it are at least that new.
        let config_version = match store.backend() {
            crate::store::Backend::Postgres => Some(store.config_version().await?),
            crate::store::Backend::Sqlite => None,
        };
        let webhooks = store.load_webhooks().await?;
        let admin_token = AdminToken::resolve(config.admin_token.as_deref(), &config.data_dir)?;
        // The writer gets a thread of its own: a transaction's round trips and its replies
        // then never wait behind the delivery loop's work on the main arbiter.
        let (writer, writer_thread) = WriterThread::start(Persistence::new(store.clone(), config.max_batch_writes))?;
        let settings = RegistrySettings {
            url_policy: config.url_policy(),
            backoff_max: config.backoff_max(),
            pending_window: config.pending_window,
            pending_pool: config.pending_pool,
            rotation_overlap: std::time::Duration::from_secs(config.secret_rotation_overlap_s),
            circuit: config.circuit(),
            max_webhooks_per_workspace: config.max_webhooks_per_workspace,
            outbound: config.outbound_limits(),
            resolver: config.resolver.clone(),
            trust,
            registration_dns_timeout: std::time::Duration::from_millis(config.registration_dns_timeout_ms),
        };
        let metrics = Arc::new(Metrics::default());
        Janitor::new(store.clone(), config.retention(), config.janitor_interval()).start();
        // Endpoints of webhooks with nothing pending skip their first look at the database.
        let pending: HashSet<WebhookId> = match store.pending_counts().await {
            Ok(counts) => counts.into_iter().map(|(id, _)| id).collect(),
            Err(error) => {
                log::warn!("could not count pending deliveries; every endpoint will look: {error}");
                webhooks.iter().map(|w| w.id).collect()
            }
        };
        let idle = webhooks.iter().map(|w| w.id).filter(|id| !pending.contains(id)).collect();
        // On PostgreSQL other servers may share the database: endpoints run for the webhooks
        // this one holds a lease on (SPEC §9).
        let lease_clock = LeaseClock::default();
        let server_id = uuid::Uuid::now_v7().to_string();
        let ownership = match &database {
            crate::store::DatabaseUrl::Postgres(_) => Ownership::leased(
                server_id.clone(),
                lease_clock.clone(),
                std::time::Duration::from_millis(config.lease_ttl_ms),
            ),
            _ => Ownership::All,
        };
        let registry = Registry::new(
            store.clone(),
            writer.clone(),
            metrics.clone(),
            settings,
            webhooks,
            idle,
            ownership,
            config_version,
        );
        let publisher = registry.publisher();
        let registry = registry.launch();
        let coordinator = match &database {
            crate::store::DatabaseUrl::Postgres(url) => {
                let cluster = ClusterSettings {
                    lease_ttl: std::time::Duration::from_millis(config.lease_ttl_ms),
                    server_name: config.server_name(),
                    database_url: url.clone(),
                };
                Some(
                    Coordinator::new(
                        store.clone(),
                        registry.clone(),
                        writer.clone(),
                        metrics.clone(),
                        cluster,
                        server_id,
                        lease_clock,
                    )
                    .start(),
                )
            }
            _ => None,
        };
        let auth_cache = Arc::new(AuthCache::new(store.clone()));
        let key_limits = Arc::new(KeyLimits {
            rate: config.api_rate_limit,
            burst: config.api_rate_burst,
            buckets: Default::default(),
        });
        Ok(Self {
            config: Arc::new(config),
            store,
            registry,
            publisher,
            writer,
            _writer_thread: writer_thread,
            admin_token,
            metrics,
            auth_cache,
            key_limits,
            started_at: std::time::Instant::now(),
            _claim: claim,
            coordinator,
        })
    }

    /// The registry: send it `Publish`, `RegisterWebhook`, … (SPEC §7).
    pub fn registry(&self) -> Addr<Registry> {
        self.registry.clone()
    }

    /// Publishes from any thread without a round trip through the registry's (what the HTTP
    /// route uses); sending the registry `Publish` does the same on its thread.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// The database handle.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `/health` and the `/api/v1` routes, to mount in any actix-web `App` or scope.
    pub fn admin_routes(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let state = web::Data::new(ApiState {
            registry: self.registry.clone(),
            publisher: self.publisher.clone(),
            store: self.store.clone(),
            admin_token: self.admin_token.clone(),
            metrics: self.metrics.clone(),
            started_at: self.started_at,
            key_limits: self.key_limits.clone(),
            auth_cache: self.auth_cache.clone(),
            coordinator: self.coordinator.clone(),
        });
        http::configure(state, self.config.max_payload_bytes)
    }

    /// Stops starting attempts, waits for those in flight (at most `shutdown_timeout_ms`),
    /// and commits every queued record. Pending deliveries stay pending for the next start.
    pub async fn shutdown(&self) {
        let timeout = self.config.shutdown_timeout();
        if let Some(coordinator) = &self.coordinator {
            let _ = coordinator.send(StopClaiming).await;
        }
        if self.registry.send(DrainDeliveries { timeout }).await.is_err() {
            log::warn!("shutdown: the registry had already stopped");
        }
        // Bounded: with the database gone, records that cannot be written are given up on
        // (their deliveries stay pending and are attempted again on the next start).
        match actix_rt::time::timeout(timeout, self.writer.address().send(FlushWrites)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => log::warn!("shutdown: the writer had already stopped"),
            Err(_) => log::warn!("shutdown: some records could not be written within {timeout:?}"),
        }
        // The endpoints have drained and their records are written: the other servers may
        // take the webhooks over now rather than when the leases run out.
        if let Some(coordinator) = &self.coordinator {
            if actix_rt::time::timeout(timeout, coordinator.send(Leave)).await.is_err() {
                log::warn!("shutdown: the leases could not be handed over within {timeout:?}; they run out instead");
            }
        }
    }
}

/// The writer's thread: an actix system of its own (an arbiter of the main system would be
/// stopped by the HTTP server's signal handling before the shutdown flush), stopped when the
/// `Hookbus` that started it goes away.
struct WriterThread(actix_rt::System);

impl WriterThread {
    fn start(writer: Persistence) -> Result<(Writer, Self), StartError> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("hookbus-writer".into())
            .spawn(move || {
                let runner = actix_rt::System::new();
                runner.block_on(async {
                    let _ = tx.send((writer.start_writer(), actix_rt::System::current()));
                });
                if let Err(error) = runner.run() {
                    log::error!("the writer thread failed: {error}");
                }
            })
            .map_err(StartError::WriterThread)?;
        let (address, system) = rx.recv().map_err(|_| {
            StartError::WriterThread(std::io::Error::other("the writer thread stopped before it started"))
        })?;
        Ok((address, Self(system)))
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        self.0.stop();
    }
}
