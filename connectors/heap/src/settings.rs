//! What the CLI's registry needs of the `type: heap` sink section.

use std::sync::Arc;

use enrich_core::{ConnectorError, FieldError, Secret, Sink, SinkSettings};

use crate::{HeapSink, HeapSinkConfig};

impl SinkSettings for HeapSinkConfig {
    fn validate(&self) -> Vec<FieldError> {
        HeapSinkConfig::validate(self)
    }

    fn build(&self) -> Result<Arc<dyn Sink>, ConnectorError> {
        Ok(Arc::new(HeapSink::new(self)?))
    }

    fn describe(&self) -> String {
        format!("heap app {}", self.app_id)
    }

    /// The app_id is no secret (Heap's JavaScript snippet shows it); a `base_url` may carry credentials.
    fn secrets(&self) -> Vec<Secret<'_>> {
        self.base_url.as_deref().map(Secret::Url).into_iter().collect()
    }
}
