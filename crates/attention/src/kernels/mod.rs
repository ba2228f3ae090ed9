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
mod calls;
mod cpu;
mod elu;
mod hedgehog;
pub(crate) mod host;
mod linear;
mod lm_head;
mod matmul;
mod ops;
mod simd;
mod softmax;
mod taylor;
mod window;

use std::any::Any;
use std::sync::OnceLock;

use burn::tensor::{Tensor, backend::Backend};

pub use crate::types::{LinearInputs, SoftmaxInputs};
use host::{Cpu, CpuAutodiff};
pub use ops::{Composed, Fused, Kernels};

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
        if let Some(kernels) = as_backend::<B, CpuAutodiff>(&FUSED) {
            return kernels;
        }
    }
    &COMPOSED
}

/// Whether [`for_backend`] gives fused kernels for `B`.
pub fn is_fused<B: Backend>() -> bool {
    fused_enabled()
        && (as_backend::<B, Cpu>(&FUSED).is_some()
            || as_backend::<B, CpuAutodiff>(&FUSED).is_some())
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
