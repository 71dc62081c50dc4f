ALTER TABLE deliveries DROP COLUMN retries_used;
