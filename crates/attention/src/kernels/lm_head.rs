//! The LM head fused with its cross-entropy, on `f32` slices: `logits = h Wᵀ` is formed a block
//! of tokens at a time and reduced at once to each token's log-sum-exp, so the `[N, V]` logits
//! (51 MB for 256 tokens of GPT-2's vocabulary) are never kept.
//!
//! Loss: `ℓ = (1/n) Σ_{i scored} (logsumexp_j(h_i·w_j) − h_i·w_{t_i})` over the `n` tokens
//! whose target is not ignored. Its gradient is formed in the same pass, while the block's
//! logits are at hand: `G = (softmax(logits) − onehot(t)) / n` (0 on ignored rows),
//! `∂ℓ/∂h = G W`, `∂ℓ/∂W = Gᵀ h`. The big products use every thread (one call at a time).

use rayon::prelude::*;

use super::matmul::{Mat, MatMut, matmul_parallel};
use super::simd;

/// Elements of the logits block held at once (32 MB).
const BLOCK_ELEMENTS: usize = 1 << 23;

/// Sizes: `h: [N, d]`, `W: [V, d]`, `targets: [N]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub tokens: usize,
    pub model_dim: usize,
    pub vocab: usize,
}

/// The head's results: per-token negative log-likelihood (0 on ignored rows) and, when asked,
/// the gradients of the mean loss over scored tokens.
#[derive(Debug)]
pub struct Output {
    pub nll: Vec<f32>,
    pub scored: usize,
    pub grads: Option<(Vec<f32>, Vec<f32>)>,
}

/// `targets[i] = None` leaves token `i` unscored. Targets must be `< V` (checked by callers).
pub fn cross_entropy(
    dims: Dims,
    h: &[f32],
    w: &[f32],
    targets: &[Option<usize>],
    with_grads: bool,
) -> Output {
    let Dims {
        tokens: n,
        model_dim: d,
        vocab: v,
    } = dims;
    let scored = targets.iter().filter(|t| t.is_some()).count();
    let inv_scored = if scored == 0 {
        0.0
    } else {
        1.0 / scored as f32
    };
    let block = (BLOCK_ELEMENTS / v.max(1)).clamp(1, n.max(1));
    let mut logits = vec![0.0f32; block * v];
    let mut nll = vec![0.0f32; n];
    let mut grads = with_grads.then(|| (vec![0.0f32; n * d], vec![0.0f32; v * d]));
    let w_mat = Mat::new(w, v, d);
    let mut start = 0;
    while start < n {
        let rows = block.min(n - start);
        let logits = &mut logits[..rows * v];
        let hb = Mat::new(&h[start * d..], rows, d);
        matmul_parallel(MatMut::new(logits, rows, v), hb, w_mat.t(), 1.0, false);
        logits
            .par_chunks_mut(v)
            .zip(nll[start..start + rows].par_iter_mut())
            .zip(targets[start..start + rows].par_iter())
            .for_each(|((row, nll), target)| {
                let Some(target) = *target else {
                    if with_grads {
                        row.fill(0.0);
                    }
                    return;
                };
                let picked = row[target];
                let shift = simd::max(row);
                let total = simd::exp_shifted_sum(row, shift);
                *nll = shift + total.ln() - picked;
                if with_grads {
                    simd::scale(row, inv_scored / total);
                    row[target] -= inv_scored;
                }
            });
        if let Some((gh, gw)) = grads.as_mut() {
            let g = Mat::new(logits, rows, v);
            matmul_parallel(
                MatMut::new(&mut gh[start * d..(start + rows) * d], rows, d),
                g,
                w_mat,
                1.0,
                false,
            );
            matmul_parallel(MatMut::new(gw, v, d), g.t(), hb, 1.0, true);
        }
        start += rows;
    }
    Output { nll, scored, grads }
}

/// The mean over scored tokens, summed in f64.
pub fn mean_nll(out: &Output) -> f32 {
    let total: f64 = out.nll.iter().map(|&x| x as f64).sum();
    (total / out.scored.max(1) as f64) as f32
}
