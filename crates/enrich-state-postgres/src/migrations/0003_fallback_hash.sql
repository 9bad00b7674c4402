-- The digest of the IP address sent along with an email's lookup (a match hint, or Reveal's fallback),
-- so that forgetting the address finds these users by index too. NULL when none was sent.
ALTER TABLE enrich_users ADD COLUMN fallback_hash bigint;
ALTER TABLE enrich_pending_writes ADD COLUMN fallback_hash bigint;
CREATE INDEX enrich_users_by_fallback ON enrich_users (connection_id, fallback_hash)
    WHERE fallback_hash IS NOT NULL;
CREATE INDEX enrich_pending_writes_by_fallback ON enrich_pending_writes (connection_id, fallback_hash)
    WHERE fallback_hash IS NOT NULL;
