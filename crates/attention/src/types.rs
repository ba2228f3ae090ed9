//! The plain types that the public forms, the composed reference and the fused kernels all
//! pass around (and the feature maps' `Role`); they sit below all of them so that none has to
//! import another for them.

use burn::tensor::{Bool, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::{AttentionError, check_rank4};

/// Recurrent state of causal linear attention after some prefix of tokens.
#[derive(Clone, Debug)]
pub struct LinearState<B: Backend> {
    /// `S = Σ_j φ(k_j) v_jᵀ`: `[B, H, F, dv]`.
    pub s: Tensor<B, 4>,
    /// `z = Σ_j φ(k_j)`: `[B, H, F]`.
    pub z: Tensor<B, 3>,
}

impl<B: Backend> LinearState<B> {
    /// The empty prefix.
    pub fn zeros(
        batch: usize,
        heads: usize,
        features: usize,
        value_dim: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            s: Tensor::zeros([batch, heads, features, value_dim], device),
            z: Tensor::zeros([batch, heads, features], device),
        }
    }

    /// State after all tokens of `fk, v` (the non-causal sums), computed directly.
    pub fn from_features(fk: Tensor<B, 4>, v: Tensor<B, 4>) -> Self {
        let [b, h, _, f] = fk.dims();
        Self {
            s: fk.clone().transpose().matmul(v),
            z: fk.sum_dim(2).reshape([b, h, f]),
        }
    }

    pub(crate) fn check(
        &self,
        batch: usize,
        heads: usize,
        features: usize,
        value_dim: usize,
    ) -> Result<(), AttentionError> {
        check_rank4(
            "linear-attention state S",
            self.s.dims(),
            [Some(batch), Some(heads), Some(features), Some(value_dim)],
            &format!("[{batch}, {heads}, {features}, {value_dim}]"),
        )?;
        if self.z.dims() != [batch, heads, features] {
            return Err(AttentionError::Shape {
                what: "linear-attention state z",
                expected: format!("[{batch}, {heads}, {features}]"),
                got: self.z.dims().to_vec(),
            });
        }
        Ok(())
    }
}

/// Inputs of a linear-attention call: `fq, fk: [B, H, T, F]`, `v: [B, H, T, dv]`, the padding
/// mask `[B, T]` (true = padding), and `ε` of the normaliser. Shapes are checked by the callers
/// in `linear.rs`.
#[derive(Clone, Debug)]
pub struct LinearInputs<B: Backend> {
    pub fq: Tensor<B, 4>,
    pub fk: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
    pub key_padding: Option<Tensor<B, 2, Bool>>,
    pub eps: f64,
}

/// Inputs of a softmax-attention call: `q: [B, H, Tq, d]`, `k: [B, H, Tk, d]`,
/// `v: [B, H, Tk, dv]` (unused by `Kernels::softmax_weights`), padding `[B, Tk]`.
#[derive(Clone, Debug)]
pub struct SoftmaxInputs<B: Backend> {
    pub q: Tensor<B, 4>,
    pub k: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
    pub causal: bool,
    pub key_padding: Option<Tensor<B, 2, Bool>>,
}

/// The three published Hedgehog activations σ (method.md §2); which one the ICLR paper used is
/// not settled, so all three are here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HedgehogActivation {
    /// `[exp(y), exp(−y)]`: the paper's text and appendix listing.
    Exp,
    /// `[softmax(y), softmax(−y)]`, each over `d'` features: HazyResearch/lolcats
    /// `src/model/feature_map.py` (`HedgehogFeatureMap`).
    SoftmaxSplit,
    /// `softmax([2y, −2y])` over all `2d'` features: fla-org/flash-linear-attention
    /// `fla/modules/feature_map.py` (`HedgehogFeatureMap`).
    SoftmaxJoint,
}

impl HedgehogActivation {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Exp => "exp",
            Self::SoftmaxSplit => "softmax_split",
            Self::SoftmaxJoint => "softmax_joint",
        }
    }
}

/// Which side of `φ(q)·φ(k)` a map is applied to.
///
/// Performer may subtract a per-token maximum inside the exponent on the query side only: a
/// positive per-query scale cancels in the normalisation (exactly only for `ε = 0`), while a
/// per-key scale would re-weight keys (method.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Query,
    Key,
}

/// Inputs of a sliding-window + linear attention call (`window.rs`): raw `q, k: [B, H, T, d]`
/// for the window's softmax scores, their features `fq, fk: [B, H, T, F]` for the linear part,
/// `v: [B, H, T, dv]`, the per-head window factors `γ: [H]` (each in (0, 1)), the padding mask
/// `[B, T]` (true = padding) and `ε` of the normaliser. Shapes are checked by the callers.
#[derive(Clone, Debug)]
pub struct WindowInputs<B: Backend> {
    pub q: Tensor<B, 4>,
    pub k: Tensor<B, 4>,
    pub fq: Tensor<B, 4>,
    pub fk: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
    pub factors: Tensor<B, 1>,
    pub key_padding: Option<Tensor<B, 2, Bool>>,
    pub eps: f64,
}
