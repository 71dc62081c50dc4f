-- Deliveries and attempts are keyed by their primary key alone (rows are found by id, never
-- by rowid), so they become WITHOUT ROWID tables: the table *is* its primary-key B-tree.
-- A rowid table with a TEXT primary key keeps two B-trees (the rows, and an index from key
-- to rowid): every delivery inserted and every attempt result written touched both, and each
-- commit rewrote the pages of both. Rows are small (a delivery keeps at most 1 KiB of
-- response body). Events stay as they are: their data can be large.

CREATE TABLE deliveries_new (
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
) WITHOUT ROWID;
INSERT INTO deliveries_new (id, workspace_id, webhook_id, event_id, event_type, status, attempt_count,
    next_attempt_at, status_code, error_message, response_body, duration_ms, created_at, completed_at, retries_used)
SELECT id, workspace_id, webhook_id, event_id, event_type, status, attempt_count,
    next_attempt_at, status_code, error_message, response_body, duration_ms, created_at, completed_at, retries_used
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_by_webhook_id ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (workspace_id, event_id);

CREATE TABLE attempts_new (
    delivery_id    TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    workspace_id   TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    status_code    INTEGER,
    error_message  TEXT,
    response_body  TEXT,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
INSERT INTO attempts_new SELECT delivery_id, attempt, workspace_id, started_at, duration_ms, status_code,
    error_message, response_body FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;
