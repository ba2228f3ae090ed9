//! The fused Hedgehog feature map on `f32` slices: `y = x W_h + b_h` and the activation in one
//! pass per (batch, head), and its backward.
//!
//! Forward (method.md §2): `exp`: `[e^y, e^{−y}]`; `softmax_split`: `[softmax(y), softmax(−y)]`;
//! `softmax_joint`: `softmax([2y, −2y])`. Backward from `φ` itself, with `g = ∂L/∂φ`:
//! - `exp`: `gy = g₊ ⊙ φ₊ − g₋ ⊙ φ₋`;
//! - `softmax_split`: `gy = φ₊ ⊙ (g₊ − g₊·φ₊) − φ₋ ⊙ (g₋ − g₋·φ₋)`;
//! - `softmax_joint`: with `u = φ ⊙ (g − g·φ)`, `gy = 2u₊ − 2u₋`;
//!
//! then `gx = gy Wᵀ`, `gW = Σ xᵀ gy`, `gb = Σ gy` (summed over the batch, and over heads when
//! one `(W, b)` is shared).

use rayon::prelude::*;

use super::matmul::{Mat, MatMut, matmul};
use super::simd;
use crate::types::HedgehogActivation;

/// Sizes: `x: [B, H, T, d]`, `W: [H_w, d, d']` (`H_w` = H or 1), output `[B, H, T, 2d']`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub len: usize,
    pub head_dim: usize,
    pub out_dim: usize,
    pub weight_heads: usize,
}

impl Dims {
    fn weight_head(&self, pair: usize) -> usize {
        if self.weight_heads == 1 {
            0
        } else {
            pair % self.heads
        }
    }
}

/// `φ(x)`, `[B, H, T, 2d']`.
pub fn forward(
    dims: Dims,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    activation: HedgehogActivation,
) -> Vec<f32> {
    let Dims {
        len: t,
        head_dim: d,
        out_dim: o,
        ..
    } = dims;
    let width = 2 * o;
    let mut out = vec![0.0f32; dims.batch * dims.heads * t * width];
    out.par_chunks_mut((t * width).max(1))
        .enumerate()
        .for_each(|(pair, out)| {
            let wh = dims.weight_head(pair);
            let w = Mat::new(&weight[wh * d * o..(wh + 1) * d * o], d, o);
            let b = &bias[wh * o..(wh + 1) * o];
            let x = Mat::new(&x[pair * t * d..(pair + 1) * t * d], t, d);
            // y into the first half of each output row.
            matmul(MatMut::strided(out, t, o, width), x, w, 1.0, false);
            for row in out.chunks_mut(width) {
                let (plus, minus) = row.split_at_mut(o);
                simd::axpy(plus, 1.0, b);
                activate(plus, minus, activation);
            }
        });
    out
}

/// `[σ(y), σ(−y)]` in place, `y` arriving in `plus`.
fn activate(plus: &mut [f32], minus: &mut [f32], activation: HedgehogActivation) {
    for (m, &p) in minus.iter_mut().zip(plus.iter()) {
        *m = -p;
    }
    match activation {
        HedgehogActivation::Exp => {
            simd::exp_in_place(plus);
            simd::exp_in_place(minus);
        }
        HedgehogActivation::SoftmaxSplit => {
            softmax_in_place(plus);
            softmax_in_place(minus);
        }
        HedgehogActivation::SoftmaxJoint => {
            simd::scale(plus, 2.0);
            simd::scale(minus, 2.0);
            let shift = simd::max(plus).max(simd::max(minus));
            let total = simd::exp_shifted_sum(plus, shift) + simd::exp_shifted_sum(minus, shift);
            simd::scale(plus, 1.0 / total);
            simd::scale(minus, 1.0 / total);
        }
    }
}

fn softmax_in_place(x: &mut [f32]) {
    let shift = simd::max(x);
    let total = simd::exp_shifted_sum(x, shift);
    simd::scale(x, 1.0 / total);
}

/// Gradients with respect to `x`, `W` and `b`.
#[derive(Debug)]
pub struct Grads {
    pub x: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Backward of [`forward`] from its output `phi` and the output gradient `grad`.
pub fn backward(
    dims: Dims,
    x: &[f32],
    weight: &[f32],
    phi: &[f32],
    grad: &[f32],
    activation: HedgehogActivation,
) -> Grads {
    let Dims {
        len: t,
        head_dim: d,
        out_dim: o,
        ..
    } = dims;
    let pairs = dims.batch * dims.heads;
    let width = 2 * o;
    let mut gx = vec![0.0f32; pairs * t * d];
    // Per (batch, head) contributions to gW and gb, summed below (no shared writes).
    let mut gw_pairs = vec![0.0f32; pairs * d * o];
    let mut gb_pairs = vec![0.0f32; pairs * o];
    gx.par_chunks_mut((t * d).max(1))
        .zip(gw_pairs.par_chunks_mut((d * o).max(1)))
        .zip(gb_pairs.par_chunks_mut(o.max(1)))
        .enumerate()
        .for_each(|(pair, ((gx, gw), gb))| {
            let wh = dims.weight_head(pair);
            let w = Mat::new(&weight[wh * d * o..(wh + 1) * d * o], d, o);
            let phi = &phi[pair * t * width..(pair + 1) * t * width];
            let grad = &grad[pair * t * width..(pair + 1) * t * width];
            let mut gy = vec![0.0f32; t * o];
            for ((gy, p), g) in gy
                .chunks_mut(o)
                .zip(phi.chunks(width))
                .zip(grad.chunks(width))
            {
                activation_backward(gy, p, g, o, activation);
                simd::axpy(gb, 1.0, gy);
            }
            let gy = Mat::new(&gy, t, o);
            let x = Mat::new(&x[pair * t * d..(pair + 1) * t * d], t, d);
            matmul(MatMut::new(gx, t, d), gy, w.t(), 1.0, false);
            matmul(MatMut::new(gw, d, o), x.t(), gy, 1.0, false);
        });
    let mut gw = vec![0.0f32; dims.weight_heads * d * o];
    let mut gb = vec![0.0f32; dims.weight_heads * o];
    for pair in 0..pairs {
        let wh = dims.weight_head(pair);
        simd::axpy(
            &mut gw[wh * d * o..(wh + 1) * d * o],
            1.0,
            &gw_pairs[pair * d * o..(pair + 1) * d * o],
        );
        simd::axpy(
            &mut gb[wh * o..(wh + 1) * o],
            1.0,
            &gb_pairs[pair * o..(pair + 1) * o],
        );
    }
    Grads {
        x: gx,
        weight: gw,
        bias: gb,
    }
}

/// `gy` (width `d'`) of one row from `φ` and `g` (width `2d'`).
fn activation_backward(
    gy: &mut [f32],
    phi: &[f32],
    g: &[f32],
    o: usize,
    activation: HedgehogActivation,
) {
    let (p_plus, p_minus) = phi.split_at(o);
    let (g_plus, g_minus) = g.split_at(o);
    match activation {
        HedgehogActivation::Exp => {
            for (((out, &pp), &pm), (&gp, &gm)) in gy
                .iter_mut()
                .zip(p_plus)
                .zip(p_minus)
                .zip(g_plus.iter().zip(g_minus))
            {
                *out = gp * pp - gm * pm;
            }
        }
        HedgehogActivation::SoftmaxSplit => {
            let (inner_plus, inner_minus) =
                (simd::dot(p_plus, g_plus), simd::dot(p_minus, g_minus));
            for (((out, &pp), &pm), (&gp, &gm)) in gy
                .iter_mut()
                .zip(p_plus)
                .zip(p_minus)
                .zip(g_plus.iter().zip(g_minus))
            {
                *out = pp * (gp - inner_plus) - pm * (gm - inner_minus);
            }
        }
        HedgehogActivation::SoftmaxJoint => {
            let inner = simd::dot(p_plus, g_plus) + simd::dot(p_minus, g_minus);
            for (((out, &pp), &pm), (&gp, &gm)) in gy
                .iter_mut()
                .zip(p_plus)
                .zip(p_minus)
                .zip(g_plus.iter().zip(g_minus))
            {
                *out = 2.0 * (pp * (gp - inner) - pm * (gm - inner));
            }
        }
    }
}
