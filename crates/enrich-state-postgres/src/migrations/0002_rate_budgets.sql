-- Per-minute budgets that workers share, one row per provider key (by digest, never the key): when
-- the next request may start, in microseconds of the server's clock, which every worker shares.
CREATE TABLE enrich_rate_budgets (
    key_hash bigint PRIMARY KEY,
    next_start_us bigint NOT NULL
);
