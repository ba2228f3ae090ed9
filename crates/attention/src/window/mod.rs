//! Sliding-window softmax attention plus linear attention in one layer (LoLCATs), causal only.
//!
//! Query `i` sees the last `W` keys `i − W < j ≤ i` (the window) through softmax scores
//! `s_ij = q_i·k_j/√d` and every older key `j ≤ i − W` through the feature-map kernel; both
//! share one normaliser:
//!
//! ```text
//! m_i = max_{window} s_ij
//! y_i = (Σ_{window} γ_h e^{s_ij − m_i} v_j + Σ_{j ≤ i−W} φ(q_i)·φ(k_j) v_j)
//!     / (Σ_{window} γ_h e^{s_ij − m_i}     + Σ_{j ≤ i−W} φ(q_i)·φ(k_j)     + ε)
//! ```
//!
//! with a per-head factor `γ_h ∈ (0, 1)` and the `ε` of `linear.rs` (added to the whole sum).
//! The linear terms are not rescaled by `e^{m_i}`: the combination is defined with the window's
//! maximum subtracted (see `reference/window.rs`). With `W ≥ T` the linear part is empty and `γ`
//! cancels: softmax attention exactly when `ε = 0` (within `ε / γ` of it otherwise). `W = 0` is
//! not this form but plain linear attention (`linear.rs`), and these functions refuse it.
//! Source: Zhang et al., *LoLCATs* (ICLR 2025); HazyResearch/lolcats
//! `src/model/linear_attention/linear_window_attention_sw.py`.
//!
//! Forms: [`quadratic`] (the weights, for distillation and analysis; the reference),
//! [`chunked`] (training and prefill, `O(T (C + W))` memory) and [`decode_step`] (generation
//! from a [`WindowState`]). Composed burn ops, except [`chunked_output`] (training and
//! evaluation), which runs the fused kernel (`kernels/window.rs`) on the CPU backend.
//! Padding as in `linear.rs`: padded keys are unseen by every query, padded queries output 0.

mod chunked;
mod decode;
mod keys;
mod state;

use burn::tensor::{Tensor, backend::Backend};

use crate::error::{AttentionError, check_rank4, config_error};
use crate::kernels;
use crate::reference::linear::mask_output;
use crate::reference::window as reference;
use crate::softmax::check_padding_opt;
pub use crate::types::WindowInputs;
pub use state::{WindowPrefix, WindowState, WindowToken};

/// Checks the inputs against each other and `window ≥ 1`; returns `[B, H, d, F, dv]`.
fn check_inputs<B: Backend>(
    inputs: &WindowInputs<B>,
    window: usize,
) -> Result<[usize; 5], AttentionError> {
    check_window(window)?;
    let [b, h, t, d] = inputs.q.dims();
    let f = inputs.fq.dims()[3];
    if t == 0 {
        return Err(AttentionError::Shape {
            what: "sliding-window queries",
            expected: "at least one token: [B, H, T ≥ 1, d]".into(),
            got: inputs.q.dims().to_vec(),
        });
    }
    let tokens = |what, x: &Tensor<B, 4>, width: Option<usize>, text: &str| {
        check_rank4(what, x.dims(), [Some(b), Some(h), Some(t), width], text)
    };
    tokens(
        "sliding-window keys",
        &inputs.k,
        Some(d),
        &format!("[{b}, {h}, {t}, {d}] like q"),
    )?;
    tokens(
        "query features φ(q)",
        &inputs.fq,
        None,
        &format!("[{b}, {h}, {t}, F]"),
    )?;
    let like_fq = format!("[{b}, {h}, {t}, {f}] like φ(q)");
    tokens("key features φ(k)", &inputs.fk, Some(f), &like_fq)?;
    tokens("values", &inputs.v, None, &format!("[{b}, {h}, {t}, dv]"))?;
    check_factors(&inputs.factors, h)?;
    check_padding_opt(inputs.key_padding.as_ref(), b, t)?;
    Ok([b, h, d, f, inputs.v.dims()[3]])
}

fn check_window(window: usize) -> Result<(), AttentionError> {
    if window == 0 {
        return Err(config_error(
            "sliding-window attention",
            "window must be at least 1; window 0 is plain linear attention (linear.rs, or \
             LinearAttention with window 0)",
        ));
    }
    Ok(())
}

fn check_factors<B: Backend>(factors: &Tensor<B, 1>, heads: usize) -> Result<(), AttentionError> {
    if factors.dims() != [heads] {
        return Err(AttentionError::Shape {
            what: "window factors γ",
            expected: format!("[{heads}], one per head"),
            got: factors.dims().to_vec(),
        });
    }
    Ok(())
}

/// The unnormalised terms `[B, H, T, T]`: `γ_h e^{s_ij − m_i}` in the window,
/// `φ(q_i)·φ(k_j)` in the linear part, 0 for future and padded keys and on padded queries'
/// rows. The rows of [`quadratic`]'s weights are these divided by their sums `+ ε`. `O(T² F)`.
pub fn terms<B: Backend>(
    inputs: WindowInputs<B>,
    window: usize,
) -> Result<Tensor<B, 4>, AttentionError> {
    check_inputs(&inputs, window)?;
    let (terms, keep) = reference::terms(inputs, window);
    Ok(mask_output(terms, keep))
}

/// The quadratic form (the reference): the output `[B, H, T, dv]` and the combined weights
/// `a_ij = t_ij / (Σ_m t_im + ε)` `[B, H, T, T]` (distillation, analysis). `O(T² F)`.
pub fn quadratic<B: Backend>(
    inputs: WindowInputs<B>,
    window: usize,
) -> Result<(Tensor<B, 4>, Tensor<B, 4>), AttentionError> {
    check_inputs(&inputs, window)?;
    Ok(reference::quadratic(inputs, window))
}

/// The chunked causal form, chunks of `chunk_size` queries: training and prefill,
/// `O(T (C + W))` memory and `O(T (C + W)(d + F) + T F dv)` time.
///
/// `prefix` continues from an earlier call (its cached keys are in the first queries'
/// windows); the returned state is the one after the last token, for [`decode_step`] or
/// another call. `key_padding` covers the call's own tokens.
pub fn chunked<B: Backend>(
    inputs: WindowInputs<B>,
    window: usize,
    chunk_size: usize,
    prefix: Option<WindowPrefix<B>>,
) -> Result<(Tensor<B, 4>, WindowState<B>), AttentionError> {
    let [b, h, d, f, dv] = check_inputs(&inputs, window)?;
    check_chunk(chunk_size)?;
    if let Some(prefix) = &prefix {
        prefix.state.check([b, h, d, f, dv], window)?;
        let n = prefix.state.cached();
        check_rank4(
            "window prefix key features",
            prefix.key_features.dims(),
            [Some(b), Some(h), Some(n), Some(f)],
            &format!("[{b}, {h}, {n}, {f}]: φ(k) of the cached keys"),
        )?;
    }
    let (y, state) = chunked::chunked(inputs, window, chunk_size, prefix, true);
    Ok((y, state.expect("state requested")))
}

/// [`chunked`]'s output alone from an empty prefix (the state is not formed): training.
/// On the CPU backend this is the fused kernel (one query at a time; `chunk_size` is then
/// only checked), elsewhere the chunked composed form.
pub fn chunked_output<B: Backend>(
    inputs: WindowInputs<B>,
    window: usize,
    chunk_size: usize,
) -> Result<Tensor<B, 4>, AttentionError> {
    check_inputs(&inputs, window)?;
    check_chunk(chunk_size)?;
    match kernels::for_backend::<B>().window_output(inputs, window) {
        Ok(y) => Ok(y),
        Err(inputs) => Ok(chunked::chunked(inputs, window, chunk_size, None, false).0),
    }
}

fn check_chunk(chunk_size: usize) -> Result<(), AttentionError> {
    if chunk_size == 0 {
        return Err(config_error(
            "chunked sliding-window attention",
            "chunk_size must be positive",
        ));
    }
    Ok(())
}

/// One decoding step from `state` for the token at `state.position`: returns `y: [B, H, dv]`
/// and the state after it. `O(W d + F dv)` per token, constant memory.
pub fn decode_step<B: Backend>(
    state: WindowState<B>,
    token: WindowToken<B>,
    factors: Tensor<B, 1>,
    window: usize,
    eps: f64,
) -> Result<(Tensor<B, 3>, WindowState<B>), AttentionError> {
    check_window(window)?;
    let [b, h, d] = token.q.dims();
    let [f, dv] = [token.fq.dims()[2], token.v.dims()[2]];
    let one_token = |what, x: &Tensor<B, 3>, width: usize| {
        if x.dims() == [b, h, width] {
            Ok(())
        } else {
            Err(AttentionError::Shape {
                what,
                expected: format!("[{b}, {h}, {width}]"),
                got: x.dims().to_vec(),
            })
        }
    };
    one_token("decode step key", &token.k, d)?;
    check_factors(&factors, h)?;
    state.check([b, h, d, f, dv], window)?;
    let full = state.cached() == window;
    match &token.leaving_features {
        Some(leaving) if full => one_token("leaving key features φ(k)", leaving, f)?,
        None if !full => {}
        _ => {
            return Err(config_error(
                "sliding-window decoding",
                format!(
                    "leaving_features must be given exactly when the cache is full ({} of W = \
                     {window} tokens cached); see WindowState::leaving_key",
                    state.cached()
                ),
            ));
        }
    }
    Ok(decode::decode_step(state, token, factors, eps))
}
