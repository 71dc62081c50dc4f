-- Every delivery went into this partial index when published and out of it when its
-- first attempt settled: two index writes per delivery on the hot path. The
-- (webhook_id, status, id) index answers the same range (a webhook's pending deliveries in
-- id order), and pending counts are now taken per webhook through that index.
DROP INDEX deliveries_pending;
