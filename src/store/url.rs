//! Where the data lives: `DatabaseUrl`, parsed and checked, and its backend.

use std::path::PathBuf;

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
