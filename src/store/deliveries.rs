//! Delivery and attempt lookups, and the paging the delivery loop relies on.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::records::{AttemptRow, DeliveryRow, EventRow};
use super::schema::{attempts, deliveries, events};
use super::{
    from_millis, page, to_millis, with_conn, AttemptRecord, DeliveryRecord, PendingDelivery, Store, StoreResult,
};
use crate::domain::activity::MinuteCount;
use crate::domain::{DeliveryId, DeliveryStatus, WebhookId, WorkspaceId};

/// `deliveries ⋈ events` on the event's key.
macro_rules! with_event {
    () => {
        deliveries::table.inner_join(
            events::table
                .on(events::workspace_id.eq(deliveries::workspace_id).and(events::id.eq(deliveries::event_id))),
        )
    };
}

/// The condition of the `deliveries_unsettled` partial index (pending, failed and cancelled
/// deliveries), written out in every query that should use it: SQLite picks a partial index
/// only when the query's `WHERE` has the index's condition as one of its terms.
const UNSETTLED: &str = "status <> 'succeeded'";

pub(super) fn unsettled() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql(UNSETTLED)
}

fn pending_from(rows: Vec<(DeliveryRow, EventRow)>) -> StoreResult<Vec<PendingDelivery>> {
    rows.into_iter()
        .map(|(delivery, event)| {
            Ok(PendingDelivery {
                delivery: delivery.try_into()?,
                data_json: event.data.into(),
                event_created_at: from_millis(event.created_at),
            })
        })
        .collect()
}

impl Store {
    /// A webhook's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        workspace_id: WorkspaceId,
        webhook_id: WebhookId,
        status: Option<DeliveryStatus>,
        cursor: Option<DeliveryId>,
        limit: usize,
    ) -> StoreResult<(Vec<DeliveryRecord>, Option<String>)> {
        let (ws, hook) = (workspace_id.to_string(), webhook_id.to_string());
        let cursor = cursor.map(|c| c.to_string());
        let rows: Vec<DeliveryRow> = with_conn!(self, |conn| {
            let mut query = deliveries::table
                .filter(deliveries::workspace_id.eq(&ws))
                .filter(deliveries::webhook_id.eq(&hook))
                .select(DeliveryRow::as_select())
                .order(deliveries::id.desc())
                .limit(limit as i64 + 1)
                .into_boxed();
            if let Some(status) = status {
                query = query.filter(deliveries::status.eq(status.as_str()));
                // Succeeded deliveries are nearly every row of (webhook_id, id).
                if status != DeliveryStatus::Succeeded {
                    query = query.filter(unsettled());
                }
            }
            if let Some(cursor) = &cursor {
                query = query.filter(deliveries::id.lt(cursor));
            }
            query.load(conn).await?
        });
        let records = rows.into_iter().map(DeliveryRecord::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(page(records, limit, |d| d.id.to_string()))
    }

    /// One delivery with its event payload and every attempt, oldest attempt first.
    pub async fn get_delivery(
        &self,
        workspace_id: WorkspaceId,
        id: DeliveryId,
    ) -> StoreResult<Option<(PendingDelivery, Vec<AttemptRecord>)>> {
        let (workspace_id, id) = (workspace_id.to_string(), id.to_string());
        // One statement, so the row and its attempts come from one snapshot: read in two, a
        // record committing in between could list more attempts than the row counts.
        let rows: Vec<(DeliveryRow, EventRow, Option<AttemptRow>)> = with_conn!(self, |conn| {
            with_event!()
                .left_join(attempts::table.on(attempts::delivery_id.eq(deliveries::id)))
                .filter(deliveries::id.eq(&id))
                .filter(deliveries::workspace_id.eq(&workspace_id))
                .select((DeliveryRow::as_select(), EventRow::as_select(), Option::<AttemptRow>::as_select()))
                .order((attempts::attempt, attempts::started_at))
                .load(conn)
                .await?
        });
        let mut rows = rows.into_iter();
        let Some((delivery_row, event_row, first_attempt)) = rows.next() else {
            return Ok(None);
        };
        let attempt_rows: Vec<AttemptRow> = first_attempt.into_iter().chain(rows.filter_map(|(_, _, a)| a)).collect();
        let row = (delivery_row, event_row);
        let delivery = pending_from(vec![row])?.remove(0);
        let mut attempts = attempt_rows.into_iter().map(AttemptRecord::try_from).collect::<StoreResult<Vec<_>>>()?;
        // The row holds the latest attempt; the table can hold it too only after a race
        // with a cancellation (the move happened, the update did not). Two attempts with one
        // number are two servers' (one under a lost lease): both are kept.
        if let Some(latest) = delivery.delivery.latest_attempt() {
            if !attempts.iter().any(|a| a.attempt == latest.attempt && a.started_at == latest.started_at) {
                attempts.push(latest);
                attempts.sort_by_key(|a| (a.attempt, a.started_at));
            }
        }
        Ok(Some((delivery, attempts)))
    }

    /// Up to `limit` pending deliveries of a webhook with ids after `after`, in id order.
    pub async fn pending_page(
        &self,
        webhook_id: WebhookId,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> StoreResult<Vec<PendingDelivery>> {
        let (hook, after) = (webhook_id.to_string(), after.map(|a| a.to_string()));
        let rows = with_conn!(self, |conn| {
            let mut query = with_event!()
                .filter(deliveries::webhook_id.eq(&hook))
                .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(unsettled())
                .select((DeliveryRow::as_select(), EventRow::as_select()))
                .order(deliveries::id)
                .limit(limit as i64)
                .into_boxed();
            if let Some(after) = &after {
                query = query.filter(deliveries::id.gt(after));
            }
            query.load(conn).await?
        });
        pending_from(rows)
    }

    /// These deliveries, those of them still pending (another server published them).
    pub async fn pending_by_ids(&self, ids: &[DeliveryId]) -> StoreResult<Vec<PendingDelivery>> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let rows = with_conn!(self, |conn| {
            with_event!()
                .filter(deliveries::id.eq_any(&ids))
                .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(unsettled())
                .select((DeliveryRow::as_select(), EventRow::as_select()))
                .order(deliveries::id)
                .load(conn)
                .await?
        });
        pending_from(rows)
    }

    /// Ids of the webhook's pending deliveries before `before`, in order (at most `limit`):
    /// what an endpoint compares with those it holds to find any it was never told of.
    pub async fn pending_ids_before(
        &self,
        webhook_id: WebhookId,
        before: DeliveryId,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryId>> {
        let (hook, before) = (webhook_id.to_string(), before.to_string());
        let ids: Vec<String> = with_conn!(self, |conn| {
            deliveries::table
                .filter(deliveries::webhook_id.eq(&hook))
                .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(unsettled())
                .filter(deliveries::id.lt(&before))
                .select(deliveries::id)
                .order(deliveries::id)
                .limit(limit as i64)
                .load(conn)
                .await?
        });
        ids.iter().map(|id| super::records::parse_id(id)).collect()
    }

    /// Puts a finished delivery back in `pending`, due at `now`, keeping its attempts.
    /// Returns the delivery as it now is, or `None` if there is no such delivery.
    pub async fn requeue_delivery(
        &self,
        workspace_id: WorkspaceId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingDelivery>> {
        let (ws, raw_id) = (workspace_id.to_string(), id.to_string());
        let updated = with_conn!(self, |conn| {
            diesel::update(
                deliveries::table.filter(deliveries::id.eq(&raw_id)).filter(deliveries::workspace_id.eq(&ws)),
            )
            .set((
                deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                deliveries::next_attempt_at.eq(Some(to_millis(now))),
                deliveries::completed_at.eq(None::<i64>),
                deliveries::failure_reason.eq(None::<String>),
                // A redelivery gets a full retry budget again.
                deliveries::retries_used.eq(0),
            ))
            .execute(conn)
            .await?
        });
        if updated == 0 {
            return Ok(None);
        }
        Ok(self.get_delivery(workspace_id, id).await?.map(|(pending, _)| pending))
    }
}

impl Store {
    /// Fails every pending delivery of a webhook (it was disabled) for `reason`, but
    /// `except` (whose own attempt record is on its way); returns how many. Their latest
    /// attempts stay as they are: the reason is a field of its own.
    pub async fn fail_pending_deliveries(
        &self,
        webhook_id: WebhookId,
        reason: &str,
        except: Option<DeliveryId>,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let (hook, reason, now) = (webhook_id.to_string(), reason.to_owned(), to_millis(now));
        let except = except.map(|id| id.to_string()).unwrap_or_default();
        let failed = with_conn!(self, |conn| {
            diesel::update(
                deliveries::table
                    .filter(deliveries::webhook_id.eq(&hook))
                    .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                    .filter(unsettled())
                    .filter(deliveries::id.ne(&except)),
            )
            .set((
                deliveries::status.eq(DeliveryStatus::Failed.as_str()),
                deliveries::next_attempt_at.eq(None::<i64>),
                deliveries::completed_at.eq(Some(now)),
                deliveries::failure_reason.eq(Some(&reason)),
            ))
            .execute(conn)
            .await?
        });
        Ok(failed)
    }
}

/// How many deliveries one webhook has in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCount {
    pub webhook_id: WebhookId,
    pub status: DeliveryStatus,
    pub count: u64,
}

/// Event, delivery and attempt counts of a workspace, for the health dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceTotals {
    pub events: u64,
    pub attempts: u64,
    pub deliveries: Vec<DeliveryCount>,
}

fn delivery_counts(rows: Vec<(String, String, i64)>) -> StoreResult<Vec<DeliveryCount>> {
    rows.into_iter()
        .map(|(webhook_id, status, count)| {
            Ok(DeliveryCount {
                webhook_id: super::records::parse_id(&webhook_id)?,
                status: DeliveryStatus::parse(&status)
                    .ok_or_else(|| super::StoreError::Corrupt(format!("delivery status '{status}'")))?,
                count: count.max(0) as u64,
            })
        })
        .collect()
}

impl Store {
    pub async fn workspace_totals(&self, workspace_id: WorkspaceId) -> StoreResult<WorkspaceTotals> {
        let ws = workspace_id.to_string();
        // Three statements, each seeing the latest commit: deliveries are counted first, so
        // the attempts counted after them include every attempt of a delivery counted as
        // settled (an attempt and its delivery's new state commit together, and attempts only
        // grow), and the events include every event of a counted delivery.
        let (events, attempts, rows) = with_conn!(self, |conn| {
            let rows: Vec<(String, String, i64, i64)> = deliveries::table
                .filter(deliveries::workspace_id.eq(&ws))
                .group_by((deliveries::webhook_id, deliveries::status))
                .select((
                    deliveries::webhook_id,
                    deliveries::status,
                    diesel::dsl::count_star(),
                    // Latest attempts, which the delivery rows hold.
                    diesel::dsl::count(deliveries::last_attempt_at),
                ))
                .load(conn)
                .await?;
            let earlier: i64 = attempts::table.filter(attempts::workspace_id.eq(&ws)).count().get_result(conn).await?;
            let attempts = earlier + rows.iter().map(|row| row.3).sum::<i64>();
            let rows: Vec<(String, String, i64)> =
                rows.into_iter().map(|(hook, status, n, _)| (hook, status, n)).collect();
            // The workspace's clients' events: hookbus' own (`hookbus.*`) are not theirs.
            let events: i64 = events::table
                .filter(events::workspace_id.eq(&ws))
                .filter(events::event_type.not_like("hookbus.%"))
                .count()
                .get_result(conn)
                .await?;
            (events, attempts, rows)
        });
        Ok(WorkspaceTotals {
            events: events.max(0) as u64,
            attempts: attempts.max(0) as u64,
            deliveries: delivery_counts(rows)?,
        })
    }

    /// A webhook's deliveries created at or after `since`, counted by creation minute, status
    /// and latest attempt duration (see [`crate::domain::activity`]). Ids are time-ordered, so
    /// the range is a scan of the `(webhook_id, id)` index from `since`.
    pub async fn delivery_minutes(
        &self,
        workspace_id: WorkspaceId,
        webhook_id: WebhookId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<MinuteCount>> {
        use diesel::dsl::sql;
        use diesel::sql_types::{BigInt, Nullable, Text};
        let (ws, hook, first) =
            (workspace_id.to_string(), webhook_id.to_string(), DeliveryId::first_at(since).to_string());
        // Grouped by an expression, which diesel's DSL cannot name in `GROUP BY`.
        let rows: Vec<(i64, String, Option<i64>, i64)> = with_conn!(self, |conn| {
            deliveries::table
                .filter(deliveries::workspace_id.eq(&ws))
                .filter(deliveries::webhook_id.eq(&hook))
                .filter(deliveries::id.ge(&first))
                .group_by(sql::<BigInt>("created_at / 60000, status, duration_ms"))
                .select(sql::<(BigInt, Text, Nullable<BigInt>, BigInt)>(
                    "created_at / 60000, status, duration_ms, COUNT(*)",
                ))
                .load(conn)
                .await?
        });
        rows.into_iter()
            .map(|(minute, status, duration_ms, count)| {
                let status = DeliveryStatus::parse(&status)
                    .ok_or_else(|| super::StoreError::Corrupt(format!("delivery status '{status}'")))?;
                Ok(MinuteCount { minute, status, duration_ms, count })
            })
            .collect()
    }

    /// Pending deliveries per registered webhook, across all workspaces (for start-up);
    /// webhooks with none are left out.
    pub async fn pending_counts(&self) -> StoreResult<Vec<(WebhookId, u64)>> {
        Ok(self.queue_depths().await?.into_iter().filter(|(_, pending)| *pending > 0).collect())
    }

    /// Pending deliveries of every registered webhook, none included (for `/metrics`).
    pub async fn queue_depths(&self) -> StoreResult<Vec<(WebhookId, u64)>> {
        let rows: Vec<PendingCount> = with_conn!(self, |conn| diesel::sql_query(PENDING_COUNTS).load(conn).await?);
        rows.into_iter()
            .map(|row| {
                let webhook_id = super::records::parse_id(&row.webhook_id)?;
                Ok((webhook_id, row.pending.max(0) as u64))
            })
            .collect()
    }
}

/// Pending deliveries per webhook, one range of `deliveries_unsettled` each: the cost
/// follows the number of webhooks and pending deliveries, not the size of the history.
/// Webhooks without any come back with 0 (a `WHERE` on the count would make SQLite count
/// twice).
const PENDING_COUNTS: &str = "SELECT w.id AS webhook_id, \
     (SELECT count(*) FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending' \
       AND d.status <> 'succeeded') AS pending \
     FROM webhooks w";

#[derive(diesel::QueryableByName)]
struct PendingCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    webhook_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pending: i64,
}

impl Store {
    /// Puts the next `limit` of a webhook's deliveries in `status`, created from `since` to
    /// `until`, with ids after `after`, back in `pending` (due now, full retry budget,
    /// attempts kept). Returns how many, and the last id looked at, to pass as `after` next
    /// time; `None` when there are none left. Going by id, a replay visits each delivery
    /// once, even one that fails again (or succeeds again) while the replay still runs.
    #[allow(clippy::too_many_arguments)]
    pub async fn requeue_batch(
        &self,
        webhook_id: WebhookId,
        status: DeliveryStatus,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<&str>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<(usize, Option<String>)> {
        let (hook, since, until, now) = (webhook_id.to_string(), to_millis(since), to_millis(until), to_millis(now));
        let after = after.unwrap_or_default().to_owned();
        let (requeued, last) = with_conn!(self, |conn| {
            let mut batch = deliveries::table
                .filter(deliveries::webhook_id.eq(&hook))
                .filter(deliveries::status.eq(status.as_str()))
                .filter(deliveries::created_at.ge(since))
                .filter(deliveries::created_at.le(until))
                .filter(deliveries::id.gt(&after))
                .select(deliveries::id)
                .order(deliveries::id)
                .limit(limit as i64)
                .into_boxed();
            if status != DeliveryStatus::Succeeded {
                batch = batch.filter(unsettled());
            }
            let ids: Vec<String> = batch.load(conn).await?;
            if ids.is_empty() {
                return Ok((0, None));
            }
            // Still in `status`: one may have changed since it was read.
            let requeued = diesel::update(
                deliveries::table.filter(deliveries::id.eq_any(&ids)).filter(deliveries::status.eq(status.as_str())),
            )
            .set((
                deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                deliveries::next_attempt_at.eq(Some(now)),
                deliveries::completed_at.eq(None::<i64>),
                deliveries::failure_reason.eq(None::<String>),
                deliveries::retries_used.eq(0),
            ))
            .execute(conn)
            .await?;
            (requeued, ids.last().cloned())
        });
        Ok((requeued, last))
    }

    /// Removes up to `limit` finished deliveries (with their attempts) and up to `limit`
    /// events that no delivery refers to any more, all created before `cutoff`. Pending
    /// deliveries and their events are kept whatever their age. Returns rows removed.
    pub async fn purge_batch(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        let cutoff = to_millis(cutoff);
        let old_events = match self.backend() {
            super::Backend::Sqlite => PURGE_EVENTS_SQLITE,
            super::Backend::Postgres => PURGE_EVENTS_POSTGRES,
        };
        let removed = with_conn!(self, |conn| {
            use diesel_async::AsyncConnection;
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                let inner = diesel::alias!(deliveries as inner);
                let old_finished = || {
                    inner
                        .filter(inner.field(deliveries::created_at).lt(cutoff))
                        .filter(inner.field(deliveries::status).ne(DeliveryStatus::Pending.as_str()))
                        .select(inner.field(deliveries::id))
                        .order(inner.field(deliveries::id))
                        .limit(limit as i64)
                };
                diesel::delete(attempts::table.filter(attempts::delivery_id.eq_any(old_finished())))
                    .execute(conn)
                    .await?;
                let deliveries_removed =
                    diesel::delete(deliveries::table.filter(deliveries::id.eq_any(old_finished())))
                        .execute(conn)
                        .await?;
                // Events only once no old finished delivery is left (the batch was not full).
                let events_removed = if deliveries_removed < limit {
                    diesel::sql_query(old_events)
                        .bind::<diesel::sql_types::BigInt, _>(cutoff)
                        .bind::<diesel::sql_types::BigInt, _>(limit as i64)
                        .execute(conn)
                        .await?
                } else {
                    0
                };
                Ok(deliveries_removed + events_removed)
            })
            .await?
        });
        Ok(removed)
    }
}

/// Events created before the cutoff that no unsettled delivery refers to. A delivery is only
/// ever created together with its event and with the event's `created_at`
/// (`DeliveryRecord::new_pending`), so only deliveries created before the cutoff can refer to
/// an old event; `purge_batch` runs this once those that are finished are gone, which leaves
/// the unsettled ones, a small set read once through `deliveries_unsettled`. (On PostgreSQL a
/// delivery that settles between the two statements loses its event a moment before it is
/// itself removed, at the next batch: it is past retention either way.) Both ask for the
/// unsettled set once, not once per event: SQLite builds an index of the `NOT IN` list,
/// PostgreSQL hashes it for the anti-join. An event's key is (workspace, id).
const PURGE_EVENTS_SQLITE: &str = "DELETE FROM events WHERE created_at < ?1 AND (workspace_id, id) IN ( \
     SELECT workspace_id, id FROM events WHERE created_at < ?1 AND (workspace_id, id) NOT IN ( \
       SELECT workspace_id, event_id FROM deliveries WHERE status <> 'succeeded' AND created_at < ?1) \
     LIMIT ?2)";
const PURGE_EVENTS_POSTGRES: &str = "DELETE FROM events WHERE created_at < $1 AND (workspace_id, id) IN ( \
     SELECT o.workspace_id, o.id FROM events AS o WHERE o.created_at < $1 AND NOT EXISTS ( \
       SELECT 1 FROM deliveries AS d WHERE d.status <> 'succeeded' AND d.created_at < $1 \
         AND d.workspace_id = o.workspace_id AND d.event_id = o.id) \
     LIMIT $2)";

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::InstrumentationEvent;
    use diesel::sql_types::Text;
    use diesel_async::{AsyncConnection, RunQueryDsl};

    use super::*;
    use crate::store::{DatabaseUrl, Pool};

    #[derive(diesel::QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    /// Every query that looks a webhook's deliveries up by status, except for `succeeded`,
    /// goes through the small `deliveries_unsettled` index (SQLite uses a partial index only
    /// if the query names its condition); `succeeded` goes through (webhook_id, id) in order.
    #[actix_rt::test]
    async fn sqlite_finds_deliveries_by_status_through_the_index_of_unsettled_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseUrl::SqliteFile(dir.path().join("hookbus.db")), 1).await.unwrap();
        let Pool::Sqlite { readers, .. } = &store.pool else { unreachable!() };
        let statements = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = statements.clone();
        // The one reader connection reports what it runs (transactions aside).
        readers.get().await.unwrap().set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                let sql = query.to_string();
                if !(sql.starts_with("BEGIN") || sql.starts_with("COMMIT")) {
                    seen.lock().unwrap().push(sql.split(" -- binds:").next().unwrap_or_default().to_owned());
                }
            }
        });
        let (ws, webhook, now) = (WorkspaceId::DEFAULT, WebhookId::generate(), crate::domain::now());
        let cursor = Some(DeliveryId::generate());
        let plan = |calls: &str| {
            let run: Vec<String> = std::mem::take(&mut *statements.lock().unwrap());
            assert!(!run.is_empty(), "{calls} ran no query");
            run.into_iter().map(|sql| (sql, calls.to_owned())).collect::<Vec<_>>()
        };
        let mut uses_unsettled = Vec::new();
        store.pending_page(webhook, None, 10).await.unwrap();
        store.pending_page(webhook, cursor, 10).await.unwrap();
        uses_unsettled.extend(plan("pending_page"));
        store.list_deliveries(ws, webhook, Some(DeliveryStatus::Failed), cursor, 10).await.unwrap();
        store.list_deliveries(ws, webhook, Some(DeliveryStatus::Pending), None, 10).await.unwrap();
        uses_unsettled.extend(plan("list_deliveries"));
        store.fail_pending_deliveries(webhook, "disabled", None, now).await.unwrap();
        uses_unsettled.extend(plan("fail_pending_deliveries"));
        store.pending_counts().await.unwrap();
        uses_unsettled.extend(plan("pending_counts"));
        store.requeue_batch(webhook, DeliveryStatus::Failed, now, now, None, now, 10).await.unwrap();
        // Its read; the update that follows goes by primary key.
        uses_unsettled.extend(plan("requeue_batch").into_iter().take(1));
        store.list_deliveries(ws, webhook, Some(DeliveryStatus::Succeeded), cursor, 10).await.unwrap();
        let succeeded = plan("list_deliveries(succeeded)");

        let mut conn = readers.get().await.unwrap();
        let mut explain = async |sql: &str| -> String {
            let steps: Vec<PlanStep> =
                diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(&mut *conn).await.unwrap();
            steps.into_iter().map(|s| s.detail).collect::<Vec<_>>().join("; ")
        };
        for (sql, calls) in uses_unsettled {
            let plan = explain(&sql).await;
            assert!(plan.contains("INDEX deliveries_unsettled"), "{calls}: {sql}\nplan: {plan}");
        }
        // Retention reads the unsettled deliveries once through the index, not the table.
        let plan = explain(PURGE_EVENTS_SQLITE).await;
        assert!(plan.contains("INDEX deliveries_unsettled"), "purge_batch's events: {plan}");
        for (sql, calls) in succeeded {
            let plan = explain(&sql).await;
            assert!(plan.contains("INDEX deliveries_by_webhook_id"), "{calls}: {sql}\nplan: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{calls} sorts: {plan}");
        }
    }
}
