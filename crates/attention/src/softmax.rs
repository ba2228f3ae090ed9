//! Softmax attention: the teacher for distillation and the quadratic baseline.
//!
//! `a_ij = exp(q_i·k_j/√d) / Σ_m exp(q_i·k_m/√d)`, `y_i = Σ_j a_ij v_j` (method.md §1).

use burn::tensor::{Bool, Tensor, activation, backend::Backend};

use crate::AttentionError;
use crate::error::check_rank4;
use crate::kernels::{self, SoftmaxInputs};

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

fn check_padding<B: Backend>(
    padding: &Tensor<B, 2, Bool>,
    batch: usize,
    len: usize,
) -> Result<(), AttentionError> {
    if padding.dims() != [batch, len] {
        return Err(AttentionError::Shape {
            what: "key padding mask",
            expected: format!("[{batch}, {len}] (true = padding)"),
            got: padding.dims().to_vec(),
        });
    }
    Ok(())
}

pub(crate) fn check_padding_opt<B: Backend>(
    padding: Option<&Tensor<B, 2, Bool>>,
    batch: usize,
    len: usize,
) -> Result<(), AttentionError> {
    padding.map_or(Ok(()), |p| check_padding(p, batch, len))
}

/// Checks `q: [B, H, Tq, d]`, `k: [B, H, Tk, d]` and the padding mask; returns `[B, H, Tq, Tk]`.
fn check_scores<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<[usize; 4], AttentionError> {
    let [b, h, tq, d] = q.dims();
    check_rank4(
        "softmax keys",
        k.dims(),
        [Some(b), Some(h), None, Some(d)],
        &format!("[{b}, {h}, Tk, {d}]"),
    )?;
    let tk = k.dims()[2];
    check_padding_opt(key_padding, b, tk)?;
    Ok([b, h, tq, tk])
}

/// Softmax attention weights `[B, H, Tq, Tk]`.
///
/// `key_padding: [B, Tk]` (true = padding) removes keys; when `Tq == Tk` the rows of padded
/// queries are zeroed too. Runs the backend's [`Kernels`](crate::kernels::Kernels) (fused on
/// the CPU backend, where a row with no visible key is 0 rather than uniform).
pub fn weights<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    causal: bool,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<Tensor<B, 4>, AttentionError> {
    check_scores(&q, &k, key_padding)?;
    let v = q.clone();
    Ok(kernels::for_backend::<B>().softmax_weights(SoftmaxInputs {
        q,
        k,
        v,
        causal,
        key_padding: key_padding.cloned(),
    }))
}

/// The composed weights (the reference behind [`weights`]); inputs already checked.
pub(crate) fn composed_weights<B: Backend>(inputs: SoftmaxInputs<B>) -> Tensor<B, 4> {
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

/// Softmax attention output `[B, H, Tq, dv]` and its weights `[B, H, Tq, Tk]`.
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<(Tensor<B, 4>, Tensor<B, 4>), AttentionError> {
    check_values(&k, &v)?;
    let weights = weights(q, k, causal, key_padding)?;
    Ok((weights.clone().matmul(v), weights))
}

fn check_values<B: Backend>(k: &Tensor<B, 4>, v: &Tensor<B, 4>) -> Result<(), AttentionError> {
    let [b, h, tk, _] = k.dims();
    check_rank4(
        "softmax values",
        v.dims(),
        [Some(b), Some(h), Some(tk), None],
        &format!("[{b}, {h}, {tk}, dv]"),
    )
}

/// Softmax attention's output `[B, H, Tq, dv]` without its weights: the training and inference
/// path. With `dropout > 0` on a backend that tracks gradients, each weight is dropped with
/// that probability (and the rest scaled by `1/(1 − p)`), as burn's `Dropout` on the weights
/// would. Runs the backend's [`Kernels`](crate::kernels::Kernels): on the CPU backend one
/// fused pass that never forms the `T × T` weights.
pub fn output<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    key_padding: Option<&Tensor<B, 2, Bool>>,
    dropout: f64,
) -> Result<Tensor<B, 4>, AttentionError> {
    check_scores(&q, &k, key_padding)?;
    check_values(&k, &v)?;
    if !(0.0..1.0).contains(&dropout) {
        return Err(crate::error::config_error(
            "softmax attention",
            format!("dropout must be in [0, 1), got {dropout}"),
        ));
    }
    Ok(kernels::for_backend::<B>().softmax_attention(
        SoftmaxInputs {
            q,
            k,
            v,
            causal,
            key_padding: key_padding.cloned(),
        },
        dropout,
    ))
}

/// The composed output (the reference behind [`output`]): weights, burn's dropout, `· V`.
pub(crate) fn composed_attention<B: Backend>(
    inputs: SoftmaxInputs<B>,
    dropout: f64,
) -> Tensor<B, 4> {
    let v = inputs.v.clone();
    let weights = composed_weights(inputs);
    let weights = if dropout > 0.0 {
        burn::nn::DropoutConfig::new(dropout)
            .init()
            .forward(weights)
    } else {
        weights
    };
    weights.matmul(v)
}
