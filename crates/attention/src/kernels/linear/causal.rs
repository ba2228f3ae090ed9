//! The chunked causal form's forward (the equations are in the module above), and the chunking
//! and per-head slices that its backward (`causal_backward.rs`) shares.

use rayon::prelude::*;

use super::{Dims, Forward, Inputs, mask_upper, masked_keys};
use crate::kernels::matmul::{Mat, MatMut, matmul};
use crate::kernels::simd;

/// The chunking of one call: its sizes, the chunk length `C` and the causal mask's offset.
#[derive(Clone, Copy, Debug)]
pub(super) struct Chunking {
    pub dims: Dims,
    pub c: usize,
    pub mask_offset: usize,
}

impl Chunking {
    pub fn new(dims: Dims, chunk: usize, mask_offset: usize) -> Self {
        Self {
            dims,
            c: chunk.max(1).min(dims.len.max(1)),
            mask_offset,
        }
    }

    /// Floats of one state `(S, z)`: `F·dv + F`.
    pub fn state_len(&self) -> usize {
        self.dims.features * self.dims.value_dim + self.dims.features
    }
}

/// One (batch, head) pair's rows of the inputs (`k` with padded keys zeroed) and its padding.
#[derive(Clone, Copy, Debug)]
pub(super) struct Head<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub keep: Option<&'a [bool]>,
}

impl<'a> Head<'a> {
    pub fn new(dims: Dims, inputs: Inputs<'a>, k: &'a [f32], pair: usize) -> Self {
        let (t, f, dv) = (dims.len, dims.features, dims.value_dim);
        Self {
            q: &inputs.q[pair * t * f..(pair + 1) * t * f],
            k: &k[pair * t * f..(pair + 1) * t * f],
            v: &inputs.v[pair * t * dv..(pair + 1) * t * dv],
            keep: inputs.keep.map(|keep| {
                let b = pair / dims.heads;
                &keep[b * t..(b + 1) * t]
            }),
        }
    }
}

/// One head's share of the forward's results; `kept_intra` and `kept_states` are empty unless
/// the forward keeps its blocks (`[T, C]`) and entering states (`[chunks, F·dv + F]`).
struct HeadForward<'a> {
    y: &'a mut [f32],
    den: &'a mut [f32],
    s: &'a mut [f32],
    z: &'a mut [f32],
    kept_intra: &'a mut [f32],
    kept_states: &'a mut [f32],
}

/// Chunked causal forward. `mask_offset` is 0 (see [`mask_upper`]); `keep` keeps the
/// intra-chunk blocks and entering states for the backward.
pub fn forward(
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
    let chunking = Chunking::new(dims, chunk, mask_offset);
    let c = chunking.c;
    let mut y = vec![0.0f32; pairs * t * dv];
    let mut den = vec![0.0f32; pairs * t];
    let mut s = vec![0.0f32; pairs * f * dv];
    let mut z = vec![0.0f32; pairs * f];
    let chunks = t.div_ceil(c);
    let (intra_len, states_len) = if keep {
        (t * c, chunks * chunking.state_len())
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
            let out = HeadForward {
                y,
                den,
                s,
                z,
                kept_intra,
                kept_states,
            };
            forward_head(chunking, Head::new(dims, inputs, &k, pair), out, inputs.eps);
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

/// One head's chunks in order: the block `A`, the chunk's output from `A` and the entering
/// state, then the state carried past the chunk.
fn forward_head(chunking: Chunking, head: Head<'_>, out: HeadForward<'_>, eps: f32) {
    let Dims {
        len: t,
        features: f,
        value_dim: dv,
        ..
    } = chunking.dims;
    let (c, state_len) = (chunking.c, chunking.state_len());
    let Head { q, k, v, keep } = head;
    let HeadForward {
        y,
        den,
        s,
        z,
        kept_intra,
        kept_states,
    } = out;
    let mut a = vec![0.0f32; c * c];
    let mut start = 0;
    while start < t {
        let l = c.min(t - start);
        let qc = Mat::new(&q[start * f..], l, f);
        let kc = Mat::new(&k[start * f..], l, f);
        let vc = Mat::new(&v[start * dv..], l, dv);
        let a = &mut a[..l * l];
        matmul(MatMut::new(a, l, l), qc, kc.t(), 1.0, false);
        mask_upper(a, l, chunking.mask_offset);
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
            let d =
                simd::sum(&a[i * l..(i + 1) * l]) + simd::dot(&q[row * f..(row + 1) * f], z) + eps;
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
}
