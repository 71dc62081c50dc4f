//! Storage through diesel / diesel-async: SQLite (bundled, default) or PostgreSQL (no libpq).
//!
//! Nothing above this module knows which backend it talks to. Each query is written once
//! and expanded per backend by [`with_conn!`]; only the batched writer differs
//! (`batch/sqlite.rs`, `batch/postgres.rs`): diesel's multi-row `INSERT` for SQLite needs
//! the synchronous connection, and PostgreSQL takes a whole batch as arrays in one statement.
//! Beside the queries: `connections` (pools and pragmas), `migrations`, `url`, `error`, and
//! `cipher` (secrets at rest).

mod batch;
pub mod cipher;
pub mod cluster;
mod connections;
mod deliveries;
mod error;
mod events;
mod migrations;
mod prepared;
mod records;
mod replays;
pub mod schema;
mod url;
mod webhooks;
mod workspaces;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel_async::SimpleAsyncConnection;

use self::connections::Pool;
use self::migrations::run_migrations;

#[cfg(test)]
pub(crate) use batch::publishes_then_records;
pub use batch::{AttemptWrite, PublishWrite, WriteOp, WriteOutcome};
pub use deliveries::{DeliveryCount, WorkspaceTotals};
pub use error::{StoreError, StoreResult};
pub use records::{AttemptRecord, DeliveryRecord, DeliveryUpdate, EventRecord, PendingDelivery};
pub use replays::{ReplayRecord, ReplayState};
pub use url::{Backend, DatabaseUrl};
pub use workspaces::{KeyInfo, KeyOwner, WorkspaceRecord};

/// The `settings` row that remembers which master key encrypts the secrets.
const MASTER_KEY_CHECK: &str = "master_key_check";

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
            $crate::store::Pool::Postgres { readers: pool, .. } => {
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
        let pool = Pool::open(url, max_connections).await?;
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

    /// How many batches may be written at once: SQLite has one writer; on PostgreSQL, as many
    /// as the writer has connections (see `connections::postgres_writers`).
    pub fn concurrent_writers(&self) -> usize {
        match &self.pool {
            Pool::Sqlite { .. } => 1,
            Pool::Postgres { writer, .. } => writer.status().max_size,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite { .. } => Backend::Sqlite,
            Pool::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Round-trips a trivial query; returns how long it took.
    pub async fn ping(&self) -> StoreResult<Duration> {
        let started = Instant::now();
        with_conn!(self, |conn| conn.batch_execute("SELECT 1").await?);
        Ok(started.elapsed())
    }
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

    use diesel_async::AsyncConnection;

    use super::connections::SqliteConn;
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
