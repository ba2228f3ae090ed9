//! What sliding-window decoding carries from one call to the next, and the per-call bundles
//! that continue from it.

use burn::tensor::{Bool, Tensor, backend::Backend};

use crate::error::{AttentionError, check_rank4};
use crate::types::LinearState;

/// Decoding state of sliding-window + linear attention after `position` tokens: the last
/// `n ≤ W` tokens' raw keys and values (the softmax window's KV cache) and the linear state
/// `(S, z)` of every older token. A token leaving the window moves from the cache into
/// `(S, z)` as `φ(k)vᵀ, φ(k)`; its `φ(k)` is computed then, by the caller's key map at the
/// token's own position (see [`WindowState::leaving_key`]), so the cache never holds
/// features (Taylor-2's are `1 + d + d²` wide).
#[derive(Clone, Debug)]
pub struct WindowState<B: Backend> {
    /// Raw keys of the cached tokens, oldest first: `[B, H, n, d]`.
    pub keys: Tensor<B, 4>,
    /// Their values: `[B, H, n, dv]`.
    pub values: Tensor<B, 4>,
    /// Which cached tokens are padding (`[B, n]`, true = padding); `None` when none are.
    pub padding: Option<Tensor<B, 2, Bool>>,
    /// `(S, z)` of the tokens that have left the window.
    pub linear: LinearState<B>,
    /// Tokens seen so far: the position of the next token. The cached tokens sit at
    /// `position − n .. position`.
    pub position: usize,
}

impl<B: Backend> WindowState<B> {
    /// Number of cached tokens `n` (at most `W`).
    pub fn cached(&self) -> usize {
        self.keys.dims()[2]
    }

    /// The raw key `[B, H, 1, d]` that the next token pushes out of a window of `window` keys,
    /// with its position; `None` while the cache is not full.
    pub fn leaving_key(&self, window: usize) -> Option<(Tensor<B, 4>, usize)> {
        let [b, h, n, _] = self.keys.dims();
        (n == window).then(|| {
            let key = self.keys.clone().slice([0..b, 0..h, 0..1]);
            (key, self.position - n)
        })
    }

    /// Checks the state against a call with `batch × heads`, key width `d`, `features` and
    /// value width `dv`, and a window of `window` keys.
    pub(crate) fn check(
        &self,
        [batch, heads, d, features, dv]: [usize; 5],
        window: usize,
    ) -> Result<(), AttentionError> {
        let n = self.cached();
        check_rank4(
            "window state keys",
            self.keys.dims(),
            [Some(batch), Some(heads), None, Some(d)],
            &format!("[{batch}, {heads}, n, {d}]"),
        )?;
        if n == 0 || n > window || n > self.position {
            return Err(AttentionError::Shape {
                what: "window state keys",
                expected: format!(
                    "between 1 and W = {window} cached tokens, no more than the {} seen",
                    self.position
                ),
                got: self.keys.dims().to_vec(),
            });
        }
        check_rank4(
            "window state values",
            self.values.dims(),
            [Some(batch), Some(heads), Some(n), Some(dv)],
            &format!("[{batch}, {heads}, {n}, {dv}]"),
        )?;
        if let Some(padding) = &self.padding
            && padding.dims() != [batch, n]
        {
            return Err(AttentionError::Shape {
                what: "window state padding",
                expected: format!("[{batch}, {n}] (true = padding)"),
                got: padding.dims().to_vec(),
            });
        }
        self.linear.check(batch, heads, features, dv)
    }
}

/// A [`WindowState`] that a chunked call continues from, with the features `φ(k)` of its
/// cached keys `[B, H, n, F]` (from the caller's key map, at the cached positions): the
/// chunk's queries see those keys in their windows, and the ones that leave the window
/// during the chunk join the linear part.
#[derive(Clone, Debug)]
pub struct WindowPrefix<B: Backend> {
    pub state: WindowState<B>,
    pub key_features: Tensor<B, 4>,
}

/// One decoding token: raw `q, k: [B, H, d]`, `v: [B, H, dv]`, the query's features
/// `fq: [B, H, F]`, and `leaving_features: [B, H, F]`, the `φ(k)` of the key this token pushes
/// out of the window ([`WindowState::leaving_key`]), required exactly when the cache is full.
#[derive(Clone, Debug)]
pub struct WindowToken<B: Backend> {
    pub q: Tensor<B, 3>,
    pub k: Tensor<B, 3>,
    pub v: Tensor<B, 3>,
    pub fq: Tensor<B, 3>,
    pub leaving_features: Option<Tensor<B, 3>>,
}
