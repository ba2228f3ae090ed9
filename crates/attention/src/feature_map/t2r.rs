use burn::module::Module;
use burn::tensor::{Tensor, activation, backend::Backend};

use super::affine::HeadAffine;
use crate::error::AttentionError;

/// T2R (Kasai et al. 2021, "Finetuning Pretrained Transformers into RNNs"): `φ(x) = relu(xW + b)`
/// with trainable `W: d × d'`. The paper's conversion baseline. Identity-initialised like
/// Hedgehog so both start from the same point.
#[derive(Module, Debug)]
pub struct T2r<B: Backend> {
    pub affine: HeadAffine<B>,
}

impl<B: Backend> T2r<B> {
    pub fn new(
        head_dim: usize,
        feature_dim: usize,
        weight_heads: usize,
        device: &B::Device,
    ) -> Result<Self, AttentionError> {
        Ok(Self {
            affine: HeadAffine::identity("t2r", head_dim, feature_dim, weight_heads, device)?,
        })
    }

    /// From explicit weights `[H_w, d, d']` and bias `[H_w, d']` (loading, fixtures).
    pub fn from_tensors(weight: Tensor<B, 3>, bias: Tensor<B, 2>) -> Result<Self, AttentionError> {
        Ok(Self {
            affine: HeadAffine::from_tensors("t2r", weight, bias)?,
        })
    }

    pub fn feature_dim(&self) -> usize {
        self.affine.out_dim()
    }

    pub fn head_dim(&self) -> usize {
        self.affine.head_dim()
    }

    pub fn weight_heads(&self) -> usize {
        self.affine.weight_heads()
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        activation::relu(self.affine.forward(x))
    }
}
