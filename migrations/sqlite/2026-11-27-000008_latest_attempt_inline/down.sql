INSERT INTO attempts (delivery_id, attempt, workspace_id, started_at, duration_ms, status_code, error_message,
    response_body)
SELECT id, attempt_count, workspace_id, last_attempt_at, COALESCE(duration_ms, 0), status_code, error_message,
    response_body
FROM deliveries WHERE last_attempt_at IS NOT NULL
ON CONFLICT DO NOTHING;
ALTER TABLE deliveries DROP COLUMN last_attempt_at;
