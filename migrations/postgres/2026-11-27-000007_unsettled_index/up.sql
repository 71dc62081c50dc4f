-- A webhook's deliveries by status now come from an index of the unsettled ones only
-- (pending, failed, cancelled). The full (webhook_id, status, id) index moved every
-- delivery from its 'pending' range to its 'succeeded' range when it settled (a delete and
-- an insert, with B-tree rebalancing on both sides) and grew with the whole history; a
-- settled delivery now only leaves this small index. Succeeded deliveries are listed through
-- (webhook_id, id), where they are nearly every row. Queries name the index's condition
-- (`status <> 'succeeded'`) so the planner can use it.
DROP INDEX deliveries_by_webhook;
CREATE INDEX deliveries_unsettled ON deliveries (webhook_id, status, id) WHERE status <> 'succeeded';
