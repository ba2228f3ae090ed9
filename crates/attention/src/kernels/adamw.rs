//! AdamW in one pass over each parameter, in place, on `f32` slices: the optimiser step of a
//! small model is otherwise a dozen composed ops, each allocating a tensor the size of the
//! 50,257 × d embedding (the quick start's parameters are 94% embedding).
//!
//! With the gradient first clipped to L2 norm `c` (`g ← g · min(1, c / (‖g‖ + f32::MIN_POSITIVE))`,
//! burn's `GradientClipping::Norm`), and `t` the step count after this step:
//! `m ← β₁ m + (1 − β₁) g`, `v ← β₂ v + (1 − β₂) g²`,
//! `p ← p (1 − lr·λ) − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)` (burn's `AdamW`).

use rayon::prelude::*;

use super::simd;

/// The hyper-parameters of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
    /// The step count after this step (1 on the first).
    pub time: i32,
    /// Clip the gradient to this L2 norm first.
    pub clip_norm: Option<f32>,
}

/// Elements a rayon task updates: large enough to amortise the task, small enough to split a
/// 6.4M-element embedding over every core.
const CHUNK: usize = 1 << 16;

/// Updates `param`, `m` and `v` in place from `grad`.
pub fn step(param: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], s: AdamWStep) {
    let coef = match s.clip_norm {
        Some(clip) => {
            let squares: f64 = grad
                .par_chunks(CHUNK)
                .map(|g| f64::from(simd::dot(g, g)))
                .sum();
            let norm = squares.sqrt() as f32;
            (clip / (norm + f32::MIN_POSITIVE)).min(1.0)
        }
        None => 1.0,
    };
    let correction1 = 1.0 - s.beta1.powi(s.time);
    let correction2 = 1.0 - s.beta2.powi(s.time);
    let decay = (1.0 - s.lr * f64::from(s.weight_decay)) as f32;
    let lr = s.lr as f32;
    let (b1, b2) = (s.beta1, s.beta2);
    param
        .par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| {
            for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                let g = g * coef;
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * (g * g);
                let delta = (*m / correction1) / ((*v / correction2).sqrt() + s.epsilon);
                *p = *p * decay - lr * delta;
            }
        });
}
