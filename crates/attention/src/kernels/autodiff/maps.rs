//! The fused feature maps under autodiff: Hedgehog, 1+ELU and Taylor-2, each one node.

use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_ndarray::NdArrayTensor;

use super::graph::{inner, parent_ids, register, run};
use crate::kernels::calls::HedgehogCall;
use crate::kernels::host::{self, Cpu, CpuAutodiff};
use crate::kernels::{elu, hedgehog, taylor};
use crate::types::HedgehogActivation;

#[derive(Debug)]
struct HedgehogOp;

#[derive(Clone, Debug)]
struct HedgehogState {
    call: HedgehogCall,
    phi: NdArrayTensor,
}

impl Backward<Cpu, 3> for HedgehogOp {
    type State = HedgehogState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, w, b] = parent_ids(&ops);
        let state = ops.state;
        let grad = grads.consume::<Cpu>(&ops.node);
        let call = &state.call;
        let g = hedgehog::backward(
            call.dims,
            &host::values(&call.x),
            &host::values(&call.weight),
            &host::values(&state.phi),
            &host::values(&grad),
            call.activation,
        );
        let d = call.dims;
        register(grads, x, g.x, &[d.batch, d.heads, d.len, d.head_dim]);
        register(grads, w, g.weight, &[d.weight_heads, d.head_dim, d.out_dim]);
        register(grads, b, g.bias, &[d.weight_heads, 1, d.out_dim]);
    }
}

#[derive(Debug)]
struct EluOp;

impl Backward<Cpu, 1> for EluOp {
    /// The input and the features `φ`.
    type State = (NdArrayTensor, NdArrayTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x] = parent_ids(&ops);
        let (input, phi) = ops.state;
        let grad = grads.consume::<Cpu>(&ops.node);
        let shape = host::dims(&phi);
        let (input, phi, grad) = (
            host::values(&input),
            host::values(&phi),
            host::values(&grad),
        );
        register(grads, x, elu::backward(&input, &phi, &grad), &shape);
    }
}

#[derive(Debug)]
struct TaylorOp;

#[derive(Clone, Debug)]
struct TaylorState {
    x: NdArrayTensor,
    compressed: bool,
}

impl Backward<Cpu, 1> for TaylorOp {
    type State = TaylorState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x] = parent_ids(&ops);
        let state = ops.state;
        let grad = grads.consume::<Cpu>(&ops.node);
        let shape = host::dims(&state.x);
        let d = shape[3];
        let gx = taylor::backward(
            &host::values(&state.x),
            &host::values(&grad),
            d,
            state.compressed,
        );
        register(grads, x, gx, &shape);
    }
}

pub(super) fn hedgehog(
    x: Tensor<CpuAutodiff, 4>,
    weight: Tensor<CpuAutodiff, 3>,
    bias: Tensor<CpuAutodiff, 3>,
    activation: HedgehogActivation,
) -> Tensor<CpuAutodiff, 4> {
    let (x, weight, bias) = (inner(x), inner(weight), inner(bias));
    let call = HedgehogCall::new(
        x.primitive.clone(),
        weight.primitive.clone(),
        bias.primitive.clone(),
        activation,
    );
    run(HedgehogOp, [&x, &weight, &bias], |tracked| {
        let phi = host::primitive(call.forward(), &call.output_shape());
        let state = tracked.then(|| HedgehogState {
            call: call.clone(),
            phi: phi.clone(),
        });
        (phi, state)
    })
}

pub(super) fn elu_plus_one(x: Tensor<CpuAutodiff, 4>) -> Tensor<CpuAutodiff, 4> {
    let x = inner(x);
    let shape = host::dims(&x.primitive);
    let primitive = x.primitive.clone();
    run(EluOp, [&x], |tracked| {
        let phi = host::primitive(elu::forward(&host::values(&primitive)), &shape);
        let state = tracked.then(|| (primitive.clone(), phi.clone()));
        (phi, state)
    })
}

pub(super) fn taylor(x: Tensor<CpuAutodiff, 4>, compressed: bool) -> Tensor<CpuAutodiff, 4> {
    let x = inner(x);
    let shape = host::dims(&x.primitive);
    let d = shape[3];
    let f = taylor::feature_dim(d, compressed);
    let primitive = x.primitive.clone();
    run(TaylorOp, [&x], |tracked| {
        let phi = taylor::forward(&host::values(&primitive), d, compressed);
        let phi = host::primitive(phi, &[shape[0], shape[1], shape[2], f]);
        let state = tracked.then(|| TaylorState {
            x: primitive.clone(),
            compressed,
        });
        (phi, state)
    })
}
