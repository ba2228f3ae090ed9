//! Feature maps and the math of linear attention, in every form the project needs.
//!
//! Notation and equations follow `shared/docs/method.md` §1–3 and Zhang et al., *The Hedgehog &
//! the Porcupine* (ICLR 2024). All tensors are `[B, H, T, ·]`: batch, heads, tokens, features.
//!
//! - [`feature_map`]: `φ` for 1+ELU, ReLU, Performer, cosFormer, exp(t), Taylor-2, Hedgehog, T2R.
//! - [`softmax`]: the softmax teacher and baseline.
//! - [`linear`]: linear attention as quadratic, parallel, chunked and recurrent forms.
//! - [`window`]: sliding-window softmax plus linear attention (LoLCATs), causal.
//! - [`attention`]: a layer-level attention (softmax or a linear map on q and k).
//! - [`distill`]: Hedgehog's attention-distillation losses.
//! - [`lm_head`]: a language model's head fused with its cross-entropy.
//! - [`kernels`]: the fused CPU kernels behind the hot paths, with the composed code as default.

pub mod attention;
pub mod distill;
mod error;
pub mod feature_map;
pub mod kernels;
pub mod linear;
pub mod lm_head;
mod reference;
pub mod softmax;
mod types;
pub mod window;

pub use attention::{AttentionConfig, LinearAttention};
pub use error::AttentionError;
pub use feature_map::{FeatureMap, FeatureMapConfig, HedgehogActivation, Role};
pub use linear::LinearState;
pub use window::WindowState;
