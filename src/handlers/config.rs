//! The handlers' settings. Variable: `HANDLERS_DIR`.

use std::path::PathBuf;

use crate::vars::{ConfigError, Vars};

/// Extra or overriding handler files (`HANDLERS_DIR`, an existing directory of `.toml`/`.sql`
/// files); `None`: the built-in catalogue only.
pub fn handlers_dir(vars: &Vars) -> Result<Option<PathBuf>, ConfigError> {
    vars.dir("HANDLERS_DIR", "an existing directory of handler .toml/.sql files")
}
