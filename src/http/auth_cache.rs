//! [`AuthCache`]: the workspace keys and workspaces a request has already found in the
//! database, so that authenticating a request does not read the database every time: a
//! query per publish would cost more of the server's CPU than the publish itself.
//!
//! Only what the database holds is remembered, so the cache grows with the keys and
//! workspaces the admin creates, never with what callers present. Workspaces are never
//! deleted. Keys are revoked through [`AuthCache::revoke_key`], which forgets the key in the
//! same step; one revoked behind this server's back (in the database, or through another
//! server on the same database) is read again within [`KEY_RECHECK`] on SQLite, and within
//! [`SHARED_KEY_RECHECK`] on PostgreSQL, where other servers may revoke keys (SPEC §9: a
//! revocation reaches every server within 1 s).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::domain::WorkspaceId;
use crate::store::{KeyOwner, Store, StoreResult};

/// How long a remembered key is trusted before the database is asked again.
pub const KEY_RECHECK: Duration = Duration::from_secs(30);

/// The same on PostgreSQL: a key read per second per server costs nothing next to the
/// requests it serves.
pub const SHARED_KEY_RECHECK: Duration = Duration::from_millis(500);

/// A key's `last_used_at` is written at most this often, so it is never older than this
/// behind the key's real last use, and a busy key costs one write a minute, not one per request.
pub const LAST_USED_PRECISION: Duration = Duration::from_secs(60);

pub struct AuthCache {
    store: Store,
    recheck: Duration,
    known: RwLock<Known>,
    /// When each key's use was last written, in milliseconds since the epoch.
    use_written: RwLock<HashMap<uuid::Uuid, AtomicI64>>,
}

#[derive(Default)]
struct Known {
    /// By hash, with when each was read.
    keys: HashMap<String, (KeyOwner, Instant)>,
    /// How many keys were forgotten: a lookup that began before a revocation must not
    /// remember what it read (it may have read the key before the revocation committed).
    forgotten: u64,
    workspaces: HashSet<WorkspaceId>,
}

/// A lookup of a key in the database, begun at a count of forgotten keys.
struct KeyLookup {
    forgotten_before: u64,
    began: Instant,
}

impl AuthCache {
    pub fn new(store: Store) -> Self {
        let recheck = match store.backend() {
            crate::store::Backend::Sqlite => KEY_RECHECK,
            crate::store::Backend::Postgres => SHARED_KEY_RECHECK,
        };
        Self { store, recheck, known: RwLock::default(), use_written: RwLock::default() }
    }

    /// The live key with this hash; its use is recorded (`last_used_at`).
    pub async fn find_key(&self, key_hash: &str) -> StoreResult<Option<KeyOwner>> {
        let found = self.find_key_quietly(key_hash).await?;
        if let Some(owner) = found {
            self.record_use(owner.key_id, crate::domain::now());
        }
        Ok(found)
    }

    async fn find_key_quietly(&self, key_hash: &str) -> StoreResult<Option<KeyOwner>> {
        let lookup = {
            let known = self.read();
            if let Some((owner, _)) = known.keys.get(key_hash).filter(|(_, read)| read.elapsed() < self.recheck) {
                return Ok(Some(*owner));
            }
            KeyLookup { forgotten_before: known.forgotten, began: Instant::now() }
        };
        // Not remembered, or remembered too long ago: ask the database.
        let found = self.store.find_api_key(key_hash).await?;
        match found {
            Some(owner) => self.remember_key(lookup, key_hash, owner),
            // An expired entry of a key that is gone; a made-up key takes no write lock.
            None if self.read().keys.contains_key(key_hash) => {
                self.write().keys.remove(key_hash);
            }
            None => {}
        }
        Ok(found)
    }

    fn remember_key(&self, lookup: KeyLookup, key_hash: &str, owner: KeyOwner) {
        let mut known = self.write();
        if known.forgotten == lookup.forgotten_before {
            known.keys.insert(key_hash.to_owned(), (owner, lookup.began));
        }
    }

    /// Revokes a key of the workspace; `false` if there is no such live key. Requests that
    /// present it from now on are refused. The key is forgotten even when there was nothing
    /// to revoke: one revoked behind this server's back is then read again at once.
    pub async fn revoke_key(&self, workspace_id: WorkspaceId, key_id: uuid::Uuid) -> StoreResult<bool> {
        let revoked = self.store.revoke_api_key(workspace_id, key_id).await;
        self.forget_key(key_id);
        revoked
    }

    /// Writes the key's `last_used_at` in the background if the last write is
    /// [`LAST_USED_PRECISION`] old; concurrent requests claim the write once.
    fn record_use(&self, key_id: uuid::Uuid, now: chrono::DateTime<chrono::Utc>) {
        if self.claim_use_write(key_id, now.timestamp_millis()) {
            let store = self.store.clone();
            actix_rt::spawn(async move {
                if let Err(error) = store.touch_api_key(key_id, now).await {
                    log::warn!("could not record the use of key {key_id}: {error}");
                }
            });
        }
    }

    fn claim_use_write(&self, key_id: uuid::Uuid, now_ms: i64) -> bool {
        let claim = |written: &AtomicI64| {
            let last = written.load(Ordering::Acquire);
            now_ms - last >= LAST_USED_PRECISION.as_millis() as i64
                && written.compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire).is_ok()
        };
        if let Some(written) = self.use_written.read().unwrap_or_else(PoisonError::into_inner).get(&key_id) {
            return claim(written);
        }
        match self.use_written.write().unwrap_or_else(PoisonError::into_inner).entry(key_id) {
            Entry::Occupied(written) => claim(written.get()),
            Entry::Vacant(slot) => {
                slot.insert(AtomicI64::new(now_ms));
                true
            }
        }
    }

    fn forget_key(&self, key_id: uuid::Uuid) {
        self.use_written.write().unwrap_or_else(PoisonError::into_inner).remove(&key_id);
        let mut known = self.write();
        known.forgotten += 1;
        known.keys.retain(|_, (owner, _)| owner.key_id != key_id);
    }

    pub async fn workspace_exists(&self, id: WorkspaceId) -> StoreResult<bool> {
        if self.read().workspaces.contains(&id) {
            return Ok(true);
        }
        let exists = self.store.workspace_exists(id).await?;
        if exists {
            self.write().workspaces.insert(id);
        }
        Ok(exists)
    }

    /// Every change is a single insert or removal, so a panic while the lock was held
    /// leaves the maps consistent: a poisoned lock is taken as is.
    fn read(&self) -> RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Known> {
        self.known.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::NewApiKey;
    use crate::store::DatabaseUrl;

    async fn store_with_key() -> (tempfile::TempDir, Store, NewApiKey, uuid::Uuid) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseUrl::SqliteFile(dir.path().join("hookbus.db")), 2).await.unwrap();
        let key = NewApiKey::generate();
        let key_id = uuid::Uuid::now_v7();
        store.insert_api_key(WorkspaceId::DEFAULT, key_id, &key).await.unwrap();
        (dir, store, key, key_id)
    }

    /// A key found once is answered from memory: revoked in the database behind the cache's
    /// back it still opens, until the cache forgets it.
    #[actix_rt::test]
    async fn a_found_key_is_remembered_until_forgotten() {
        let (_dir, store, key, key_id) = store_with_key().await;
        let cache = AuthCache::new(store.clone());
        let owner = KeyOwner { key_id, workspace_id: WorkspaceId::DEFAULT };
        assert_eq!(cache.find_key(&key.hash).await.unwrap(), Some(owner));

        assert!(store.revoke_api_key(WorkspaceId::DEFAULT, key_id).await.unwrap());
        assert_eq!(cache.find_key(&key.hash).await.unwrap(), Some(owner), "from memory");
        cache.forget_key(key_id);
        assert_eq!(cache.find_key(&key.hash).await.unwrap(), None, "read again, revoked");
    }

    /// A key revoked behind the cache's back stops opening once its entry is older than
    /// [`KEY_RECHECK`] (the entry is aged by hand rather than by waiting).
    #[actix_rt::test]
    async fn a_remembered_key_is_checked_again_after_a_while() {
        let (_dir, store, key, key_id) = store_with_key().await;
        let cache = AuthCache::new(store.clone());
        assert!(cache.find_key(&key.hash).await.unwrap().is_some());
        assert!(store.revoke_api_key(WorkspaceId::DEFAULT, key_id).await.unwrap());
        assert!(cache.find_key(&key.hash).await.unwrap().is_some(), "still trusted");
        cache.write().keys.get_mut(&key.hash).unwrap().1 = Instant::now() - KEY_RECHECK;
        assert_eq!(cache.find_key(&key.hash).await.unwrap(), None);
        assert!(cache.read().keys.is_empty(), "and dropped");
    }

    /// A lookup that read the key before a revocation does not put it back afterwards.
    #[actix_rt::test]
    async fn a_lookup_overtaken_by_a_revocation_is_not_remembered() {
        let (_dir, store, key, key_id) = store_with_key().await;
        let cache = AuthCache::new(store.clone());
        let lookup = KeyLookup { forgotten_before: cache.read().forgotten, began: Instant::now() };
        let owner = store.find_api_key(&key.hash).await.unwrap().unwrap();
        assert!(cache.revoke_key(WorkspaceId::DEFAULT, key_id).await.unwrap());
        cache.remember_key(lookup, &key.hash, owner);
        assert_eq!(cache.find_key(&key.hash).await.unwrap(), None);
    }

    /// A key's use is written once per [`LAST_USED_PRECISION`], not once per request.
    #[actix_rt::test]
    async fn last_use_is_written_at_most_once_a_minute() {
        let (_dir, store, _, key_id) = store_with_key().await;
        let cache = AuthCache::new(store);
        let minute = LAST_USED_PRECISION.as_millis() as i64;
        assert!(cache.claim_use_write(key_id, 1_000_000), "the first use is written");
        assert!(!cache.claim_use_write(key_id, 1_000_000 + minute - 1));
        assert!(cache.claim_use_write(key_id, 1_000_000 + minute));
        assert!(!cache.claim_use_write(key_id, 1_000_000 + minute + 5));
        cache.forget_key(key_id);
        assert!(cache.claim_use_write(key_id, 1_000_000 + minute + 6), "a forgotten key starts afresh");
    }

    #[actix_rt::test]
    async fn unknown_keys_and_workspaces_are_not_remembered() {
        let (_dir, store, _, _) = store_with_key().await;
        let cache = AuthCache::new(store.clone());
        assert_eq!(cache.find_key("no-such-hash").await.unwrap(), None);
        let missing = WorkspaceId::generate();
        assert!(!cache.workspace_exists(missing).await.unwrap());
        assert!(cache.workspace_exists(WorkspaceId::DEFAULT).await.unwrap());
        let known = cache.read();
        assert!(known.keys.is_empty());
        assert_eq!(known.workspaces.iter().collect::<Vec<_>>(), [&WorkspaceId::DEFAULT]);
    }
}
