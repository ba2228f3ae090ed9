//! Fused softmax attention on `f32` slices, in the FlashAttention-2 scheme (Dao 2023): query
//! blocks stream over key blocks with an online softmax, so the `T × T` weights never exist;
//! the backward recomputes them block by block from the saved row log-sum-exp `L`.
//!
//! Forward per row `i`: `y_i = Σ_j softmax_j(s_ij) m_ij v_j / (1 − p)` with `s = q·k/√d`,
//! masked entries (`j > i + Tk − Tq` when causal, padded keys) left out, and `m_ij` the
//! dropout keep-mask (all ones without dropout). Backward, with `P = exp(S − L)`,
//! `D_i = gy_i·y_i`, `dP = (gY Vᵀ) ⊙ M / (1 − p)`, `dS = P ⊙ (dP − D)`:
//! `gV = (P ⊙ M / (1 − p))ᵀ gY`, `gQ = dS K / √d`, `gK = dSᵀ Q / √d`.
//!
//! Rows with no visible key (only a padded query can have none) give 0, and so do padded
//! queries when `Tq == Tk`, as in the composed reference.

use rayon::prelude::*;

use super::matmul::{Mat, MatMut, matmul};
use super::simd;

const QUERY_BLOCK: usize = 64;
const KEY_BLOCK: usize = 128;

/// Sizes: `q: [B, H, Tq, d]`, `k: [B, H, Tk, d]`, `v: [B, H, Tk, dv]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub query_len: usize,
    pub key_len: usize,
    pub head_dim: usize,
    pub value_dim: usize,
}

/// Dropout on the weights: each weight kept with probability `1 − p` and scaled by
/// `1 / (1 − p)`; the keep-mask is a hash of `(seed, batch·head, i, j)`, so the backward
/// regenerates it instead of storing it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub prob: f32,
    pub seed: u64,
}

/// Inputs of one call, row-major.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub causal: bool,
    /// `[B, Tk]`, true = a real key; `None` = nothing padded.
    pub keep: Option<&'a [bool]>,
    pub dropout: Option<Dropout>,
}

impl Inputs<'_> {
    fn scale(&self, dims: &Dims) -> f32 {
        1.0 / (dims.head_dim as f32).sqrt()
    }

    /// The last key query `i` may see (exclusive), before padding.
    fn key_end(&self, dims: &Dims, i: usize) -> usize {
        if self.causal {
            (i + 1 + dims.key_len)
                .saturating_sub(dims.query_len)
                .min(dims.key_len)
        } else {
            dims.key_len
        }
    }

    /// Whether query row `i` of batch `b` is a padded query whose output is zeroed.
    fn zero_row(&self, dims: &Dims, b: usize, i: usize) -> bool {
        dims.query_len == dims.key_len && self.keep.is_some_and(|keep| !keep[b * dims.key_len + i])
    }
}

/// murmur3's 32-bit finaliser: a cheap, well-mixed hash that vectorises.
#[inline(always)]
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl Dropout {
    /// The hash key of row `row` (a global `batch·head·Tq + i` index).
    fn row_key(&self, row: usize) -> u32 {
        mix((self.seed as u32) ^ mix((self.seed >> 32) as u32 ^ row as u32))
    }

    /// `x_j ← x_j · m_j / (1 − p)` over a block of keys starting at `first`.
    fn apply(&self, x: &mut [f32], row_key: u32, first: usize) {
        let threshold = (self.prob as f64 * (1u64 << 24) as f64) as u32;
        let scale = 1.0 / (1.0 - self.prob);
        for (j, value) in x.iter_mut().enumerate() {
            let h = mix(row_key ^ ((first + j) as u32).wrapping_mul(0x9e37_79b9));
            *value *= if (h >> 8) >= threshold { scale } else { 0.0 };
        }
    }
}

/// Sets masked scores to −∞ in a `rows × cols` block of scores for queries `i0..` and keys
/// `j0..` (causal limit and padded keys).
fn mask_block(
    scores: &mut [f32],
    cols: usize,
    inputs: &Inputs<'_>,
    dims: &Dims,
    b: usize,
    i0: usize,
    j0: usize,
) {
    for (r, row) in scores.chunks_mut(cols).enumerate() {
        let end = inputs.key_end(dims, i0 + r).saturating_sub(j0).min(cols);
        row[end..].fill(f32::NEG_INFINITY);
        if let Some(keep) = inputs.keep {
            let keep = &keep[b * dims.key_len + j0..b * dims.key_len + j0 + cols];
            for (value, &kept) in row[..end].iter_mut().zip(keep) {
                if !kept {
                    *value = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// Forward results: the output `[B, H, Tq, dv]` and each row's log-sum-exp `[B, H, Tq]`
/// (`+∞` for rows that are zeroed, so the backward's `exp(S − L)` is 0 there).
#[derive(Debug)]
pub struct Forward {
    pub y: Vec<f32>,
    pub lse: Vec<f32>,
}

pub fn forward(dims: Dims, inputs: Inputs<'_>) -> Forward {
    let Dims {
        query_len: tq,
        key_len: tk,
        head_dim: d,
        value_dim: dv,
        ..
    } = dims;
    let pairs = dims.batch * dims.heads;
    let scale = inputs.scale(&dims);
    let mut y = vec![0.0f32; pairs * tq * dv];
    let mut lse = vec![f32::INFINITY; pairs * tq];
    y.par_chunks_mut((tq * dv).max(1))
        .zip(lse.par_chunks_mut(tq.max(1)))
        .enumerate()
        .for_each(|(pair, (y, lse))| {
            let b = pair / dims.heads;
            let q = &inputs.q[pair * tq * d..(pair + 1) * tq * d];
            let k = &inputs.k[pair * tk * d..(pair + 1) * tk * d];
            let v = &inputs.v[pair * tk * dv..(pair + 1) * tk * dv];
            let mut scores = vec![0.0f32; QUERY_BLOCK * KEY_BLOCK];
            let mut running_max = [0.0f32; QUERY_BLOCK];
            let mut running_sum = [0.0f32; QUERY_BLOCK];
            let mut i0 = 0;
            while i0 < tq {
                let rows = QUERY_BLOCK.min(tq - i0);
                let keys = inputs.key_end(&dims, i0 + rows - 1);
                running_max[..rows].fill(f32::NEG_INFINITY);
                running_sum[..rows].fill(0.0);
                let out = &mut y[i0 * dv..(i0 + rows) * dv];
                let qb = Mat::new(&q[i0 * d..], rows, d);
                let mut j0 = 0;
                while j0 < keys {
                    let cols = KEY_BLOCK.min(keys - j0);
                    let s = &mut scores[..rows * cols];
                    matmul(
                        MatMut::new(s, rows, cols),
                        qb,
                        Mat::new(&k[j0 * d..], cols, d).t(),
                        scale,
                        false,
                    );
                    mask_block(s, cols, &inputs, &dims, b, i0, j0);
                    for r in 0..rows {
                        let row = &mut s[r * cols..(r + 1) * cols];
                        let new_max = running_max[r].max(simd::max(row));
                        if new_max == f32::NEG_INFINITY {
                            row.fill(0.0);
                            continue;
                        }
                        let correction = simd::exp(running_max[r] - new_max);
                        running_sum[r] =
                            running_sum[r] * correction + simd::exp_shifted_sum(row, new_max);
                        running_max[r] = new_max;
                        simd::scale(&mut out[r * dv..(r + 1) * dv], correction);
                        if let Some(dropout) = inputs.dropout {
                            dropout.apply(row, dropout.row_key(pair * tq + i0 + r), j0);
                        }
                    }
                    matmul(
                        MatMut::new(out, rows, dv),
                        Mat::new(s, rows, cols),
                        Mat::new(&v[j0 * dv..], cols, dv),
                        1.0,
                        true,
                    );
                    j0 += cols;
                }
                for r in 0..rows {
                    let row = &mut out[r * dv..(r + 1) * dv];
                    if running_sum[r] == 0.0 || inputs.zero_row(&dims, b, i0 + r) {
                        row.fill(0.0);
                    } else {
                        simd::scale(row, 1.0 / running_sum[r]);
                        lse[i0 + r] = running_max[r] + running_sum[r].ln();
                    }
                }
                i0 += rows;
            }
        });
    Forward { y, lse }
}

/// Gradients with respect to `q`, `k` and `v`.
#[derive(Debug)]
pub struct Grads {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// Backward from the forward's output `y` and row log-sum-exp `lse`.
pub fn backward(dims: Dims, inputs: Inputs<'_>, y: &[f32], lse: &[f32], gy: &[f32]) -> Grads {
    let Dims {
        query_len: tq,
        key_len: tk,
        head_dim: d,
        value_dim: dv,
        ..
    } = dims;
    let pairs = dims.batch * dims.heads;
    let scale = inputs.scale(&dims);
    let mut grads = Grads {
        q: vec![0.0; pairs * tq * d],
        k: vec![0.0; pairs * tk * d],
        v: vec![0.0; pairs * tk * dv],
    };
    grads
        .q
        .par_chunks_mut((tq * d).max(1))
        .zip(grads.k.par_chunks_mut((tk * d).max(1)))
        .zip(grads.v.par_chunks_mut((tk * dv).max(1)))
        .enumerate()
        .for_each(|(pair, ((gq, gk), gv))| {
            let b = pair / dims.heads;
            let q = &inputs.q[pair * tq * d..(pair + 1) * tq * d];
            let k = &inputs.k[pair * tk * d..(pair + 1) * tk * d];
            let v = &inputs.v[pair * tk * dv..(pair + 1) * tk * dv];
            let y = &y[pair * tq * dv..(pair + 1) * tq * dv];
            let lse = &lse[pair * tq..(pair + 1) * tq];
            let gy = &gy[pair * tq * dv..(pair + 1) * tq * dv];
            let row_dots: Vec<f32> = (0..tq)
                .map(|i| simd::dot(&gy[i * dv..(i + 1) * dv], &y[i * dv..(i + 1) * dv]))
                .collect();
            let mut p = vec![0.0f32; QUERY_BLOCK * KEY_BLOCK];
            let mut dp = vec![0.0f32; QUERY_BLOCK * KEY_BLOCK];
            let mut i0 = 0;
            while i0 < tq {
                let rows = QUERY_BLOCK.min(tq - i0);
                let keys = inputs.key_end(&dims, i0 + rows - 1);
                let qb = Mat::new(&q[i0 * d..], rows, d);
                let gyb = Mat::new(&gy[i0 * dv..], rows, dv);
                let mut j0 = 0;
                while j0 < keys {
                    let cols = KEY_BLOCK.min(keys - j0);
                    let kb = Mat::new(&k[j0 * d..], cols, d);
                    let vb = Mat::new(&v[j0 * dv..], cols, dv);
                    let p = &mut p[..rows * cols];
                    let dp = &mut dp[..rows * cols];
                    matmul(MatMut::new(p, rows, cols), qb, kb.t(), scale, false);
                    mask_block(p, cols, &inputs, &dims, b, i0, j0);
                    for (r, row) in p.chunks_mut(cols).enumerate() {
                        simd::exp_shifted_sum(row, lse[i0 + r]);
                    }
                    matmul(MatMut::new(dp, rows, cols), gyb, vb.t(), 1.0, false);
                    if let Some(dropout) = inputs.dropout {
                        // gV needs the dropped weights; dP the dropped gradient.
                        let mut dropped = p.to_vec();
                        for r in 0..rows {
                            let key = dropout.row_key(pair * tq + i0 + r);
                            dropout.apply(&mut dropped[r * cols..(r + 1) * cols], key, j0);
                            dropout.apply(&mut dp[r * cols..(r + 1) * cols], key, j0);
                        }
                        matmul(
                            MatMut::new(&mut gv[j0 * dv..(j0 + cols) * dv], cols, dv),
                            Mat::new(&dropped, rows, cols).t(),
                            gyb,
                            1.0,
                            true,
                        );
                    } else {
                        matmul(
                            MatMut::new(&mut gv[j0 * dv..(j0 + cols) * dv], cols, dv),
                            Mat::new(p, rows, cols).t(),
                            gyb,
                            1.0,
                            true,
                        );
                    }
                    // dS = P ⊙ (dP − D), into dp.
                    for r in 0..rows {
                        let dot = row_dots[i0 + r];
                        for (g, &w) in dp[r * cols..(r + 1) * cols]
                            .iter_mut()
                            .zip(&p[r * cols..(r + 1) * cols])
                        {
                            *g = w * (*g - dot);
                        }
                    }
                    let ds = Mat::new(dp, rows, cols);
                    matmul(
                        MatMut::new(&mut gq[i0 * d..(i0 + rows) * d], rows, d),
                        ds,
                        kb,
                        scale,
                        true,
                    );
                    matmul(
                        MatMut::new(&mut gk[j0 * d..(j0 + cols) * d], cols, d),
                        ds.t(),
                        qb,
                        scale,
                        true,
                    );
                    j0 += cols;
                }
                i0 += rows;
            }
        });
    grads
}

/// The weights `[B, H, Tq, Tk]` themselves (distillation targets, analysis).
pub fn weights(dims: Dims, inputs: Inputs<'_>) -> Vec<f32> {
    let Dims {
        query_len: tq,
        key_len: tk,
        head_dim: d,
        ..
    } = dims;
    let scale = inputs.scale(&dims);
    let mut w = vec![0.0f32; dims.batch * dims.heads * tq * tk];
    w.par_chunks_mut((tq * tk).max(1))
        .enumerate()
        .for_each(|(pair, w)| {
            let b = pair / dims.heads;
            matmul(
                MatMut::new(w, tq, tk),
                Mat::new(&inputs.q[pair * tq * d..(pair + 1) * tq * d], tq, d),
                Mat::new(&inputs.k[pair * tk * d..(pair + 1) * tk * d], tk, d).t(),
                scale,
                false,
            );
            mask_block(w, tk, &inputs, &dims, b, 0, 0);
            for (i, row) in w.chunks_mut(tk.max(1)).enumerate() {
                let shift = simd::max(row);
                if shift == f32::NEG_INFINITY || inputs.zero_row(&dims, b, i) {
                    row.fill(0.0);
                    continue;
                }
                let total = simd::exp_shifted_sum(row, shift);
                simd::scale(row, 1.0 / total);
            }
        });
    w
}

/// Backward of [`weights`]: `dS = W ⊙ (gW − Σ_j gW ⊙ W)`, `gQ = dS K / √d`, `gK = dSᵀ Q / √d`.
pub fn weights_backward(
    dims: Dims,
    inputs: Inputs<'_>,
    w: &[f32],
    gw: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let Dims {
        query_len: tq,
        key_len: tk,
        head_dim: d,
        ..
    } = dims;
    let pairs = dims.batch * dims.heads;
    let scale = inputs.scale(&dims);
    let mut gq = vec![0.0f32; pairs * tq * d];
    let mut gk = vec![0.0f32; pairs * tk * d];
    gq.par_chunks_mut((tq * d).max(1))
        .zip(gk.par_chunks_mut((tk * d).max(1)))
        .enumerate()
        .for_each(|(pair, (gq, gk))| {
            let w = &w[pair * tq * tk..(pair + 1) * tq * tk];
            let gw = &gw[pair * tq * tk..(pair + 1) * tq * tk];
            let mut ds = vec![0.0f32; tq * tk];
            for ((out, p), g) in ds
                .chunks_mut(tk.max(1))
                .zip(w.chunks(tk.max(1)))
                .zip(gw.chunks(tk.max(1)))
            {
                let inner = simd::dot(p, g);
                for ((o, &pv), &gv) in out.iter_mut().zip(p).zip(g) {
                    *o = pv * (gv - inner);
                }
            }
            let ds = Mat::new(&ds, tq, tk);
            let q = Mat::new(&inputs.q[pair * tq * d..(pair + 1) * tq * d], tq, d);
            let k = Mat::new(&inputs.k[pair * tk * d..(pair + 1) * tk * d], tk, d);
            matmul(MatMut::new(gq, tq, d), ds, k, scale, false);
            matmul(MatMut::new(gk, tk, d), ds.t(), q, scale, false);
        });
    (gq, gk)
}
