-- The state of enrich's connections. Payloads are enrich's own JSON, as bytes: identities may hold
-- any character, NUL included, which PostgreSQL's text and jsonb refuse.
CREATE TABLE enrich_connections (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    -- The ConnectionState: status, run history, derived properties.
    state bytea
);

CREATE TABLE enrich_users (
    connection_id bigint NOT NULL REFERENCES enrich_connections (id) ON DELETE CASCADE,
    identity bytea NOT NULL,
    key_hash bigint NOT NULL,
    state bytea NOT NULL,
    PRIMARY KEY (connection_id, identity)
);
CREATE INDEX enrich_users_by_key ON enrich_users (connection_id, key_hash);

-- Checks whose write the sink has not acknowledged yet.
CREATE TABLE enrich_pending_writes (
    connection_id bigint NOT NULL REFERENCES enrich_connections (id) ON DELETE CASCADE,
    identity bytea NOT NULL,
    key_hash bigint NOT NULL,
    write bytea NOT NULL,
    PRIMARY KEY (connection_id, identity)
);

-- Lookup keys forgotten on request: never looked up again.
CREATE TABLE enrich_suppressed_keys (
    connection_id bigint NOT NULL REFERENCES enrich_connections (id) ON DELETE CASCADE,
    key_hash bigint NOT NULL,
    PRIMARY KEY (connection_id, key_hash)
);
