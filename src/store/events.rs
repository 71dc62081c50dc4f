//! Event lookups (writes go through the batched writer).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::records::EventRow;
use super::schema::events;
use super::{with_conn, EventRecord, Store, StoreResult};
use crate::domain::{EventId, WorkspaceId};

impl Store {
    pub async fn find_event(&self, workspace_id: WorkspaceId, id: &EventId) -> StoreResult<Option<EventRecord>> {
        let (workspace_id, id) = (workspace_id.to_string(), id.to_string());
        let row: Option<EventRow> = with_conn!(self, |conn| {
            events::table.find((&workspace_id, &id)).select(EventRow::as_select()).first(conn).await.optional()?
        });
        row.map(EventRecord::try_from).transpose()
    }
}

impl Store {
    pub async fn workspace_exists(&self, id: WorkspaceId) -> StoreResult<bool> {
        use super::schema::workspaces;
        let id = id.to_string();
        let found: Option<String> = with_conn!(self, |conn| {
            workspaces::table.find(&id).select(workspaces::id).first(conn).await.optional()?
        });
        Ok(found.is_some())
    }
}
