-- Results kept per lookup key (by digest, never the key) for the users who come later with the same
-- key: a company's domain, an office's IP address. The payload is enrich's JSON, as bytes.
CREATE TABLE enrich_kept_results (
    connection_id bigint NOT NULL REFERENCES enrich_connections (id) ON DELETE CASCADE,
    key_hash bigint NOT NULL,
    result bytea NOT NULL,
    PRIMARY KEY (connection_id, key_hash)
);
