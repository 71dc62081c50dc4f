//! Storage through diesel / diesel-async: SQLite (bundled, default) or PostgreSQL (no libpq).
//!
//! Nothing above this module knows which backend it talks to. Each query is written once
//! and expanded per backend by [`with_conn!`]; only the batched writer differs, because
//! diesel's multi-row `INSERT` for SQLite needs the synchronous connection.

mod batch;
pub mod cipher;
mod deliveries;
mod events;
mod prepared;
mod records;
pub mod schema;
mod webhooks;
mod workspaces;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

#[cfg(test)]
pub(crate) use batch::publishes_then_records;
pub use batch::{AttemptWrite, PublishWrite, WriteOp, WriteOutcome};
pub use deliveries::{DeliveryCount, WorkspaceTotals};
pub use records::{AttemptRecord, DeliveryRecord, DeliveryUpdate, EventRecord, PendingDelivery};
pub use workspaces::{KeyInfo, KeyOwner, WorkspaceRecord};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// SQLite pragmas for every connection: WAL so readers never block the writer, a busy
/// timeout so concurrent writers wait instead of failing with `database is locked`, and
/// `synchronous = FULL` so a 202 survives power loss, not only a crash (group commit pays
/// the fsync once per batch).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// The writer's page cache (8 MiB; SQLite takes KiB as a negative size): the pages it touches
/// on every batch (index leaves, recent deliveries) stay in memory; the default is 2 MiB.
/// Checkpoints every 10,000 WAL pages, so a page rewritten by many batches is copied once.
/// Statement journals in memory: a multi-row insert inside a batch's transaction keeps one
/// (to undo just that statement), and past 64 KiB SQLite spilled it to a temporary file that
/// was created, written page by page and deleted in every batch (BENCHMARKS.md).
const SQLITE_WRITER_PRAGMAS: &str =
    "PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 10000; PRAGMA temp_store = MEMORY;";

/// Readers keep a small page cache: SQLite drops a connection's cache whenever another
/// connection has committed since, which under load is before nearly every read.
const SQLITE_READER_PRAGMAS: &str = "PRAGMA cache_size = -512;";

type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// The `settings` row that remembers which master key encrypts the secrets.
const MASTER_KEY_CHECK: &str = "master_key_check";

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    SqliteFile(PathBuf),
    SqliteMemory,
    Postgres(String),
}

impl DatabaseUrl {
    /// `postgres://…` / `postgresql://…`, `sqlite::memory:`, `sqlite://path`, `sqlite:path` or a path.
    pub fn parse(raw: &str) -> Self {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Self::Postgres(raw.to_owned())
        } else if raw == "sqlite::memory:" || raw == ":memory:" {
            Self::SqliteMemory
        } else {
            let path = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")).unwrap_or(raw);
            Self::SqliteFile(PathBuf::from(path))
        }
    }

    /// Where the database is, for messages: a PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::SqliteFile(path) => path.display().to_string(),
            Self::SqliteMemory => "sqlite::memory:".to_owned(),
            Self::Postgres(raw) => match url::Url::parse(raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.to_string()
                }
                Err(_) => "a PostgreSQL URL that does not parse".to_owned(),
            },
        }
    }

    /// What to check when the database cannot be opened.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::SqliteFile(_) => "is the data dir a directory this user can write to, with room on its disk?",
            Self::SqliteMemory => "an in-memory database needs nothing; this is a bug",
            Self::Postgres(_) => "is PostgreSQL running and reachable there, and does the database exist?",
        }
    }

    /// Refuses a URL of another scheme (`mysql://…` would otherwise name a SQLite file).
    pub fn check(raw: &str) -> Result<(), String> {
        let forms = "use postgres://user@host/database, sqlite://path/to/file.db, sqlite::memory: or a file path";
        match raw.split_once("://") {
            Some(("postgres" | "postgresql" | "sqlite", _)) | None => Ok(()),
            Some((scheme, _)) => Err(format!("unknown scheme '{scheme}'; {forms}")),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database connection pool failed")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    /// The connection was lost or the database is busy elsewhere: worth retrying later.
    #[error("the database is unreachable")]
    Unavailable(#[source] diesel::result::Error),
    /// The database refused the statement.
    #[error("a database query failed")]
    Query(#[source] diesel::result::Error),
    #[error("could not connect to the database")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database migrations failed: {0}")]
    Migration(String),
    #[error("a stored row is not valid: {0}")]
    Corrupt(String),
    #[error("could not start the database driver: {0}")]
    Driver(String),
    #[error(
        "the master key does not match the one this database was written with \
         (check HOOKBUS_MASTER_KEY or <data_dir>/master.key)"
    )]
    WrongMasterKey,
    /// The writer thread is gone (the server is shutting down).
    #[error("the database writer has stopped")]
    WriterStopped,
}

impl From<diesel::result::Error> for StoreError {
    fn from(error: diesel::result::Error) -> Self {
        if lost_connection(&error) {
            Self::Unavailable(error)
        } else {
            Self::Query(error)
        }
    }
}

/// Whether a query failed because the database could not be reached, as opposed to one it
/// refused. The drivers report lost connections and lock timeouts only as text in an
/// `Unknown` error, so that text is what is read.
fn lost_connection(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as E};
    const SIGNS: &[&str] = &[
        "connection",
        "communicat",
        "closed",
        "broken pipe",
        "reset by peer",
        "unexpected eof",
        "terminating",
        "timed out",
        "database is locked",
        "shutting down",
    ];
    match error {
        E::BrokenTransactionManager => true,
        E::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => true,
        E::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message().to_ascii_lowercase();
            SIGNS.iter().any(|sign| message.contains(sign))
        }
        _ => false,
    }
}

impl StoreError {
    /// The database could not be reached (503 to clients), as opposed to a failure of the
    /// request itself.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Pool(_) | Self::Connect(_) | Self::Unavailable(_) | Self::WriterStopped)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone)]
enum Pool {
    /// SQLite has one writer at a time anyway; giving the batched writer a connection of
    /// its own keeps that connection's page cache warm (SQLite drops a connection's whole
    /// cache when another connection has written since it last looked).
    Sqlite {
        readers: DeadPool<SqliteConn>,
        writer: DeadPool<SqliteConn>,
        /// In memory the writer's connection is the readers' only one.
        writer_is_shared: bool,
    },
    Postgres(DeadPool<AsyncPgConnection>),
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Encrypts webhook secrets at rest once a master key is set.
    cipher: Option<std::sync::Arc<cipher::SecretCipher>>,
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend is in use.
/// The body is compiled once per backend, so each query is written once.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite { readers: pool, .. } => {
                let mut pooled = pool.get().await?;
                let $conn = &mut *pooled;
                $body
            }
            $crate::store::Pool::Postgres(pool) => {
                let mut pooled = pool.get().await?;
                let $conn = &mut *pooled;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

impl Store {
    /// Opens the database, creating the SQLite file if needed, and runs pending migrations.
    pub async fn open(url: &DatabaseUrl, max_connections: usize) -> StoreResult<Self> {
        run_migrations(url.clone()).await?;
        let pool = match url {
            DatabaseUrl::Postgres(raw) => {
                let mut config = ManagerConfig::<AsyncPgConnection>::default();
                config.recycling_method = RecyclingMethod::Fast;
                let drivers = driver_runtime()?;
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
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(raw, config);
                Pool::Postgres(build_pool(manager, max_connections))
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
        };
        Ok(Self { pool, cipher: None })
    }

    /// Whether a master key was ever used with this database (its check value is stored).
    pub async fn has_master_key(&self) -> StoreResult<bool> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use schema::settings;
        let stored: Option<String> = with_conn!(self, |conn| {
            settings::table.find(MASTER_KEY_CHECK).select(settings::value).first(conn).await.optional()?
        });
        Ok(stored.is_some())
    }

    /// Encrypts webhook secrets under `key` from now on, after checking that it is the key
    /// the database was written with (the first key used is remembered).
    pub async fn use_master_key(&mut self, key: &cipher::MasterKey) -> StoreResult<()> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use schema::settings;
        const NAME: &str = MASTER_KEY_CHECK;
        let check = key.check_value();
        let stored: Option<String> = with_conn!(self, |conn| {
            diesel::insert_into(settings::table)
                .values((settings::name.eq(NAME), settings::value.eq(&check)))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            settings::table.find(NAME).select(settings::value).first(conn).await.optional()?
        });
        if stored.as_deref() != Some(check.as_str()) {
            return Err(StoreError::WrongMasterKey);
        }
        self.cipher = Some(std::sync::Arc::new(cipher::SecretCipher::new(key)));
        Ok(())
    }

    /// The stored form of a secret: encrypted when a master key is set.
    pub(crate) fn seal(&self, secret: &str) -> String {
        match &self.cipher {
            Some(cipher) => cipher.encrypt(secret),
            None => secret.to_owned(),
        }
    }

    pub(crate) fn unseal(&self, stored: &str) -> StoreResult<String> {
        match &self.cipher {
            Some(cipher) => cipher.decrypt(stored),
            None => Ok(stored.to_owned()),
        }
    }

    /// How many batches may be written at once: SQLite has one writer. On PostgreSQL two, so
    /// one batch's round trip and WAL flush overlap the next one's; more only split the queue
    /// into smaller batches (more statements and commits for the same rows): publishing to one
    /// webhook from 64 clients ran at 12,300 events/s with one, 14,300 with two, 11,300 with
    /// four (BENCHMARKS.md, scenario (a)). Half the pool at most, so readers keep the rest.
    pub fn concurrent_writers(&self) -> usize {
        match &self.pool {
            Pool::Sqlite { .. } => 1,
            Pool::Postgres(pool) => (pool.status().max_size / 2).clamp(1, 2),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite { .. } => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Round-trips a trivial query; returns how long it took.
    pub async fn ping(&self) -> StoreResult<Duration> {
        let started = Instant::now();
        with_conn!(self, |conn| conn.batch_execute("SELECT 1").await?);
        Ok(started.elapsed())
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

/// Migrations run on a plain thread: diesel's harness is synchronous, and the async
/// wrapper it needs for PostgreSQL must not block inside the actix runtime.
async fn run_migrations(url: DatabaseUrl) -> StoreResult<()> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let outcome = match &url {
            DatabaseUrl::SqliteMemory => Ok(()),
            DatabaseUrl::SqliteFile(path) => migrate_sqlite_file(path),
            DatabaseUrl::Postgres(raw) => migrate_postgres(raw),
        };
        let _ = done.send(outcome);
    });
    result.await.map_err(|_| StoreError::Migration("the migration thread panicked".into()))?
}

fn migrate_sqlite_file(path: &std::path::Path) -> StoreResult<()> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    crate::files::prepare_sqlite_file(path).map_err(|e| StoreError::Migration(format!("{}: {e}", path.display())))?;
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
    conn.batch_execute(SQLITE_PRAGMAS)?;
    conn.run_pending_migrations(SQLITE_MIGRATIONS).map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(())
}

fn migrate_postgres(url: &str) -> StoreResult<()> {
    use diesel::Connection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(url)?;
    conn.run_pending_migrations(POSTGRES_MIGRATIONS).map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(())
}

async fn migrate_sqlite_memory(conn: &mut Object<SqliteConn>) -> StoreResult<()> {
    let conn: &mut SqliteConn = conn;
    conn.spawn_blocking(|conn| {
        conn.run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|_| ())
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .await?;
    Ok(())
}

pub(crate) fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// `limit + 1` rows were fetched; trims them and returns the cursor of the next page.
pub(crate) fn page<T>(mut rows: Vec<T>, limit: usize, id_of: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    if rows.len() > limit {
        rows.truncate(limit);
        let cursor = rows.last().map(id_of);
        (rows, cursor)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Integer;
    use diesel_async::RunQueryDsl;

    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Integer)]
        value: i32,
    }

    async fn pragma(conn: &mut SqliteConn, name: &str) -> i32 {
        diesel::sql_query(format!("SELECT {name} AS value FROM pragma_{name}"))
            .get_result::<Setting>(conn)
            .await
            .unwrap()
            .value
    }

    /// `.cargo/config.toml` compiles the bundled SQLite for this repository's builds: no
    /// mutex on every call on a connection, none around every allocation (and fdatasync at
    /// commit, which `strace` shows; SQLite does not report it).
    #[actix_rt::test]
    async fn bundled_sqlite_is_compiled_with_the_repository_settings() {
        #[derive(diesel::QueryableByName)]
        struct CompileOption {
            #[diesel(sql_type = diesel::sql_types::Text)]
            compile_options: String,
        }
        let mut conn = SqliteConn::establish(":memory:").await.unwrap();
        let options: Vec<String> = diesel::sql_query("SELECT compile_options FROM pragma_compile_options")
            .load::<CompileOption>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        for expected in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0"] {
            assert!(options.iter().any(|o| o == expected), "{expected} not in {options:?}");
        }
    }

    /// The writer's connection fsyncs every commit (a 202 survives power loss) and keeps
    /// statement journals in memory (spilled to a temporary file, each batch created one).
    #[actix_rt::test]
    async fn sqlite_writer_commits_durably_and_keeps_statement_journals_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseUrl::SqliteFile(dir.path().join("hookbus.db")), 2).await.unwrap();
        let Pool::Sqlite { writer, readers, .. } = &store.pool else { unreachable!() };
        let mut conn = writer.get().await.unwrap();
        const FULL: i32 = 2;
        const MEMORY: i32 = 2;
        assert_eq!(pragma(&mut conn, "synchronous").await, FULL);
        assert_eq!(pragma(&mut conn, "temp_store").await, MEMORY);
        // Readers sort into temporary files as SQLite does by default (a large listing's
        // sort is not held in memory).
        let mut reader = readers.get().await.unwrap();
        assert_eq!(pragma(&mut reader, "temp_store").await, 0);
    }
}
