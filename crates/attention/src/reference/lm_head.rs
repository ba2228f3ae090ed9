//! The composed LM head and its cross-entropy: the `[N, V]` logits, `log_softmax` and a gather.

use burn::tensor::{Int, Tensor, TensorData, activation, backend::Backend};

/// `−log softmax(h Wᵀ)[t]` per token `[N]` (0 where unscored), and the scored count.
fn token_nll<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: &[Option<usize>],
) -> (Tensor<B, 1>, usize) {
    logits_nll(hidden.matmul(weight.transpose()), targets) // [N, V] logits
}

/// `−log softmax(logits)[t]` per row `[N]` (0 where unscored), and the scored count.
pub(crate) fn logits_nll<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[Option<usize>],
) -> (Tensor<B, 1>, usize) {
    let n = targets.len();
    let device = logits.device();
    let indices: Vec<i64> = targets.iter().map(|t| t.unwrap_or(0) as i64).collect();
    let keep: Vec<f32> = targets.iter().map(|t| f32::from(t.is_some())).collect();
    let indices = Tensor::<B, 2, Int>::from_data(
        TensorData::new(indices, [n, 1]).convert::<B::IntElem>(),
        &device,
    );
    let keep = Tensor::<B, 1>::from_data(
        TensorData::new(keep, [n]).convert::<B::FloatElem>(),
        &device,
    );
    let picked = activation::log_softmax(logits, 1)
        .gather(1, indices)
        .reshape([n]);
    (picked.neg() * keep, targets.iter().flatten().count())
}

/// The composed loss (the reference behind `lm_head::cross_entropy`): logits, log-softmax,
/// gather.
pub(crate) fn loss<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: &[Option<usize>],
) -> Tensor<B, 1> {
    let (nll, scored) = token_nll(hidden, weight, targets);
    nll.sum().div_scalar(scored.max(1) as f64)
}

/// The composed per-token NLL (the reference behind `lm_head::nll`).
pub(crate) fn nll<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: &[Option<usize>],
) -> Vec<f32> {
    token_nll(hidden, weight, targets)
        .0
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 values")
}
