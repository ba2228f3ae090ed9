use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::affine::{HeadAffine, weight_heads_for};
use super::config::settings;
use super::kind::{MapForward, MapSettings};
use crate::error::AttentionError;
pub use crate::types::HedgehogActivation;
use crate::types::Role;

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

impl MapSettings for settings::Hedgehog {
    type Map<B: Backend> = Hedgehog<B>;
    const TRAINABLE: bool = true;

    fn label(&self) -> String {
        format!("Hedgehog ({})", self.activation.name())
    }

    fn feature_dim(&self, _head_dim: usize) -> usize {
        2 * self.feature_dim
    }

    fn build<B: Backend>(
        &self,
        head_dim: usize,
        num_heads: usize,
        device: &B::Device,
    ) -> Result<Hedgehog<B>, AttentionError> {
        Hedgehog::new(
            head_dim,
            self.feature_dim,
            weight_heads_for(self.per_head, num_heads),
            self.activation,
            device,
        )
    }

    /// The three activations, the joint softmax with weights shared across heads.
    fn examples() -> Vec<Self> {
        let example = |activation, per_head| Self {
            activation,
            feature_dim: 6,
            per_head,
        };
        vec![
            example(HedgehogActivation::Exp, true),
            example(HedgehogActivation::SoftmaxSplit, true),
            example(HedgehogActivation::SoftmaxJoint, false),
        ]
    }
}

impl<B: Backend> MapForward<B> for Hedgehog<B> {
    fn feature_dim(&self) -> usize {
        2 * self.affine.out_dim()
    }

    fn head_dim(&self) -> usize {
        self.affine.head_dim()
    }

    fn forward(&self, x: Tensor<B, 4>, _role: Role, _start_position: usize) -> Tensor<B, 4> {
        Hedgehog::forward(self, x)
    }

    fn weight_heads(&self) -> usize {
        self.affine.weight_heads()
    }
}
