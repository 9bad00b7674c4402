-- Who syncs a connection: the session that holds its advisory lock to sync writes its backend pid and
-- when it started, so that `enrich status`, in another session, says "syncing since …" for as long as
-- pg_locks shows that session holding the lock (a session that ended, however, released it).
ALTER TABLE enrich_connections ADD COLUMN syncing_pid integer, ADD COLUMN syncing_since timestamptz;
