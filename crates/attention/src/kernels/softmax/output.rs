//! Softmax attention's output, forward and backward, one query block at a time over key
//! blocks (the equations are in the module above).

use rayon::prelude::*;

use super::{Dims, Dropout, Inputs, mask_block};
use crate::kernels::matmul::{Mat, MatMut, matmul};
use crate::kernels::simd;

const QUERY_BLOCK: usize = 64;
const KEY_BLOCK: usize = 128;

/// Forward results: the output `[B, H, Tq, dv]` and each row's log-sum-exp `[B, H, Tq]`
/// (`+∞` for rows that are zeroed, so the backward's `exp(S − L)` is 0 there).
#[derive(Debug)]
pub struct Forward {
    pub y: Vec<f32>,
    pub lse: Vec<f32>,
}

/// Gradients with respect to `q`, `k` and `v`.
#[derive(Debug)]
pub struct Grads {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// A `rows × cols` block of scores: queries from global row `first_row` (`batch·head·Tq + i`,
/// the dropout hash key), keys from `first_key`.
#[derive(Clone, Copy, Debug)]
struct Block {
    rows: usize,
    cols: usize,
    first_row: usize,
    first_key: usize,
}

/// Each row of a query block's running max and running sum of `exp(s − max)` over the key
/// blocks seen so far (FlashAttention-2's online softmax).
struct OnlineSoftmax {
    max: [f32; QUERY_BLOCK],
    sum: [f32; QUERY_BLOCK],
}

impl OnlineSoftmax {
    fn new() -> Self {
        Self {
            max: [0.0; QUERY_BLOCK],
            sum: [0.0; QUERY_BLOCK],
        }
    }

    fn reset(&mut self, rows: usize) {
        self.max[..rows].fill(f32::NEG_INFINITY);
        self.sum[..rows].fill(0.0);
    }

    /// Folds one key block into the running max and sum, rescales the rows of `out` summed so
    /// far to the new max, and turns the scores `s` into the (dropped-out) weights
    /// `exp(s − max)` that multiply the block's values.
    #[inline]
    fn step(
        &mut self,
        block: Block,
        s: &mut [f32],
        out: &mut [f32],
        dv: usize,
        dropout: Option<Dropout>,
    ) {
        let cols = block.cols;
        for r in 0..block.rows {
            let row = &mut s[r * cols..(r + 1) * cols];
            let new_max = self.max[r].max(simd::max(row));
            if new_max == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            let correction = simd::exp(self.max[r] - new_max);
            self.sum[r] = self.sum[r] * correction + simd::exp_shifted_sum(row, new_max);
            self.max[r] = new_max;
            simd::scale(&mut out[r * dv..(r + 1) * dv], correction);
            if let Some(dropout) = dropout {
                dropout.apply(row, dropout.row_key(block.first_row + r), block.first_key);
            }
        }
    }

    /// Divides each row of `out` by its sum and records its log-sum-exp; rows with no visible
    /// key, and those `zero_row` names, are 0 (their `lse` stays `+∞`).
    fn finish(
        &self,
        out: &mut [f32],
        dv: usize,
        lse: &mut [f32],
        zero_row: impl Fn(usize) -> bool,
    ) {
        for (r, lse) in lse.iter_mut().enumerate() {
            let row = &mut out[r * dv..(r + 1) * dv];
            if self.sum[r] == 0.0 || zero_row(r) {
                row.fill(0.0);
            } else {
                simd::scale(row, 1.0 / self.sum[r]);
                *lse = self.max[r] + self.sum[r].ln();
            }
        }
    }
}

pub fn forward(dims: Dims, inputs: Inputs<'_>) -> Forward {
    let Dims {
        query_len: tq,
        value_dim: dv,
        ..
    } = dims;
    let pairs = dims.batch * dims.heads;
    let mut y = vec![0.0f32; pairs * tq * dv];
    let mut lse = vec![f32::INFINITY; pairs * tq];
    y.par_chunks_mut((tq * dv).max(1))
        .zip(lse.par_chunks_mut(tq.max(1)))
        .enumerate()
        .for_each(|(pair, (y, lse))| forward_head(dims, inputs, pair, y, lse));
    Forward { y, lse }
}

/// One (batch, head) pair's output rows and log-sum-exps, a query block at a time.
fn forward_head(dims: Dims, inputs: Inputs<'_>, pair: usize, y: &mut [f32], lse: &mut [f32]) {
    let Dims {
        query_len: tq,
        head_dim: d,
        value_dim: dv,
        ..
    } = dims;
    let scale = inputs.scale(&dims);
    let b = pair / dims.heads;
    let (q, k, v) = inputs.head(&dims, pair);
    let mut scores = vec![0.0f32; QUERY_BLOCK * KEY_BLOCK];
    let mut online = OnlineSoftmax::new();
    let mut i0 = 0;
    while i0 < tq {
        let rows = QUERY_BLOCK.min(tq - i0);
        let keys = inputs.key_end(&dims, i0 + rows - 1);
        online.reset(rows);
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
            let block = Block {
                rows,
                cols,
                first_row: pair * tq + i0,
                first_key: j0,
            };
            online.step(block, s, out, dv, inputs.dropout);
            matmul(
                MatMut::new(out, rows, dv),
                Mat::new(s, rows, cols),
                Mat::new(&v[j0 * dv..], cols, dv),
                1.0,
                true,
            );
            j0 += cols;
        }
        online.finish(out, dv, &mut lse[i0..i0 + rows], |r| {
            inputs.zero_row(&dims, b, i0 + r)
        });
        i0 += rows;
    }
}

/// One (batch, head) pair's gradients with respect to its queries, keys and values.
struct HeadGrads<'a> {
    gq: &'a mut [f32],
    gk: &'a mut [f32],
    gv: &'a mut [f32],
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
            let saved = (
                &y[pair * tq * dv..(pair + 1) * tq * dv],
                &lse[pair * tq..(pair + 1) * tq],
            );
            let gy = &gy[pair * tq * dv..(pair + 1) * tq * dv];
            backward_head(dims, inputs, pair, saved, gy, HeadGrads { gq, gk, gv });
        });
    grads
}

/// One (batch, head) pair's backward: each block's weights `P` recomputed from the row
/// log-sum-exp, then `gV`, `dS` and from it `gQ`, `gK`.
fn backward_head(
    dims: Dims,
    inputs: Inputs<'_>,
    pair: usize,
    (y, lse): (&[f32], &[f32]),
    gy: &[f32],
    grads: HeadGrads<'_>,
) {
    let Dims {
        query_len: tq,
        head_dim: d,
        value_dim: dv,
        ..
    } = dims;
    let scale = inputs.scale(&dims);
    let HeadGrads { gq, gk, gv } = grads;
    let b = pair / dims.heads;
    let (q, k, v) = inputs.head(&dims, pair);
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
            let block = Block {
                rows,
                cols,
                first_row: pair * tq + i0,
                first_key: j0,
            };
            let gvb = &mut gv[j0 * dv..(j0 + cols) * dv];
            accumulate_value_grads(block, p, dp, gyb, gvb, inputs.dropout);
            softmax_grad_in_place(dp, p, cols, &row_dots[i0..i0 + rows]);
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
}

/// `gV_block += Pᵀ gY` for one block; with dropout `P` is dropped first (on a copy), and so
/// is `dP` in place, with the forward's mask.
#[inline]
fn accumulate_value_grads(
    block: Block,
    p: &[f32],
    dp: &mut [f32],
    gyb: Mat<'_>,
    gvb: &mut [f32],
    dropout: Option<Dropout>,
) {
    let Block { rows, cols, .. } = block;
    let dv = gvb.len() / cols;
    if let Some(dropout) = dropout {
        // gV needs the dropped weights; dP the dropped gradient.
        let mut dropped = p.to_vec();
        for r in 0..rows {
            let key = dropout.row_key(block.first_row + r);
            dropout.apply(&mut dropped[r * cols..(r + 1) * cols], key, block.first_key);
            dropout.apply(&mut dp[r * cols..(r + 1) * cols], key, block.first_key);
        }
        matmul(
            MatMut::new(gvb, cols, dv),
            Mat::new(&dropped, rows, cols).t(),
            gyb,
            1.0,
            true,
        );
    } else {
        matmul(
            MatMut::new(gvb, cols, dv),
            Mat::new(p, rows, cols).t(),
            gyb,
            1.0,
            true,
        );
    }
}

/// `dS = P ⊙ (dP − D)` into `dp`, with `D_i = gy_i·y_i` per row.
#[inline]
fn softmax_grad_in_place(dp: &mut [f32], p: &[f32], cols: usize, row_dots: &[f32]) {
    for (r, &dot) in row_dots.iter().enumerate() {
        for (g, &w) in dp[r * cols..(r + 1) * cols]
            .iter_mut()
            .zip(&p[r * cols..(r + 1) * cols])
        {
            *g = w * (*g - dot);
        }
    }
}
