CREATE TABLE deliveries_old (
    id               TEXT PRIMARY KEY NOT NULL,
    workspace_id     TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt_count    INTEGER NOT NULL,
    next_attempt_at  BIGINT,
    status_code      INTEGER,
    error_message    TEXT,
    response_body    TEXT,
    duration_ms      BIGINT,
    created_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    retries_used     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO deliveries_old SELECT id, workspace_id, webhook_id, event_id, event_type, status, attempt_count,
    next_attempt_at, status_code, error_message, response_body, duration_ms, created_at, completed_at, retries_used
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_old RENAME TO deliveries;
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_by_webhook_id ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (workspace_id, event_id);

CREATE TABLE attempts_old (
    delivery_id    TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    workspace_id   TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    status_code    INTEGER,
    error_message  TEXT,
    response_body  TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
INSERT INTO attempts_old SELECT delivery_id, attempt, workspace_id, started_at, duration_ms, status_code,
    error_message, response_body FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_old RENAME TO attempts;
