-- What tells keys apart without revealing them (the first characters of the key), and when
-- each was last used (kept within a minute). Keys made before this have only `hbk_` as
-- their prefix: the rest was never stored.
ALTER TABLE api_keys ADD COLUMN prefix TEXT NOT NULL DEFAULT 'hbk_';
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
