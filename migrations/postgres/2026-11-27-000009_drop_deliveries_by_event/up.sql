-- Every delivery went into this index when published, a fourth B-tree per delivery row, for
-- one reader: retention, asking whether an old event still has deliveries. Retention now
-- answers that from the unsettled deliveries instead (`Store::purge_batch`): a delivery is
-- only ever created with its event, so once old finished deliveries are gone, only unsettled
-- ones can still refer to an old event. Measured: about a fifth less writer time per
-- delivery published in the 100-webhook fan-out (BENCHMARKS.md).
DROP INDEX deliveries_by_event;
