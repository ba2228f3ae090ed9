//! The fused kernels on the plain CPU backend (inference, evaluation, the inner backend of
//! `Autodiff`).

use burn::tensor::Tensor;

use super::calls::{HedgehogCall, LinearCall, SoftmaxCall, WindowCall, lm_head_dims};
use super::host::{self, Cpu};
use super::ops::{Fused, Kernels};
use super::{elu, linear, lm_head, softmax, taylor, window};
use crate::types::{HedgehogActivation, LinearInputs, LinearState, SoftmaxInputs, WindowInputs};

impl Kernels<Cpu> for Fused {
    fn causal_linear(
        &self,
        inputs: LinearInputs<Cpu>,
        initial_state: Option<LinearState<Cpu>>,
        chunk_size: usize,
        with_state: bool,
    ) -> (Tensor<Cpu, 4>, Option<LinearState<Cpu>>) {
        let keep = host::keep_flags(inputs.key_padding.as_ref());
        let call = LinearCall::new(
            host::float(inputs.fq),
            host::float(inputs.fk),
            host::float(inputs.v),
            initial_state.map(|state| (host::float(state.s), host::float(state.z))),
            keep,
            inputs.eps,
        );
        let out =
            call.with(|slices| linear::causal::forward(call.dims, slices, chunk_size, 0, false));
        linear_results(&call, out, with_state)
    }

    fn parallel_linear(
        &self,
        inputs: LinearInputs<Cpu>,
        with_state: bool,
    ) -> (Tensor<Cpu, 4>, Option<LinearState<Cpu>>) {
        let keep = host::keep_flags(inputs.key_padding.as_ref());
        let call = LinearCall::new(
            host::float(inputs.fq),
            host::float(inputs.fk),
            host::float(inputs.v),
            None,
            keep,
            inputs.eps,
        );
        let out = call.with(|slices| linear::parallel::forward(call.dims, slices));
        linear_results(&call, out, with_state)
    }

    fn recurrent_step(
        &self,
        state: LinearState<Cpu>,
        fq: Tensor<Cpu, 3>,
        fk: Tensor<Cpu, 3>,
        v: Tensor<Cpu, 3>,
        eps: f64,
    ) -> (Tensor<Cpu, 3>, LinearState<Cpu>) {
        let [b, h, f] = fq.dims();
        let dv = v.dims()[2];
        let mut s = host::values(&host::float(state.s)).into_owned();
        let mut z = host::values(&host::float(state.z)).into_owned();
        let y = linear::recurrent::step(
            linear::recurrent::StepState {
                s: &mut s,
                z: &mut z,
                pairs: b * h,
            },
            &host::values(&host::float(fq)),
            &host::values(&host::float(fk)),
            &host::values(&host::float(v)),
            eps as f32,
        );
        (
            host::tensor(host::primitive(y, &[b, h, dv])),
            LinearState {
                s: host::tensor(host::primitive(s, &[b, h, f, dv])),
                z: host::tensor(host::primitive(z, &[b, h, f])),
            },
        )
    }

    fn hedgehog(
        &self,
        x: Tensor<Cpu, 4>,
        weight: Tensor<Cpu, 3>,
        bias: Tensor<Cpu, 3>,
        activation: HedgehogActivation,
    ) -> Tensor<Cpu, 4> {
        let call = HedgehogCall::new(
            host::float(x),
            host::float(weight),
            host::float(bias),
            activation,
        );
        host::tensor(host::primitive(call.forward(), &call.output_shape()))
    }

    fn elu_plus_one(&self, x: Tensor<Cpu, 4>) -> Tensor<Cpu, 4> {
        let shape = x.dims();
        let phi = elu::forward(&host::values(&host::float(x)));
        host::tensor(host::primitive(phi, &shape))
    }

    fn taylor(&self, x: Tensor<Cpu, 4>, compressed: bool) -> Tensor<Cpu, 4> {
        let [b, h, t, d] = x.dims();
        let phi = taylor::forward(&host::values(&host::float(x)), d, compressed);
        let f = taylor::feature_dim(d, compressed);
        host::tensor(host::primitive(phi, &[b, h, t, f]))
    }

    fn window_output(
        &self,
        inputs: WindowInputs<Cpu>,
        window: usize,
    ) -> Result<Tensor<Cpu, 4>, WindowInputs<Cpu>> {
        let keep = host::keep_flags(inputs.key_padding.as_ref());
        let tokens = [inputs.q, inputs.k, inputs.fq, inputs.fk, inputs.v].map(host::float);
        let call = WindowCall::new(
            tokens,
            host::float(inputs.factors),
            keep,
            inputs.eps,
            window,
        );
        let out = call.with(|slices| window::forward(call.dims, slices));
        Ok(host::tensor(host::primitive(out.y, &call.output_shape())))
    }

    fn softmax_attention(&self, inputs: SoftmaxInputs<Cpu>, _dropout: f64) -> Tensor<Cpu, 4> {
        // No gradient is tracked on this backend: evaluation, so no dropout (burn's rule).
        let call = softmax_call(inputs, true, None);
        let out = call.with(|slices| softmax::output::forward(call.dims, slices));
        host::tensor(host::primitive(out.y, &call.output_shape()))
    }

    fn softmax_weights(&self, inputs: SoftmaxInputs<Cpu>) -> Tensor<Cpu, 4> {
        let call = softmax_call(inputs, false, None);
        let w = call.with(|slices| softmax::weights::forward(call.dims, slices));
        host::tensor(host::primitive(w, &call.weights_shape()))
    }

    fn lm_head_loss(
        &self,
        hidden: Tensor<Cpu, 2>,
        weight: Tensor<Cpu, 2>,
        targets: &[Option<usize>],
    ) -> Tensor<Cpu, 1> {
        let (hidden, weight) = (host::float(hidden), host::float(weight));
        let dims = lm_head_dims(&hidden, &weight);
        let out = lm_head::cross_entropy(
            dims,
            &host::values(&hidden),
            &host::values(&weight),
            targets,
            false,
        );
        host::tensor(host::primitive(vec![lm_head::mean_nll(&out)], &[1]))
    }

    fn lm_head_nll(
        &self,
        hidden: Tensor<Cpu, 2>,
        weight: Tensor<Cpu, 2>,
        targets: &[Option<usize>],
    ) -> Vec<f32> {
        let (hidden, weight) = (host::float(hidden), host::float(weight));
        let dims = lm_head_dims(&hidden, &weight);
        lm_head::cross_entropy(
            dims,
            &host::values(&hidden),
            &host::values(&weight),
            targets,
            false,
        )
        .nll
    }
}

/// A softmax call's primitives; `with_values` false for the weights-only call.
fn softmax_call(
    inputs: SoftmaxInputs<Cpu>,
    with_values: bool,
    dropout: Option<softmax::Dropout>,
) -> SoftmaxCall {
    let keep = host::keep_flags(inputs.key_padding.as_ref());
    SoftmaxCall::new(
        host::float(inputs.q),
        host::float(inputs.k),
        with_values.then(|| host::float(inputs.v)),
        inputs.causal,
        keep,
        dropout,
    )
}

fn linear_results(
    call: &LinearCall,
    out: linear::Forward,
    with_state: bool,
) -> (Tensor<Cpu, 4>, Option<LinearState<Cpu>>) {
    let (s_shape, z_shape) = call.state_shapes();
    let y = host::tensor(host::primitive(out.y, &call.output_shape()));
    let state = with_state.then(|| LinearState {
        s: host::tensor(host::primitive(out.s, &s_shape)),
        z: host::tensor(host::primitive(out.z, &z_shape)),
    });
    (y, state)
}
