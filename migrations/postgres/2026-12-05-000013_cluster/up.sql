-- Several servers on one database (SPEC §9). Times are Unix milliseconds of the database's
-- clock, so servers never compare their own clocks with each other.
CREATE FUNCTION hookbus_now_ms() RETURNS BIGINT LANGUAGE sql STABLE
    AS $$ SELECT (EXTRACT(EPOCH FROM statement_timestamp()) * 1000)::BIGINT $$;

-- Bumped by every change to `webhooks`: a publish is written only if the server that matched
-- it had seen the latest version, so a change answered by one server binds every server's
-- next publish.
CREATE TABLE cluster_config (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    version    BIGINT NOT NULL
);
INSERT INTO cluster_config (singleton, version) VALUES (TRUE, 0);

CREATE FUNCTION hookbus_webhooks_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v BIGINT;
BEGIN
    UPDATE cluster_config SET version = version + 1 RETURNING version INTO v;
    PERFORM pg_notify('hookbus_config', v::TEXT);
    RETURN NULL;
END $$;
CREATE TRIGGER webhooks_changed AFTER INSERT OR UPDATE OR DELETE ON webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION hookbus_webhooks_changed();

-- The live servers: each one's row is refreshed every second with the figures of the
-- webhooks it owns (JSON object by webhook id).
CREATE TABLE servers (
    id            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    health        JSONB NOT NULL DEFAULT '{}'
);

-- Who owns each webhook, until when, under which epoch (bumped at every claim: records of
-- attempts made under an older epoch never change a delivery's state), and the circuit
-- state the owner last saved, so it moves with the webhook.
CREATE TABLE webhook_leases (
    webhook_id            TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    owner                 TEXT COLLATE "C",
    epoch                 BIGINT NOT NULL DEFAULT 0,
    expires_at            BIGINT NOT NULL DEFAULT 0,
    circuit_state         TEXT NOT NULL DEFAULT 'closed',
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    cooldown_ms           BIGINT,
    open_since            BIGINT,
    probe_at              BIGINT
);
CREATE INDEX webhook_leases_by_owner ON webhook_leases (owner);
INSERT INTO webhook_leases (webhook_id) SELECT id FROM webhooks;

-- Every webhook has its lease row; re-enabling a webhook closes its saved circuit.
CREATE FUNCTION hookbus_webhook_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO webhook_leases (webhook_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    ELSIF NEW.enabled AND NOT OLD.enabled THEN
        UPDATE webhook_leases SET circuit_state = 'closed', consecutive_failures = 0, cooldown_ms = NULL,
            open_since = NULL, probe_at = NULL
        WHERE webhook_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_lease AFTER INSERT OR UPDATE OF enabled ON webhooks
    FOR EACH ROW EXECUTE FUNCTION hookbus_webhook_lease();

-- An attempt made under a lost lease and the new owner's attempt can carry the same number;
-- both are kept.
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey, ADD PRIMARY KEY (delivery_id, attempt, started_at);
