use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use crate::reference::maps::taylor_feature_dim;

/// Second-order Taylor features of `exp(q·k/√d)` (Zhang et al. 2024 §3; HazyResearch/based
/// `TaylorExp`): `φ(x) = [1, x/d^{1/4}, vec(x xᵀ)/(√2·√d)]`, so that
/// `φ(q)·φ(k) = 1 + s + s²/2` with `s = q·k/√d`.
///
/// The compressed variant keeps the upper triangle of `x xᵀ`, with off-diagonal terms scaled by
/// √2 so the dot product is unchanged.
#[derive(Module, Clone, Debug)]
pub struct Taylor {
    pub head_dim: usize,
    pub compressed: bool,
}

impl Taylor {
    pub fn new(head_dim: usize, compressed: bool) -> Self {
        Self {
            head_dim,
            compressed,
        }
    }

    pub fn feature_dim(&self) -> usize {
        taylor_feature_dim(self.head_dim, self.compressed)
    }

    /// `φ(x)`; runs the backend's [`Kernels`](crate::kernels::Kernels) (fused on the CPU backend).
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().taylor(x, self.compressed)
    }

    /// The compressed features whatever `compressed` says (same `φ(q)·φ(k)`).
    pub fn forward_compressed<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().taylor(x, true)
    }
}
