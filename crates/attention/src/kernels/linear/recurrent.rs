//! The recurrent form's decoding step, one token per head (inference only).

use rayon::prelude::*;

use crate::kernels::simd;

/// The recurrent state of `pairs` = B·H heads, updated in place: `s: [B·H, F, dv]`,
/// `z: [B·H, F]`.
#[derive(Debug)]
pub struct StepState<'a> {
    pub s: &'a mut [f32],
    pub z: &'a mut [f32],
    pub pairs: usize,
}

/// One recurrent step per head: `S += k vᵀ`, `z += k`, `y = q S / (q·z + ε)`.
/// `q, k: [B·H, F]`, `v: [B·H, dv]`; returns `y: [B·H, dv]`.
pub fn step(state: StepState<'_>, q: &[f32], k: &[f32], v: &[f32], eps: f32) -> Vec<f32> {
    let pairs = state.pairs.max(1);
    let (f, dv) = (q.len() / pairs, v.len() / pairs);
    let mut y = vec![0.0f32; v.len()];
    y.par_chunks_mut(dv.max(1))
        .zip(state.s.par_chunks_mut((f * dv).max(1)))
        .zip(state.z.par_chunks_mut(f.max(1)))
        .enumerate()
        .for_each(|(pair, ((y, s), z))| {
            let (q, k) = (&q[pair * f..(pair + 1) * f], &k[pair * f..(pair + 1) * f]);
            let v = &v[pair * dv..(pair + 1) * dv];
            for (row, &kf) in s.chunks_mut(dv).zip(k) {
                simd::axpy(row, kf, v);
            }
            simd::axpy(z, 1.0, k);
            for (row, &qf) in s.chunks(dv).zip(q) {
                simd::axpy(y, qf, row);
            }
            simd::scale(y, 1.0 / (simd::dot(q, z) + eps));
        });
    y
}
