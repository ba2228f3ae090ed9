//! Fused linear attention on `f32` slices: the chunked causal form and the parallel non-causal
//! form, forward and backward, one rayon task per (batch, head).
//!
//! Per head, with `q = φ(q), k = φ(k)` (padded keys' rows zeroed), `S_c, z_c` the state
//! entering chunk `c` and `A = tril(Q_c K_cᵀ)`:
//! `n = A V_c + Q_c S_c`, `den = A·1 + Q_c z_c + ε`, `y = n / den`, then
//! `S_{c+1} = S_c + K_cᵀ V_c`, `z_{c+1} = z_c + K_cᵀ 1` (`../linear.rs` has the composed form).
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

use rayon::prelude::*;

use super::matmul::{Mat, MatMut, matmul};
use super::simd;

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

/// Chunked causal forward. `mask_offset` is 0 (see [`mask_upper`]); `keep` keeps the
/// intra-chunk blocks and entering states for the backward.
pub fn causal_forward(
    dims: Dims,
    inputs: Inputs<'_>,
    chunk: usize,
    mask_offset: usize,
    keep: bool,
) -> Forward {
    let Dims {
        len: t,
        features: f,
        value_dim: dv,
        ..
    } = dims;
    let pairs = dims.pairs();
    let k = masked_keys(dims, inputs.k, inputs.keep);
    let c = chunk.max(1).min(t.max(1));
    let mut y = vec![0.0f32; pairs * t * dv];
    let mut den = vec![0.0f32; pairs * t];
    let mut s = vec![0.0f32; pairs * f * dv];
    let mut z = vec![0.0f32; pairs * f];
    let chunks = t.div_ceil(c);
    let state_len = f * dv + f;
    let (intra_len, states_len) = if keep {
        (t * c, chunks * state_len)
    } else {
        (0, 0)
    };
    let mut intra = vec![0.0f32; pairs * intra_len];
    let mut states = vec![0.0f32; pairs * states_len];
    let mut kept: Vec<(&mut [f32], &mut [f32])> = if keep {
        intra
            .chunks_mut(intra_len.max(1))
            .zip(states.chunks_mut(states_len.max(1)))
            .collect()
    } else {
        (0..pairs)
            .map(|_| (Default::default(), Default::default()))
            .collect()
    };
    y.par_chunks_mut((t * dv).max(1))
        .zip(den.par_chunks_mut(t.max(1)))
        .zip(s.par_chunks_mut((f * dv).max(1)))
        .zip(z.par_chunks_mut(f.max(1)))
        .zip(kept.par_iter_mut())
        .enumerate()
        .for_each(|(pair, ((((y, den), s), z), (kept_intra, kept_states)))| {
            if let Some(s0) = inputs.s0 {
                s.copy_from_slice(&s0[pair * f * dv..(pair + 1) * f * dv]);
            }
            if let Some(z0) = inputs.z0 {
                z.copy_from_slice(&z0[pair * f..(pair + 1) * f]);
            }
            let q = &inputs.q[pair * t * f..(pair + 1) * t * f];
            let k = &k[pair * t * f..(pair + 1) * t * f];
            let v = &inputs.v[pair * t * dv..(pair + 1) * t * dv];
            let keep = inputs.keep.map(|keep| {
                let b = pair / dims.heads;
                &keep[b * t..(b + 1) * t]
            });
            let mut a = vec![0.0f32; c * c];
            let mut start = 0;
            while start < t {
                let l = c.min(t - start);
                let qc = Mat::new(&q[start * f..], l, f);
                let kc = Mat::new(&k[start * f..], l, f);
                let vc = Mat::new(&v[start * dv..], l, dv);
                let a = &mut a[..l * l];
                matmul(MatMut::new(a, l, l), qc, kc.t(), 1.0, false);
                mask_upper(a, l, mask_offset);
                if !kept_intra.is_empty() {
                    kept_intra[start * c..start * c + l * l].copy_from_slice(a);
                    let entering = &mut kept_states[start / c * state_len..][..state_len];
                    entering[..f * dv].copy_from_slice(s);
                    entering[f * dv..].copy_from_slice(z);
                }
                let yc = &mut y[start * dv..(start + l) * dv];
                matmul(MatMut::new(yc, l, dv), Mat::new(a, l, l), vc, 1.0, false);
                matmul(MatMut::new(yc, l, dv), qc, Mat::new(s, f, dv), 1.0, true);
                for i in 0..l {
                    let row = start + i;
                    let d = simd::sum(&a[i * l..(i + 1) * l])
                        + simd::dot(&q[row * f..(row + 1) * f], z)
                        + inputs.eps;
                    den[row] = d;
                    let out = &mut yc[i * dv..(i + 1) * dv];
                    if keep.is_some_and(|keep| !keep[row]) {
                        out.fill(0.0);
                    } else {
                        simd::scale(out, 1.0 / d);
                    }
                }
                matmul(MatMut::new(s, f, dv), kc.t(), vc, 1.0, true);
                for i in 0..l {
                    simd::axpy(z, 1.0, &k[(start + i) * f..(start + i + 1) * f]);
                }
                start += l;
            }
        });
    drop(kept);
    Forward {
        y,
        den,
        s,
        z,
        intra,
        states,
    }
}

/// `gn = gy / den` and `gd = −(gy·y) / den` per row of one head; padded rows get zeros.
fn output_grads(
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

/// What the causal backward reads of its forward: `y`, `den`, and the intra-chunk blocks and
/// entering states (both empty: recomputed).
#[derive(Clone, Copy, Debug)]
pub struct CausalSaved<'a> {
    pub y: &'a [f32],
    pub den: &'a [f32],
    pub intra: &'a [f32],
    pub states: &'a [f32],
}

/// Chunked causal backward for output gradient `gy`.
pub fn causal_backward(
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
    let c = chunk.max(1).min(t.max(1));
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
            let q = &inputs.q[pair * t * f..(pair + 1) * t * f];
            let k = &k[pair * t * f..(pair + 1) * t * f];
            let v = &inputs.v[pair * t * dv..(pair + 1) * t * dv];
            let keep = inputs.keep.map(|keep| {
                let b = pair / dims.heads;
                &keep[b * t..(b + 1) * t]
            });
            let (gn, gd) = output_grads(
                &gy[pair * t * dv..(pair + 1) * t * dv],
                &saved.y[pair * t * dv..(pair + 1) * t * dv],
                &saved.den[pair * t..(pair + 1) * t],
                keep,
                dv,
            );
            let kept_intra =
                (!saved.intra.is_empty()).then(|| &saved.intra[pair * t * c..(pair + 1) * t * c]);
            let state_len = f * dv + f;
            let kept_states = (!saved.states.is_empty()).then(|| {
                let per_head = t.div_ceil(c) * state_len;
                &saved.states[pair * per_head..(pair + 1) * per_head]
            });
            // Sweep 1 forms every chunk's P; sweep 2 reads them back.
            let mut p_all = vec![0.0f32; t * c];
            let mut a = vec![0.0f32; c * c];

            // Sweep 1, in order: gQ with the state entering each chunk (kept by the forward, or
            // rebuilt here).
            let mut s = match inputs.s0 {
                Some(s0) => s0[pair * f * dv..(pair + 1) * f * dv].to_vec(),
                None => vec![0.0; f * dv],
            };
            let mut z = match inputs.z0 {
                Some(z0) => z0[pair * f..(pair + 1) * f].to_vec(),
                None => vec![0.0; f],
            };
            let mut start = 0;
            while start < t {
                let l = c.min(t - start);
                let kc = Mat::new(&k[start * f..], l, f);
                let vc = Mat::new(&v[start * dv..], l, dv);
                let gnc = Mat::new(&gn[start * dv..], l, dv);
                let p = &mut p_all[start * c..start * c + l * l];
                value_grad_products(p, gnc, vc, &gd[start..start + l], mask_offset);
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

            // Sweep 2, in reverse: gK, gV with what later queries ask of each key.
            let (rs, rz) = (gs0, gz0);
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
                        mask_upper(a, l, mask_offset);
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
            if let Some(keep) = keep {
                for (row, &kept) in gk.chunks_mut(f).zip(keep) {
                    if !kept {
                        row.fill(0.0);
                    }
                }
            }
        });
    grads
}

/// Parallel non-causal forward: `S = Kᵀ V`, `z = Kᵀ 1`, `y = Q S / (Q z + ε)`.
pub fn parallel_forward(dims: Dims, inputs: Inputs<'_>) -> Forward {
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
pub fn parallel_backward(dims: Dims, inputs: Inputs<'_>, forward: Saved<'_>, gy: &[f32]) -> Grads {
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
pub fn recurrent_step(state: StepState<'_>, q: &[f32], k: &[f32], v: &[f32], eps: f32) -> Vec<f32> {
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
