//! The fused 1+ELU map on `f32` slices: a vectorised `eˣ`, then a branch-free select of `x + 1`
//! where `x > 0`. Backward from the input and `φ`: the derivative is 1 above 0 and `φ = eˣ`
//! below.

use rayon::prelude::*;

use super::simd;

/// `φ(x) = elu(x) + 1`, over chunks of the slice on every thread.
pub fn forward(x: &[f32]) -> Vec<f32> {
    const CHUNK: usize = 1 << 14;
    let mut phi = vec![0.0f32; x.len()];
    phi.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| simd::elu_plus_one(o, x));
    phi
}

/// `gx = g` where `x > 0`, else `g · φ`.
pub fn backward(x: &[f32], phi: &[f32], grad: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(phi.iter())
        .zip(grad.iter())
        .map(|((&x, &p), &g)| if x > 0.0 { g } else { g * p })
        .collect()
}
