-- The owners query behind GET /api/v1/health with several servers (store::cluster::OWNERS),
-- as a lookup per lease (before) and as a join with each server's expanded figures (now).
-- Fills :n webhooks, half owned by each of 2 servers whose figures look like a heartbeat's,
-- on a scratch database migrated by hookbus (BENCHMARKS.md, "The health query"):
--   psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE owners_bench'
--   target/release/hookbus migrate --database-url postgres://postgres@127.0.0.1:5432/owners_bench
--   psql -h 127.0.0.1 -U postgres owners_bench -v n=10000 -f benches/health_owners.sql
ALTER TABLE webhook_leases DROP CONSTRAINT IF EXISTS webhook_leases_webhook_id_fkey;
TRUNCATE webhook_leases;
DELETE FROM servers;
INSERT INTO servers SELECT 's' || k, 'n' || k, 0, 0,
  (SELECT jsonb_object_agg(lpad(i::text, 36, '0'), jsonb_build_object('circuit', 'closed',
     'queue_depth', (random() * 1000)::int, 'in_flight', 0, 'success_rate_5m', random(), 'p50_ms', random() * 10,
     'p99_ms', random() * 100, 'last_error', md5(random()::text), 'deliveries_5m', (random() * 100000)::int,
     'last_success_at', now()::text))
   FROM generate_series(1, :n) i WHERE i % 2 = k)
FROM generate_series(0, 1) k;
INSERT INTO webhook_leases (webhook_id, owner, epoch, expires_at)
  SELECT lpad(i::text, 36, '0'), 's' || (i % 2), 1, 9999999999999 FROM generate_series(1, :n) i;
ANALYZE;

\echo every webhook, a lookup per lease
EXPLAIN (ANALYZE, TIMING OFF) SELECT l.webhook_id, l.owner, (s.health -> l.webhook_id)::text AS health
  FROM webhook_leases l LEFT JOIN servers s ON s.id = l.owner
  WHERE l.webhook_id = ANY((SELECT array_agg(webhook_id) FROM webhook_leases)::text[]) AND l.owner IS NOT NULL;
\echo every webhook, joined
EXPLAIN (ANALYZE, TIMING OFF) SELECT l.webhook_id, l.owner, h.value::text AS health
  FROM webhook_leases l
  LEFT JOIN (SELECT s.id, e.key, e.value FROM servers s, jsonb_each(s.health) AS e) AS h
    ON h.id = l.owner AND h.key = l.webhook_id
  WHERE l.webhook_id = ANY((SELECT array_agg(webhook_id) FROM webhook_leases)::text[]) AND l.owner IS NOT NULL;
\echo three webhooks (a small workspace), a lookup per lease
EXPLAIN (ANALYZE, TIMING OFF) SELECT l.webhook_id, l.owner, (s.health -> l.webhook_id)::text AS health
  FROM webhook_leases l LEFT JOIN servers s ON s.id = l.owner
  WHERE l.webhook_id = ANY((SELECT array_agg(webhook_id) FROM (SELECT webhook_id FROM webhook_leases LIMIT 3) x)::text[])
    AND l.owner IS NOT NULL;
\echo three webhooks, joined
EXPLAIN (ANALYZE, TIMING OFF) SELECT l.webhook_id, l.owner, h.value::text AS health
  FROM webhook_leases l
  LEFT JOIN (SELECT s.id, e.key, e.value FROM servers s, jsonb_each(s.health) AS e) AS h
    ON h.id = l.owner AND h.key = l.webhook_id
  WHERE l.webhook_id = ANY((SELECT array_agg(webhook_id) FROM (SELECT webhook_id FROM webhook_leases LIMIT 3) x)::text[])
    AND l.owner IS NOT NULL;
