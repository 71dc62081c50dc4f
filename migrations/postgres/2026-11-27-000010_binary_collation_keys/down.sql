-- Back to the database's default collation.
ALTER TABLE workspaces ALTER COLUMN id TYPE TEXT COLLATE "default";
ALTER TABLE webhooks
    ALTER COLUMN id TYPE TEXT COLLATE "default",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "default";
ALTER TABLE events
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "default",
    ALTER COLUMN id TYPE TEXT COLLATE "default";
ALTER TABLE deliveries
    ALTER COLUMN id TYPE TEXT COLLATE "default",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "default",
    ALTER COLUMN webhook_id TYPE TEXT COLLATE "default",
    ALTER COLUMN event_id TYPE TEXT COLLATE "default",
    ALTER COLUMN status TYPE TEXT COLLATE "default";
ALTER TABLE attempts
    ALTER COLUMN delivery_id TYPE TEXT COLLATE "default",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "default";
ALTER TABLE api_keys
    ALTER COLUMN id TYPE TEXT COLLATE "default",
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "default",
    ALTER COLUMN key_hash TYPE TEXT COLLATE "default";
ALTER TABLE settings ALTER COLUMN name TYPE TEXT COLLATE "default";
