//! The paper-style figures, each written as `<stem>.png` and `<stem>.svg`.
//!
//! Text is drawn with DejaVu Sans, bundled in `fonts/` and registered with plotters' `ab_glyph`
//! backend, so no system font is needed (architecture.md: without a font plotters panics on the
//! first label). Inputs are checked before drawing: an empty or non-finite input is an
//! [`AnalysisError::Data`](crate::AnalysisError::Data), never a panic inside plotters.
//!
//! The font, colours, number formatting and the PNG + SVG writer shared by every figure are in
//! `draw`; each figure family has its own module.

mod attention_maps;
mod draw;
mod entropy;
mod heatmap;
mod kl_heatmaps;
mod monotonicity;
mod passkey;
mod training_curves;

pub use attention_maps::attention_maps;
pub use draw::PlotFiles;
pub use entropy::entropy_bars;
pub use kl_heatmaps::{kl_heatmap, kl_heatmaps};
pub use monotonicity::monotonicity_panels;
pub(crate) use monotonicity::stale_report;
pub use passkey::{generation_memory, passkey_heatmaps};
pub use training_curves::{Series, metrics_series, training_curves};
