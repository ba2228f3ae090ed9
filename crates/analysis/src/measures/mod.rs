//! Spikiness, monotonicity and fidelity of attention weights (method.md §5).
//!
//! Inputs are plain row-major `f32` slices of shape `[B, H, T, S]`; everything is accumulated in
//! `f64`. A query row `i` of batch row `b` is valid when `i < min(length_b, T)`; a key `j` is valid
//! for it when `j < min(length_b, S)` and, for causal attention, `j ≤ i`. Invalid entries are never
//! read, so padding may hold anything (−∞ scores included).
//!
//! Per (layer, head), averaged over the valid query rows of every batch added:
//! - entropy `H_i = −Σ_j w_ij ln w_ij` (nats, `0·ln 0 = 0`) of the teacher `a` and the student `â`,
//!   taken over the valid keys as given (no renormalisation);
//! - fidelity `KL(a‖â) = Σ_j a_ij (ln a_ij − ln max(â_ij, 10⁻¹²))`;
//! - monotonicity: Spearman's ρ within each row between the weights (teacher, student, raw kernel
//!   `φ(q_i)·φ(k_j)`) and the scores `q_i·k_j/√d`, with average ranks for ties; rows with fewer than
//!   three valid keys, or whose weights or scores are all equal, have no ρ and are left out.
//!
//! Per layer (over its heads) and over the whole report: the monotonicity curve, also taken
//! within each row: every weight over the weight of the row's top-scoring key, against the score
//! minus the row's maximum, binned and averaged over rows ([`MonotonicityCurve`]).
//!
//! Softmax is exactly monotonic, so its ρ is 1 in every row and its curve is `exp(x)` (paper §3,
//! "monotonicity").

mod analyzer;
mod curve;
mod entropy;
mod input;
mod kl;
mod monotonicity;
mod report;

pub use analyzer::{AnalysisConfig, AttentionAnalyzer};
pub use curve::{MonotonicityCurve, SkippedRows};
pub use entropy::entropy;
pub use input::LayerAttention;
pub use kl::{KL_FLOOR, kl};
pub use monotonicity::spearman;
pub use report::{AttentionMap, AttentionReport, HeadStats, LayerReport, SpearmanRows, Summary};
