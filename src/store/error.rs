//! What can go wrong with the database, classified where diesel's errors arrive.

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
