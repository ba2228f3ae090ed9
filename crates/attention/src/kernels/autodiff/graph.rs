//! Between burn's tensors and the autodiff graph: the inner primitives of a tracked tensor,
//! one op's node with its backward state, and the gradients it hands to its parents.

use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::{Autodiff, NodeId};
use burn_ndarray::NdArrayTensor;

use crate::kernels::host::{self, Cpu, CpuAutodiff};

/// burn-autodiff's tensor (its type is not exported under a name of its own).
pub(super) type AutodiffTensor<B> = burn::tensor::ops::FloatTensor<Autodiff<B>>;

/// A tensor's autodiff primitive: the inner CPU primitive and its node in the graph.
pub(super) fn inner<const D: usize>(tensor: Tensor<CpuAutodiff, D>) -> AutodiffTensor<Cpu> {
    tensor.into_primitive().tensor()
}

/// An op's autodiff primitive back as a tensor.
pub(super) fn outer<const D: usize>(tensor: AutodiffTensor<Cpu>) -> Tensor<CpuAutodiff, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}

/// Registers `values` (shape `shape`) as the gradient of `parent` when it is tracked.
pub(super) fn register(
    grads: &mut Gradients,
    parent: Option<NodeId>,
    values: Vec<f32>,
    shape: &[usize],
) {
    if let Some(id) = parent {
        grads.register::<Cpu>(id, host::primitive(values, shape));
    }
}

pub(super) fn parent_ids<const N: usize>(ops: &Ops<impl Sized, N>) -> [Option<NodeId>; N] {
    std::array::from_fn(|i| ops.parents[i].as_ref().map(|node| node.id))
}

/// Runs an op: `forward(tracked)` returns the output and, when tracked, the backward's state.
pub(super) fn run<BO, S, const N: usize, const D: usize>(
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
