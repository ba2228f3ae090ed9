//! The per-layer state that incremental decoding carries from one call to the next.

use burn::tensor::{Tensor, backend::Backend};
use hedgehog_attention::linear::LinearState;
use hedgehog_attention::window::WindowState;

/// Per-layer decoding cache: softmax keeps keys and values, linear attention its `(S, z)`, and
/// linear attention with a sliding window of `W` keys the last `n ≤ W` raw keys and values
/// plus the `(S, z)` of the older tokens.
#[derive(Clone, Debug)]
pub enum LayerCache<B: Backend> {
    Empty,
    Softmax {
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
    },
    Linear(LinearState<B>),
    Window(WindowState<B>),
}
