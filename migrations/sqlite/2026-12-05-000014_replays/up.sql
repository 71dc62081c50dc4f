-- Replays run in the background: each one's progress, readable through any server. A row
-- still `running` whose updated_at stopped moving belongs to a server that died meanwhile.
CREATE TABLE replays (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    status TEXT NOT NULL,
    since BIGINT NOT NULL,
    state TEXT NOT NULL,
    total BIGINT NOT NULL,
    requeued BIGINT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
