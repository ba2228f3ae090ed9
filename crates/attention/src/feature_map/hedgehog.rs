use burn::module::Module;
use burn::tensor::{Tensor, activation, backend::Backend};
use serde::{Deserialize, Serialize};

use super::affine::HeadAffine;
use crate::AttentionError;

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

/// Hedgehog (Zhang et al., ICLR 2024, §4): `φ(x) = [σ(xW + b), σ(−(xW + b))]` with a trainable,
/// identity-initialised `W: d × d'` per head (or shared), trained to mimic softmax attention.
#[derive(Module, Debug)]
pub struct Hedgehog<B: Backend> {
    pub affine: HeadAffine<B>,
    pub activation: HedgehogActivation,
}

impl<B: Backend> Hedgehog<B> {
    pub fn new(
        head_dim: usize,
        feature_dim: usize,
        weight_heads: usize,
        activation: HedgehogActivation,
        device: &B::Device,
    ) -> Result<Self, AttentionError> {
        Ok(Self {
            affine: HeadAffine::identity("hedgehog", head_dim, feature_dim, weight_heads, device)?,
            activation,
        })
    }

    /// From explicit weights `[H_w, d, d']` and bias `[H_w, d']` (loading, fixtures).
    pub fn from_tensors(
        weight: Tensor<B, 3>,
        bias: Tensor<B, 2>,
        activation: HedgehogActivation,
    ) -> Result<Self, AttentionError> {
        Ok(Self {
            affine: HeadAffine::from_tensors("hedgehog", weight, bias)?,
            activation,
        })
    }

    pub fn feature_dim(&self) -> usize {
        2 * self.affine.out_dim()
    }

    pub fn head_dim(&self) -> usize {
        self.affine.head_dim()
    }

    pub fn weight_heads(&self) -> usize {
        self.affine.weight_heads()
    }

    /// `exp` is applied as written (no max subtraction: a per-key scale would re-weight keys,
    /// and a per-query one shifts the effective `ε`); the softmax variants are the stable ones.
    /// Runs the backend's [`Kernels`](crate::kernels::Kernels) (fused on the CPU backend).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().hedgehog(
            x,
            self.affine.weight.val(),
            self.affine.bias.val(),
            self.activation,
        )
    }
}

/// The composed Hedgehog map (the reference behind [`Hedgehog::forward`]).
pub(crate) fn composed<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 3>,
    bias: Tensor<B, 3>,
    activation: HedgehogActivation,
) -> Tensor<B, 4> {
    let y = super::affine::apply(x, weight, bias); // [B, H, T, d']
    match activation {
        HedgehogActivation::Exp => Tensor::cat(vec![y.clone().exp(), y.neg().exp()], 3),
        HedgehogActivation::SoftmaxSplit => Tensor::cat(
            vec![
                activation::softmax(y.clone(), 3),
                activation::softmax(y.neg(), 3),
            ],
            3,
        ),
        HedgehogActivation::SoftmaxJoint => activation::softmax(
            Tensor::cat(vec![y.clone().mul_scalar(2.0), y.mul_scalar(-2.0)], 3),
            3,
        ),
    }
}
