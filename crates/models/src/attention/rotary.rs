//! Rotary position embeddings for Llama-style layers.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData, backend::Backend};

/// Rotary position embedding (Su et al. 2021) in the HF Llama convention (`rotate_half`).
#[derive(Module, Clone, Debug)]
pub struct Rotary {
    pub base: f64,
    pub head_dim: usize,
}

impl Rotary {
    /// Rotates `x: [B, H, T, d]` for positions `start..start+T`.
    pub fn apply<B: Backend>(&self, x: Tensor<B, 4>, start: usize) -> Tensor<B, 4> {
        let [b, h, t, d] = x.dims();
        let half = d / 2;
        let mut cos = Vec::with_capacity(t * d);
        let mut sin = Vec::with_capacity(t * d);
        for position in start..start + t {
            for i in 0..d {
                let frequency = 1.0 / self.base.powf((2 * (i % half)) as f64 / d as f64);
                let angle = position as f64 * frequency;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let device = x.device();
        let table = |values: Vec<f64>| {
            Tensor::<B, 4>::from_data(
                TensorData::new(values, [1, 1, t, d]).convert::<B::FloatElem>(),
                &device,
            )
        };
        let first = x.clone().slice([0..b, 0..h, 0..t, 0..half]);
        let second = x.clone().slice([0..b, 0..h, 0..t, half..d]);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * table(cos) + rotated * table(sin)
    }
}
