//! Workspaces (tenants) and their API keys.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::records::parse_id;
use super::schema::{api_keys, workspaces};
use super::{from_millis, page, to_millis, with_conn, Store, StoreResult};
use crate::domain::api_key::NewApiKey;
use crate::domain::WorkspaceId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRecord {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A key's id and the workspace it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOwner {
    pub key_id: uuid::Uuid,
    pub workspace_id: WorkspaceId,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = workspaces)]
struct WorkspaceRow {
    id: String,
    name: String,
    created_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
struct KeyRow<'a> {
    id: String,
    workspace_id: String,
    key_hash: &'a str,
    prefix: &'a str,
    created_at: i64,
}

/// A live key as listed: never the key, only what tells it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: uuid::Uuid,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Creates a workspace together with its first key.
    pub async fn create_workspace(
        &self,
        workspace: &WorkspaceRecord,
        key_id: uuid::Uuid,
        key: &NewApiKey,
    ) -> StoreResult<()> {
        let row = WorkspaceRow {
            id: workspace.id.to_string(),
            name: workspace.name.clone(),
            created_at: to_millis(workspace.created_at),
        };
        let key = KeyRow {
            id: key_id.to_string(),
            workspace_id: row.id.clone(),
            key_hash: &key.hash,
            prefix: key.prefix(),
            created_at: row.created_at,
        };
        with_conn!(self, |conn| {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                diesel::insert_into(workspaces::table).values(&row).execute(conn).await?;
                diesel::insert_into(api_keys::table).values(&key).execute(conn).await?;
                Ok(())
            })
            .await?
        });
        Ok(())
    }

    /// Workspaces, newest first.
    pub async fn list_workspaces(
        &self,
        cursor: Option<WorkspaceId>,
        limit: usize,
    ) -> StoreResult<(Vec<WorkspaceRecord>, Option<String>)> {
        let cursor = cursor.map(|c| c.to_string());
        let rows: Vec<WorkspaceRow> = with_conn!(self, |conn| {
            let mut query = workspaces::table
                .select(WorkspaceRow::as_select())
                .order(workspaces::id.desc())
                .limit(limit as i64 + 1)
                .into_boxed();
            if let Some(cursor) = &cursor {
                query = query.filter(workspaces::id.lt(cursor));
            }
            query.load(conn).await?
        });
        let records = rows
            .into_iter()
            .map(|r| Ok(WorkspaceRecord { id: parse_id(&r.id)?, name: r.name, created_at: from_millis(r.created_at) }))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page(records, limit, |w| w.id.to_string()))
    }

    pub async fn insert_api_key(
        &self,
        workspace_id: WorkspaceId,
        key_id: uuid::Uuid,
        key: &NewApiKey,
    ) -> StoreResult<()> {
        let key = KeyRow {
            id: key_id.to_string(),
            workspace_id: workspace_id.to_string(),
            key_hash: &key.hash,
            prefix: key.prefix(),
            created_at: to_millis(crate::domain::now()),
        };
        with_conn!(self, |conn| diesel::insert_into(api_keys::table).values(&key).execute(conn).await?);
        Ok(())
    }

    /// The workspace's live keys, newest first.
    pub async fn list_api_keys(
        &self,
        workspace_id: WorkspaceId,
        cursor: Option<uuid::Uuid>,
        limit: usize,
    ) -> StoreResult<(Vec<KeyInfo>, Option<String>)> {
        let (ws, cursor) = (workspace_id.to_string(), cursor.map(|c| c.to_string()));
        let rows: Vec<(String, String, i64, Option<i64>)> = with_conn!(self, |conn| {
            let mut query = api_keys::table
                .filter(api_keys::workspace_id.eq(&ws))
                .filter(api_keys::revoked_at.is_null())
                .select((api_keys::id, api_keys::prefix, api_keys::created_at, api_keys::last_used_at))
                .order(api_keys::id.desc())
                .limit(limit as i64 + 1)
                .into_boxed();
            if let Some(cursor) = &cursor {
                query = query.filter(api_keys::id.lt(cursor));
            }
            query.load(conn).await?
        });
        let keys = rows
            .into_iter()
            .map(|(id, prefix, created_at, last_used_at)| {
                Ok(KeyInfo {
                    id: parse_id(&id)?,
                    prefix,
                    created_at: from_millis(created_at),
                    last_used_at: last_used_at.map(from_millis),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page(keys, limit, |k| k.id.to_string()))
    }

    /// Records that a key was used at `at` (never moving the time backwards).
    pub async fn touch_api_key(&self, key_id: uuid::Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        let (id, at) = (key_id.to_string(), to_millis(at));
        with_conn!(self, |conn| {
            diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(&id))
                    .filter(api_keys::last_used_at.is_null().or(api_keys::last_used_at.lt(at))),
            )
            .set(api_keys::last_used_at.eq(Some(at)))
            .execute(conn)
            .await?
        });
        Ok(())
    }

    /// Revokes a key of the workspace; `false` if there is no such live key.
    pub async fn revoke_api_key(&self, workspace_id: WorkspaceId, key_id: uuid::Uuid) -> StoreResult<bool> {
        let (ws, id, now) = (workspace_id.to_string(), key_id.to_string(), to_millis(crate::domain::now()));
        let revoked = with_conn!(self, |conn| {
            diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(&id))
                    .filter(api_keys::workspace_id.eq(&ws))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(Some(now)))
            .execute(conn)
            .await?
        });
        Ok(revoked == 1)
    }

    /// The live key with this hash, if any.
    pub async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<KeyOwner>> {
        let found: Option<(String, String)> = with_conn!(self, |conn| {
            api_keys::table
                .filter(api_keys::key_hash.eq(key_hash))
                .filter(api_keys::revoked_at.is_null())
                .select((api_keys::id, api_keys::workspace_id))
                .first(conn)
                .await
                .optional()?
        });
        found
            .map(|(key_id, workspace_id)| {
                Ok(KeyOwner { key_id: parse_id(&key_id)?, workspace_id: parse_id(&workspace_id)? })
            })
            .transpose()
    }
}
