//! Linear attention on feature-mapped queries and keys, in the four forms of method.md §1.
//!
//! With `fq = φ(q): [B, H, T, F]`, `fk = φ(k): [B, H, T, F]`, `v: [B, H, T, dv]`:
//! `y_i = φ(q_i)ᵀ S_i / (φ(q_i)·z_i + ε)`, `S_i = Σ_{j≤i} φ(k_j) v_jᵀ`, `z_i = Σ_{j≤i} φ(k_j)`
//! (non-causal: sums over all `j`). [`quadratic`] is the reference; [`parallel`], [`chunked`]
//! and [`recurrent`] are the fast paths and are tested against it. Reference code:
//! fla-org/flash-linear-attention `fla/ops/linear_attn/naive.py` and `chunk.py`.
//!
//! Padding: `key_padding: [B, T]` (true = padding) zeroes the padded keys' features, so they
//! add nothing to `S` or `z`, and zeroes the outputs at padded positions.

use burn::tensor::{Bool, Tensor, backend::Backend};

use crate::error::{AttentionError, check_rank4, config_error};
use crate::kernels;
use crate::reference::linear::{self as reference, apply_key_padding, mask_output};
use crate::reference::softmax::causal_mask;
use crate::softmax::check_padding_opt;
use crate::types::LinearInputs;
pub use crate::types::LinearState;

/// Default `ε` added to the normaliser `φ(q)·z`.
pub const DEFAULT_EPS: f64 = 1e-6;

/// Checks `fq, fk` and the padding mask against each other and returns `[B, H, T, F]`.
fn check_features<B: Backend>(
    fq: &Tensor<B, 4>,
    fk: &Tensor<B, 4>,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<[usize; 4], AttentionError> {
    let [b, h, t, f] = fq.dims();
    check_rank4(
        "key features φ(k)",
        fk.dims(),
        [Some(b), Some(h), Some(t), Some(f)],
        &format!("[{b}, {h}, {t}, {f}] like φ(q)"),
    )?;
    check_padding_opt(key_padding, b, t)?;
    Ok([b, h, t, f])
}

/// Checks `fq, fk, v` against each other and returns `[B, H, T, F, dv]`.
fn check_inputs<B: Backend>(
    fq: &Tensor<B, 4>,
    fk: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<[usize; 5], AttentionError> {
    let [b, h, t, f] = check_features(fq, fk, key_padding)?;
    check_rank4(
        "values",
        v.dims(),
        [Some(b), Some(h), Some(t), None],
        &format!("[{b}, {h}, {t}, dv]"),
    )?;
    Ok([b, h, t, f, v.dims()[3]])
}

/// `φ(q_i)·φ(k_j)` with the keys query `i` may not see (causal `j > i`, padded keys) at 0,
/// and the keep-mask of the padded queries' rows. Inputs are checked by the callers.
fn masked_kernel<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    causal: bool,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
    let [b, h, t, _] = fq.dims();
    let (fk, keep) = apply_key_padding(fk, key_padding);
    let kernel = fq.matmul(fk.transpose()); // [B, H, T, T]
    if !causal {
        return (kernel, keep);
    }
    let mask = causal_mask::<B>(t, t, &kernel.device())
        .reshape([1, 1, t, t])
        .expand([b, h, t, t]);
    (kernel.mask_fill(mask, 0.0), keep)
}

/// The unnormalised kernel of linear attention, `κ_ij = φ(q_i)·φ(k_j)`: `[B, H, T, T]`.
///
/// Entries query `i` may not attend to (causal `j > i`, padded keys) are 0, and so are the rows
/// of padded queries, as in the weights of [`quadratic`], which are `κ_ij / (Σ_m κ_im + ε)`.
/// The monotonicity analysis (method.md §5; Zhang et al. 2024, §3) relates `κ_ij` to the raw
/// dot product `q_i·k_j`: normalising rescales each row, so the weights alone do not show
/// whether the kernel itself is monotone in it. `O(T² F)`.
pub fn kernel<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    causal: bool,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<Tensor<B, 4>, AttentionError> {
    check_features(&fq, &fk, key_padding)?;
    let (kernel, keep) = masked_kernel(fq, fk, causal, key_padding);
    Ok(mask_output(kernel, keep))
}

/// Quadratic form (the reference): materialises `â_ij = φ(q_i)·φ(k_j) / (Σ_m φ(q_i)·φ(k_m) + ε)`.
///
/// Returns the output `[B, H, T, dv]` and the weights `[B, H, T, T]` (what distillation and the
/// analysis need). `O(T² F)`.
pub fn quadratic<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    key_padding: Option<&Tensor<B, 2, Bool>>,
    eps: f64,
) -> Result<(Tensor<B, 4>, Tensor<B, 4>), AttentionError> {
    check_inputs(&fq, &fk, &v, key_padding)?;
    // Padded queries' rows are zeroed after normalising, not before: a zero row with ε = 0
    // would be 0 / 0.
    let (kernel, keep) = masked_kernel(fq, fk, causal, key_padding);
    let normaliser = kernel.clone().sum_dim(3).add_scalar(eps);
    let mut weights = kernel / normaliser;
    if let Some(keep) = keep.clone() {
        weights = weights * keep;
    }
    Ok((weights.clone().matmul(v), weights))
}

/// Parallel non-causal form: `y = φ(Q)(φ(K)ᵀV) / (φ(Q)·Σ_j φ(k_j) + ε)`, `O(T F dv)`.
///
/// Returns the output and the state `(S, z)` summed over all tokens. Runs the backend's
/// [`Kernels`](crate::kernels::Kernels) (fused on the CPU backend).
pub fn parallel<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<&Tensor<B, 2, Bool>>,
    eps: f64,
) -> Result<(Tensor<B, 4>, LinearState<B>), AttentionError> {
    check_inputs(&fq, &fk, &v, key_padding)?;
    let inputs = LinearInputs {
        fq,
        fk,
        v,
        key_padding: key_padding.cloned(),
        eps,
    };
    let (y, state) = kernels::for_backend::<B>().parallel_linear(inputs, true);
    Ok((y, state.expect("state requested")))
}

/// [`parallel`]'s output alone (the state is not formed).
pub fn parallel_output<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<&Tensor<B, 2, Bool>>,
    eps: f64,
) -> Result<Tensor<B, 4>, AttentionError> {
    check_inputs(&fq, &fk, &v, key_padding)?;
    let inputs = LinearInputs {
        fq,
        fk,
        v,
        key_padding: key_padding.cloned(),
        eps,
    };
    Ok(kernels::for_backend::<B>().parallel_linear(inputs, false).0)
}

/// Chunked causal form: within a chunk of `chunk_size` tokens the masked quadratic form, across
/// chunks the carried state `(S, z)`. `O(T C F + T F dv)`; used for training and prefill.
///
/// `initial_state` continues a previous prefix (prefill after prefill); the returned state is
/// the one after the last token, ready for [`recurrent_step`]. Runs the backend's
/// [`Kernels`](crate::kernels::Kernels) (fused on the CPU backend; the composed form batches
/// the chunks with an exclusive prefix sum of the per-chunk `φ(K_c)ᵀV_c`).
pub fn chunked<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    v: Tensor<B, 4>,
    chunk_size: usize,
    key_padding: Option<&Tensor<B, 2, Bool>>,
    initial_state: Option<LinearState<B>>,
    eps: f64,
) -> Result<(Tensor<B, 4>, LinearState<B>), AttentionError> {
    let (y, state) = chunked_call(fq, fk, v, chunk_size, key_padding, initial_state, eps, true)?;
    Ok((y, state.expect("state requested")))
}

/// [`chunked`]'s output alone (the final state is not formed): training.
pub fn chunked_output<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    v: Tensor<B, 4>,
    chunk_size: usize,
    key_padding: Option<&Tensor<B, 2, Bool>>,
    eps: f64,
) -> Result<Tensor<B, 4>, AttentionError> {
    Ok(chunked_call(fq, fk, v, chunk_size, key_padding, None, eps, false)?.0)
}

#[allow(clippy::too_many_arguments)]
fn chunked_call<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    v: Tensor<B, 4>,
    chunk_size: usize,
    key_padding: Option<&Tensor<B, 2, Bool>>,
    initial_state: Option<LinearState<B>>,
    eps: f64,
    with_state: bool,
) -> Result<(Tensor<B, 4>, Option<LinearState<B>>), AttentionError> {
    let [b, h, _, f, dv] = check_inputs(&fq, &fk, &v, key_padding)?;
    if chunk_size == 0 {
        return Err(config_error(
            "chunked linear attention",
            "chunk_size must be positive",
        ));
    }
    if let Some(state) = &initial_state {
        state.check(b, h, f, dv)?;
    }
    let inputs = LinearInputs {
        fq,
        fk,
        v,
        key_padding: key_padding.cloned(),
        eps,
    };
    Ok(kernels::for_backend::<B>().causal_linear(inputs, initial_state, chunk_size, with_state))
}

/// One token of the recurrent form: `S += φ(k)vᵀ`, `z += φ(k)`, then
/// `y = φ(q)ᵀS / (φ(q)·z + ε)`. Inputs `fq, fk: [B, H, F]`, `v: [B, H, dv]`; output `[B, H, dv]`.
/// `O(F dv)` time and constant memory per token: generation. Fused on the CPU backend.
pub fn recurrent_step<B: Backend>(
    state: LinearState<B>,
    fq: Tensor<B, 3>,
    fk: Tensor<B, 3>,
    v: Tensor<B, 3>,
    eps: f64,
) -> (Tensor<B, 3>, LinearState<B>) {
    kernels::for_backend::<B>().recurrent_step(state, fq, fk, v, eps)
}

/// Recurrent form over a whole sequence: [`recurrent_step`] token by token from
/// `initial_state` (or zeros). Slow; the reference for decoding.
pub fn recurrent<B: Backend>(
    fq: Tensor<B, 4>,
    fk: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<&Tensor<B, 2, Bool>>,
    initial_state: Option<LinearState<B>>,
    eps: f64,
) -> Result<(Tensor<B, 4>, LinearState<B>), AttentionError> {
    let [b, h, t, f, dv] = check_inputs(&fq, &fk, &v, key_padding)?;
    let device = fq.device();
    let mut state = match initial_state {
        Some(state) => {
            state.check(b, h, f, dv)?;
            state
        }
        None => LinearState::zeros(b, h, f, dv, &device),
    };
    let (fk, keep) = apply_key_padding(fk, key_padding);
    let mut outputs = Vec::with_capacity(t);
    for i in 0..t {
        let token = |x: &Tensor<B, 4>, width: usize| {
            x.clone()
                .slice([0..b, 0..h, i..i + 1])
                .reshape([b, h, width])
        };
        let (y, next) =
            reference::recurrent_step(state, token(&fq, f), token(&fk, f), token(&v, dv), eps);
        outputs.push(y.reshape([b, h, 1, dv]));
        state = next;
    }
    let y = if outputs.is_empty() {
        Tensor::zeros([b, h, 0, dv], &device)
    } else {
        Tensor::cat(outputs, 2)
    };
    Ok((mask_output(y, keep), state))
}
