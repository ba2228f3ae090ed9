//! The per-layer state that incremental decoding carries from one call to the next.

use burn::tensor::{Tensor, backend::Backend};
use hedgehog_attention::linear::LinearState;

/// Per-layer decoding cache: softmax keeps keys and values, linear attention its `(S, z)`.
#[derive(Clone, Debug)]
pub enum LayerCache<B: Backend> {
    Empty,
    Softmax {
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
    },
    Linear(LinearState<B>),
}
