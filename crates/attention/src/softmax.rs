//! Softmax attention: the teacher for distillation and the quadratic baseline.
//!
//! `a_ij = exp(q_i·k_j/√d) / Σ_m exp(q_i·k_m/√d)`, `y_i = Σ_j a_ij v_j` (method.md §1).

use burn::tensor::{Bool, Tensor, backend::Backend};

use crate::error::{AttentionError, check_rank4, config_error};
use crate::kernels;
pub use crate::reference::softmax::{causal_mask, scores};
use crate::types::SoftmaxInputs;

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
        return Err(config_error(
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
