use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::config::settings;
use super::kind::{MapForward, MapSettings};
use crate::error::{AttentionError, config_error};
use crate::types::Role;

/// `φ(x) = exp(t·x)` elementwise: the paper's spiky-but-not-monotonic control (Table 1 uses
/// t = 1 and t = 2).
///
/// Applied exactly as written on both sides: a per-query rescaling would cancel only for
/// `ε = 0` (it rescales the effective `ε`), so it is not done.
#[derive(Module, Clone, Debug)]
pub struct ExpMap {
    pub head_dim: usize,
    pub t: f64,
}

impl ExpMap {
    pub fn new(head_dim: usize, t: f64) -> Result<Self, AttentionError> {
        if !t.is_finite() || t == 0.0 {
            return Err(config_error(
                "exp",
                format!("t must be finite and non-zero, got {t}"),
            ));
        }
        Ok(Self { head_dim, t })
    }

    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x.mul_scalar(self.t).exp()
    }
}

impl MapSettings for settings::Exp {
    type Map<B: Backend> = ExpMap;
    const TRAINABLE: bool = false;

    fn label(&self) -> String {
        format!("exp(t={})", self.t)
    }

    fn feature_dim(&self, head_dim: usize) -> usize {
        head_dim
    }

    fn build<B: Backend>(
        &self,
        head_dim: usize,
        _num_heads: usize,
        _device: &B::Device,
    ) -> Result<ExpMap, AttentionError> {
        ExpMap::new(head_dim, self.t)
    }

    /// The paper's two temperatures (Table 1).
    fn examples() -> Vec<Self> {
        vec![Self { t: 1.0 }, Self { t: 2.0 }]
    }
}

impl<B: Backend> MapForward<B> for ExpMap {
    fn feature_dim(&self) -> usize {
        self.head_dim
    }

    fn head_dim(&self) -> usize {
        self.head_dim
    }

    fn forward(&self, x: Tensor<B, 4>, _role: Role, _start_position: usize) -> Tensor<B, 4> {
        ExpMap::forward(self, x)
    }
}
