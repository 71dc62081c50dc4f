CREATE INDEX deliveries_pending ON deliveries (webhook_id, id) WHERE status = 'pending';
