CREATE INDEX deliveries_by_event ON deliveries (workspace_id, event_id);
