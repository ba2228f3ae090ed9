//! One decoding step of sliding-window + linear attention: the token at `position` enters the
//! KV cache, the token `W` places behind it (when the cache is full) leaves it for `(S, z)`, and
//! the query reads the cache through softmax scores and `(S, z)` through its features.

use burn::tensor::{Bool, Tensor, backend::Backend};

use super::state::{WindowState, WindowToken};
use crate::reference::window::{mask_where, window_terms};
use crate::types::LinearState;

/// `x` without its first token along dim 2 (`None` when that leaves nothing).
fn without_oldest<B: Backend>(x: Tensor<B, 4>) -> Option<Tensor<B, 4>> {
    let [b, h, n, _] = x.dims();
    (n > 1).then(|| x.slice([0..b, 0..h, 1..n]))
}

/// `older` (if any) followed by `newest` along the token dimension.
fn append<B: Backend>(older: Option<Tensor<B, 4>>, newest: Tensor<B, 4>) -> Tensor<B, 4> {
    match older {
        Some(older) => Tensor::cat(vec![older, newest], 2),
        None => newest,
    }
}

/// The step; shapes (and that `leaving_features` is given exactly when the cache is full)
/// already checked. Returns `y: [B, H, dv]` and the state after the token.
pub(super) fn decode_step<B: Backend>(
    state: WindowState<B>,
    token: WindowToken<B>,
    factors: Tensor<B, 1>,
    eps: f64,
) -> (Tensor<B, 3>, WindowState<B>) {
    let WindowToken {
        q,
        k,
        v,
        fq,
        leaving_features,
    } = token;
    let [b, h, d] = q.dims();
    let [f, dv] = [fq.dims()[2], v.dims()[2]];
    let device = q.device();
    let state = enter(state, k, v, leaving_features);
    let cached = state.cached();
    let hidden: Tensor<B, 4, Bool> = match &state.padding {
        Some(p) => p
            .clone()
            .reshape([b, 1, 1, cached])
            .expand([b, h, 1, cached]),
        None => mask_where::<B>(1, cached, |_, _| false, &device)
            .reshape([1, 1, 1, cached])
            .expand([b, h, 1, cached]),
    };
    let scores = q
        .reshape([b, h, 1, d])
        .matmul(state.keys.clone().swap_dims(2, 3))
        .div_scalar((d as f64).sqrt()); // [B, H, 1, n]
    let windowed = window_terms(scores, hidden, factors.reshape([1, h, 1, 1]));
    let fq = fq.reshape([b, h, 1, f]);
    let numerator =
        windowed.clone().matmul(state.values.clone()) + fq.clone().matmul(state.linear.s.clone());
    let normaliser = windowed.sum_dim(3)
        + fq.matmul(state.linear.z.clone().reshape([b, h, f, 1]))
            .add_scalar(eps); // [B, H, 1, 1]
    ((numerator / normaliser).reshape([b, h, dv]), state)
}

/// The state with the token `k: [B, H, d]`, `v: [B, H, dv]` cached and, when the cache was
/// full, its oldest token moved into `(S, z)` with the features `leaving`.
fn enter<B: Backend>(
    state: WindowState<B>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    leaving: Option<Tensor<B, 3>>,
) -> WindowState<B> {
    let [b, h, d] = k.dims();
    let dv = v.dims()[2];
    let WindowState {
        keys,
        values,
        padding,
        linear,
        position,
    } = state;
    let n = keys.dims()[2];
    let (keys, values, padding, linear) = match leaving {
        None => (Some(keys), Some(values), padding, linear),
        Some(leaving) => {
            let f = leaving.dims()[2];
            // A padded token leaves with zero features, as it entered the window: unseen.
            let leaving = match &padding {
                Some(p) => {
                    let keep = p.clone().slice([0..b, 0..1]).bool_not().float();
                    leaving * keep.reshape([b, 1, 1])
                }
                None => leaving,
            };
            let oldest_value = values.clone().slice([0..b, 0..h, 0..1]);
            let linear = LinearState {
                s: linear.s + leaving.clone().reshape([b, h, f, 1]) * oldest_value,
                z: linear.z + leaving,
            };
            let padding = padding.and_then(|p| (n > 1).then(|| p.slice([0..b, 1..n])));
            let (keys, values) = (without_oldest(keys), without_oldest(values));
            (keys, values, padding, linear)
        }
    };
    let device = k.device();
    let newest_padding = || mask_where::<B>(b, 1, |_, _| false, &device);
    WindowState {
        keys: append(keys, k.reshape([b, h, 1, d])),
        values: append(values, v.reshape([b, h, 1, dv])),
        padding: padding.map(|p| Tensor::cat(vec![p, newest_padding()], 1)),
        linear,
        position: position + 1,
    }
}
