//! Analysis of attention maps and of finished runs for hedgehog.
//!
//! - [`measures`]: spikiness (entropy), monotonicity (Spearman ρ, binned curves) and fidelity
//!   (KL) of attention weights, per layer and head (method.md §5), on plain `f32` slices.
//! - [`plots`]: the paper-style figures as PNG and SVG, drawn with plotters and a bundled font.
//! - [`figures`]: the committed figures, redrawn from run folders as a figures file lists them.
//! - [`tables`]: the paper's tables (method.md §4) next to our runs' numbers, from `results/`.
//!
//! The crate knows nothing of burn or of the other hedgehog crates: the train crate converts its
//! tensors to `Vec<f32>` and writes [`AttentionReport`]s as JSON into run folders.

mod error;
pub mod figures;
pub mod measures;
pub mod plots;
pub mod tables;

pub use error::AnalysisError;
pub use measures::{
    AnalysisConfig, AttentionAnalyzer, AttentionMap, AttentionReport, HeadStats, LayerAttention,
    LayerReport, MonotonicityCurve, SkippedRows, SpearmanRows, Summary,
};
pub use tables::{PaperTable, RunRecord, collect_runs, paper_tables, write_tables};
