use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

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

    pub fn feature_dim(&self) -> usize {
        self.head_dim
    }

    /// Runs the backend's [`Kernels`](crate::kernels::Kernels) (fused on the CPU backend).
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().elu_plus_one(x)
    }
}
