//! The connection pools: for SQLite, readers and one writer with their pragmas; for
//! PostgreSQL, one pool whose connection drivers run on a runtime of their own.

use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool as DeadPool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;

use super::migrations::migrate_sqlite_memory;
use super::{DatabaseUrl, StoreError, StoreResult};

/// SQLite pragmas for every connection: WAL so readers never block the writer, a busy
/// timeout so concurrent writers wait instead of failing with `database is locked`, and
/// `synchronous = FULL` so a 202 survives power loss, not only a crash (group commit pays
/// the fsync once per batch).
pub(super) const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// The writer's page cache (8 MiB; SQLite takes KiB as a negative size): the pages it touches
/// on every batch (index leaves, recent deliveries) stay in memory; the default is 2 MiB.
/// Checkpoints every 10,000 WAL pages, so a page rewritten by many batches is copied once.
/// Statement journals in memory: a multi-row insert inside a batch's transaction keeps one
/// (to undo just that statement), and past 64 KiB SQLite would spill it to a temporary file
/// created, written page by page and deleted in every batch.
const SQLITE_WRITER_PRAGMAS: &str =
    "PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 10000; PRAGMA temp_store = MEMORY;";

/// Readers keep a small page cache: SQLite drops a connection's cache whenever another
/// connection has committed since, which under load is before nearly every read.
const SQLITE_READER_PRAGMAS: &str = "PRAGMA cache_size = -512;";

pub(super) type PgPool = DeadPool<AsyncPgConnection>;

pub(super) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

#[derive(Clone)]
pub(super) enum Pool {
    /// SQLite has one writer at a time anyway; giving the batched writer a connection of
    /// its own keeps that connection's page cache warm (SQLite drops a connection's whole
    /// cache when another connection has written since it last looked).
    Sqlite {
        readers: DeadPool<SqliteConn>,
        writer: DeadPool<SqliteConn>,
        /// In memory the writer's connection is the readers' only one.
        writer_is_shared: bool,
    },
    /// The batched writer has connections of its own on PostgreSQL too: its sessions stay on
    /// the same server processes, warm in the CPU's caches, instead of taking turns with every
    /// connection the readers and the cluster's housekeeping opened; and neither side can
    /// take all connections from the other.
    Postgres { readers: DeadPool<AsyncPgConnection>, writer: DeadPool<AsyncPgConnection> },
}

impl Pool {
    /// Opens the pools for `url` (migrated already, but for `sqlite::memory:`).
    pub(super) async fn open(url: &DatabaseUrl, max_connections: usize) -> StoreResult<Self> {
        Ok(match url {
            DatabaseUrl::Postgres(raw) => {
                let drivers = driver_runtime()?;
                let writers = postgres_writers(max_connections);
                let readers = build_pool(postgres_manager(raw, &drivers), (max_connections - writers).max(1));
                let writer = build_pool(postgres_manager(raw, &drivers), writers);
                Pool::Postgres { readers, writer }
            }
            DatabaseUrl::SqliteMemory | DatabaseUrl::SqliteFile(_) => {
                let (path, size) = match url {
                    // One connection: every `:memory:` connection is a database of its own.
                    DatabaseUrl::SqliteMemory => (":memory:".to_owned(), 1),
                    DatabaseUrl::SqliteFile(path) => (path.to_string_lossy().into_owned(), max_connections),
                    DatabaseUrl::Postgres(_) => unreachable!(),
                };
                let config = sqlite_setup(false);
                let readers = build_pool(AsyncDieselConnectionManager::new_with_config(&path, config), size);
                if matches!(url, DatabaseUrl::SqliteMemory) {
                    // The in-memory database lives only as long as its one connection,
                    // so migrate that connection itself, and write through it too.
                    let mut conn = readers.get().await?;
                    migrate_sqlite_memory(&mut conn).await?;
                    drop(conn);
                    Pool::Sqlite { writer: readers.clone(), readers, writer_is_shared: true }
                } else {
                    let writer = build_pool(AsyncDieselConnectionManager::new_with_config(path, sqlite_setup(true)), 1);
                    Pool::Sqlite { readers, writer, writer_is_shared: false }
                }
            }
        })
    }
}

/// A runtime of its own for PostgreSQL connection drivers. A connection's I/O task runs on
/// the runtime that opened it; opened from an HTTP worker, it would die with that worker at
/// shutdown, while the writer still needs it. This one lives as long as the process.
fn driver_runtime() -> StoreResult<tokio::runtime::Handle> {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("hookbus-pg-drivers".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => {
                    let _ = handle_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = handle_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| StoreError::Driver(e.to_string()))?;
    handle_rx
        .recv()
        .map_err(|_| StoreError::Driver("its thread did not start".into()))?
        .map_err(|e| StoreError::Driver(e.to_string()))
}

/// How many of the PostgreSQL connections the writer has: two, so one batch's round trip and
/// WAL flush overlap the next one's (more only split the queue into smaller batches, with more
/// statements and commits for the same rows); half of them at most, so readers keep the rest.
fn postgres_writers(max_connections: usize) -> usize {
    (max_connections / 2).clamp(1, 2)
}

/// How PostgreSQL connections are opened: on the driver's runtime, where their I/O then runs.
fn postgres_manager(url: &str, drivers: &tokio::runtime::Handle) -> AsyncDieselConnectionManager<AsyncPgConnection> {
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.recycling_method = RecyclingMethod::Fast;
    let drivers = drivers.clone();
    config.custom_setup = Box::new(move |url| {
        let (url, drivers) = (url.to_owned(), drivers.clone());
        async move {
            drivers
                .spawn(async move { AsyncPgConnection::establish(&url).await })
                .await
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?
        }
        .boxed()
    });
    AsyncDieselConnectionManager::new_with_config(url, config)
}

/// How SQLite connections are opened: the pragmas, and for the writer a larger page cache.
fn sqlite_setup(writer: bool) -> ManagerConfig<SqliteConn> {
    let mut config = ManagerConfig::<SqliteConn>::default();
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        async move {
            let mut conn = SqliteConn::establish(&url).await?;
            let role = if writer { SQLITE_WRITER_PRAGMAS } else { SQLITE_READER_PRAGMAS };
            let pragmas = format!("{SQLITE_PRAGMAS} {role}");
            conn.batch_execute(&pragmas).await.map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    config
}

fn build_pool<C>(manager: AsyncDieselConnectionManager<C>, size: usize) -> DeadPool<C>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    DeadPool<C>: Sized,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager,
{
    DeadPool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .expect("a runtime and a size were given, so the pool builds")
}
