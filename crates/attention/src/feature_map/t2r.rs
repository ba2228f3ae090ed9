use burn::module::Module;
use burn::tensor::{Tensor, activation, backend::Backend};

use super::affine::{HeadAffine, weight_heads_for};
use super::config::settings;
use super::kind::{MapForward, MapSettings};
use crate::error::AttentionError;
use crate::types::Role;

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

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        activation::relu(self.affine.forward(x))
    }
}

impl MapSettings for settings::T2r {
    type Map<B: Backend> = T2r<B>;
    const TRAINABLE: bool = true;

    fn label(&self) -> String {
        "T2R".into()
    }

    fn feature_dim(&self, _head_dim: usize) -> usize {
        self.feature_dim
    }

    fn build<B: Backend>(
        &self,
        head_dim: usize,
        num_heads: usize,
        device: &B::Device,
    ) -> Result<T2r<B>, AttentionError> {
        T2r::new(
            head_dim,
            self.feature_dim,
            weight_heads_for(self.per_head, num_heads),
            device,
        )
    }

    fn examples() -> Vec<Self> {
        vec![Self {
            feature_dim: 7,
            per_head: true,
        }]
    }
}

impl<B: Backend> MapForward<B> for T2r<B> {
    fn feature_dim(&self) -> usize {
        self.affine.out_dim()
    }

    fn head_dim(&self) -> usize {
        self.affine.head_dim()
    }

    fn forward(&self, x: Tensor<B, 4>, _role: Role, _start_position: usize) -> Tensor<B, 4> {
        T2r::forward(self, x)
    }

    fn weight_heads(&self) -> usize {
        self.affine.weight_heads()
    }
}
