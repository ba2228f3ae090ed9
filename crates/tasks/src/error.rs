//! Data errors: each names the file, what was expected, and how to get the data.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: not found. {hint}")]
    Missing { path: PathBuf, hint: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("invalid task config: {0}")]
    Config(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error(transparent)]
    Model(#[from] hedgehog_models::ModelError),
}

/// How to get a dataset, appended to "not found" errors.
pub fn fetch_hint(dataset: &str, official: &str) -> String {
    format!(
        "Run `just fetch-data` for the offline stand-in, download {dataset} from {official}, \
         or point the spec at it with `--set task.path=...`."
    )
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a UTF-8 text file; a missing file is reported with `hint`.
pub(crate) fn read_text(path: &Path, hint: impl FnOnce() -> String) -> Result<String, DataError> {
    if !path.exists() {
        return Err(DataError::Missing {
            path: path.to_path_buf(),
            hint: hint(),
        });
    }
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    String::from_utf8(bytes).map_err(|e| DataError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}
