//! Softmax attention under autodiff: the output (with dropout) and the weights, one node each.

use std::sync::Arc;

use burn::tensor::{Distribution, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_ndarray::NdArrayTensor;

use super::graph::{inner, parent_ids, register, run};
use crate::kernels::calls::SoftmaxCall;
use crate::kernels::host::{self, Cpu, CpuAutodiff};
use crate::kernels::softmax;
use crate::types::SoftmaxInputs;

#[derive(Debug)]
struct SoftmaxOp;

#[derive(Clone, Debug)]
struct SoftmaxState {
    call: SoftmaxCall,
    y: NdArrayTensor,
    lse: Arc<Vec<f32>>,
}

impl Backward<Cpu, 3> for SoftmaxOp {
    type State = SoftmaxState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q, k, v] = parent_ids(&ops);
        let state = ops.state;
        let gy = grads.consume::<Cpu>(&ops.node);
        let call = &state.call;
        let y = host::values(&state.y);
        let g = call.with(|slices| {
            softmax::output::backward(call.dims, slices, &y, &state.lse, &host::values(&gy))
        });
        let d = call.dims;
        register(grads, q, g.q, &[d.batch, d.heads, d.query_len, d.head_dim]);
        register(grads, k, g.k, &[d.batch, d.heads, d.key_len, d.head_dim]);
        register(grads, v, g.v, &[d.batch, d.heads, d.key_len, d.value_dim]);
    }
}

#[derive(Debug)]
struct SoftmaxWeightsOp;

#[derive(Clone, Debug)]
struct SoftmaxWeightsState {
    call: SoftmaxCall,
    weights: NdArrayTensor,
}

impl Backward<Cpu, 2> for SoftmaxWeightsOp {
    type State = SoftmaxWeightsState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q, k] = parent_ids(&ops);
        let state = ops.state;
        let gw = grads.consume::<Cpu>(&ops.node);
        let call = &state.call;
        let (gq, gk) = call.with(|slices| {
            softmax::weights::backward(
                call.dims,
                slices,
                &host::values(&state.weights),
                &host::values(&gw),
            )
        });
        let d = call.dims;
        register(grads, q, gq, &[d.batch, d.heads, d.query_len, d.head_dim]);
        register(grads, k, gk, &[d.batch, d.heads, d.key_len, d.head_dim]);
    }
}

/// A seed for the dropout hash, drawn from the backend's generator so that `B::seed` makes
/// runs repeatable.
fn dropout_seed() -> u64 {
    let draws = Tensor::<Cpu, 1>::random([2], Distribution::Uniform(0.0, 1.0), &Default::default())
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 draws");
    (u64::from(draws[0].to_bits()) << 32) | u64::from(draws[1].to_bits())
}

pub(super) fn attention(
    inputs: SoftmaxInputs<CpuAutodiff>,
    dropout: f64,
) -> Tensor<CpuAutodiff, 4> {
    let keep = host::keep_flags(inputs.key_padding.as_ref());
    let dropout = (dropout > 0.0).then(|| softmax::Dropout {
        prob: dropout as f32,
        seed: dropout_seed(),
    });
    let (q, k, v) = (inner(inputs.q), inner(inputs.k), inner(inputs.v));
    let call = SoftmaxCall::new(
        q.primitive.clone(),
        k.primitive.clone(),
        Some(v.primitive.clone()),
        inputs.causal,
        keep,
        dropout,
    );
    run(SoftmaxOp, [&q, &k, &v], |tracked| {
        let out = call.with(|slices| softmax::output::forward(call.dims, slices));
        let y = host::primitive(out.y, &call.output_shape());
        let state = tracked.then(|| SoftmaxState {
            call: call.clone(),
            y: y.clone(),
            lse: Arc::new(out.lse),
        });
        (y, state)
    })
}

pub(super) fn weights(inputs: SoftmaxInputs<CpuAutodiff>) -> Tensor<CpuAutodiff, 4> {
    let keep = host::keep_flags(inputs.key_padding.as_ref());
    let (q, k) = (inner(inputs.q), inner(inputs.k));
    let call = SoftmaxCall::new(
        q.primitive.clone(),
        k.primitive.clone(),
        None,
        inputs.causal,
        keep,
        None,
    );
    run(SoftmaxWeightsOp, [&q, &k], |tracked| {
        let w = call.with(|slices| softmax::weights::forward(call.dims, slices));
        let weights = host::primitive(w, &call.weights_shape());
        let state = tracked.then(|| SoftmaxWeightsState {
            call: call.clone(),
            weights: weights.clone(),
        });
        (weights, state)
    })
}
