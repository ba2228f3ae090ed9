//! The softmax weights themselves, formed in place (distillation targets, analysis), and their
//! backward.

use rayon::prelude::*;

use super::{Dims, Inputs, mask_block};
use crate::kernels::matmul::{Mat, MatMut, matmul};
use crate::kernels::simd;

/// The weights `[B, H, Tq, Tk]` themselves (distillation targets, analysis).
pub fn forward(dims: Dims, inputs: Inputs<'_>) -> Vec<f32> {
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

/// Backward of [`forward`]: `dS = W ⊙ (gW − Σ_j gW ⊙ W)`, `gQ = dS K / √d`, `gK = dSᵀ Q / √d`.
pub fn backward(dims: Dims, inputs: Inputs<'_>, w: &[f32], gw: &[f32]) -> (Vec<f32>, Vec<f32>) {
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
