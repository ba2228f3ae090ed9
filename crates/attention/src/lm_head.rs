//! A language model's output head fused with its cross-entropy: `logits = h Wᵀ` (tied to the
//! embedding in GPT-2 and SmolLM2, or a separate `lm_head`), and the mean negative
//! log-likelihood `(1/n) Σ_i (logsumexp_j logits_ij − logits_{i,t_i})` over the `n` tokens with a
//! target. On the CPU backend the `[N, V]` logits are never kept (see
//! [`Kernels::lm_head_loss`](crate::kernels::Kernels::lm_head_loss)); this is where ~90% of a
//! small model's training step went.

use burn::tensor::{Tensor, backend::Backend};

use crate::error::{AttentionError, config_error};
use crate::kernels;
use crate::reference::lm_head::logits_nll;

fn check<B: Backend>(
    hidden: &Tensor<B, 2>,
    weight: &Tensor<B, 2>,
    targets: &[Option<usize>],
) -> Result<(), AttentionError> {
    let [n, d] = hidden.dims();
    let [vocab, wd] = weight.dims();
    if wd != d {
        return Err(AttentionError::Shape {
            what: "LM head weight",
            expected: format!("[V, {d}] (one row per token of the vocabulary)"),
            got: vec![vocab, wd],
        });
    }
    if targets.len() != n {
        return Err(config_error(
            "LM head",
            format!("{} targets for {n} hidden states", targets.len()),
        ));
    }
    if let Some(bad) = targets.iter().flatten().find(|&&t| t >= vocab) {
        return Err(config_error(
            "LM head",
            format!("target token {bad} is outside the vocabulary of {vocab}"),
        ));
    }
    Ok(())
}

/// The mean cross-entropy `[1]` of `hidden: [N, d]` through the head `weight: [V, d]` against
/// `targets` (`None` = not scored), with gradients to both. Errors when no token is scored.
pub fn cross_entropy<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: &[Option<usize>],
) -> Result<Tensor<B, 1>, AttentionError> {
    check(&hidden, &weight, targets)?;
    if targets.iter().all(Option::is_none) {
        return Err(config_error(
            "LM head",
            "no token has a target; a batch needs at least one scored position",
        ));
    }
    Ok(kernels::for_backend::<B>().lm_head_loss(hidden, weight, targets))
}

/// The mean cross-entropy `[1]` of given `logits: [N, V]` (a head with a bias, say): the
/// composed `log_softmax` and gather, on every backend.
pub fn logits_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[Option<usize>],
) -> Result<Tensor<B, 1>, AttentionError> {
    let [n, vocab] = logits.dims();
    if targets.len() != n {
        return Err(config_error(
            "LM head",
            format!("{} targets for {n} rows of logits", targets.len()),
        ));
    }
    if let Some(bad) = targets.iter().flatten().find(|&&t| t >= vocab) {
        return Err(config_error(
            "LM head",
            format!("target token {bad} is outside the vocabulary of {vocab}"),
        ));
    }
    let (nll, scored) = logits_nll(logits, targets);
    if scored == 0 {
        return Err(config_error(
            "LM head",
            "no token has a target; a batch needs at least one scored position",
        ));
    }
    Ok(nll.sum().div_scalar(scored as f64))
}

/// Each token's negative log-likelihood `−log p(t_i)` in nats (0 where the target is `None`),
/// without gradients: perplexity.
pub fn nll<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: &[Option<usize>],
) -> Result<Vec<f32>, AttentionError> {
    check(&hidden, &weight, targets)?;
    Ok(kernels::for_backend::<B>().lm_head_nll(hidden.detach(), weight.detach(), targets))
}
