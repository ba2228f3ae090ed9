//! The composed linear-attention forms (method.md §1): parallel, chunked and one recurrent
//! step, in burn tensor ops. Reference code: fla-org/flash-linear-attention
//! `fla/ops/linear_attn/naive.py` and `chunk.py`.

use burn::tensor::{Bool, Tensor, backend::Backend};

use super::softmax::keep_column;
use crate::types::{LinearInputs, LinearState};

/// Upper bound on the elements of the per-chunk states `[B, H, n, F, dv]` held at once by
/// `linear::chunked`; past it the chunks are processed in groups with the state carried between them.
const CHUNK_STATE_BUDGET: usize = 1 << 25;

/// Zeroes padded keys' features; returns the keep-mask for zeroing outputs.
pub(crate) fn apply_key_padding<B: Backend>(
    fk: Tensor<B, 4>,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
    match key_padding {
        Some(padding) => {
            let keep = keep_column(padding);
            (fk * keep.clone(), Some(keep))
        }
        None => (fk, None),
    }
}

/// Zeroes the outputs of padded positions.
pub(crate) fn mask_output<B: Backend>(y: Tensor<B, 4>, keep: Option<Tensor<B, 4>>) -> Tensor<B, 4> {
    match keep {
        Some(keep) => y * keep,
        None => y,
    }
}

/// The composed parallel form (the reference behind `linear::parallel`); inputs already
/// checked.
pub(crate) fn parallel<B: Backend>(inputs: LinearInputs<B>) -> (Tensor<B, 4>, LinearState<B>) {
    let LinearInputs {
        fq,
        fk,
        v,
        key_padding,
        eps,
    } = inputs;
    let [b, h, _, f] = fq.dims();
    let (fk, keep) = apply_key_padding(fk, key_padding.as_ref());
    let state = LinearState::from_features(fk, v);
    let numerator = fq.clone().matmul(state.s.clone()); // [B, H, T, dv]
    let normaliser = (fq * state.z.clone().reshape([b, h, 1, f]))
        .sum_dim(3)
        .add_scalar(eps);
    (mask_output(numerator / normaliser, keep), state)
}

/// The composed chunked form (the reference behind `linear::chunked`): the chunks batched by an
/// exclusive prefix sum of the per-chunk `φ(K_c)ᵀV_c`, in groups that bound memory; inputs
/// already checked.
pub(crate) fn chunked<B: Backend>(
    inputs: LinearInputs<B>,
    chunk_size: usize,
    initial_state: Option<LinearState<B>>,
) -> (Tensor<B, 4>, LinearState<B>) {
    let LinearInputs {
        fq,
        fk,
        v,
        key_padding,
        eps,
    } = inputs;
    let [b, h, t, f] = fq.dims();
    let dv = v.dims()[3];
    let device = fq.device();
    let mut state = initial_state.unwrap_or_else(|| LinearState::zeros(b, h, f, dv, &device));
    let (fk, keep) = apply_key_padding(fk, key_padding.as_ref());
    let chunks_per_group = (CHUNK_STATE_BUDGET / (b * h * f * dv).max(1)).max(1);
    let group_len = chunks_per_group * chunk_size;
    let mut outputs = Vec::with_capacity(t.div_ceil(group_len));
    let mut start = 0;
    while start < t {
        let end = (start + group_len).min(t);
        let (y, next) = chunked_group(
            fq.clone().slice([0..b, 0..h, start..end]),
            fk.clone().slice([0..b, 0..h, start..end]),
            v.clone().slice([0..b, 0..h, start..end]),
            chunk_size,
            state,
            eps,
        );
        outputs.push(y);
        state = next;
        start = end;
    }
    let y = if outputs.is_empty() {
        Tensor::zeros([b, h, 0, dv], &device)
    } else {
        Tensor::cat(outputs, 2)
    };
    (mask_output(y, keep), state)
}

/// One group of chunks, all in batched tensor ops, entering with `state`.
fn chunked_group<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    v: Tensor<B, 4>,
    chunk_size: usize,
    state: LinearState<B>,
    eps: f64,
) -> (Tensor<B, 4>, LinearState<B>) {
    let [b, h, t, f] = fq.dims();
    let dv = v.dims()[3];
    let c = chunk_size.min(t);
    let n = t.div_ceil(c);
    let padded = n * c;
    let device = fq.device();
    let pad = |x: Tensor<B, 4>, width: usize| -> Tensor<B, 4> {
        if padded == t {
            x
        } else {
            // Zero tokens after the end: zero features add nothing to S or z.
            Tensor::cat(
                vec![x, Tensor::zeros([b, h, padded - t, width], &device)],
                2,
            )
        }
    };
    let fq = pad(fq, f).reshape([b, h, n, c, f]); // [B, H, N, C, F]
    let fk = pad(fk, f).reshape([b, h, n, c, f]);
    let v = pad(v, dv).reshape([b, h, n, c, dv]); // [B, H, N, C, dv]

    let chunk_kv = fk.clone().swap_dims(3, 4).matmul(v.clone()); // [B, H, N, F, dv]
    let chunk_z = fk.clone().sum_dim(3); // [B, H, N, 1, F]
    let inclusive_kv = chunk_kv.cumsum(2);
    let inclusive_z = chunk_z.cumsum(2);
    let s0 = state.s.reshape([b, h, 1, f, dv]);
    let z0 = state.z.reshape([b, h, 1, 1, f]);
    let exclusive = |inclusive: Tensor<B, 5>, initial: Tensor<B, 5>| -> Tensor<B, 5> {
        let [_, _, _, r, s] = inclusive.dims();
        let shifted = if n == 1 {
            Tensor::zeros([b, h, 1, r, s], &device)
        } else {
            Tensor::cat(
                vec![
                    Tensor::zeros([b, h, 1, r, s], &device),
                    inclusive.slice([0..b, 0..h, 0..n - 1]),
                ],
                2,
            )
        };
        shifted + initial
    };
    let s_before = exclusive(inclusive_kv.clone(), s0.clone()); // [B, H, N, F, dv]
    let z_before = exclusive(inclusive_z.clone(), z0.clone()); // [B, H, N, 1, F]

    let lower = Tensor::<B, 2>::ones([c, c], &device)
        .tril(0)
        .reshape([1, 1, 1, c, c]);
    let intra = fq.clone().matmul(fk.swap_dims(3, 4)) * lower; // [B, H, N, C, C]
    let numerator = intra.clone().matmul(v) + fq.clone().matmul(s_before);
    let normaliser = intra.sum_dim(4)
        + fq.matmul(z_before.swap_dims(3, 4)) // [B, H, N, C, 1]
            .add_scalar(eps);
    let y = (numerator / normaliser)
        .reshape([b, h, padded, dv])
        .slice([0..b, 0..h, 0..t]);

    let last = n - 1..n;
    let next = LinearState {
        s: inclusive_kv
            .slice([0..b, 0..h, last.clone()])
            .reshape([b, h, f, dv])
            + s0.reshape([b, h, f, dv]),
        z: inclusive_z.slice([0..b, 0..h, last]).reshape([b, h, f]) + z0.reshape([b, h, f]),
    };
    (y, next)
}

/// The composed recurrent step (the reference behind `linear::recurrent_step`): `S += φ(k)vᵀ`,
/// `z += φ(k)`, `y = φ(q)ᵀS / (φ(q)·z + ε)`.
pub(crate) fn recurrent_step<B: Backend>(
    state: LinearState<B>,
    fq: Tensor<B, 3>,
    fk: Tensor<B, 3>,
    v: Tensor<B, 3>,
    eps: f64,
) -> (Tensor<B, 3>, LinearState<B>) {
    let [b, h, f] = fq.dims();
    let dv = v.dims()[2];
    let s = state.s + fk.clone().reshape([b, h, f, 1]) * v.reshape([b, h, 1, dv]);
    let z = state.z + fk;
    let fq = fq.reshape([b, h, 1, f]);
    let numerator = fq.clone().matmul(s.clone()).reshape([b, h, dv]);
    let normaliser = (fq.reshape([b, h, f]) * z.clone())
        .sum_dim(2)
        .add_scalar(eps); // [B, H, 1]
    (numerator / normaliser, LinearState { s, z })
}
