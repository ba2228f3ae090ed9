//! The fused kernels under `Autodiff<NdArray<f32>>`: each op runs its fused forward on the
//! inner primitives and registers a hand-written backward (burn-autodiff's `Backward`), so a
//! whole attention call is one node of the graph instead of dozens.

use std::sync::Arc;

use burn::tensor::{Distribution, Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::{Autodiff, NodeId};
use burn_ndarray::NdArrayTensor;

use super::cpu::{HedgehogCall, LinearCall, SoftmaxCall, lm_head_dims, mean_nll};
use super::host::{self, Cpu};
use super::{
    Fused, Kernels, LinearInputs, SoftmaxInputs, hedgehog, linear, lm_head, softmax, taylor,
};
use crate::types::{HedgehogActivation, LinearState};

/// The CPU backend with gradients.
pub type CpuAutodiff = Autodiff<Cpu>;

/// burn-autodiff's tensor (its type is not exported under a name of its own).
type AutodiffTensor<B> = burn::tensor::ops::FloatTensor<Autodiff<B>>;

fn inner<const D: usize>(tensor: Tensor<CpuAutodiff, D>) -> AutodiffTensor<Cpu> {
    tensor.into_primitive().tensor()
}

fn outer<const D: usize>(tensor: AutodiffTensor<Cpu>) -> Tensor<CpuAutodiff, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}

/// Registers `values` (shape `shape`) as the gradient of `parent` when it is tracked.
fn register(grads: &mut Gradients, parent: Option<NodeId>, values: Vec<f32>, shape: &[usize]) {
    if let Some(id) = parent {
        grads.register::<Cpu>(id, host::primitive(values, shape));
    }
}

fn parent_ids<const N: usize>(ops: &Ops<impl Sized, N>) -> [Option<NodeId>; N] {
    std::array::from_fn(|i| ops.parents[i].as_ref().map(|node| node.id))
}

/// Runs an op: `forward(tracked)` returns the output and, when tracked, the backward's state.
fn run<BO, S, const N: usize, const D: usize>(
    op: BO,
    parents: [&AutodiffTensor<Cpu>; N],
    forward: impl FnOnce(bool) -> (NdArrayTensor, Option<S>),
) -> Tensor<CpuAutodiff, D>
where
    BO: Backward<Cpu, N, State = S>,
    S: Clone + Send + std::fmt::Debug + 'static,
{
    let nodes = parents.map(|p| p.node.clone());
    let out = match op
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (out, state) = forward(true);
            prep.finish(state.expect("a tracked op keeps its state"), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(false).0),
    };
    outer(out)
}

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
        let saved = linear::CausalSaved {
            y: &y,
            den: &state.den,
            intra: &state.intra,
            states: &state.states,
        };
        let g = call.with(|slices| {
            linear::causal_backward(
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

fn causal_linear(
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
            .with(|slices| linear::causal_forward(call.dims, slices, chunk, mask_offset, tracked));
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

/// [`Kernels::causal_linear`]'s output with the causal mask shifted by `mask_offset` (0 is
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
        let saved = linear::Saved {
            y: &y,
            den: &state.forward.den,
            s: &state.forward.s,
            z: &state.forward.z,
        };
        let g = call
            .with(|slices| linear::parallel_backward(call.dims, slices, saved, &host::values(&gy)));
        let d = call.dims;
        let features = [d.batch, d.heads, d.len, d.features];
        register(grads, q, g.q, &features);
        register(grads, k, g.k, &features);
        register(grads, v, g.v, &call.output_shape());
    }
}

fn parallel_linear(inputs: LinearInputs<CpuAutodiff>) -> Tensor<CpuAutodiff, 4> {
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
        let mut out = call.with(|slices| linear::parallel_forward(call.dims, slices));
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
fn composed_state(
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
    /// The features `φ`: the derivative is 1 above 0 and `φ = exp(x)` below.
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
        let gx = input
            .iter()
            .zip(phi.iter())
            .zip(grad.iter())
            .map(|((&x, &p), &g)| if x > 0.0 { g } else { g * p })
            .collect();
        register(grads, x, gx, &shape);
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
            softmax::backward(call.dims, slices, &y, &state.lse, &host::values(&gy))
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
            softmax::weights_backward(
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

#[derive(Debug)]
struct LmHeadOp;

/// The gradients of the mean loss, formed in the forward pass; the backward scales them by
/// the upstream gradient.
#[derive(Clone, Debug)]
struct LmHeadState {
    grads: Arc<(Vec<f32>, Vec<f32>)>,
    dims: lm_head::Dims,
}

impl Backward<Cpu, 2> for LmHeadOp {
    type State = LmHeadState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [hidden, weight] = parent_ids(&ops);
        let state = ops.state;
        let upstream = host::values(&grads.consume::<Cpu>(&ops.node))[0];
        let (gh, gw) = Arc::try_unwrap(state.grads).unwrap_or_else(|shared| (*shared).clone());
        let scaled = |mut g: Vec<f32>| {
            if upstream != 1.0 {
                super::simd::scale(&mut g, upstream);
            }
            g
        };
        let d = state.dims;
        register(grads, hidden, scaled(gh), &[d.tokens, d.model_dim]);
        register(grads, weight, scaled(gw), &[d.vocab, d.model_dim]);
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

impl Kernels<CpuAutodiff> for Fused {
    fn causal_linear(
        &self,
        inputs: LinearInputs<CpuAutodiff>,
        initial_state: Option<LinearState<CpuAutodiff>>,
        chunk_size: usize,
        with_state: bool,
    ) -> (Tensor<CpuAutodiff, 4>, Option<LinearState<CpuAutodiff>>) {
        let state = with_state.then(|| composed_state(&inputs, initial_state.clone()));
        (causal_linear(inputs, initial_state, chunk_size, 0), state)
    }

    fn parallel_linear(
        &self,
        inputs: LinearInputs<CpuAutodiff>,
        with_state: bool,
    ) -> (Tensor<CpuAutodiff, 4>, Option<LinearState<CpuAutodiff>>) {
        let state = with_state.then(|| composed_state(&inputs, None));
        (parallel_linear(inputs), state)
    }

    fn hedgehog(
        &self,
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

    fn elu_plus_one(&self, x: Tensor<CpuAutodiff, 4>) -> Tensor<CpuAutodiff, 4> {
        let x = inner(x);
        let shape = host::dims(&x.primitive);
        let primitive = x.primitive.clone();
        run(EluOp, [&x], |tracked| {
            let values = host::values(&primitive);
            let mut phi = vec![0.0f32; values.len()];
            super::cpu::elementwise(&mut phi, &values, super::simd::elu_plus_one);
            let phi = host::primitive(phi, &shape);
            let state = tracked.then(|| (primitive.clone(), phi.clone()));
            (phi, state)
        })
    }

    fn taylor(&self, x: Tensor<CpuAutodiff, 4>, compressed: bool) -> Tensor<CpuAutodiff, 4> {
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

    fn softmax_attention(
        &self,
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
            let out = call.with(|slices| softmax::forward(call.dims, slices));
            let y = host::primitive(out.y, &call.output_shape());
            let state = tracked.then(|| SoftmaxState {
                call: call.clone(),
                y: y.clone(),
                lse: Arc::new(out.lse),
            });
            (y, state)
        })
    }

    fn softmax_weights(&self, inputs: SoftmaxInputs<CpuAutodiff>) -> Tensor<CpuAutodiff, 4> {
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
            let w = call.with(|slices| softmax::weights(call.dims, slices));
            let weights = host::primitive(w, &call.weights_shape());
            let state = tracked.then(|| SoftmaxWeightsState {
                call: call.clone(),
                weights: weights.clone(),
            });
            (weights, state)
        })
    }

    fn lm_head_loss(
        &self,
        hidden: Tensor<CpuAutodiff, 2>,
        weight: Tensor<CpuAutodiff, 2>,
        targets: &[Option<usize>],
    ) -> Tensor<CpuAutodiff, 1> {
        let (hidden, weight) = (inner(hidden), inner(weight));
        let dims = lm_head_dims(&hidden.primitive, &weight.primitive);
        let (h, w) = (hidden.primitive.clone(), weight.primitive.clone());
        run(LmHeadOp, [&hidden, &weight], |tracked| {
            let mut out = lm_head::cross_entropy(
                dims,
                &host::values(&h),
                &host::values(&w),
                targets,
                tracked,
            );
            let loss = host::primitive(vec![mean_nll(&out)], &[1]);
            let state = out.grads.take().map(|grads| LmHeadState {
                grads: Arc::new(grads),
                dims,
            });
            (loss, state)
        })
    }

    fn lm_head_nll(
        &self,
        hidden: Tensor<CpuAutodiff, 2>,
        weight: Tensor<CpuAutodiff, 2>,
        targets: &[Option<usize>],
    ) -> Vec<f32> {
        let (hidden, weight) = (inner(hidden), inner(weight));
        let dims = lm_head_dims(&hidden.primitive, &weight.primitive);
        lm_head::cross_entropy(
            dims,
            &host::values(&hidden.primitive),
            &host::values(&weight.primitive),
            targets,
            false,
        )
        .nll
    }
}
