use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::affine::HeadAffine;
use crate::error::AttentionError;
pub use crate::types::HedgehogActivation;

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
