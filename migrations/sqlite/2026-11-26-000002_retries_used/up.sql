-- Failures that count against max_retries. A failed circuit-breaker probe is recorded as an
-- attempt but does not use up a retry, so this differs from attempt_count.
ALTER TABLE deliveries ADD COLUMN retries_used INTEGER NOT NULL DEFAULT 0;
