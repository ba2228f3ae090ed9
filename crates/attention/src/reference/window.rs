//! The composed sliding-window + linear attention, materialised as `[B, H, T, T]`: the reference
//! that `window/`'s chunked and decoding forms are tested against, and the form behind the
//! weights that distillation and the analysis read. Reference code: HazyResearch/lolcats
//! `src/model/linear_attention/linear_window_attention_sw.py` (`hybrid_attention_quadratic`).
//!
//! Query `i` sees keys `i − W < j ≤ i` through softmax scores (the window) and keys `j ≤ i − W`
//! through the feature-map kernel (the linear part); the terms
//! `t_ij = γ_h e^{s_ij − m_i}` (window) and `φ(q_i)·φ(k_j)` (linear) share one normaliser.

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};

use super::linear::apply_key_padding;
use super::softmax::scores;
use crate::types::WindowInputs;

/// Score given to keys a query may not see before its window maximum is taken: finite, so that
/// a row with no visible key (a padded query) stays finite; its terms are then set to 0 exactly.
pub(crate) const HIDDEN_SCORE: f64 = -1e9;

/// A `[rows, cols]` mask, true where `hide(row, col)`; built on the host, where the window's
/// band reads as the inequality it is.
pub(crate) fn mask_where<B: Backend>(
    rows: usize,
    cols: usize,
    hide: impl Fn(usize, usize) -> bool,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let cells: Vec<bool> = (0..rows * cols).map(|n| hide(n / cols, n % cols)).collect();
    Tensor::from_data(TensorData::new(cells, [rows, cols]), device)
}

/// `γ_h e^{s_ij − m_i}` where key `j` is visible to query `i` (`hidden` false), 0 elsewhere;
/// `m_i` is the largest visible score of row `i` (last dim), and `γ: [H]`.
///
/// LoLCATs subtracts the window's maximum from the window scores and does *not* divide the
/// linear terms by `e^{m_i}` to compensate: the combined attention is defined with this shift
/// (it sets the window's scale against the linear part), so the result is not invariant to it,
/// and any other form must subtract the same maximum over the same keys to agree.
pub(crate) fn window_terms<B: Backend, const D: usize>(
    scores: Tensor<B, D>,
    hidden: Tensor<B, D, Bool>,
    factors: Tensor<B, D>,
) -> Tensor<B, D> {
    let scores = scores.mask_fill(hidden.clone(), HIDDEN_SCORE);
    let max = scores.clone().max_dim(D - 1);
    (scores - max).exp().mask_fill(hidden, 0.0) * factors
}

/// The unnormalised terms `t_ij` `[B, H, T, T]` (0 for future and padded keys) and the
/// keep-mask `[B, 1, T, 1]` of the queries (`None` without padding); inputs already checked.
pub(crate) fn terms<B: Backend>(
    inputs: WindowInputs<B>,
    window: usize,
) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
    let WindowInputs {
        q,
        k,
        fq,
        fk,
        factors,
        key_padding,
        ..
    } = inputs;
    let [b, h, t, _] = q.dims();
    let device = q.device();
    let outside = mask_where::<B>(t, t, |i, j| j > i || j + window <= i, &device)
        .reshape([1, 1, t, t])
        .expand([b, h, t, t]);
    let hidden = match &key_padding {
        Some(padding) => {
            outside.bool_or(padding.clone().reshape([b, 1, 1, t]).expand([b, h, t, t]))
        }
        None => outside,
    };
    let windowed = window_terms(scores(q, k), hidden, factors.reshape([1, h, 1, 1]));
    let linear_part = mask_where::<B>(t, t, |i, j| j + window <= i, &device)
        .float()
        .reshape([1, 1, t, t]);
    let (fk, keep) = apply_key_padding(fk, key_padding.as_ref());
    let linear = fq.matmul(fk.transpose()) * linear_part; // [B, H, T, T]
    (windowed + linear, keep)
}

/// Divides by the row sums plus `ε` (the convention of `linear::quadratic`). A padded query's
/// row is zeroed, and its normaliser gets 1 added first, so that a row with nothing visible
/// is `0 / 1` rather than `0 / 0` when `ε = 0`.
pub(crate) fn normalise<B: Backend, const D: usize>(
    terms: Tensor<B, D>,
    keep: Option<Tensor<B, D>>,
    eps: f64,
) -> Tensor<B, D> {
    let normaliser = terms.clone().sum_dim(D - 1).add_scalar(eps);
    match keep {
        Some(keep) => terms / (normaliser - keep.clone() + 1.0) * keep,
        None => terms / normaliser,
    }
}

/// The quadratic form: output `[B, H, T, dv]` and combined weights `[B, H, T, T]`,
/// `a_ij = t_ij / (Σ_m t_im + ε)`; inputs already checked.
pub(crate) fn quadratic<B: Backend>(
    inputs: WindowInputs<B>,
    window: usize,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let (v, eps) = (inputs.v.clone(), inputs.eps);
    let (terms, keep) = terms(inputs, window);
    let weights = normalise(terms, keep, eps);
    (weights.clone().matmul(v), weights)
}
