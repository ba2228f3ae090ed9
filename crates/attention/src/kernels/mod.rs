//! Fused kernels for the hot paths, as a backend extension with the composed code as default.
//!
//! [`Kernels<B>`] lists the operations that dominate training and inference time: chunked
//! causal and parallel linear attention, the Hedgehog feature map, softmax attention (output
//! only, or the weights), the recurrent decoding step, and the LM head with its
//! cross-entropy. Every method's default body is the composed burn code (the reference, which
//! works on every backend, CUDA included); [`Composed`] is exactly that. The CPU backend
//! `NdArray<f32>` and its `Autodiff` get [`Fused`] implementations: one pass over raw `f32`
//! slices per op (rayon over batch × heads, `gemm` for the small products, a vectorised
//! `exp`), and under `Autodiff` a hand-written backward registered with burn-autodiff's
//! `Backward` trait (`prepare(..).compute_bound().stateful()`).
//!
//! [`for_backend`] picks the implementation by the backend's type at run time. Rust has no
//! specialization, and the usual backend-extension pattern (a trait bound `B: Kernels` on
//! every module) would have to be threaded through every model, task and training type and
//! burn's `derive(Module)`, and would lock out any backend this crate does not list; the
//! lookup keeps every generic signature as it is and costs one `TypeId` comparison a call.
//! `HEDGEHOG_KERNELS=composed` turns the fused kernels off (benchmarks, debugging).

mod adamw;
mod autodiff;
mod cpu;
mod hedgehog;
pub(crate) mod host;
mod linear;
mod lm_head;
mod matmul;
mod simd;
mod softmax;
mod taylor;

use std::any::Any;
use std::sync::OnceLock;

use burn::tensor::{Tensor, backend::Backend};

use crate::reference;
use crate::types::{HedgehogActivation, LinearState};
pub use crate::types::{LinearInputs, SoftmaxInputs};
use host::Cpu;

/// The hot operations of the workspace; the defaults are the composed reference code.
pub trait Kernels<B: Backend>: Send + Sync {
    /// Chunked causal linear attention (method.md §1): the output and, with `with_state`, the
    /// state `(S, z)` after the last token.
    fn causal_linear(
        &self,
        inputs: LinearInputs<B>,
        initial_state: Option<LinearState<B>>,
        chunk_size: usize,
        with_state: bool,
    ) -> (Tensor<B, 4>, Option<LinearState<B>>) {
        let (y, state) = reference::linear::chunked(inputs, chunk_size, initial_state);
        (y, with_state.then_some(state))
    }

    /// Parallel non-causal linear attention; the state is the sum over all tokens.
    fn parallel_linear(
        &self,
        inputs: LinearInputs<B>,
        with_state: bool,
    ) -> (Tensor<B, 4>, Option<LinearState<B>>) {
        let (y, state) = reference::linear::parallel(inputs);
        (y, with_state.then_some(state))
    }

    /// One decoding step: `fq, fk: [B, H, F]`, `v: [B, H, dv]` → `[B, H, dv]` and the new state.
    fn recurrent_step(
        &self,
        state: LinearState<B>,
        fq: Tensor<B, 3>,
        fk: Tensor<B, 3>,
        v: Tensor<B, 3>,
        eps: f64,
    ) -> (Tensor<B, 3>, LinearState<B>) {
        reference::linear::recurrent_step(state, fq, fk, v, eps)
    }

    /// Hedgehog's `[σ(xW + b), σ(−(xW + b))]`: `x: [B, H, T, d]`, `weight: [H_w, d, d']`,
    /// `bias: [H_w, 1, d']` → `[B, H, T, 2d']`.
    fn hedgehog(
        &self,
        x: Tensor<B, 4>,
        weight: Tensor<B, 3>,
        bias: Tensor<B, 3>,
        activation: HedgehogActivation,
    ) -> Tensor<B, 4> {
        reference::maps::hedgehog(x, weight, bias, activation)
    }

    /// `elu(x) + 1`: `x + 1` for `x > 0`, `exp(x)` otherwise.
    fn elu_plus_one(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        reference::maps::elu_plus_one(x)
    }

    /// Taylor-2's `[1, x/d^{1/4}, x⊗x/(√2·√d)]` (`compressed`: the upper triangle of `x⊗x`
    /// with off-diagonal terms scaled by √2): `[B, H, T, d]` → `[B, H, T, F]`.
    fn taylor(&self, x: Tensor<B, 4>, compressed: bool) -> Tensor<B, 4> {
        reference::maps::taylor(x, compressed)
    }

    /// Softmax attention's output `[B, H, Tq, dv]`, with dropout of probability
    /// `dropout` on the weights when the backend tracks gradients (training).
    fn softmax_attention(&self, inputs: SoftmaxInputs<B>, dropout: f64) -> Tensor<B, 4> {
        reference::softmax::attention(inputs, dropout)
    }

    /// Softmax attention's weights `[B, H, Tq, Tk]`.
    fn softmax_weights(&self, inputs: SoftmaxInputs<B>) -> Tensor<B, 4> {
        reference::softmax::weights(inputs)
    }

    /// Mean cross-entropy of the tied or untied LM head `logits = hidden · weightᵀ`
    /// (`hidden: [N, d]`, `weight: [V, d]`) over the tokens whose target is `Some`.
    fn lm_head_loss(
        &self,
        hidden: Tensor<B, 2>,
        weight: Tensor<B, 2>,
        targets: &[Option<usize>],
    ) -> Tensor<B, 1> {
        reference::lm_head::loss(hidden, weight, targets)
    }

    /// Per-token negative log-likelihood of the LM head, `[N]` (0 where the target is `None`);
    /// no gradient.
    fn lm_head_nll(
        &self,
        hidden: Tensor<B, 2>,
        weight: Tensor<B, 2>,
        targets: &[Option<usize>],
    ) -> Vec<f32> {
        reference::lm_head::nll(hidden, weight, targets)
    }
}

/// The composed reference implementation, for every backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Composed;

impl<B: Backend> Kernels<B> for Composed {}

/// The fused CPU kernels, for `NdArray<f32>` and `Autodiff<NdArray<f32>>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fused;

static COMPOSED: Composed = Composed;
static FUSED: Fused = Fused;

fn fused_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var("HEDGEHOG_KERNELS").map_or(true, |value| value.trim() != "composed")
    })
}

/// `kernels` as the kernels of `B` when `C` is `B`.
fn as_backend<B: Backend, C: Backend>(
    kernels: &'static dyn Kernels<C>,
) -> Option<&'static dyn Kernels<B>> {
    (&kernels as &dyn Any)
        .downcast_ref::<&'static dyn Kernels<B>>()
        .copied()
}

/// The kernels for backend `B`: fused on the CPU backend (unless `HEDGEHOG_KERNELS=composed`),
/// the composed reference everywhere else.
pub fn for_backend<B: Backend>() -> &'static dyn Kernels<B> {
    if fused_enabled() {
        if let Some(kernels) = as_backend::<B, Cpu>(&FUSED) {
            return kernels;
        }
        if let Some(kernels) = as_backend::<B, autodiff::CpuAutodiff>(&FUSED) {
            return kernels;
        }
    }
    &COMPOSED
}

/// Whether [`for_backend`] gives fused kernels for `B`.
pub fn is_fused<B: Backend>() -> bool {
    fused_enabled()
        && (as_backend::<B, Cpu>(&FUSED).is_some()
            || as_backend::<B, autodiff::CpuAutodiff>(&FUSED).is_some())
}

pub use adamw::AdamWStep;

/// A parameter, its gradient and its AdamW moments `(m, v)` (`None` before the first step).
#[derive(Debug)]
pub struct AdamWInputs<B: Backend, const D: usize> {
    pub param: Tensor<B, D>,
    pub grad: Tensor<B, D>,
    pub moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
}

/// A parameter and its moments `(param, m, v)` after an AdamW step.
pub type AdamWOutputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>, Tensor<B, D>);

/// One AdamW step in a single in-place pass (see [`AdamWStep`] for the update) on the CPU
/// backend, returning `(param, m, v)`; on any other backend (or with
/// `HEDGEHOG_KERNELS=composed`) the inputs come back for the composed optimiser.
pub fn adamw_step<B: Backend, const D: usize>(
    inputs: AdamWInputs<B, D>,
    step: AdamWStep,
) -> Result<AdamWOutputs<B, D>, AdamWInputs<B, D>> {
    if !(fused_enabled() && std::any::TypeId::of::<B>() == std::any::TypeId::of::<Cpu>()) {
        return Err(inputs);
    }
    let cast = |t: Tensor<B, D>| -> Tensor<Cpu, D> {
        *(Box::new(t) as Box<dyn Any>)
            .downcast::<Tensor<Cpu, D>>()
            .expect("the backend was checked")
    };
    let back = |t: Tensor<Cpu, D>| -> Tensor<B, D> {
        *(Box::new(t) as Box<dyn Any>)
            .downcast::<Tensor<B, D>>()
            .expect("the backend was checked")
    };
    let shape = inputs.param.dims();
    let n: usize = shape.iter().product();
    let mut param = host::into_vec(host::float(cast(inputs.param)));
    let grad = host::float(cast(inputs.grad));
    let (mut m, mut v) = match inputs.moments {
        Some((m, v)) => (
            host::into_vec(host::float(cast(m))),
            host::into_vec(host::float(cast(v))),
        ),
        None => (vec![0.0; n], vec![0.0; n]),
    };
    adamw::step(&mut param, &mut m, &mut v, &host::values(&grad), step);
    let tensor = |values: Vec<f32>| back(host::tensor(host::primitive(values, &shape)));
    Ok((tensor(param), tensor(m), tensor(v)))
}

/// Test hooks: the fused kernels with a deliberately wrong causal mask, so the agreement
/// tests can show they catch one.
#[doc(hidden)]
pub mod testing {
    pub use super::autodiff::causal_linear_with_mask_offset;
}
