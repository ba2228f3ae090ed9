//! Fused sliding-window + linear attention on `f32` slices (causal, from an empty state),
//! forward and backward, one rayon task per (batch, head). The math is `window/`'s; per query
//! `i`, with the window `i − W < j ≤ i` of visible keys, `s_ij = q_i·k_j/√d`, `m_i` their
//! largest, `p_ij = e^{s_ij − m_i}`, and `(S, z)` the linear state of the visible keys
//! `j ≤ i − W`:
//!
//! ```text
//! N_i = γ Σ_window p_ij v_j + Sᵀ φ(q_i),   D_i = γ Σ_window p_ij + φ(q_i)·z + ε,   y_i = N_i / D_i
//! ```
//!
//! One query at a time: the state takes key `i − W` as query `i` starts, the window's `W`
//! scores are formed and exponentiated in place. That is `O(W d + F dv)` per query and no
//! `T × T` or band-sized intermediate, against the chunked composed form's `C × (C + W − 1)`
//! terms per chunk and the autodiff graph of its dozens of ops.
//!
//! Backward, with `gn = gy / D` and `gd = −(gy·y) / D` per row (as in `linear/`) and
//! `u_ij = gn_i·v_j + gd_i`:
//! - window: `ds_ij = γ p_ij u_ij`, `gv_j += γ p_ij gn_i`, `gγ += Σ p_ij u_ij`; the maximum is
//!   differentiated too (the linear terms are not rescaled by `e^{m_i}`, so `y` depends on
//!   it): `−Σ_j ds_ij` goes to the score that is the maximum (the first, on ties, as burn's
//!   `max_dim`); then `gq_i += Σ ds_ij k_j/√d`, `gk_j += ds_ij q_i/√d`;
//! - linear part, in order: `gφ(q_i) = S gn_i + gd_i z` with the state recomputed;
//! - in reverse: `R_S = Σ_{i ≥ j+W} φ(q_i) gn_iᵀ`, `R_z = Σ gd_i φ(q_i)` over the visible
//!   queries, then `gφ(k_j) = R_S v_j + R_z` and `gv_j += R_Sᵀ φ(k_j)`.
//!
//! Padding as in `window/`: padded keys are seen by no query, padded queries output 0 (their
//! normaliser is stored as 1) and get no gradient.

use rayon::prelude::*;

use super::linear::output_grads;
use super::simd;

/// Sizes of a call: `q, k: [B, H, T, d]`, `φ(q), φ(k): [B, H, T, F]`, `v: [B, H, T, dv]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub len: usize,
    pub head_dim: usize,
    pub features: usize,
    pub value_dim: usize,
    pub window: usize,
}

/// The inputs of one call, row-major; `factors` is `γ: [H]`.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub fq: &'a [f32],
    pub fk: &'a [f32],
    pub v: &'a [f32],
    pub factors: &'a [f32],
    /// `[B, T]`, true = a real token; `None` = nothing padded.
    pub keep: Option<&'a [bool]>,
    pub eps: f32,
}

/// Forward results: the output `[B, H, T, dv]` and each row's normaliser `D_i` (the
/// backward's; it recomputes the window's scores, which cost what storing them would).
#[derive(Debug)]
pub struct Forward {
    pub y: Vec<f32>,
    pub den: Vec<f32>,
}

/// Gradients with respect to every input; `factors` is `[H]`, summed over the batch.
#[derive(Debug)]
pub struct Grads {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub fq: Vec<f32>,
    pub fk: Vec<f32>,
    pub v: Vec<f32>,
    pub factors: Vec<f32>,
}

/// One (batch, head) pair's rows of the inputs, its padding and its `γ`.
#[derive(Clone, Copy)]
struct Head<'a> {
    dims: Dims,
    q: &'a [f32],
    k: &'a [f32],
    fq: &'a [f32],
    fk: &'a [f32],
    v: &'a [f32],
    keep: Option<&'a [bool]>,
    gamma: f32,
}

impl<'a> Head<'a> {
    fn new(dims: Dims, inputs: Inputs<'a>, pair: usize) -> Self {
        let (t, d, f, dv) = (dims.len, dims.head_dim, dims.features, dims.value_dim);
        let rows = |x: &'a [f32], width: usize| &x[pair * t * width..(pair + 1) * t * width];
        let batch = pair / dims.heads;
        Self {
            dims,
            q: rows(inputs.q, d),
            k: rows(inputs.k, d),
            fq: rows(inputs.fq, f),
            fk: rows(inputs.fk, f),
            v: rows(inputs.v, dv),
            keep: inputs.keep.map(|keep| &keep[batch * t..(batch + 1) * t]),
            gamma: inputs.factors[pair % dims.heads],
        }
    }

    fn visible(&self, j: usize) -> bool {
        self.keep.is_none_or(|keep| keep[j])
    }

    fn row(x: &[f32], i: usize, width: usize) -> &[f32] {
        &x[i * width..(i + 1) * width]
    }

    /// The first key of query `i`'s window.
    fn window_start(&self, i: usize) -> usize {
        (i + 1).saturating_sub(self.dims.window)
    }

    /// Adds key `j` (when visible) to the linear state `(S, z)`: `S += φ(k_j) v_jᵀ`, `z += φ(k_j)`.
    fn enter(&self, j: usize, s: &mut [f32], z: &mut [f32]) {
        if !self.visible(j) {
            return;
        }
        let (f, dv) = (self.dims.features, self.dims.value_dim);
        let (fk, v) = (Self::row(self.fk, j, f), Self::row(self.v, j, dv));
        for (s_row, &phi) in s.chunks_mut(dv).zip(fk) {
            simd::axpy(s_row, phi, v);
        }
        simd::axpy(z, 1.0, fk);
    }

    /// Query `i`'s window terms `scores[n] ← e^{s − m}` (0 for hidden keys); returns where
    /// the maximum `m` was (its first position).
    fn window_weights(&self, i: usize, scores: &mut [f32]) -> usize {
        let d = self.dims.head_dim;
        let scale = 1.0 / (d as f32).sqrt();
        let q = Self::row(self.q, i, d);
        let start = self.window_start(i);
        for (n, score) in scores.iter_mut().enumerate() {
            let j = start + n;
            *score = if self.visible(j) {
                simd::dot(q, Self::row(self.k, j, d)) * scale
            } else {
                f32::NEG_INFINITY
            };
        }
        let max = simd::max(scores);
        let argmax = scores.iter().position(|&s| s == max).unwrap_or(0);
        simd::exp_shifted_sum(scores, max);
        argmax
    }

    /// The in-order sweep both passes share: for every visible query `i`, `visit(i, start,
    /// terms, argmax, S, z)` with its window's first key, the window's terms `e^{s − m}`, where
    /// the maximum was, and the linear state of the keys `j ≤ i − W`.
    fn sweep(&self, mut visit: impl FnMut(usize, usize, &mut [f32], usize, &[f32], &[f32])) {
        let Dims {
            len: t,
            features: f,
            value_dim: dv,
            window: w,
            ..
        } = self.dims;
        let (mut s, mut z) = (vec![0.0f32; f * dv], vec![0.0f32; f]);
        let mut scores = vec![0.0f32; w.min(t)];
        for i in 0..t {
            if i >= w {
                self.enter(i - w, &mut s, &mut z);
            }
            if !self.visible(i) {
                continue;
            }
            let start = self.window_start(i);
            let terms = &mut scores[..i + 1 - start];
            let argmax = self.window_weights(i, terms);
            visit(i, start, terms, argmax, &s, &z);
        }
    }

    /// This head's output rows `y: [T, dv]` and their normalisers `D_i` (1 for padded queries).
    fn forward(&self, y: &mut [f32], den: &mut [f32], eps: f32) {
        let (f, dv) = (self.dims.features, self.dims.value_dim);
        den.fill(1.0);
        self.sweep(|i, start, terms, _, s, z| {
            let out = &mut y[i * dv..(i + 1) * dv];
            let mut window_sum = 0.0f32;
            for (n, &p) in terms.iter().enumerate() {
                simd::axpy(out, self.gamma * p, Self::row(self.v, start + n, dv));
                window_sum += p;
            }
            let fq = Self::row(self.fq, i, f);
            for (s_row, &phi) in s.chunks(dv).zip(fq) {
                simd::axpy(out, phi, s_row);
            }
            den[i] = self.gamma * window_sum + simd::dot(fq, z) + eps;
            simd::scale(out, 1.0 / den[i]);
        });
    }

    /// This head's gradients from the upstream `gy: [T, dv]` and the forward's `y, D`.
    fn backward(&self, gy: &[f32], y: &[f32], den: &[f32], grads: HeadGrads<'_>) -> f32 {
        let Dims {
            len: t,
            head_dim: d,
            features: f,
            value_dim: dv,
            window: w,
            ..
        } = self.dims;
        let HeadGrads {
            q: gq,
            k: gk,
            fq: gfq,
            fk: gfk,
            v: gv,
        } = grads;
        let (gn, gd) = output_grads(gy, y, den, self.keep, dv);
        let scale = 1.0 / (d as f32).sqrt();
        let mut gamma_grad = 0.0f32;
        self.sweep(|i, start, scores, argmax, s, z| {
            let gn_i = Self::row(&gn, i, dv);
            for ((g, s_row), &z_a) in gfq[i * f..(i + 1) * f].iter_mut().zip(s.chunks(dv)).zip(z) {
                *g = simd::dot(s_row, gn_i) + gd[i] * z_a;
            }
            let mut ds_total = 0.0f32;
            for (n, p) in scores.iter_mut().enumerate() {
                let j = start + n;
                let u = simd::dot(gn_i, Self::row(self.v, j, dv)) + gd[i];
                gamma_grad += *p * u;
                simd::axpy(&mut gv[j * dv..(j + 1) * dv], self.gamma * *p, gn_i);
                *p *= self.gamma * u; // now ds_ij
                ds_total += *p;
            }
            scores[argmax] -= ds_total;
            let q_i = Self::row(self.q, i, d);
            for (n, &ds) in scores.iter().enumerate() {
                let j = start + n;
                simd::axpy(
                    &mut gq[i * d..(i + 1) * d],
                    ds * scale,
                    Self::row(self.k, j, d),
                );
                simd::axpy(&mut gk[j * d..(j + 1) * d], ds * scale, q_i);
            }
        });
        let (mut r_s, mut r_z) = (vec![0.0f32; f * dv], vec![0.0f32; f]);
        for j in (0..t).rev() {
            let i = j + w;
            if i < t && self.visible(i) {
                let (fq_i, gn_i) = (Self::row(self.fq, i, f), Self::row(&gn, i, dv));
                for (r_row, &phi) in r_s.chunks_mut(dv).zip(fq_i) {
                    simd::axpy(r_row, phi, gn_i);
                }
                simd::axpy(&mut r_z, gd[i], fq_i);
            }
            if !self.visible(j) {
                continue;
            }
            let (fk_j, v_j) = (Self::row(self.fk, j, f), Self::row(self.v, j, dv));
            let gfk_j = &mut gfk[j * f..(j + 1) * f];
            for ((g, r_row), &r) in gfk_j.iter_mut().zip(r_s.chunks(dv)).zip(&r_z) {
                *g = simd::dot(r_row, v_j) + r;
            }
            let gv_j = &mut gv[j * dv..(j + 1) * dv];
            for (r_row, &phi) in r_s.chunks(dv).zip(fk_j) {
                simd::axpy(gv_j, phi, r_row);
            }
        }
        gamma_grad
    }
}

/// One head's gradient rows, zeroed on entry.
struct HeadGrads<'a> {
    q: &'a mut [f32],
    k: &'a mut [f32],
    fq: &'a mut [f32],
    fk: &'a mut [f32],
    v: &'a mut [f32],
}

/// The forward pass of every (batch, head) pair.
pub fn forward(dims: Dims, inputs: Inputs<'_>) -> Forward {
    let (t, dv) = (dims.len, dims.value_dim);
    let pairs = dims.batch * dims.heads;
    let mut y = vec![0.0f32; pairs * t * dv];
    let mut den = vec![0.0f32; pairs * t];
    y.par_chunks_mut((t * dv).max(1))
        .zip(den.par_chunks_mut(t.max(1)))
        .enumerate()
        .for_each(|(pair, (y, den))| {
            Head::new(dims, inputs, pair).forward(y, den, inputs.eps);
        });
    Forward { y, den }
}

/// The backward pass from the upstream gradient `gy` and the forward's `y` and `den`.
pub fn backward<'a>(
    dims: Dims,
    inputs: Inputs<'a>,
    y: &'a [f32],
    den: &'a [f32],
    gy: &'a [f32],
) -> Grads {
    let Dims {
        len: t,
        head_dim: d,
        features: f,
        value_dim: dv,
        heads,
        ..
    } = dims;
    let pairs = dims.batch * heads;
    let zeros = |width: usize| vec![0.0f32; pairs * t * width];
    let (mut gq, mut gk, mut gv) = (zeros(d), zeros(d), zeros(dv));
    let (mut gfq, mut gfk) = (zeros(f), zeros(f));
    let per_pair = |width: usize| (t * width).max(1);
    let gammas: Vec<f32> = gq
        .par_chunks_mut(per_pair(d))
        .zip(gk.par_chunks_mut(per_pair(d)))
        .zip(gfq.par_chunks_mut(per_pair(f)))
        .zip(gfk.par_chunks_mut(per_pair(f)))
        .zip(gv.par_chunks_mut(per_pair(dv)))
        .enumerate()
        .map(|(pair, ((((q, k), fq), fk), v))| {
            let rows = |x: &'a [f32], width: usize| &x[pair * t * width..(pair + 1) * t * width];
            let head = Head::new(dims, inputs, pair);
            let grads = HeadGrads { q, k, fq, fk, v };
            head.backward(rows(gy, dv), rows(y, dv), rows(den, 1), grads)
        })
        .collect();
    let mut factors = vec![0.0f32; heads];
    for (pair, g) in gammas.into_iter().enumerate() {
        factors[pair % heads] += g;
    }
    Grads {
        q: gq,
        k: gk,
        fq: gfq,
        fk: gfk,
        v: gv,
        factors,
    }
}
