-- Workspace API keys (`hbk_…`). Only the SHA-256 of a key is stored; the key is shown once.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    key_hash      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE UNIQUE INDEX api_keys_by_hash ON api_keys (key_hash);
CREATE INDEX api_keys_by_workspace ON api_keys (workspace_id);
