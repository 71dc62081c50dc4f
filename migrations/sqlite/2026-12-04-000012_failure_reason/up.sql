-- Why a failed or cancelled delivery ended, apart from its latest attempt's outcome (which
-- the row's status_code … duration_ms keep). Rows written before lost that outcome when
-- their webhook was disabled (the reason overwrote error_message); they get the reason the
-- old row shows.
ALTER TABLE deliveries ADD COLUMN failure_reason TEXT;
UPDATE deliveries SET failure_reason = CASE
    WHEN status = 'cancelled' THEN 'webhook deleted'
    WHEN error_message LIKE 'webhook disabled (%' THEN error_message
    WHEN status_code = 410 THEN 'gone'
    ELSE 'retries exhausted'
  END
WHERE status IN ('failed', 'cancelled');
