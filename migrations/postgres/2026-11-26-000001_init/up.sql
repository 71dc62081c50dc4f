-- Times are Unix milliseconds (BIGINT) on both backends: exact ordering, no time-zone games.
-- Ids are UUID text; generated ids are v7, so ordering by id is ordering by creation.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
INSERT INTO workspaces (id, name, created_at) VALUES ('00000000-0000-0000-0000-000000000000', 'default', 0);

CREATE TABLE webhooks (
    id                     TEXT PRIMARY KEY NOT NULL,
    workspace_id           TEXT NOT NULL REFERENCES workspaces (id),
    name                   TEXT NOT NULL,
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,           -- JSON array of patterns
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  BIGINT,
    enabled                BOOLEAN NOT NULL,
    disabled_reason        TEXT,
    timeout_ms             INTEGER NOT NULL,
    max_retries            INTEGER NOT NULL,
    backoff_base_ms        INTEGER NOT NULL,
    max_in_flight          INTEGER NOT NULL,
    rate_limit_per_sec     INTEGER,
    headers                TEXT NOT NULL,           -- JSON object
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX webhooks_by_workspace ON webhooks (workspace_id, id);

CREATE TABLE events (
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id),
    id                TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    data              TEXT NOT NULL,                -- compact JSON object
    body_hash         TEXT NOT NULL,                -- SHA-256 of (event, data): idempotency check
    matched_webhooks  INTEGER NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX events_by_created ON events (created_at);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    workspace_id     TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,                 -- no FK: deliveries outlive deleted webhooks
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
    completed_at     BIGINT
);
-- Listing a webhook's deliveries, newest first, optionally by status.
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_by_webhook_id ON deliveries (webhook_id, id);
-- The delivery loop pages a webhook's pending deliveries in id order.
CREATE INDEX deliveries_pending ON deliveries (webhook_id, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_event ON deliveries (workspace_id, event_id);

CREATE TABLE attempts (
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
