//! Reading a config file (`memleak.toml`); what it means is decided by the
//! pure parser in [`crate::analyse::config`].

use std::path::Path;

use crate::analyse::config::{parse, AnalysisConfig, ConfigError};
use crate::files::FileError;

/// A config file is a few lines; this bounds what a wrong path costs.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read the config file: {0}")]
    Read(#[from] FileError),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// Reads the `[analysis]` table of a config file.
pub fn read(path: &Path) -> Result<AnalysisConfig, ConfigFileError> {
    let text = crate::files::read_text(path, MAX_CONFIG_BYTES)?;
    Ok(parse(&text, path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_a_read_error_and_a_bad_one_names_the_key() {
        let e = read(Path::new("/nonexistent/memleak.toml")).unwrap_err();
        assert!(matches!(e, ConfigFileError::Read(_)), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("memleak.toml");
        std::fs::write(&p, "[analysis]\nmin-pionts = 3\n").unwrap();
        let e = read(&p).unwrap_err();
        assert!(matches!(e, ConfigFileError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("min-pionts"), "{e}");
    }
}
