use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::config::settings;
use super::kind::{MapForward, MapSettings};
use crate::error::AttentionError;
use crate::types::Role;

/// `φ(x) = elu(x) + 1`, i.e. `x + 1` for `x > 0` and `exp(x)` otherwise (Katharopoulos et al.
/// 2020, "Transformers are RNNs"). Positive everywhere, so row sums never vanish.
#[derive(Module, Clone, Debug)]
pub struct EluPlusOne {
    pub head_dim: usize,
}

impl EluPlusOne {
    pub fn new(head_dim: usize) -> Self {
        Self { head_dim }
    }

    /// Runs the backend's [`Kernels`](crate::kernels::Kernels) (fused on the CPU backend).
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().elu_plus_one(x)
    }
}

impl MapSettings for settings::Elu {
    type Map<B: Backend> = EluPlusOne;
    const TRAINABLE: bool = false;

    fn label(&self) -> String {
        "1+ELU".into()
    }

    fn feature_dim(&self, head_dim: usize) -> usize {
        head_dim
    }

    fn build<B: Backend>(
        &self,
        head_dim: usize,
        _num_heads: usize,
        _device: &B::Device,
    ) -> Result<EluPlusOne, AttentionError> {
        Ok(EluPlusOne::new(head_dim))
    }

    fn examples() -> Vec<Self> {
        vec![Self {}]
    }
}

impl<B: Backend> MapForward<B> for EluPlusOne {
    fn feature_dim(&self) -> usize {
        self.head_dim
    }

    fn head_dim(&self) -> usize {
        self.head_dim
    }

    fn forward(&self, x: Tensor<B, 4>, _role: Role, _start_position: usize) -> Tensor<B, 4> {
        EluPlusOne::forward(self, x)
    }
}
