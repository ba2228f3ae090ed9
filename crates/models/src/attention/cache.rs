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

impl<B: Backend> LayerCache<B> {
    /// Bytes the cache's tensors hold: each tensor's element count (from its shape) times its
    /// element size (from its dtype), summed; the bookkeeping (positions) is not counted. It is
    /// what the cache must keep, not what the allocator reserved, so it is exact and the same
    /// on every backend. Softmax: `2·B·H·T·d` values, growing with the context `T`; linear:
    /// `B·H·F·(dv + 1)`, constant; window: `2·B·H·n·d` for its `n ≤ W` tokens (and the padding
    /// mask, if any) plus the linear state.
    pub fn bytes(&self) -> usize {
        fn size<B: Backend, const D: usize, K: burn::tensor::BasicOps<B>>(
            t: &Tensor<B, D, K>,
        ) -> usize {
            t.shape().num_elements() * t.dtype().size()
        }
        let linear = |state: &LinearState<B>| size(&state.s) + size(&state.z);
        match self {
            Self::Empty => 0,
            Self::Softmax { keys, values } => size(keys) + size(values),
            Self::Linear(state) => linear(state),
            Self::Window(state) => {
                size(&state.keys)
                    + size(&state.values)
                    + state.padding.as_ref().map_or(0, size)
                    + linear(&state.linear)
            }
        }
    }
}
