use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::config::settings;
use super::kind::{MapForward, MapSettings};
use crate::error::AttentionError;
use crate::types::Role;

/// Floor of the ReLU map: keeps every feature positive so `φ(q)·z` cannot be exactly zero.
pub const RELU_FLOOR: f64 = 1e-6;

/// `φ(x) = max(x, ε)` with `ε = 1e-6`: ReLU features (method.md §2), clamped at a tiny
/// positive value instead of zero.
#[derive(Module, Clone, Debug)]
pub struct ReluMap {
    pub head_dim: usize,
}

impl ReluMap {
    pub fn new(head_dim: usize) -> Self {
        Self { head_dim }
    }

    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x.clamp_min(RELU_FLOOR)
    }
}

impl MapSettings for settings::Relu {
    type Map<B: Backend> = ReluMap;
    const TRAINABLE: bool = false;

    fn label(&self) -> String {
        "ReLU".into()
    }

    fn feature_dim(&self, head_dim: usize) -> usize {
        head_dim
    }

    fn build<B: Backend>(
        &self,
        head_dim: usize,
        _num_heads: usize,
        _device: &B::Device,
    ) -> Result<ReluMap, AttentionError> {
        Ok(ReluMap::new(head_dim))
    }

    fn examples() -> Vec<Self> {
        vec![Self {}]
    }
}

impl<B: Backend> MapForward<B> for ReluMap {
    fn feature_dim(&self) -> usize {
        self.head_dim
    }

    fn head_dim(&self) -> usize {
        self.head_dim
    }

    fn forward(&self, x: Tensor<B, 4>, _role: Role, _start_position: usize) -> Tensor<B, 4> {
        ReluMap::forward(self, x)
    }
}
