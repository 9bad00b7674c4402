//! The connector registry: every source, sink and user directory the CLI knows, matched on the YAML
//! `type:` field. Registering a connector is ONE line in one of the lists below (its `type:` in
//! CamelCase and its config type, which implements `enrich_core::{SourceSettings, SinkSettings,
//! UsersSettings}`); no command names a connector. There is no global registration.

use std::path::Path;
use std::sync::Arc;

use enrich_core::redact::{register_secret, register_url};
use enrich_core::{
    Connection, ConnectorError, Secret, SharedBudget, SinkSettings, SourceSettings, Starter, UsersSettings,
};
use serde::Deserialize;

use crate::config::ConnectionConfig;

/// An enum of config sections, one variant per `type:`, each holding its connector's config and
/// dereferencing to the settings trait: the commands see the trait only. Written with `type:` in the
/// file; the config loader takes `type` out and names the variant with it, so that serde keeps track
/// of the fields inside (an internally tagged enum would lose their names).
macro_rules! registry {
    ($name:ident: $settings:ident { $($variant:ident($config:ty),)* }) => {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant($config),)*
        }

        impl $name {
            /// The crates of the registered config types, by their log target (`enrich_clearbit`).
            fn crates() -> impl Iterator<Item = &'static str> {
                let types = [$(std::any::type_name::<$config>(),)*];
                types.into_iter().map(|name| name.split("::").next().unwrap_or(name))
            }
        }

        impl std::ops::Deref for $name {
            type Target = dyn $settings;

            fn deref(&self) -> &Self::Target {
                match self {
                    $(Self::$variant(config) => config,)*
                }
            }
        }
    };
    ($name:ident: $settings:ident with starters { $($variant:ident($config:ty),)* }) => {
        registry!($name: $settings { $($variant($config),)* });

        impl $name {
            /// What `enrich init` offers, in the order of the list.
            pub fn starters() -> Vec<Starter> {
                [$(<$config as $settings>::starter(),)*].into_iter().flatten().collect()
            }
        }
    };
}

registry!(SourceConfig: SourceSettings with starters {
    Clearbit(enrich_clearbit::ClearbitConfig),
    ClearbitReveal(enrich_clearbit::ClearbitRevealConfig),
    PeopleDataLabs(enrich_people_data_labs::PeopleDataLabsConfig),
});

registry!(SinkConfig: SinkSettings {
    Heap(enrich_heap::HeapSinkConfig),
    PostgresTable(enrich_postgres::PostgresTableConfig),
});

registry!(UsersConfig: UsersSettings {
    Csv(enrich_csv::CsvUsersConfig),
    HeapConnect(enrich_postgres::HeapConnectConfig),
    Postgres(enrich_postgres::PostgresQueryConfig),
});

/// Every connector crate registered, once each.
pub fn connector_crates() -> Vec<&'static str> {
    let mut crates: Vec<&str> =
        SourceConfig::crates().chain(SinkConfig::crates()).chain(UsersConfig::crates()).collect();
    crates.sort_unstable();
    crates.dedup();
    crates
}

/// Tells the redaction point every secret of the connection (keys, passwords, URLs with credentials),
/// so that no log line, message or state record shows them.
pub fn register_secrets(config: &ConnectionConfig) {
    let secrets =
        config.source.secrets().into_iter().chain(config.sink.secrets()).chain(config.users.secrets());
    for secret in secrets {
        match secret {
            Secret::Text(text) => register_secret(text),
            Secret::Url(url) => register_url(url),
        }
    }
}

/// Builds the runtime connection from its checked config; its source books its requests in `budget`
/// (shared with other workers) when there is one.
pub fn build_connection(
    config: &ConnectionConfig,
    folder: &Path,
    budget: Option<Arc<dyn SharedBudget>>,
) -> Result<Connection, ConnectorError> {
    Ok(Connection {
        name: config.name.clone(),
        source: config.source.build(budget)?,
        sink: config.sink.build()?,
        rules: config.sink.value_rules(),
        users: config.users.build(folder)?,
        schedule: config.schedule,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_connector_crate_is_named_by_its_log_target() {
        let crates = super::connector_crates();
        assert!(crates.contains(&"enrich_clearbit") && crates.contains(&"enrich_heap"), "{crates:?}");
        assert!(crates.iter().all(|name| name.starts_with("enrich_") && !name.contains(':')), "{crates:?}");
    }
}
