//! Feature maps `φ: R^d → R^d'` for linear attention (method.md §2), one file each.
//!
//! A map is chosen by [`FeatureMapConfig`] (a serde enum, so a typo in a spec is a parse error)
//! and built into the [`FeatureMap`] module enum. Every map acts on `[B, H, T, d]` and returns
//! `[B, H, T, feature_dim()]`.

pub mod affine;
mod cosformer;
mod elu;
mod exp;
mod hedgehog;
mod performer;
mod relu;
mod t2r;
mod taylor;

pub use crate::types::Role;
pub use affine::HeadAffine;
pub use cosformer::CosFormer;
pub use elu::EluPlusOne;
pub use exp::ExpMap;
pub use hedgehog::{Hedgehog, HedgehogActivation};
pub use performer::Performer;
pub use relu::ReluMap;
pub use t2r::T2r;
pub use taylor::Taylor;

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::AttentionError;
use crate::reference::maps::taylor_feature_dim;

/// Serde form of a feature map, as written in YAML specs (`kind: hedgehog`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureMapConfig {
    /// `elu(x) + 1` (Katharopoulos et al. 2020).
    Elu,
    /// `max(x, 1e-6)`: ReLU kept strictly positive so no row sum is zero.
    Relu,
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
    },
    /// cosFormer's ReLU features re-weighted by `sin, cos(π p / 2M)` at 1-based position `p`.
    Cosformer {
        /// The fixed `M`; positions past it are an error.
        max_len: usize,
    },
    /// `exp(t·x)`: spiky but not monotonic in `q·k` (the paper's control).
    Exp { t: f64 },
    /// Second-order Taylor expansion of `exp(q·k/√d)`.
    Taylor {
        /// Keep only the upper triangle of `x xᵀ` (`1 + d + d(d+1)/2` features).
        #[serde(default)]
        compressed: bool,
    },
    /// Hedgehog's trainable map `[σ(xW+b), σ(−(xW+b))]`.
    Hedgehog {
        activation: HedgehogActivation,
        /// `d'`: width of `xW+b`; the map returns `2d'` features.
        feature_dim: usize,
        /// One `(W, b)` per head (true) or shared across heads.
        #[serde(default = "default_true")]
        per_head: bool,
    },
    /// Transformer-to-RNN's trainable `relu(xW+b)` (Kasai et al. 2021).
    T2r {
        feature_dim: usize,
        #[serde(default = "default_true")]
        per_head: bool,
    },
}

fn default_true() -> bool {
    true
}

impl FeatureMapConfig {
    /// Short name used in tables and plots.
    pub fn label(&self) -> String {
        match self {
            Self::Elu => "1+ELU".into(),
            Self::Relu => "ReLU".into(),
            Self::Performer { .. } => "Performer".into(),
            Self::Cosformer { .. } => "cosFormer".into(),
            Self::Exp { t } => format!("exp(t={t})"),
            Self::Taylor { compressed: false } => "Taylor-2".into(),
            Self::Taylor { compressed: true } => "Taylor-2 (compressed)".into(),
            Self::Hedgehog { activation, .. } => format!("Hedgehog ({})", activation.name()),
            Self::T2r { .. } => "T2R".into(),
        }
    }

    /// Whether the map has parameters trained by distillation or the task loss.
    pub fn is_trainable(&self) -> bool {
        matches!(self, Self::Hedgehog { .. } | Self::T2r { .. })
    }

    /// Output width for inputs of width `head_dim`, without building the map.
    pub fn feature_dim(&self, head_dim: usize) -> usize {
        match self {
            Self::Elu | Self::Relu | Self::Exp { .. } => head_dim,
            Self::Performer { num_features, .. } => *num_features,
            Self::Cosformer { .. } => 2 * head_dim,
            Self::Taylor { compressed } => taylor_feature_dim(head_dim, *compressed),
            Self::Hedgehog { feature_dim, .. } => 2 * feature_dim,
            Self::T2r { feature_dim, .. } => *feature_dim,
        }
    }

    /// Builds the map for heads of width `head_dim`; `num_heads` sizes per-head weights.
    pub fn init<B: Backend>(
        &self,
        head_dim: usize,
        num_heads: usize,
        device: &B::Device,
    ) -> Result<FeatureMap<B>, AttentionError> {
        if head_dim == 0 || num_heads == 0 {
            return Err(crate::error::config_error(
                "feature map",
                format!("head_dim ({head_dim}) and num_heads ({num_heads}) must be positive"),
            ));
        }
        Ok(match self {
            Self::Elu => FeatureMap::Elu(EluPlusOne::new(head_dim)),
            Self::Relu => FeatureMap::Relu(ReluMap::new(head_dim)),
            Self::Performer {
                num_features,
                seed,
                stabilize_queries,
            } => FeatureMap::Performer(Performer::new(
                head_dim,
                *num_features,
                *seed,
                *stabilize_queries,
                device,
            )?),
            Self::Cosformer { max_len } => {
                FeatureMap::Cosformer(CosFormer::new(head_dim, *max_len)?)
            }
            Self::Exp { t } => FeatureMap::Exp(ExpMap::new(head_dim, *t)?),
            Self::Taylor { compressed } => FeatureMap::Taylor(Taylor::new(head_dim, *compressed)),
            Self::Hedgehog {
                activation,
                feature_dim,
                per_head,
            } => FeatureMap::Hedgehog(Hedgehog::new(
                head_dim,
                *feature_dim,
                if *per_head { num_heads } else { 1 },
                *activation,
                device,
            )?),
            Self::T2r {
                feature_dim,
                per_head,
            } => FeatureMap::T2r(T2r::new(
                head_dim,
                *feature_dim,
                if *per_head { num_heads } else { 1 },
                device,
            )?),
        })
    }
}

/// A built feature map. Trainable maps hold `Param`s; the rest hold only their constants.
#[derive(Module, Debug)]
pub enum FeatureMap<B: Backend> {
    Elu(EluPlusOne),
    Relu(ReluMap),
    Performer(Performer<B>),
    Cosformer(CosFormer),
    Exp(ExpMap),
    Taylor(Taylor),
    Hedgehog(Hedgehog<B>),
    T2r(T2r<B>),
}

impl<B: Backend> FeatureMap<B> {
    /// Width of `φ(x)`; equals the last dim of [`FeatureMap::forward`]'s output (tested).
    pub fn feature_dim(&self) -> usize {
        match self {
            Self::Elu(m) => m.feature_dim(),
            Self::Relu(m) => m.feature_dim(),
            Self::Performer(m) => m.feature_dim(),
            Self::Cosformer(m) => m.feature_dim(),
            Self::Exp(m) => m.feature_dim(),
            Self::Taylor(m) => m.feature_dim(),
            Self::Hedgehog(m) => m.feature_dim(),
            Self::T2r(m) => m.feature_dim(),
        }
    }

    /// Width of the inputs the map was built for.
    pub fn head_dim(&self) -> usize {
        match self {
            Self::Elu(m) => m.head_dim,
            Self::Relu(m) => m.head_dim,
            Self::Performer(m) => m.head_dim(),
            Self::Cosformer(m) => m.head_dim,
            Self::Exp(m) => m.head_dim,
            Self::Taylor(m) => m.head_dim,
            Self::Hedgehog(m) => m.head_dim(),
            Self::T2r(m) => m.head_dim(),
        }
    }

    /// Whether query and key must share one instance: Performer's estimate of `exp(q·k)` only
    /// holds with the same random projection on both sides, and parameter-free maps have nothing
    /// to untie.
    pub fn must_share_query_key(&self) -> bool {
        !matches!(self, Self::Hedgehog(_) | Self::T2r(_))
    }

    /// `φ(x)` for `x: [B, H, T, d]`, the tokens at positions `start_position..start_position+T`.
    ///
    /// Only cosFormer reads positions; call [`FeatureMap::check_positions`] first at a boundary.
    pub fn forward(&self, x: Tensor<B, 4>, role: Role, start_position: usize) -> Tensor<B, 4> {
        match self {
            Self::Elu(m) => m.forward(x),
            Self::Relu(m) => m.forward(x),
            Self::Performer(m) => m.forward(x, role),
            Self::Cosformer(m) => m.forward(x, start_position),
            Self::Exp(m) => m.forward(x),
            Self::Taylor(m) => m.forward(x),
            Self::Hedgehog(m) => m.forward(x),
            Self::T2r(m) => m.forward(x),
        }
    }

    /// Features for the attention output alone, in the narrowest basis with the same kernel
    /// `φ(q)·φ(k)`: Taylor-2's `x⊗x` block is symmetric, so its `1 + d + d(d+1)/2` compressed
    /// features give the same attention as the `1 + d + d²` written ones at half the cost.
    /// Not for states or weights a caller keeps (their width is [`FeatureMap::feature_dim`]).
    pub fn forward_for_output(
        &self,
        x: Tensor<B, 4>,
        role: Role,
        start_position: usize,
    ) -> Tensor<B, 4> {
        match self {
            Self::Taylor(m) => m.forward_compressed(x),
            _ => self.forward(x, role, start_position),
        }
    }

    /// Checks that `x: [B, H, T, d]` fits this map, including cosFormer's position limit.
    pub fn check_input(
        &self,
        dims: [usize; 4],
        start_position: usize,
    ) -> Result<(), AttentionError> {
        let expected_heads = match self {
            Self::Hedgehog(m) => m.weight_heads(),
            Self::T2r(m) => m.weight_heads(),
            _ => 1,
        };
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
        if let Self::Cosformer(m) = self {
            m.check_positions(start_position, dims[2])?;
        }
        Ok(())
    }
}
