//! The crate's errors. They sit at the bottom of the crate and import nothing from it, so every
//! other module can return them.

use std::path::PathBuf;

use hedgehog_attention::AttentionError;

/// Errors of building, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Attention(#[from] AttentionError),
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error("invalid model config: {0}")]
    Config(String),
    #[error("invalid input: {0}")]
    Input(String),
}

/// Everything that can go wrong reading or writing weights.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a valid safetensors file ({reason}); re-download or re-export the checkpoint"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: not a valid GGUF file ({reason}); re-download the model file")]
    CorruptGguf { path: PathBuf, reason: String },
    #[error(
        "{path}: missing tensor `{name}` (expected shape {expected:?}); is this checkpoint for this model family and size?"
    )]
    Missing {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
    },
    #[error(
        "{path}: tensor `{name}` has shape {found:?}, the model expects {expected:?}; check config.json against the weights"
    )]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{name}` has dtype {dtype}, only F32, F16 and BF16 are supported")]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error(
        "{path}: {count} tensor(s) were not used by the model, e.g. {examples:?}; the checkpoint does not match the config"
    )]
    Unused {
        path: PathBuf,
        count: usize,
        examples: Vec<String>,
    },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
}
