//! What every feature map provides: the two traits a map's file implements.
//!
//! A map has two sides. [`MapSettings`] is what a spec says (`kind: performer, num_features: 64`)
//! before any tensor exists: its label, its width, whether it trains, and how to build it.
//! [`MapForward`] is the built map that runs: `φ(x)` and the checks on its input. The registry
//! in `mod.rs` lists each map once and generates [`FeatureMapConfig`](super::FeatureMapConfig),
//! [`FeatureMap`](super::FeatureMap) and their dispatch from these traits.

use burn::tensor::{Tensor, backend::Backend};

use crate::error::AttentionError;
use crate::types::Role;

/// The spec side of a map, implemented on its generated `settings::<Kind>` struct (the fields of
/// its [`FeatureMapConfig`](super::FeatureMapConfig) variant).
pub trait MapSettings: Sized {
    /// The built map.
    type Map<B: Backend>: MapForward<B>;

    /// Whether the map has parameters trained by distillation or the task loss.
    const TRAINABLE: bool;

    /// Whether query and key must share one instance. Performer's estimate of `exp(q·k)` only
    /// holds with the same random projection on both sides, and parameter-free maps have
    /// nothing to untie; a trainable map may learn separate query and key weights.
    const SHARES_QUERY_KEY: bool = !Self::TRAINABLE;

    /// Short name used in tables and plots.
    fn label(&self) -> String;

    /// Output width for inputs of width `head_dim`, without building the map.
    fn feature_dim(&self, head_dim: usize) -> usize;

    /// Builds the map for heads of width `head_dim`; `num_heads` sizes per-head weights. Both
    /// are positive (checked by the caller).
    fn build<B: Backend>(
        &self,
        head_dim: usize,
        num_heads: usize,
        device: &B::Device,
    ) -> Result<Self::Map<B>, AttentionError>;

    /// Small settings, at sizes a quadratic reference can check, that the shared tests run
    /// through every form and gradient: registering a map is what gets it tested.
    fn examples() -> Vec<Self>;
}

/// The built side of a map: `φ` on `[B, H, T, d]` and what its input must look like.
pub trait MapForward<B: Backend> {
    /// Width of `φ(x)`; equals the last dim of [`MapForward::forward`]'s output (tested).
    fn feature_dim(&self) -> usize;

    /// Width of the inputs the map was built for.
    fn head_dim(&self) -> usize;

    /// `φ(x)` for `x: [B, H, T, d]`, the tokens at positions `start_position..start_position+T`.
    fn forward(&self, x: Tensor<B, 4>, role: Role, start_position: usize) -> Tensor<B, 4>;

    /// Features for the attention output alone, in the narrowest basis with the same kernel
    /// `φ(q)·φ(k)`; by default [`MapForward::forward`].
    fn forward_for_output(
        &self,
        x: Tensor<B, 4>,
        role: Role,
        start_position: usize,
    ) -> Tensor<B, 4> {
        self.forward(x, role, start_position)
    }

    /// Heads with their own weights; 1 means one map serves any number of heads.
    fn weight_heads(&self) -> usize {
        1
    }

    /// Checks that positions `start_position..start_position+len` are within the map's range;
    /// only position-aware maps (cosFormer) have one.
    fn check_positions(&self, _start_position: usize, _len: usize) -> Result<(), AttentionError> {
        Ok(())
    }
}
