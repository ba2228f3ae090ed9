use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

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

    pub fn feature_dim(&self) -> usize {
        self.head_dim
    }

    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x.clamp_min(RELU_FLOOR)
    }
}
