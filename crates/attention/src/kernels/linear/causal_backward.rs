//! The chunked causal form's backward: two sweeps over the chunks (the equations are in the
//! module above).

use rayon::prelude::*;

use super::causal::{Chunking, Head};
use super::{Dims, Grads, Inputs, mask_upper, masked_keys, output_grads};
use crate::kernels::matmul::{Mat, MatMut, matmul};
use crate::kernels::simd;

/// What the causal backward reads of its forward: `y`, `den`, and the intra-chunk blocks and
/// entering states (both empty: recomputed).
#[derive(Clone, Copy, Debug)]
pub struct CausalSaved<'a> {
    pub y: &'a [f32],
    pub den: &'a [f32],
    pub intra: &'a [f32],
    pub states: &'a [f32],
}

/// `P = tril(Gn_c V_cᵀ + gd 1ᵀ)` into `p` (`L × L`).
fn value_grad_products(p: &mut [f32], gn: Mat<'_>, vc: Mat<'_>, gd: &[f32], offset: usize) {
    let l = gd.len();
    matmul(MatMut::new(p, l, l), gn, vc.t(), 1.0, false);
    for (row, &g) in p.chunks_mut(l).zip(gd) {
        for x in row.iter_mut() {
            *x += g;
        }
    }
    mask_upper(p, l, offset);
}

/// One head's `gn = gy / den` (`[T, dv]`) and `gd = −(gy·y) / den` (`[T]`).
#[derive(Clone, Copy, Debug)]
struct OutputGrads<'a> {
    gn: &'a [f32],
    gd: &'a [f32],
}

/// One head's gradients with respect to its keys and values, and `R_S`, `R_z` (which end as
/// the gradients of the initial state).
struct KeyValueGrads<'a> {
    gk: &'a mut [f32],
    gv: &'a mut [f32],
    rs: &'a mut [f32],
    rz: &'a mut [f32],
}

/// Chunked causal backward for output gradient `gy`.
pub fn backward(
    dims: Dims,
    inputs: Inputs<'_>,
    saved: CausalSaved<'_>,
    gy: &[f32],
    chunk: usize,
    mask_offset: usize,
) -> Grads {
    let Dims {
        len: t,
        features: f,
        value_dim: dv,
        ..
    } = dims;
    let pairs = dims.pairs();
    let k = masked_keys(dims, inputs.k, inputs.keep);
    let chunking = Chunking::new(dims, chunk, mask_offset);
    let c = chunking.c;
    let mut grads = Grads {
        q: vec![0.0; pairs * t * f],
        k: vec![0.0; pairs * t * f],
        v: vec![0.0; pairs * t * dv],
        s0: vec![0.0; pairs * f * dv],
        z0: vec![0.0; pairs * f],
    };
    grads
        .q
        .par_chunks_mut((t * f).max(1))
        .zip(grads.k.par_chunks_mut((t * f).max(1)))
        .zip(grads.v.par_chunks_mut((t * dv).max(1)))
        .zip(grads.s0.par_chunks_mut((f * dv).max(1)))
        .zip(grads.z0.par_chunks_mut(f.max(1)))
        .enumerate()
        .for_each(|(pair, ((((gq, gk), gv), gs0), gz0))| {
            let head = Head::new(dims, inputs, &k, pair);
            let (gn, gd) = output_grads(
                &gy[pair * t * dv..(pair + 1) * t * dv],
                &saved.y[pair * t * dv..(pair + 1) * t * dv],
                &saved.den[pair * t..(pair + 1) * t],
                head.keep,
                dv,
            );
            let g = OutputGrads { gn: &gn, gd: &gd };
            let kept_intra =
                (!saved.intra.is_empty()).then(|| &saved.intra[pair * t * c..(pair + 1) * t * c]);
            let kept_states = (!saved.states.is_empty()).then(|| {
                let per_head = t.div_ceil(c) * chunking.state_len();
                &saved.states[pair * per_head..(pair + 1) * per_head]
            });
            let initial = (
                inputs.s0.map(|s0| &s0[pair * f * dv..(pair + 1) * f * dv]),
                inputs.z0.map(|z0| &z0[pair * f..(pair + 1) * f]),
            );
            // Sweep 1 forms every chunk's P; sweep 2 reads them back.
            let mut p_all = vec![0.0f32; t * c];
            query_sweep(chunking, head, g, kept_states, initial, &mut p_all, gq);
            let out = KeyValueGrads {
                gk: &mut *gk,
                gv,
                rs: gs0,
                rz: gz0,
            };
            key_value_sweep(chunking, head, g, kept_intra, &p_all, out);
            if let Some(keep) = head.keep {
                for (row, &kept) in gk.chunks_mut(f).zip(keep) {
                    if !kept {
                        row.fill(0.0);
                    }
                }
            }
        });
    grads
}

/// Sweep 1, in order: every chunk's `P`, and `gQ` with the state entering each chunk (kept by
/// the forward, or rebuilt here from `initial`).
fn query_sweep(
    chunking: Chunking,
    head: Head<'_>,
    g: OutputGrads<'_>,
    kept_states: Option<&[f32]>,
    initial: (Option<&[f32]>, Option<&[f32]>),
    p_all: &mut [f32],
    gq: &mut [f32],
) {
    let Dims {
        len: t,
        features: f,
        value_dim: dv,
        ..
    } = chunking.dims;
    let (c, state_len) = (chunking.c, chunking.state_len());
    let Head { k, v, .. } = head;
    let OutputGrads { gn, gd } = g;
    let mut s = match initial.0 {
        Some(s0) => s0.to_vec(),
        None => vec![0.0; f * dv],
    };
    let mut z = match initial.1 {
        Some(z0) => z0.to_vec(),
        None => vec![0.0; f],
    };
    let mut start = 0;
    while start < t {
        let l = c.min(t - start);
        let kc = Mat::new(&k[start * f..], l, f);
        let vc = Mat::new(&v[start * dv..], l, dv);
        let gnc = Mat::new(&gn[start * dv..], l, dv);
        let p = &mut p_all[start * c..start * c + l * l];
        value_grad_products(p, gnc, vc, &gd[start..start + l], chunking.mask_offset);
        let (s_in, z_in): (&[f32], &[f32]) = match kept_states {
            Some(states) => {
                let entering = &states[start / c * state_len..][..state_len];
                entering.split_at(f * dv)
            }
            None => (&s, &z),
        };
        let gqc = &mut gq[start * f..(start + l) * f];
        matmul(MatMut::new(gqc, l, f), Mat::new(p, l, l), kc, 1.0, false);
        matmul(
            MatMut::new(gqc, l, f),
            gnc,
            Mat::new(s_in, f, dv).t(),
            1.0,
            true,
        );
        for i in 0..l {
            simd::axpy(&mut gqc[i * f..(i + 1) * f], gd[start + i], z_in);
        }
        if kept_states.is_none() {
            matmul(MatMut::new(&mut s, f, dv), kc.t(), vc, 1.0, true);
            for i in 0..l {
                simd::axpy(&mut z, 1.0, &k[(start + i) * f..(start + i + 1) * f]);
            }
        }
        start += l;
    }
}

/// Sweep 2, in reverse: `gK`, `gV` with what later queries ask of each key (`R_S`, `R_z`,
/// accumulated chunk by chunk), reading back sweep 1's `P` and the forward's blocks `A` (or
/// recomputing them).
fn key_value_sweep(
    chunking: Chunking,
    head: Head<'_>,
    g: OutputGrads<'_>,
    kept_intra: Option<&[f32]>,
    p_all: &[f32],
    out: KeyValueGrads<'_>,
) {
    let Dims {
        len: t,
        features: f,
        value_dim: dv,
        ..
    } = chunking.dims;
    let c = chunking.c;
    let Head { q, k, v, .. } = head;
    let OutputGrads { gn, gd } = g;
    let KeyValueGrads { gk, gv, rs, rz } = out;
    let mut a = vec![0.0f32; c * c];
    let mut end = t;
    while end > 0 {
        let start = (end - 1) / c * c;
        let l = end - start;
        let qc = Mat::new(&q[start * f..], l, f);
        let kc = Mat::new(&k[start * f..], l, f);
        let vc = Mat::new(&v[start * dv..], l, dv);
        let gnc = Mat::new(&gn[start * dv..], l, dv);
        let gdc = &gd[start..end];
        let p = &p_all[start * c..start * c + l * l];
        let gkc = &mut gk[start * f..end * f];
        matmul(
            MatMut::new(gkc, l, f),
            Mat::new(p, l, l).t(),
            qc,
            1.0,
            false,
        );
        matmul(
            MatMut::new(gkc, l, f),
            vc,
            Mat::new(rs, f, dv).t(),
            1.0,
            true,
        );
        for row in gkc.chunks_mut(f) {
            simd::axpy(row, 1.0, rz);
        }
        let a: &[f32] = match kept_intra {
            Some(kept) => &kept[start * c..start * c + l * l],
            None => {
                let a = &mut a[..l * l];
                matmul(MatMut::new(a, l, l), qc, kc.t(), 1.0, false);
                mask_upper(a, l, chunking.mask_offset);
                a
            }
        };
        let gvc = &mut gv[start * dv..end * dv];
        matmul(
            MatMut::new(gvc, l, dv),
            Mat::new(a, l, l).t(),
            gnc,
            1.0,
            false,
        );
        matmul(MatMut::new(gvc, l, dv), kc, Mat::new(rs, f, dv), 1.0, true);
        matmul(MatMut::new(rs, f, dv), qc.t(), gnc, 1.0, true);
        matmul(
            MatMut::new(rz, f, 1),
            qc.t(),
            Mat::new(gdc, l, 1),
            1.0,
            true,
        );
        end = start;
    }
}
