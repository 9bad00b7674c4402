//! The schema, created and migrated by enrich itself: numbered migrations embedded in the binary,
//! applied in order, each once, recorded in `enrich_schema_migrations`.

use tokio_postgres::Client;

use enrich_core::StateError;

use crate::{LOCK_NAMESPACE, failed};

/// Every migration, by version; a released one never changes, a change is a new one.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_state.sql")),
    (2, include_str!("migrations/0002_rate_budgets.sql")),
    (3, include_str!("migrations/0003_fallback_hash.sql")),
    (4, include_str!("migrations/0004_syncing.sql")),
    (5, include_str!("migrations/0005_kept_results.sql")),
];

/// Brings the schema to this version's, in one transaction that holds a lock of its own: workers
/// starting together migrate once. Refuses a schema a newer enrich migrated further.
pub(crate) async fn apply(client: &mut Client) -> Result<(), StateError> {
    let latest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    let transaction = client.transaction().await.map_err(|error| failed("migrating", &error))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_NAMESPACE])
        .await
        .map_err(|error| failed("locking the schema", &error))?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS enrich_schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(|error| failed("creating enrich_schema_migrations", &error))?;
    let applied: i32 = transaction
        .query_one("SELECT coalesce(max(version), 0) FROM enrich_schema_migrations", &[])
        .await
        .map_err(|error| failed("reading the schema version", &error))?
        .get(0);
    if applied > latest {
        return Err(StateError(format!(
            "the state database has schema version {applied}, from a newer enrich; this one knows up to \
             version {latest}: upgrade enrich"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
        transaction
            .batch_execute(sql)
            .await
            .map_err(|error| failed(&format!("applying migration {version}"), &error))?;
        transaction
            .execute("INSERT INTO enrich_schema_migrations (version) VALUES ($1)", &[version])
            .await
            .map_err(|error| failed("recording a migration", &error))?;
        tracing::info!(version, "state database migrated");
    }
    transaction.commit().await.map_err(|error| failed("committing the migration", &error))
}
