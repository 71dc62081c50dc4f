DROP INDEX deliveries_unsettled;
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, status, id);
