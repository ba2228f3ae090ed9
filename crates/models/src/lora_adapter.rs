//! LoRA (Hu et al. 2021, *LoRA: Low-Rank Adaptation of Large Language Models*, §4.1) on the
//! attention projections q, k, v and o.
//!
//! A frozen projection `h = x W + b` (burn's `Linear`: `W: [in, out]`) becomes
//! `h = x W + b + (α / r) · (x A) B` with `A: [in, r]` (`down`) and `B: [r, out]` (`up`). As in
//! PEFT (`peft/tuners/lora/layer.py`, `reset_lora_parameters`), `A` starts Kaiming-uniform
//! (`a = √5`: `U(−1/√in, 1/√in)`) and `B` at 0, so attaching adapters leaves the model's outputs
//! unchanged. Merging folds the product into the weight, `W ← W + (α / r) · A B`, after which the
//! model is a plain one again: checkpoints store merged weights only.

use burn::module::{Module, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Distribution, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// A projection of the attention layer that can carry an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    Query,
    Key,
    Value,
    Output,
}

impl LoraTarget {
    /// q, k, v and o: the Hedgehog stage-2 setting for Llama-2 (method.md §3: r 8, α 16).
    pub const ALL: [LoraTarget; 4] = [
        LoraTarget::Query,
        LoraTarget::Key,
        LoraTarget::Value,
        LoraTarget::Output,
    ];
}

fn all_targets() -> Vec<LoraTarget> {
    LoraTarget::ALL.to_vec()
}

/// Rank, scale and targets of the adapters (YAML/JSON: `{rank: 8, alpha: 16, targets: [query,
/// value]}`; `targets` defaults to all four projections).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// `r`, the inner width of `A B`.
    pub rank: usize,
    /// `α`; the update is scaled by `α / r` so that changing `r` needs little retuning of the
    /// learning rate (Hu et al. §4.1).
    pub alpha: f64,
    #[serde(default = "all_targets")]
    pub targets: Vec<LoraTarget>,
}

impl LoraConfig {
    /// Adapters of rank `rank` and scale `alpha / rank` on q, k, v and o.
    pub fn new(rank: usize, alpha: f64) -> Self {
        Self {
            rank,
            alpha,
            targets: all_targets(),
        }
    }

    pub fn with_targets(mut self, targets: Vec<LoraTarget>) -> Self {
        self.targets = targets;
        self
    }

    /// `α / r`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Rank ≥ 1, `α` finite and positive, at least one target.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.rank == 0 {
            return Err(ModelError::Config(
                "LoRA rank must be at least 1, got 0".into(),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(ModelError::Config(format!(
                "LoRA alpha must be finite and positive, got {}",
                self.alpha
            )));
        }
        if self.targets.is_empty() {
            return Err(ModelError::Config(
                "LoRA targets are empty: list at least one of query, key, value, output".into(),
            ));
        }
        Ok(())
    }

    /// A fresh adapter for `linear` when `target` is listed, else `None`.
    pub(crate) fn adapter<B: Backend>(
        &self,
        target: LoraTarget,
        linear: &Linear<B>,
        device: &B::Device,
    ) -> Option<Lora<B>> {
        if !self.targets.contains(&target) {
            return None;
        }
        let [input, output] = linear.weight.dims();
        let bound = 1.0 / (input as f64).sqrt();
        Some(Lora {
            down: Param::from_tensor(Tensor::random(
                [input, self.rank],
                Distribution::Uniform(-bound, bound),
                device,
            )),
            up: Param::from_tensor(Tensor::zeros([self.rank, output], device)),
            scale: self.scale(),
        })
    }
}

/// One low-rank update `(α / r) · A B` of a projection.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    /// `A: [in, r]`.
    pub down: Param<Tensor<B, 2>>,
    /// `B: [r, out]`, 0 at attachment.
    pub up: Param<Tensor<B, 2>>,
    /// `α / r`.
    pub scale: f64,
}

impl<B: Backend> Lora<B> {
    /// `(α / r) · (x A) B` for `x: [B, T, in]` → `[B, T, out]`; `x A` first keeps the cost at
    /// `O(T r (in + out))` instead of forming `A B`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, input] = x.dims();
        let [_, output] = self.up.dims();
        x.reshape([b * t, input])
            .matmul(self.down.val())
            .matmul(self.up.val()) // [B·T, out]
            .mul_scalar(self.scale)
            .reshape([b, t, output])
    }

    /// `W + (α / r) · A B` as the weight of `linear` (same parameter id, a fresh leaf that
    /// requires a gradient exactly when the old weight did).
    pub fn merge_into(self, mut linear: Linear<B>) -> Linear<B> {
        let delta = self
            .down
            .val()
            .matmul(self.up.val())
            .mul_scalar(self.scale)
            .detach(); // [in, out]
        let require_grad = linear.weight.is_require_grad();
        linear.weight = linear.weight.map(|weight| {
            // The sum is a graph node on autodiff backends; detaching makes it a leaf again.
            (weight + delta).detach().set_require_grad(require_grad)
        });
        linear
    }

    pub(crate) fn param_ids(&self) -> [ParamId; 2] {
        [self.down.id, self.up.id]
    }
}

/// The adapters of one attention layer (`None`: that projection is not adapted).
#[derive(Module, Debug)]
pub struct LoraAdapters<B: Backend> {
    pub query: Option<Lora<B>>,
    pub key: Option<Lora<B>>,
    pub value: Option<Lora<B>>,
    pub output: Option<Lora<B>>,
}

impl<B: Backend> LoraAdapters<B> {
    pub fn get(&self, target: LoraTarget) -> Option<&Lora<B>> {
        match target {
            LoraTarget::Query => self.query.as_ref(),
            LoraTarget::Key => self.key.as_ref(),
            LoraTarget::Value => self.value.as_ref(),
            LoraTarget::Output => self.output.as_ref(),
        }
    }
}
