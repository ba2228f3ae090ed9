use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::error::{AttentionError, config_error};
use crate::reference::maps::affine;

/// The trainable `y = xW + b` inside Hedgehog and T2R: one `(W, b)` per head, or one shared by
/// all heads (stored with a leading head axis of 1 and broadcast).
#[derive(Module, Debug)]
pub struct HeadAffine<B: Backend> {
    /// `[H_w, d, d']`, `H_w` = number of heads or 1.
    pub weight: Param<Tensor<B, 3>>,
    /// `[H_w, 1, d']`.
    pub bias: Param<Tensor<B, 3>>,
}

impl<B: Backend> HeadAffine<B> {
    /// Identity initialisation (`W[h][i][j] = 1` iff `i == j`, `b = 0`), as in the Hedgehog
    /// paper: the map starts as `[σ(x), σ(−x)]` on the first `min(d, d')` coordinates.
    pub fn identity(
        map: &'static str,
        head_dim: usize,
        out_dim: usize,
        weight_heads: usize,
        device: &B::Device,
    ) -> Result<Self, AttentionError> {
        if out_dim == 0 {
            return Err(config_error(map, "feature_dim must be positive"));
        }
        let mut eye = vec![0.0f64; weight_heads * head_dim * out_dim];
        for h in 0..weight_heads {
            for i in 0..head_dim.min(out_dim) {
                eye[(h * head_dim + i) * out_dim + i] = 1.0;
            }
        }
        let weight = Tensor::from_data(
            TensorData::new(eye, [weight_heads, head_dim, out_dim]).convert::<B::FloatElem>(),
            device,
        );
        let bias = Tensor::zeros([weight_heads, 1, out_dim], device);
        Ok(Self {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(bias),
        })
    }

    /// From given weights `[H_w, d, d']` and bias `[H_w, d']`.
    pub fn from_tensors(
        map: &'static str,
        weight: Tensor<B, 3>,
        bias: Tensor<B, 2>,
    ) -> Result<Self, AttentionError> {
        let [heads, _, out_dim] = weight.dims();
        if bias.dims() != [heads, out_dim] {
            return Err(config_error(
                map,
                format!(
                    "bias must be [{heads}, {out_dim}] to match weight {:?}, got {:?}",
                    weight.dims(),
                    bias.dims()
                ),
            ));
        }
        Ok(Self {
            // Fresh leaves: a parameter must not hang off another graph.
            weight: Param::from_tensor(weight.detach()),
            bias: Param::from_tensor(bias.detach().unsqueeze_dim(1)),
        })
    }

    pub fn head_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[2]
    }

    pub fn weight_heads(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x: [B, H, T, d]` → `xW + b: [B, H, T, d']`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        affine(x, self.weight.val(), self.bias.val())
    }
}

/// Weight heads of a map built per head, or 1 for one shared across heads.
pub(super) fn weight_heads_for(per_head: bool, num_heads: usize) -> usize {
    if per_head { num_heads } else { 1 }
}
