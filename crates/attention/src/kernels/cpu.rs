//! The fused kernels on the plain CPU backend (inference, evaluation, the inner backend of
//! `Autodiff`), and the bundles of primitives each call reads its slices from. A bundle keeps
//! the tensors alive (burn-ndarray primitives are reference counted: cloning is free), so the
//! autodiff ops store the same bundle as their backward state.

use std::sync::Arc;

use burn::tensor::Tensor;
use burn_ndarray::NdArrayTensor;

use super::host::{self, Cpu};
use super::simd;
use super::{
    Fused, Kernels, LinearInputs, SoftmaxInputs, hedgehog, linear, lm_head, softmax, taylor,
};
use crate::types::{HedgehogActivation, LinearState};

/// The primitives of a linear-attention call.
#[derive(Clone, Debug)]
pub(super) struct LinearCall {
    pub fq: NdArrayTensor,
    pub fk: NdArrayTensor,
    pub v: NdArrayTensor,
    pub s0: Option<NdArrayTensor>,
    pub z0: Option<NdArrayTensor>,
    pub keep: Option<Arc<[bool]>>,
    pub dims: linear::Dims,
    pub eps: f32,
}

impl LinearCall {
    pub fn new(
        fq: NdArrayTensor,
        fk: NdArrayTensor,
        v: NdArrayTensor,
        state: Option<(NdArrayTensor, NdArrayTensor)>,
        keep: Option<Vec<bool>>,
        eps: f64,
    ) -> Self {
        let [batch, heads, len, features]: [usize; 4] =
            host::dims(&fq).try_into().expect("rank-4 features");
        let value_dim = host::dims(&v)[3];
        let (s0, z0) = state.unzip();
        Self {
            fq,
            fk,
            v,
            s0,
            z0,
            keep: keep.map(Arc::from),
            dims: linear::Dims {
                batch,
                heads,
                len,
                features,
                value_dim,
            },
            eps: eps as f32,
        }
    }

    /// Runs `f` on the call's slices.
    pub fn with<R>(&self, f: impl FnOnce(linear::Inputs<'_>) -> R) -> R {
        let (q, k, v) = (
            host::values(&self.fq),
            host::values(&self.fk),
            host::values(&self.v),
        );
        let s0 = self.s0.as_ref().map(host::values);
        let z0 = self.z0.as_ref().map(host::values);
        f(linear::Inputs {
            q: &q,
            k: &k,
            v: &v,
            keep: self.keep.as_deref(),
            s0: s0.as_deref(),
            z0: z0.as_deref(),
            eps: self.eps,
        })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.len, d.value_dim]
    }

    pub fn state_shapes(&self) -> ([usize; 4], [usize; 3]) {
        let d = self.dims;
        (
            [d.batch, d.heads, d.features, d.value_dim],
            [d.batch, d.heads, d.features],
        )
    }
}

/// The primitives of a Hedgehog feature-map call.
#[derive(Clone, Debug)]
pub(super) struct HedgehogCall {
    pub x: NdArrayTensor,
    pub weight: NdArrayTensor,
    pub bias: NdArrayTensor,
    pub dims: hedgehog::Dims,
    pub activation: HedgehogActivation,
}

impl HedgehogCall {
    pub fn new(
        x: NdArrayTensor,
        weight: NdArrayTensor,
        bias: NdArrayTensor,
        activation: HedgehogActivation,
    ) -> Self {
        let [batch, heads, len, head_dim]: [usize; 4] =
            host::dims(&x).try_into().expect("rank-4 input");
        let [weight_heads, _, out_dim]: [usize; 3] =
            host::dims(&weight).try_into().expect("rank-3 weight");
        Self {
            x,
            weight,
            bias,
            dims: hedgehog::Dims {
                batch,
                heads,
                len,
                head_dim,
                out_dim,
                weight_heads,
            },
            activation,
        }
    }

    pub fn forward(&self) -> Vec<f32> {
        hedgehog::forward(
            self.dims,
            &host::values(&self.x),
            &host::values(&self.weight),
            &host::values(&self.bias),
            self.activation,
        )
    }

    pub fn output_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.len, 2 * d.out_dim]
    }
}

/// The primitives of a softmax-attention call.
#[derive(Clone, Debug)]
pub(super) struct SoftmaxCall {
    pub q: NdArrayTensor,
    pub k: NdArrayTensor,
    pub v: Option<NdArrayTensor>,
    pub causal: bool,
    pub keep: Option<Arc<[bool]>>,
    pub dropout: Option<softmax::Dropout>,
    pub dims: softmax::Dims,
}

impl SoftmaxCall {
    pub fn new(
        q: NdArrayTensor,
        k: NdArrayTensor,
        v: Option<NdArrayTensor>,
        causal: bool,
        keep: Option<Vec<bool>>,
        dropout: Option<softmax::Dropout>,
    ) -> Self {
        let [batch, heads, query_len, head_dim]: [usize; 4] =
            host::dims(&q).try_into().expect("rank-4 queries");
        let key_len = host::dims(&k)[2];
        let value_dim = v.as_ref().map_or(0, |v| host::dims(v)[3]);
        Self {
            q,
            k,
            v,
            causal,
            keep: keep.map(Arc::from),
            dropout,
            dims: softmax::Dims {
                batch,
                heads,
                query_len,
                key_len,
                head_dim,
                value_dim,
            },
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(softmax::Inputs<'_>) -> R) -> R {
        let (q, k) = (host::values(&self.q), host::values(&self.k));
        let v = self.v.as_ref().map(host::values);
        f(softmax::Inputs {
            q: &q,
            k: &k,
            v: v.as_deref().unwrap_or(&[]),
            causal: self.causal,
            keep: self.keep.as_deref(),
            dropout: self.dropout,
        })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.query_len, d.value_dim]
    }

    pub fn weights_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.query_len, d.key_len]
    }
}

/// The LM head's call sizes.
pub(super) fn lm_head_dims(hidden: &NdArrayTensor, weight: &NdArrayTensor) -> lm_head::Dims {
    let [tokens, model_dim]: [usize; 2] = host::dims(hidden).try_into().expect("rank-2 hidden");
    lm_head::Dims {
        tokens,
        model_dim,
        vocab: host::dims(weight)[0],
    }
}

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
            call.with(|slices| linear::causal_forward(call.dims, slices, chunk_size, 0, false));
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
        let out = call.with(|slices| linear::parallel_forward(call.dims, slices));
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
        let y = linear::recurrent_step(
            linear::StepState {
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
        let x = host::float(x);
        let x = host::values(&x);
        let mut phi = vec![0.0f32; x.len()];
        elementwise(&mut phi, &x, simd::elu_plus_one);
        host::tensor(host::primitive(phi, &shape))
    }

    fn taylor(&self, x: Tensor<Cpu, 4>, compressed: bool) -> Tensor<Cpu, 4> {
        let [b, h, t, d] = x.dims();
        let phi = taylor::forward(&host::values(&host::float(x)), d, compressed);
        let f = taylor::feature_dim(d, compressed);
        host::tensor(host::primitive(phi, &[b, h, t, f]))
    }

    fn softmax_attention(&self, inputs: SoftmaxInputs<Cpu>, _dropout: f64) -> Tensor<Cpu, 4> {
        // No gradient is tracked on this backend: evaluation, so no dropout (burn's rule).
        let call = softmax_call(inputs, true, None);
        let out = call.with(|slices| softmax::forward(call.dims, slices));
        host::tensor(host::primitive(out.y, &call.output_shape()))
    }

    fn softmax_weights(&self, inputs: SoftmaxInputs<Cpu>) -> Tensor<Cpu, 4> {
        let call = softmax_call(inputs, false, None);
        let w = call.with(|slices| softmax::weights(call.dims, slices));
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
        host::tensor(host::primitive(vec![mean_nll(&out)], &[1]))
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

/// `f(out, x)` over chunks of the slices on every thread.
pub(super) fn elementwise(out: &mut [f32], x: &[f32], f: fn(&mut [f32], &[f32])) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| f(o, x));
}

/// The mean over scored tokens, summed in f64.
pub(super) fn mean_nll(out: &lm_head::Output) -> f32 {
    let total: f64 = out.nll.iter().map(|&x| x as f64).sum();
    (total / out.scored.max(1) as f64) as f32
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
