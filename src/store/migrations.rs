//! Embedded migrations, run at start-up for either backend.

use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::connections::{SqliteConn, SQLITE_PRAGMAS};
use super::{DatabaseUrl, StoreError, StoreResult};

/// The advisory lock key that serialises migrations on PostgreSQL ("hookbus" in ASCII).
const MIGRATION_LOCK: i64 = 0x0068_6f6f_6b62_7573;

pub(super) const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Migrations run on a plain thread: diesel's harness is synchronous, and the async
/// wrapper it needs for PostgreSQL must not block inside the actix runtime.
pub(super) async fn run_migrations(url: DatabaseUrl) -> StoreResult<()> {
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
    run_pending(&mut conn, SQLITE_MIGRATIONS)
}

/// Runs the pending migrations one at a time, logging each with its progress: on a large
/// database one may take a while, and a person watching `hookbus migrate` should see which.
fn run_pending<C: MigrationHarness<B>, B: diesel::backend::Backend>(
    conn: &mut C,
    migrations: EmbeddedMigrations,
) -> StoreResult<()> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    let pending = conn.pending_migrations(migrations).map_err(failed)?;
    let count = pending.len();
    for (i, migration) in pending.iter().enumerate() {
        let started = std::time::Instant::now();
        log::info!("migration {}/{count}: {} …", i + 1, migration.name());
        conn.run_migration(migration.as_ref()).map_err(failed)?;
        log::info!("migration {}/{count}: {} done in {:.1?}", i + 1, migration.name(), started.elapsed());
    }
    Ok(())
}

fn migrate_postgres(url: &str) -> StoreResult<()> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(url)?;
    // Servers starting together on one database would each run the pending migrations at
    // once; with this session lock the others wait, then find nothing pending.
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let migrated = run_pending(&mut conn, POSTGRES_MIGRATIONS);
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
    migrated
}

pub(super) async fn migrate_sqlite_memory(conn: &mut Object<SqliteConn>) -> StoreResult<()> {
    let conn: &mut SqliteConn = conn;
    conn.spawn_blocking(|conn| {
        conn.run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|_| ())
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .await?;
    Ok(())
}
