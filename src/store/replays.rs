//! Replays in the background: their progress in the database, so any server can show it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::records::parse_id;
use super::schema::{deliveries, replays};
use super::{from_millis, to_millis, with_conn, Store, StoreError, StoreResult};
use crate::domain::{DeliveryStatus, ReplayId, WebhookId, WorkspaceId};

/// How long a running replay may go without progress before it counts as interrupted (its
/// server stopped); each batch of a live one takes milliseconds.
const STALLED_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// Where a replay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    Running,
    Finished,
    /// The database refused a batch; `error` says why.
    Failed,
    /// Its server stopped before it finished; running the replay again picks up the rest.
    Interrupted,
}

impl ReplayState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Running, Self::Finished, Self::Failed, Self::Interrupted].into_iter().find(|s| s.as_str() == raw)
    }
}

/// A replay: which deliveries, how many, how far.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRecord {
    pub id: ReplayId,
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
    pub status: DeliveryStatus,
    pub since: DateTime<Utc>,
    pub state: ReplayState,
    /// Deliveries that matched when it started.
    pub total: u64,
    pub requeued: u64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = replays)]
struct ReplayRow {
    id: String,
    workspace_id: String,
    webhook_id: String,
    status: String,
    since: i64,
    state: String,
    total: i64,
    requeued: i64,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl ReplayRow {
    fn into_record(self, now: DateTime<Utc>) -> StoreResult<ReplayRecord> {
        let corrupt = |what: &str, raw: &str| StoreError::Corrupt(format!("replay {what} '{raw}'"));
        let mut state = ReplayState::parse(&self.state).ok_or_else(|| corrupt("state", &self.state))?;
        let updated_at = from_millis(self.updated_at);
        if state == ReplayState::Running && now - updated_at > STALLED_AFTER {
            state = ReplayState::Interrupted;
        }
        Ok(ReplayRecord {
            id: parse_id(&self.id)?,
            workspace_id: parse_id(&self.workspace_id)?,
            webhook_id: parse_id(&self.webhook_id)?,
            status: DeliveryStatus::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?,
            since: from_millis(self.since),
            state,
            total: self.total.max(0) as u64,
            requeued: self.requeued.max(0) as u64,
            error: self.error,
            created_at: from_millis(self.created_at),
            updated_at,
            finished_at: self.finished_at.map(from_millis),
        })
    }
}

impl Store {
    /// Records a replay about to start, with how many deliveries it matches now.
    pub async fn start_replay(
        &self,
        workspace_id: WorkspaceId,
        webhook_id: WebhookId,
        status: DeliveryStatus,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<ReplayRecord> {
        let total = self.count_replayable(webhook_id, status, since, now).await?;
        let row = ReplayRow {
            id: ReplayId::generate().to_string(),
            workspace_id: workspace_id.to_string(),
            webhook_id: webhook_id.to_string(),
            status: status.as_str().to_owned(),
            since: to_millis(since),
            state: ReplayState::Running.as_str().to_owned(),
            total: total as i64,
            requeued: 0,
            error: None,
            created_at: to_millis(now),
            updated_at: to_millis(now),
            finished_at: None,
        };
        let stored = with_conn!(self, |conn| {
            diesel::insert_into(replays::table)
                .values(&row)
                .returning(ReplayRow::as_returning())
                .get_result(conn)
                .await?
        });
        stored.into_record(now)
    }

    /// How far a replay got; `finished` with its end state (and error).
    pub async fn replay_progress(
        &self,
        id: ReplayId,
        requeued: u64,
        finished: Option<(ReplayState, Option<String>)>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (id, now) = (id.to_string(), to_millis(now));
        let (state, error, finished_at) = match finished {
            Some((state, error)) => (state, error, Some(now)),
            None => (ReplayState::Running, None, None),
        };
        with_conn!(self, |conn| {
            diesel::update(replays::table.filter(replays::id.eq(&id)))
                .set((
                    replays::requeued.eq(requeued as i64),
                    replays::state.eq(state.as_str()),
                    replays::error.eq(&error),
                    replays::updated_at.eq(now),
                    replays::finished_at.eq(finished_at),
                ))
                .execute(conn)
                .await?
        });
        Ok(())
    }

    /// A replay of the workspace's.
    pub async fn get_replay(&self, workspace_id: WorkspaceId, id: ReplayId) -> StoreResult<Option<ReplayRecord>> {
        let (ws, id) = (workspace_id.to_string(), id.to_string());
        let row: Option<ReplayRow> = with_conn!(self, |conn| {
            replays::table
                .filter(replays::id.eq(&id))
                .filter(replays::workspace_id.eq(&ws))
                .select(ReplayRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(|row| row.into_record(crate::domain::now())).transpose()
    }

    /// Deliveries a replay of `status` since `since` would requeue, created up to `until`.
    pub async fn count_replayable(
        &self,
        webhook_id: WebhookId,
        status: DeliveryStatus,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let (hook, since, until) = (webhook_id.to_string(), to_millis(since), to_millis(until));
        let count: i64 = with_conn!(self, |conn| {
            let mut query = deliveries::table
                .filter(deliveries::webhook_id.eq(&hook))
                .filter(deliveries::status.eq(status.as_str()))
                .filter(deliveries::created_at.ge(since))
                .filter(deliveries::created_at.le(until))
                .count()
                .into_boxed();
            if status != DeliveryStatus::Succeeded {
                query = query.filter(super::deliveries::unsettled());
            }
            query.get_result(conn).await?
        });
        Ok(count.max(0) as u64)
    }
}
