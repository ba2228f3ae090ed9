use std::f64::consts::FRAC_PI_2;

use burn::module::Module;
use burn::tensor::{Tensor, TensorData, activation, backend::Backend};

use super::config::settings;
use super::kind::{MapForward, MapSettings};
use crate::error::{AttentionError, config_error};
use crate::types::Role;

/// cosFormer (Qin et al. 2022): `φ(x_p) = [relu(x)·sin(πp/2M), relu(x)·cos(πp/2M)]` at 1-based
/// position `p`, so `φ(q_i)·φ(k_j) = relu(q_i)·relu(k_j)·cos(π(i−j)/2M)`.
///
/// `M` is fixed at construction (the reference uses the sequence length); decoding one token at
/// a time only agrees with the full pass because `M` never changes.
/// Reference: OpenNLPLab/cosFormer `cosformer.py` (`get_index`, 1-based positions).
#[derive(Module, Clone, Debug)]
pub struct CosFormer {
    pub head_dim: usize,
    pub max_len: usize,
}

impl CosFormer {
    pub fn new(head_dim: usize, max_len: usize) -> Result<Self, AttentionError> {
        if max_len == 0 {
            return Err(config_error("cosformer", "max_len (M) must be positive"));
        }
        Ok(Self { head_dim, max_len })
    }

    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>, start_position: usize) -> Tensor<B, 4> {
        let [_, _, t, _] = x.dims();
        let device = x.device();
        let angle = |i: usize| FRAC_PI_2 * (start_position + i + 1) as f64 / self.max_len as f64;
        let sin: Vec<f64> = (0..t).map(|i| angle(i).sin()).collect();
        let cos: Vec<f64> = (0..t).map(|i| angle(i).cos()).collect();
        let column = |values: Vec<f64>| {
            Tensor::<B, 4>::from_data(
                TensorData::new(values, [1, 1, t, 1]).convert::<B::FloatElem>(),
                &device,
            )
        };
        let relu = activation::relu(x);
        Tensor::cat(vec![relu.clone() * column(sin), relu * column(cos)], 3)
    }
}

impl MapSettings for settings::Cosformer {
    type Map<B: Backend> = CosFormer;
    const TRAINABLE: bool = false;

    fn label(&self) -> String {
        "cosFormer".into()
    }

    fn feature_dim(&self, head_dim: usize) -> usize {
        2 * head_dim
    }

    fn build<B: Backend>(
        &self,
        head_dim: usize,
        _num_heads: usize,
        _device: &B::Device,
    ) -> Result<CosFormer, AttentionError> {
        CosFormer::new(head_dim, self.max_len)
    }

    fn examples() -> Vec<Self> {
        vec![Self { max_len: 128 }]
    }
}

impl<B: Backend> MapForward<B> for CosFormer {
    fn feature_dim(&self) -> usize {
        2 * self.head_dim
    }

    fn head_dim(&self) -> usize {
        self.head_dim
    }

    fn forward(&self, x: Tensor<B, 4>, _role: Role, start_position: usize) -> Tensor<B, 4> {
        CosFormer::forward(self, x, start_position)
    }

    fn check_positions(&self, start_position: usize, len: usize) -> Result<(), AttentionError> {
        let last = start_position + len;
        if last > self.max_len {
            return Err(AttentionError::PositionOutOfRange {
                position: last,
                max_len: self.max_len,
            });
        }
        Ok(())
    }
}
