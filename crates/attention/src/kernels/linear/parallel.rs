//! The parallel non-causal form: every query sees the sums over all keys.

use rayon::prelude::*;

use super::{Dims, Forward, Grads, Inputs, masked_keys, output_grads};
use crate::kernels::matmul::{Mat, MatMut, matmul};
use crate::kernels::simd;

/// Parallel non-causal forward: `S = Kᵀ V`, `z = Kᵀ 1`, `y = Q S / (Q z + ε)`.
pub fn forward(dims: Dims, inputs: Inputs<'_>) -> Forward {
    let Dims {
        len: t,
        features: f,
        value_dim: dv,
        ..
    } = dims;
    let pairs = dims.pairs();
    let k = masked_keys(dims, inputs.k, inputs.keep);
    let mut y = vec![0.0f32; pairs * t * dv];
    let mut den = vec![0.0f32; pairs * t];
    let mut s = vec![0.0f32; pairs * f * dv];
    let mut z = vec![0.0f32; pairs * f];
    y.par_chunks_mut((t * dv).max(1))
        .zip(den.par_chunks_mut(t.max(1)))
        .zip(s.par_chunks_mut((f * dv).max(1)))
        .zip(z.par_chunks_mut(f.max(1)))
        .enumerate()
        .for_each(|(pair, (((y, den), s), z))| {
            let q = &inputs.q[pair * t * f..(pair + 1) * t * f];
            let k = &k[pair * t * f..(pair + 1) * t * f];
            let v = Mat::new(&inputs.v[pair * t * dv..(pair + 1) * t * dv], t, dv);
            let keep = inputs.keep.map(|keep| {
                let b = pair / dims.heads;
                &keep[b * t..(b + 1) * t]
            });
            matmul(MatMut::new(s, f, dv), Mat::new(k, t, f).t(), v, 1.0, false);
            for row in k.chunks(f) {
                simd::axpy(z, 1.0, row);
            }
            matmul(
                MatMut::new(y, t, dv),
                Mat::new(q, t, f),
                Mat::new(s, f, dv),
                1.0,
                false,
            );
            for i in 0..t {
                let d = simd::dot(&q[i * f..(i + 1) * f], z) + inputs.eps;
                den[i] = d;
                let out = &mut y[i * dv..(i + 1) * dv];
                if keep.is_some_and(|keep| !keep[i]) {
                    out.fill(0.0);
                } else {
                    simd::scale(out, 1.0 / d);
                }
            }
        });
    Forward {
        y,
        den,
        s,
        z,
        intra: Vec::new(),
        states: Vec::new(),
    }
}

/// What the parallel backward reads of its forward: `y`, `den` and the summed `S`, `z`.
#[derive(Clone, Copy, Debug)]
pub struct Saved<'a> {
    pub y: &'a [f32],
    pub den: &'a [f32],
    pub s: &'a [f32],
    pub z: &'a [f32],
}

/// Parallel non-causal backward: `gQ = Gn Sᵀ + gd zᵀ`, `R_S = Qᵀ Gn`, `R_z = Qᵀ gd`,
/// `gK = V R_Sᵀ + 1 R_zᵀ`, `gV = K R_S`.
pub fn backward(dims: Dims, inputs: Inputs<'_>, forward: Saved<'_>, gy: &[f32]) -> Grads {
    let Dims {
        len: t,
        features: f,
        value_dim: dv,
        ..
    } = dims;
    let pairs = dims.pairs();
    let k = masked_keys(dims, inputs.k, inputs.keep);
    let mut grads = Grads {
        q: vec![0.0; pairs * t * f],
        k: vec![0.0; pairs * t * f],
        v: vec![0.0; pairs * t * dv],
        s0: Vec::new(),
        z0: Vec::new(),
    };
    grads
        .q
        .par_chunks_mut((t * f).max(1))
        .zip(grads.k.par_chunks_mut((t * f).max(1)))
        .zip(grads.v.par_chunks_mut((t * dv).max(1)))
        .enumerate()
        .for_each(|(pair, ((gq, gk), gv))| {
            let q = Mat::new(&inputs.q[pair * t * f..(pair + 1) * t * f], t, f);
            let k = &k[pair * t * f..(pair + 1) * t * f];
            let v = Mat::new(&inputs.v[pair * t * dv..(pair + 1) * t * dv], t, dv);
            let s = Mat::new(&forward.s[pair * f * dv..(pair + 1) * f * dv], f, dv);
            let z = &forward.z[pair * f..(pair + 1) * f];
            let keep = inputs.keep.map(|keep| {
                let b = pair / dims.heads;
                &keep[b * t..(b + 1) * t]
            });
            let (gn, gd) = output_grads(
                &gy[pair * t * dv..(pair + 1) * t * dv],
                &forward.y[pair * t * dv..(pair + 1) * t * dv],
                &forward.den[pair * t..(pair + 1) * t],
                keep,
                dv,
            );
            let gn = Mat::new(&gn, t, dv);
            matmul(MatMut::new(gq, t, f), gn, s.t(), 1.0, false);
            for (row, &g) in gq.chunks_mut(f).zip(&gd) {
                simd::axpy(row, g, z);
            }
            let mut rs = vec![0.0f32; f * dv];
            let mut rz = vec![0.0f32; f];
            matmul(MatMut::new(&mut rs, f, dv), q.t(), gn, 1.0, false);
            matmul(
                MatMut::new(&mut rz, f, 1),
                q.t(),
                Mat::new(&gd, t, 1),
                1.0,
                false,
            );
            let rs = Mat::new(&rs, f, dv);
            matmul(MatMut::new(gk, t, f), v, rs.t(), 1.0, false);
            for row in gk.chunks_mut(f) {
                simd::axpy(row, 1.0, &rz);
            }
            if let Some(keep) = keep {
                for (row, &kept) in gk.chunks_mut(f).zip(keep) {
                    if !kept {
                        row.fill(0.0);
                    }
                }
            }
            matmul(MatMut::new(gv, t, dv), Mat::new(k, t, f), rs, 1.0, false);
        });
    grads
}
