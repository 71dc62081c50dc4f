-- Ids, keys and statuses compare byte by byte (collation "C"), as SQLite compares them.
-- Under a database's default collation (en_US.UTF-8, even C.UTF-8) every B-tree comparison
-- of these columns went through the locale's strcoll: text comparisons were about a tenth
-- of PostgreSQL's CPU in the steady-load benchmark (BENCHMARKS.md). Ids are UUIDs, whose
-- order is the same either way; user-chosen event ids now sort as on SQLite. Only the
-- indexes are rebuilt: the stored values do not change.
ALTER TABLE workspaces ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE webhooks
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "C";
ALTER TABLE events
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "C",
    ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE deliveries
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "C",
    ALTER COLUMN webhook_id TYPE TEXT COLLATE "C",
    ALTER COLUMN event_id TYPE TEXT COLLATE "C",
    ALTER COLUMN status TYPE TEXT COLLATE "C";
ALTER TABLE attempts
    ALTER COLUMN delivery_id TYPE TEXT COLLATE "C",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "C";
ALTER TABLE api_keys
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "C",
    ALTER COLUMN key_hash TYPE TEXT COLLATE "C";
ALTER TABLE settings ALTER COLUMN name TYPE TEXT COLLATE "C";
