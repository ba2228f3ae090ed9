//! Linear attention under autodiff: the chunked causal and the parallel forms as one node each.

use std::sync::Arc;

use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_ndarray::NdArrayTensor;

use super::graph::{inner, parent_ids, register, run};
use crate::kernels::calls::LinearCall;
use crate::kernels::host::{self, Cpu, CpuAutodiff};
use crate::kernels::linear;
use crate::types::{LinearInputs, LinearState};

#[derive(Debug)]
struct CausalLinearOp;

#[derive(Clone, Debug)]
struct CausalLinearState {
    call: LinearCall,
    y: NdArrayTensor,
    den: Arc<Vec<f32>>,
    intra: Arc<Vec<f32>>,
    states: Arc<Vec<f32>>,
    chunk: usize,
    mask_offset: usize,
}

impl Backward<Cpu, 5> for CausalLinearOp {
    type State = CausalLinearState;

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q, k, v, s0, z0] = parent_ids(&ops);
        let state = ops.state;
        let gy = grads.consume::<Cpu>(&ops.node);
        let call = &state.call;
        let y = host::values(&state.y);
        let saved = linear::causal_backward::CausalSaved {
            y: &y,
            den: &state.den,
            intra: &state.intra,
            states: &state.states,
        };
        let g = call.with(|slices| {
            linear::causal_backward::backward(
                call.dims,
                slices,
                saved,
                &host::values(&gy),
                state.chunk,
                state.mask_offset,
            )
        });
        let d = call.dims;
        let features = [d.batch, d.heads, d.len, d.features];
        let (s_shape, z_shape) = call.state_shapes();
        register(grads, q, g.q, &features);
        register(grads, k, g.k, &features);
        register(grads, v, g.v, &call.output_shape());
        register(grads, s0, g.s0, &s_shape);
        register(grads, z0, g.z0, &z_shape);
    }
}

pub(super) fn causal_linear(
    inputs: LinearInputs<CpuAutodiff>,
    initial_state: Option<LinearState<CpuAutodiff>>,
    chunk: usize,
    mask_offset: usize,
) -> Tensor<CpuAutodiff, 4> {
    let [b, h, _, f] = inputs.fq.dims();
    let dv = inputs.v.dims()[3];
    let device = inputs.fq.device();
    let state = initial_state.unwrap_or_else(|| LinearState::zeros(b, h, f, dv, &device));
    let keep = host::keep_flags(inputs.key_padding.as_ref());
    let (fq, fk, v) = (inner(inputs.fq), inner(inputs.fk), inner(inputs.v));
    let (s0, z0) = (inner(state.s), inner(state.z));
    let call = LinearCall::new(
        fq.primitive.clone(),
        fk.primitive.clone(),
        v.primitive.clone(),
        Some((s0.primitive.clone(), z0.primitive.clone())),
        keep,
        inputs.eps,
    );
    run(CausalLinearOp, [&fq, &fk, &v, &s0, &z0], |tracked| {
        let out = call
            .with(|slices| linear::causal::forward(call.dims, slices, chunk, mask_offset, tracked));
        let y = host::primitive(out.y, &call.output_shape());
        let state = tracked.then(|| CausalLinearState {
            call: call.clone(),
            y: y.clone(),
            den: Arc::new(out.den),
            intra: Arc::new(out.intra),
            states: Arc::new(out.states),
            chunk,
            mask_offset,
        });
        (y, state)
    })
}

/// `Kernels::causal_linear`'s output with the causal mask shifted by `mask_offset` (0 is
/// correct; 1 lets each query see the next key), forward and backward: the agreement tests
/// use it to show that they fail on a broken kernel.
pub fn causal_linear_with_mask_offset(
    inputs: LinearInputs<CpuAutodiff>,
    chunk: usize,
    mask_offset: usize,
) -> Tensor<CpuAutodiff, 4> {
    causal_linear(inputs, None, chunk, mask_offset)
}

#[derive(Debug)]
struct ParallelLinearOp;

#[derive(Clone, Debug)]
struct ParallelLinearState {
    call: LinearCall,
    y: NdArrayTensor,
    /// The forward's `den`, `S`, `z` (its `y` moved into the output).
    forward: Arc<linear::Forward>,
}

impl Backward<Cpu, 3> for ParallelLinearOp {
    type State = ParallelLinearState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q, k, v] = parent_ids(&ops);
        let state = ops.state;
        let gy = grads.consume::<Cpu>(&ops.node);
        let call = &state.call;
        let y = host::values(&state.y);
        let saved = linear::parallel::Saved {
            y: &y,
            den: &state.forward.den,
            s: &state.forward.s,
            z: &state.forward.z,
        };
        let g = call.with(|slices| {
            linear::parallel::backward(call.dims, slices, saved, &host::values(&gy))
        });
        let d = call.dims;
        let features = [d.batch, d.heads, d.len, d.features];
        register(grads, q, g.q, &features);
        register(grads, k, g.k, &features);
        register(grads, v, g.v, &call.output_shape());
    }
}

pub(super) fn parallel_linear(inputs: LinearInputs<CpuAutodiff>) -> Tensor<CpuAutodiff, 4> {
    let keep = host::keep_flags(inputs.key_padding.as_ref());
    let (fq, fk, v) = (inner(inputs.fq), inner(inputs.fk), inner(inputs.v));
    let call = LinearCall::new(
        fq.primitive.clone(),
        fk.primitive.clone(),
        v.primitive.clone(),
        None,
        keep,
        inputs.eps,
    );
    run(ParallelLinearOp, [&fq, &fk, &v], |tracked| {
        let mut out = call.with(|slices| linear::parallel::forward(call.dims, slices));
        let y = host::primitive(std::mem::take(&mut out.y), &call.output_shape());
        let state = tracked.then(|| ParallelLinearState {
            call: call.clone(),
            y: y.clone(),
            forward: Arc::new(out),
        });
        (y, state)
    })
}

/// The state `(S, z)` after all of `fk, v` (padded keys removed) on top of `initial`, in
/// composed (tracked) ops: cheap next to the attention itself.
pub(super) fn composed_state(
    inputs: &LinearInputs<CpuAutodiff>,
    initial: Option<LinearState<CpuAutodiff>>,
) -> LinearState<CpuAutodiff> {
    let fk = match &inputs.key_padding {
        Some(padding) => {
            let [b, t] = padding.dims();
            inputs.fk.clone() * padding.clone().bool_not().float().reshape([b, 1, t, 1])
        }
        None => inputs.fk.clone(),
    };
    let state = LinearState::from_features(fk, inputs.v.clone());
    match initial {
        Some(initial) => LinearState {
            s: state.s + initial.s,
            z: state.z + initial.z,
        },
        None => state,
    }
}
