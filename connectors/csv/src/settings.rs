//! What the CLI's registry needs of the `type: csv` users section; `path` is relative to the config
//! file's folder.

use std::path::Path;
use std::sync::Arc;

use enrich_core::{ConnectorError, FieldError, Secret, UserDirectory, UsersSettings};

use crate::{CsvDirectory, CsvUsersConfig};

impl UsersSettings for CsvUsersConfig {
    fn validate(&self, folder: &Path) -> Vec<FieldError> {
        let mut problems = CsvUsersConfig::validate(self);
        problems.extend(self.validate_path(&folder.join(&self.path)));
        problems
    }

    fn validate_roster(&self, folder: &Path) -> Vec<FieldError> {
        self.validate_header(&folder.join(&self.path))
    }

    fn build(&self, folder: &Path) -> Result<Arc<dyn UserDirectory>, ConnectorError> {
        Ok(Arc::new(CsvDirectory::new(folder.join(&self.path), self)))
    }

    fn describe(&self) -> String {
        format!("users from {}", self.path.display())
    }

    fn secrets(&self) -> Vec<Secret<'_>> {
        Vec::new()
    }
}
