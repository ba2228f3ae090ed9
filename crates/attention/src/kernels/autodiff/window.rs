//! Sliding-window + linear attention under autodiff: the causal output, one node with the six
//! parents `q, k, φ(q), φ(k), v, γ`.

use std::sync::Arc;

use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_ndarray::NdArrayTensor;

use super::graph::{inner, parent_ids, register, run};
use crate::kernels::calls::WindowCall;
use crate::kernels::host::{self, Cpu, CpuAutodiff};
use crate::kernels::window;
use crate::types::WindowInputs;

#[derive(Debug)]
struct WindowOp;

#[derive(Clone, Debug)]
struct WindowState {
    call: WindowCall,
    y: NdArrayTensor,
    den: Arc<Vec<f32>>,
}

impl Backward<Cpu, 6> for WindowOp {
    type State = WindowState;

    fn backward(self, ops: Ops<Self::State, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q, k, fq, fk, v, factors] = parent_ids(&ops);
        let state = ops.state;
        let gy = grads.consume::<Cpu>(&ops.node);
        let call = &state.call;
        let y = host::values(&state.y);
        let g = call
            .with(|slices| window::backward(call.dims, slices, &y, &state.den, &host::values(&gy)));
        let d = call.dims;
        let tokens = |width| [d.batch, d.heads, d.len, width];
        register(grads, q, g.q, &tokens(d.head_dim));
        register(grads, k, g.k, &tokens(d.head_dim));
        register(grads, fq, g.fq, &tokens(d.features));
        register(grads, fk, g.fk, &tokens(d.features));
        register(grads, v, g.v, &tokens(d.value_dim));
        register(grads, factors, g.factors, &[d.heads]);
    }
}

pub(super) fn output(inputs: WindowInputs<CpuAutodiff>, window: usize) -> Tensor<CpuAutodiff, 4> {
    let keep = host::keep_flags(inputs.key_padding.as_ref());
    let [q, k, fq, fk, v] = [inputs.q, inputs.k, inputs.fq, inputs.fk, inputs.v].map(inner);
    let factors = inner(inputs.factors);
    let primitives = [&q, &k, &fq, &fk, &v].map(|x| x.primitive.clone());
    let call = WindowCall::new(
        primitives,
        factors.primitive.clone(),
        keep,
        inputs.eps,
        window,
    );
    run(WindowOp, [&q, &k, &fq, &fk, &v, &factors], |tracked| {
        let out = call.with(|slices| window::forward(call.dims, slices));
        let y = host::primitive(out.y, &call.output_shape());
        let state = tracked.then(|| WindowState {
            call: call.clone(),
            y: y.clone(),
            den: Arc::new(out.den),
        });
        (y, state)
    })
}
