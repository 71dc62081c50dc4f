-- A delivery's latest attempt now lives on the delivery row, which already held its outcome
-- (status code, error, response body, duration); `last_attempt_at` adds when it started.
-- The `attempts` table keeps the earlier ones: recording attempt n moves attempt n-1 there.
-- Most deliveries succeed at their first attempt, so the hot path writes one row per
-- delivery instead of two (BENCHMARKS.md). Rows from before this migration have no
-- `last_attempt_at`: their attempts are all in `attempts` already.
ALTER TABLE deliveries ADD COLUMN last_attempt_at BIGINT;
