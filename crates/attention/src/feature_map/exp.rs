use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use crate::error::{AttentionError, config_error};

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

    pub fn feature_dim(&self) -> usize {
        self.head_dim
    }

    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x.mul_scalar(self.t).exp()
    }
}
