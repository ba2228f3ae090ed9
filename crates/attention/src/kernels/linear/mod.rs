//! Fused linear attention on `f32` slices: the chunked causal form and the parallel non-causal
//! form, forward and backward, one rayon task per (batch, head): `causal`, `parallel`, and the
//! `recurrent` decoding step.
//!
//! Per head, with `q = φ(q), k = φ(k)` (padded keys' rows zeroed), `S_c, z_c` the state
//! entering chunk `c` and `A = tril(Q_c K_cᵀ)`:
//! `n = A V_c + Q_c S_c`, `den = A·1 + Q_c z_c + ε`, `y = n / den`, then
//! `S_{c+1} = S_c + K_cᵀ V_c`, `z_{c+1} = z_c + K_cᵀ 1` (`reference/linear.rs` has the composed form).
//!
//! Backward, with `gn = gy / den` and `gd = −(gy·y) / den` per row (the value and the
//! normaliser of a row are one linear map of `[v, 1]`), and `P = tril(Gn V_cᵀ + gd 1ᵀ)`:
//! - `gQ_c = P K_c + Gn S_cᵀ + gd z_cᵀ`, in a sweep over chunks in order (states recomputed);
//! - `gK_c = Pᵀ Q_c + V_c R_Sᵀ + 1 R_zᵀ` and `gV_c = Aᵀ Gn + K_c R_S`, in a sweep in reverse,
//!   where `R_S = Σ_{later chunks} Q_cᵀ Gn_c` and `R_z = Σ Q_cᵀ gd_c`;
//! - `gS_0 = R_S`, `gz_0 = R_z` after the last (first) chunk.
//!
//! Nothing of size `T × T` is formed. Under autodiff the forward keeps each chunk's `A` and
//! entering state (`T·C + (T/C)·F·(dv + 1)` floats a head) so the backward recomputes neither;
//! without, the backward recomputes them.

use super::simd;

pub mod causal;
pub mod causal_backward;
pub mod parallel;
pub mod recurrent;

/// Sizes of a linear-attention call: `q, k: [B, H, T, F]`, `v: [B, H, T, dv]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub len: usize,
    pub features: usize,
    pub value_dim: usize,
}

impl Dims {
    fn pairs(&self) -> usize {
        self.batch * self.heads
    }
}

/// The inputs of one call, row-major.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    /// `[B, T]`, true = a real token; `None` = nothing padded.
    pub keep: Option<&'a [bool]>,
    /// `[B, H, F, dv]` and `[B, H, F]`: the state before the first token (causal only).
    pub s0: Option<&'a [f32]>,
    pub z0: Option<&'a [f32]>,
    pub eps: f32,
}

/// Forward results: the output, each row's normaliser (the backward needs it) and the state
/// after the last token.
#[derive(Debug)]
pub struct Forward {
    pub y: Vec<f32>,
    pub den: Vec<f32>,
    pub s: Vec<f32>,
    pub z: Vec<f32>,
    /// With `keep`, every chunk's masked `A = tril(Q_c K_cᵀ)`, `[B·H, T, C]` (chunk starting
    /// at token `s` at `s·C`); else empty.
    pub intra: Vec<f32>,
    /// With `keep`, the state `(S, z)` entering every chunk, `[B·H, chunks, F·dv + F]`; else
    /// empty.
    pub states: Vec<f32>,
}

/// Gradients with respect to `q, k, v` and the initial state (zeros where it had none).
#[derive(Debug)]
pub struct Grads {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub s0: Vec<f32>,
    pub z0: Vec<f32>,
}

/// `k` with padded keys' rows zeroed (a copy only when something is padded).
fn masked_keys<'a>(dims: Dims, k: &'a [f32], keep: Option<&[bool]>) -> std::borrow::Cow<'a, [f32]> {
    let Some(keep) = keep else {
        return std::borrow::Cow::Borrowed(k);
    };
    let (t, f) = (dims.len, dims.features);
    let mut masked = k.to_vec();
    for (pair, head) in masked.chunks_mut(t * f).enumerate() {
        let b = pair / dims.heads;
        for (i, row) in head.chunks_mut(f).enumerate() {
            if !keep[b * t + i] {
                row.fill(0.0);
            }
        }
    }
    std::borrow::Cow::Owned(masked)
}

/// Zeroes the entries `j > i + offset` of a row-major `L × L` block (the causal mask; the
/// offset is 0 except in the test that proves a broken mask is caught).
fn mask_upper(block: &mut [f32], len: usize, offset: usize) {
    for (i, row) in block.chunks_mut(len).enumerate() {
        let first = (i + 1 + offset).min(len);
        row[first..].fill(0.0);
    }
}

/// `gn = gy / den` and `gd = −(gy·y) / den` per row of one head; padded rows get zeros.
pub(in crate::kernels) fn output_grads(
    gy: &[f32],
    y: &[f32],
    den: &[f32],
    keep: Option<&[bool]>,
    dv: usize,
) -> (Vec<f32>, Vec<f32>) {
    let t = den.len();
    let mut gn = vec![0.0f32; t * dv];
    let mut gd = vec![0.0f32; t];
    for i in 0..t {
        if keep.is_some_and(|keep| !keep[i]) {
            continue;
        }
        let (g, out) = (&gy[i * dv..(i + 1) * dv], &y[i * dv..(i + 1) * dv]);
        let inv = 1.0 / den[i];
        let row = &mut gn[i * dv..(i + 1) * dv];
        row.copy_from_slice(g);
        simd::scale(row, inv);
        gd[i] = -simd::dot(g, out) * inv;
    }
    (gn, gd)
}
