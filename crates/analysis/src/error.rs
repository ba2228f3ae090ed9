use std::path::PathBuf;

/// Everything that can go wrong in this crate; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// An attention batch whose slices or lengths do not fit its shape, or hold unusable values.
    #[error("attention input for layer {layer}: {message}")]
    Input { layer: usize, message: String },
    /// An `AnalysisConfig` that cannot bin anything.
    #[error("analysis config: {0}")]
    Config(String),
    /// Data handed to a plot or table function that cannot be drawn or tabulated.
    #[error("{0}")]
    Data(String),
    /// A file or folder that could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JSON file that does not parse as what it should be.
    #[error("{}: not a valid {what}: {source} (regenerate it, or delete it to leave it out)", path.display())]
    Json {
        path: PathBuf,
        what: &'static str,
        source: serde_json::Error,
    },
    /// A `metrics.csv` that does not have the run-folder schema.
    #[error("{}: {message}", path.display())]
    Csv { path: PathBuf, message: String },
    /// plotters or the PNG encoder failed while drawing or saving a figure.
    #[error("drawing {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    /// polars failed while building or writing a table.
    #[error("table `{table}`: {message}")]
    Table { table: String, message: String },
}

impl AnalysisError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
