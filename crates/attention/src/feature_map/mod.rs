//! Feature maps `φ: R^d → R^d'` for linear attention (method.md §2), one file each.
//!
//! Each map's file implements [`MapSettings`] (the spec side) and [`MapForward`] (the built
//! map) from [`kind`]; the registry below lists every map once, and [`registry`] generates
//! from it the serde enum [`FeatureMapConfig`] (a typo in a spec is a parse error), the module
//! enum [`FeatureMap`] and their dispatch. Adding a map is its file plus one registry entry;
//! the shared tests run every registered map through [`FeatureMapConfig::examples`]. Every
//! map acts on `[B, H, T, d]` and returns `[B, H, T, feature_dim()]`.

pub mod affine;
mod cosformer;
mod elu;
mod exp;
mod hedgehog;
mod kind;
mod performer;
mod registry;
mod relu;
mod t2r;
mod taylor;

pub use crate::types::Role;
pub use affine::HeadAffine;
pub use cosformer::CosFormer;
pub use elu::EluPlusOne;
pub use exp::ExpMap;
pub use hedgehog::{Hedgehog, HedgehogActivation};
pub use kind::{MapForward, MapSettings};
pub use performer::Performer;
pub use relu::ReluMap;
pub use t2r::T2r;
pub use taylor::Taylor;

use burn::tensor::{Tensor, backend::Backend};

use crate::error::AttentionError;

registry::feature_maps! {
    /// `elu(x) + 1` (Katharopoulos et al. 2020).
    Elu => EluPlusOne,
    /// `max(x, 1e-6)`: ReLU kept strictly positive so no row sum is zero.
    Relu => ReluMap,
    /// FAVOR+ positive orthogonal random features (Choromanski et al. 2021).
    Performer {
        /// Number of random features `m`.
        num_features: usize,
        /// Seed of the orthogonal Gaussian draw.
        #[serde(default)]
        seed: u64,
        /// Subtract each query's max exponent (FAVOR+'s trick; exact only for `ε = 0`).
        #[serde(default)]
        stabilize_queries: bool,
    } => Performer<B>,
    /// cosFormer's ReLU features re-weighted by `sin, cos(π p / 2M)` at 1-based position `p`.
    Cosformer {
        /// The fixed `M`; positions past it are an error.
        max_len: usize,
    } => CosFormer,
    /// `exp(t·x)`: spiky but not monotonic in `q·k` (the paper's control).
    Exp { t: f64 } => ExpMap,
    /// Second-order Taylor expansion of `exp(q·k/√d)`.
    Taylor {
        /// Keep only the upper triangle of `x xᵀ` (`1 + d + d(d+1)/2` features).
        #[serde(default)]
        compressed: bool,
    } => Taylor,
    /// Hedgehog's trainable map `[σ(xW+b), σ(−(xW+b))]`.
    Hedgehog {
        activation: HedgehogActivation,
        /// `d'`: width of `xW+b`; the map returns `2d'` features.
        feature_dim: usize,
        /// One `(W, b)` per head (true) or shared across heads.
        #[serde(default = "default_true")]
        per_head: bool,
    } => Hedgehog<B>,
    /// Transformer-to-RNN's trainable `relu(xW+b)` (Kasai et al. 2021).
    T2r {
        feature_dim: usize,
        #[serde(default = "default_true")]
        per_head: bool,
    } => T2r<B>,
}

fn default_true() -> bool {
    true
}

/// The sizes every map is built for must be positive (a zero would build an empty map).
fn check_built_sizes(head_dim: usize, num_heads: usize) -> Result<(), AttentionError> {
    if head_dim == 0 || num_heads == 0 {
        return Err(crate::error::config_error(
            "feature map",
            format!("head_dim ({head_dim}) and num_heads ({num_heads}) must be positive"),
        ));
    }
    Ok(())
}

/// Weight heads of a map built per head, or 1 for one shared across heads.
fn weight_heads_for(per_head: bool, num_heads: usize) -> usize {
    if per_head { num_heads } else { 1 }
}

impl<B: Backend> FeatureMap<B> {
    /// Checks that `x: [B, H, T, d]` fits this map, including cosFormer's position limit.
    pub fn check_input(
        &self,
        dims: [usize; 4],
        start_position: usize,
    ) -> Result<(), AttentionError> {
        let expected_heads = self.weight_heads();
        let head_ok = expected_heads == 1 || dims[1] == expected_heads;
        if dims[3] != self.head_dim() || !head_ok {
            return Err(AttentionError::Shape {
                what: "feature map input",
                expected: format!(
                    "[B, {}, T, {}]",
                    if expected_heads == 1 {
                        "H".to_string()
                    } else {
                        expected_heads.to_string()
                    },
                    self.head_dim()
                ),
                got: dims.to_vec(),
            });
        }
        self.check_positions(start_position, dims[2])
    }
}
