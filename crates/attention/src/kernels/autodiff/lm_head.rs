//! The LM head's cross-entropy under autodiff: its gradients are formed in the forward pass.

use std::sync::Arc;

use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};

use super::graph::{inner, parent_ids, register, run};
use crate::kernels::calls::lm_head_dims;
use crate::kernels::host::{self, Cpu, CpuAutodiff};
use crate::kernels::{lm_head, simd};

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
                simd::scale(&mut g, upstream);
            }
            g
        };
        let d = state.dims;
        register(grads, hidden, scaled(gh), &[d.tokens, d.model_dim]);
        register(grads, weight, scaled(gw), &[d.vocab, d.model_dim]);
    }
}

pub(super) fn loss(
    hidden: Tensor<CpuAutodiff, 2>,
    weight: Tensor<CpuAutodiff, 2>,
    targets: &[Option<usize>],
) -> Tensor<CpuAutodiff, 1> {
    let (hidden, weight) = (inner(hidden), inner(weight));
    let dims = lm_head_dims(&hidden.primitive, &weight.primitive);
    let (h, w) = (hidden.primitive.clone(), weight.primitive.clone());
    run(LmHeadOp, [&hidden, &weight], |tracked| {
        let mut out =
            lm_head::cross_entropy(dims, &host::values(&h), &host::values(&w), targets, tracked);
        let loss = host::primitive(vec![lm_head::mean_nll(&out)], &[1]);
        let state = out.grads.take().map(|grads| LmHeadState {
            grads: Arc::new(grads),
            dims,
        });
        (loss, state)
    })
}

pub(super) fn nll(
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
