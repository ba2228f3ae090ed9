//! Composed softmax attention, `a_ij = exp(q_i·k_j/√d) / Σ_m exp(q_i·k_m/√d)`,
//! `y_i = Σ_j a_ij v_j` (method.md §1), and the masks that the linear forms share with it.

use burn::tensor::{Bool, Tensor, activation, backend::Backend};

use crate::types::SoftmaxInputs;

/// Score given to masked positions before the softmax: finite, so a row whose keys are all
/// padding yields uniform (then zeroed) weights instead of NaN.
const MASKED_SCORE: f64 = -1e9;

/// Raw scaled scores `q·k/√d`: `[B, H, Tq, Tk]`. The analysis reads these as the x-axis of the
/// monotonicity plots.
pub fn scores<B: Backend>(q: Tensor<B, 4>, k: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, _, d] = q.dims();
    q.matmul(k.transpose()).div_scalar((d as f64).sqrt())
}

/// Mask `[Tq, Tk]` that is true where query `i` may not see key `j`: `j > i + (Tk − Tq)`, so
/// the last query sits at the last key (decoding with a cache has `Tq < Tk`).
pub fn causal_mask<B: Backend>(tq: usize, tk: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    Tensor::<B, 2, Bool>::tril_mask([tq, tk], tk as i64 - tq as i64, device)
}

/// `[B, T]` padding mask (true = padding) as a float keep-mask `[B, 1, T, 1]` (1 = real token).
pub(crate) fn keep_column<B: Backend>(padding: &Tensor<B, 2, Bool>) -> Tensor<B, 4> {
    let [b, t] = padding.dims();
    padding.clone().bool_not().float().reshape([b, 1, t, 1])
}

/// The composed weights (the reference behind `softmax::weights`); inputs already checked.
pub(crate) fn weights<B: Backend>(inputs: SoftmaxInputs<B>) -> Tensor<B, 4> {
    let SoftmaxInputs {
        q,
        k,
        causal,
        key_padding,
        ..
    } = inputs;
    let [b, h, tq, _] = q.dims();
    let tk = k.dims()[2];
    let device = q.device();
    let mut scores = scores(q, k);
    if causal {
        let mask = causal_mask::<B>(tq, tk, &device)
            .reshape([1, 1, tq, tk])
            .expand([b, h, tq, tk]);
        scores = scores.mask_fill(mask, MASKED_SCORE);
    }
    if let Some(padding) = &key_padding {
        let mask = padding
            .clone()
            .reshape([b, 1, 1, tk])
            .expand([b, h, tq, tk]);
        scores = scores.mask_fill(mask, MASKED_SCORE);
    }
    let mut weights = activation::softmax(scores, 3);
    if let Some(padding) = &key_padding
        && tq == tk
    {
        weights = weights * keep_column(padding);
    }
    weights
}

/// The composed output (the reference behind `softmax::output`): weights, burn's dropout, `· V`.
pub(crate) fn attention<B: Backend>(inputs: SoftmaxInputs<B>, dropout: f64) -> Tensor<B, 4> {
    let v = inputs.v.clone();
    let weights = weights(inputs);
    let weights = if dropout > 0.0 {
        burn::nn::DropoutConfig::new(dropout)
            .init()
            .forward(weights)
    } else {
        weights
    };
    weights.matmul(v)
}
