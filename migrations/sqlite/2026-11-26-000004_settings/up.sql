-- Instance-wide values, such as the check value that tells a wrong master key at start-up.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);
