//! What can go wrong in a run, and the two file helpers every module reports through.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] hedgehog_models::ModelError),
    #[error(transparent)]
    Data(#[from] hedgehog_tasks::DataError),
    #[error(transparent)]
    Attention(#[from] hedgehog_attention::AttentionError),
    #[error(transparent)]
    Analysis(#[from] hedgehog_analysis::AnalysisError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Diverged(String),
    #[error("{0}")]
    Resume(String),
    /// A distributed run's ranks could not work together (`crate::distributed`).
    #[error("{0}")]
    Distributed(String),
}

pub(crate) fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `bytes` under a temporary name and renames it, so a kill leaves the old file or the
/// new one, never half of one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(file_error(&partial))?;
    std::fs::rename(&partial, path).map_err(file_error(path))
}
