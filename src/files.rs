//! Files only the owner can read: the data dir, the SQLite database and its `-wal`/`-shm`,
//! the admin token and the master key hold payloads and secrets, so no other local user may
//! read them whatever the process's umask.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of every file hookbus creates: read and write for the owner only.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;
/// Mode of a data dir hookbus creates.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) readable by the owner only; an existing directory is
/// left as it is (it may be shared with other things; what hookbus puts in it is private).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)
}

/// Opens a new file for writing, readable by the owner only; fails if it exists.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path)
}

/// Makes sure `path`, if it exists, is readable by its owner only: a file left readable by
/// others (an older version, a copy, a hand-written token) is tightened, with a warning.
pub fn tighten(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_file() && mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
            log::warn!("{} was readable by other users (mode {mode:o}); it is now {:o}", path.display(), mode & 0o700);
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Why a secret (the admin token, the master key) could not be had, from its setting or its
/// file in the data dir.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: std::path::PathBuf, reason: String },
    /// The file is gone and generating a new one would do harm.
    #[error("{} is missing, but {reason}", path.display())]
    MustNotGenerate { path: std::path::PathBuf, reason: &'static str },
    #[error("the system random number generator failed")]
    Random,
    /// The configured value (`HOOKBUS_MASTER_KEY`, say) does not parse.
    #[error("{setting}: {reason}")]
    Configured { setting: &'static str, reason: String },
}

/// Whether a missing secret file may be generated.
pub enum IfMissing {
    Generate,
    /// Refuse, for this reason (what depends on the lost file, and what to do).
    Refuse(&'static str),
}

/// The secret in `dir/name`, parsed by `parse`: read if the file holds one, otherwise (per
/// `if_missing`) 32 random bytes encoded by `encode` are written into a new 0600 file. An
/// existing file readable by others is tightened first.
pub fn read_or_generate_secret<T>(
    dir: &Path,
    name: &str,
    if_missing: IfMissing,
    encode: impl FnOnce(&[u8; 32]) -> String,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, SecretError> {
    let path = dir.join(name);
    let io_error = |source| SecretError::Io { path: path.clone(), source };
    let parsed = |text: &str| parse(text).map_err(|reason| SecretError::Invalid { path: path.clone(), reason });
    tighten(&path).map_err(io_error)?;
    match std::fs::read_to_string(&path) {
        Ok(existing) if !existing.trim().is_empty() => {
            log::info!("{name} read from {}", path.display());
            return parsed(existing.trim());
        }
        // An empty file (a crash between creating and writing it) is as good as none.
        Ok(_) => std::fs::remove_file(&path).map_err(io_error)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    if let IfMissing::Refuse(reason) = if_missing {
        return Err(SecretError::MustNotGenerate { path, reason });
    }
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| SecretError::Random)?;
    let text = encode(&bytes);
    let value = parsed(&text)?;
    create_private_dir(dir).map_err(|source| SecretError::Io { path: dir.to_owned(), source })?;
    let mut file = create_private_file(&path).map_err(io_error)?;
    io::Write::write_all(&mut file, format!("{text}\n").as_bytes()).map_err(io_error)?;
    log::info!("generated {name} into {}", path.display());
    Ok(value)
}

/// Prepares a SQLite database file: its directory created private, the file created empty
/// with mode 0600 before SQLite opens it (SQLite gives `-wal` and `-shm` the database file's
/// mode), and an existing database and its companions tightened.
pub fn prepare_sqlite_file(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    match create_private_file(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        tighten(Path::new(&companion))?;
    }
    Ok(())
}

/// A SQLite database file claimed by this process: one server per file (SPEC §9). The claim
/// is an exclusive lock on `<database>.lock`, beside the canonical path of the database, so
/// any spelling of the same file (a symlink, `./`, another `--database-url`) finds it; the
/// system drops it when the process ends, however it ends.
#[derive(Debug)]
pub struct DatabaseClaim {
    _lock: File,
}

/// Why a SQLite database could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "the database {} is already in use by another hookbus server (one server per SQLite file; \
         several servers share a PostgreSQL database)",
        path.display()
    )]
    InUse { path: std::path::PathBuf },
    #[error("could not claim the database {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Claims the SQLite database at `path` (created, private, if missing) for this process.
pub fn claim_sqlite_file(path: &Path) -> Result<DatabaseClaim, ClaimError> {
    let io_error = |source| ClaimError::Io { path: path.to_owned(), source };
    prepare_sqlite_file(path).map_err(io_error)?;
    let canonical = path.canonicalize().map_err(io_error)?;
    let mut lock_path = canonical.as_os_str().to_owned();
    lock_path.push(".lock");
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let lock = options.open(&lock_path).map_err(io_error)?;
    match lock.try_lock() {
        Ok(()) => Ok(DatabaseClaim { _lock: lock }),
        Err(std::fs::TryLockError::WouldBlock) => Err(ClaimError::InUse { path: canonical }),
        Err(std::fs::TryLockError::Error(source)) => Err(io_error(source)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_claimed_database_is_refused_to_a_second_claim_by_any_spelling_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data").join("hookbus.db");
        let first = claim_sqlite_file(&db).unwrap();
        let again = claim_sqlite_file(&dir.path().join("data/./hookbus.db")).unwrap_err().to_string();
        assert!(again.contains("already in use"), "{again}");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        assert!(matches!(claim_sqlite_file(&link), Err(ClaimError::InUse { .. })), "a symlink names the same file");
        drop(first);
        claim_sqlite_file(&link).expect("free once the first claim is gone");
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_dirs_and_files_are_private_and_wide_files_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data/nested");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("hookbus.db");
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);

        let wal = dir.join("hookbus.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(mode(&wal), 0o600);
    }

    #[test]
    fn an_existing_dir_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(root.path()).unwrap();
        assert_eq!(mode(root.path()), 0o755);
    }
}
