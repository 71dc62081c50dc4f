DELETE FROM attempts a USING attempts b
    WHERE a.delivery_id = b.delivery_id AND a.attempt = b.attempt AND a.started_at > b.started_at;
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey, ADD PRIMARY KEY (delivery_id, attempt);
DROP TABLE webhook_leases;
DROP FUNCTION hookbus_webhook_lease() CASCADE;
DROP TABLE servers;
DROP TRIGGER webhooks_changed ON webhooks;
DROP FUNCTION hookbus_webhooks_changed();
DROP TABLE cluster_config;
DROP FUNCTION hookbus_now_ms();
