//! The Taylor-2 feature map on `f32` slices, one token at a time: the composed form builds the
//! `[B, H, T, d, d]` outer products first (805 MB at T = 4096, H = 12, d = 64) and copies them
//! twice more on the way to `[1, x/d^{1/4}, x⊗x/(√2·√d)]`.
//!
//! Full layout: feature `1 + d + i·d + j` is `x_i x_j / (√2·√d)`. Compressed (`i ≤ j` only):
//! `x_i x_j · c_ij` with `c_ii = 1/(√2·√d)`, `c_ij = 1/√d` off the diagonal, so both give
//! `φ(q)·φ(k) = 1 + s + s²/2`, `s = q·k/√d`. Backward, with `g = ∂L/∂φ`:
//! `gx_m = g_{1+m} / d^{1/4} + Σ_j (∂φ_second/∂x_m) g`, i.e. full `s Σ_j (g_mj + g_jm) x_j`,
//! compressed `Σ_{j ≥ m} c_mj g_mj x_j + Σ_{i ≤ m} c_im g_im x_i`.

use rayon::prelude::*;

/// Width of the features of a `d`-wide input.
pub fn feature_dim(d: usize, compressed: bool) -> usize {
    crate::reference::maps::taylor_feature_dim(d, compressed)
}

fn scales(d: usize) -> (f32, f32, f32) {
    let sqrt_d = (d as f64).sqrt();
    (
        (1.0 / sqrt_d.sqrt()) as f32,
        (1.0 / (std::f64::consts::SQRT_2 * sqrt_d)) as f32,
        (1.0 / sqrt_d) as f32,
    )
}

/// `φ(x)` of every row of `x: [rows, d]`, `[rows, feature_dim]`.
pub fn forward(x: &[f32], d: usize, compressed: bool) -> Vec<f32> {
    let f = feature_dim(d, compressed);
    let rows = x.len() / d.max(1);
    let (linear, diagonal, off) = scales(d);
    let mut out = vec![0.0f32; rows * f];
    out.par_chunks_mut(f.max(1))
        .zip(x.par_chunks(d.max(1)))
        .for_each(|(phi, x)| {
            phi[0] = 1.0;
            for (p, &v) in phi[1..=d].iter_mut().zip(x) {
                *p = v * linear;
            }
            let second = &mut phi[1 + d..];
            if compressed {
                let mut at = 0;
                for i in 0..d {
                    let xi = x[i];
                    second[at] = xi * xi * diagonal;
                    for (p, &xj) in second[at + 1..at + d - i].iter_mut().zip(&x[i + 1..]) {
                        *p = xi * xj * off;
                    }
                    at += d - i;
                }
            } else {
                for (row, &xi) in second.chunks_mut(d).zip(x) {
                    let scaled = xi * diagonal;
                    for (p, &xj) in row.iter_mut().zip(x) {
                        *p = scaled * xj;
                    }
                }
            }
        });
    out
}

/// `∂L/∂x` from `∂L/∂φ` (`grad: [rows, feature_dim]`).
pub fn backward(x: &[f32], grad: &[f32], d: usize, compressed: bool) -> Vec<f32> {
    let f = feature_dim(d, compressed);
    let (linear, diagonal, off) = scales(d);
    let mut gx = vec![0.0f32; x.len()];
    gx.par_chunks_mut(d.max(1))
        .zip(x.par_chunks(d.max(1)))
        .zip(grad.par_chunks(f.max(1)))
        .for_each(|((gx, x), g)| {
            for (o, &gl) in gx.iter_mut().zip(&g[1..=d]) {
                *o = gl * linear;
            }
            let second = &g[1 + d..];
            if compressed {
                let mut at = 0;
                for i in 0..d {
                    let xi = x[i];
                    // The diagonal term x_i² gives 2·c_ii·g_ii·x_i.
                    gx[i] += 2.0 * diagonal * second[at] * xi;
                    for (j, &gij) in (i + 1..d).zip(&second[at + 1..at + d - i]) {
                        gx[i] += off * gij * x[j];
                        gx[j] += off * gij * xi;
                    }
                    at += d - i;
                }
            } else {
                for i in 0..d {
                    let row = &second[i * d..(i + 1) * d];
                    let mut acc = 0.0f32;
                    for (j, &gij) in row.iter().enumerate() {
                        acc += gij * x[j] + second[j * d + i] * x[j];
                    }
                    gx[i] += diagonal * acc;
                }
            }
        });
    gx
}
