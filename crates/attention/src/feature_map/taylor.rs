use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::config::settings;
use super::kind::{MapForward, MapSettings};
use crate::error::AttentionError;
use crate::reference::maps::taylor_feature_dim;
use crate::types::Role;

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

    /// `φ(x)`; runs the backend's [`Kernels`](crate::kernels::Kernels) (fused on the CPU backend).
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().taylor(x, self.compressed)
    }

    /// The compressed features whatever `compressed` says (same `φ(q)·φ(k)`).
    pub fn forward_compressed<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().taylor(x, true)
    }
}

impl MapSettings for settings::Taylor {
    type Map<B: Backend> = Taylor;
    const TRAINABLE: bool = false;

    fn label(&self) -> String {
        if self.compressed {
            "Taylor-2 (compressed)".into()
        } else {
            "Taylor-2".into()
        }
    }

    fn feature_dim(&self, head_dim: usize) -> usize {
        taylor_feature_dim(head_dim, self.compressed)
    }

    fn build<B: Backend>(
        &self,
        head_dim: usize,
        _num_heads: usize,
        _device: &B::Device,
    ) -> Result<Taylor, AttentionError> {
        Ok(Taylor::new(head_dim, self.compressed))
    }

    fn examples() -> Vec<Self> {
        vec![Self { compressed: false }, Self { compressed: true }]
    }
}

impl<B: Backend> MapForward<B> for Taylor {
    fn feature_dim(&self) -> usize {
        taylor_feature_dim(self.head_dim, self.compressed)
    }

    fn head_dim(&self) -> usize {
        self.head_dim
    }

    fn forward(&self, x: Tensor<B, 4>, _role: Role, _start_position: usize) -> Tensor<B, 4> {
        Taylor::forward(self, x)
    }

    /// The compressed basis whatever `compressed` says: `x⊗x` is symmetric, so its
    /// `1 + d + d(d+1)/2` features give the same attention as the `1 + d + d²` written ones at
    /// half the cost.
    fn forward_for_output(
        &self,
        x: Tensor<B, 4>,
        _role: Role,
        _start_position: usize,
    ) -> Tensor<B, 4> {
        self.forward_compressed(x)
    }
}
