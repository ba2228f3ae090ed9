//! What the training loop needs of a task: its model, a loss on a list of training examples,
//! the validation metric, and captured attention for the analysis.
//!
//! One implementation per task: language modelling ([`lm`], GPT-2 or Llama), associative recall
//! ([`recall`], a causal LM from scratch), GLUE ([`glue`], BERT) and image classification
//! ([`images`], ViT).

mod decoder;
pub mod distill;

pub use decoder::TextGenerator;
pub mod glue;
pub mod images;
pub mod lm;
pub mod logits;
pub mod models;
pub mod recall;

use std::collections::BTreeMap;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData, activation};
use hedgehog_models::checkpoint::Checkpoint;
use hedgehog_models::{AttentionCapture, AttentionLayers, AttentionMode};

pub use self::distill::{DistillBatch, DistillParts, DistillValue, distillation_loss};
use crate::error::RunError;
use crate::spec::LogitDistillation;

/// The trained model's inference-mode twin (no autodiff, dropout off).
pub type Inner<B, M> = <M as AutodiffModule<B>>::InnerModule;

/// A validation result: every metric of the task, and the one tables and early stopping use.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub metrics: BTreeMap<String, f64>,
    pub headline: String,
}

impl Evaluation {
    pub fn headline_value(&self) -> f64 {
        self.metrics[&self.headline]
    }

    /// Whether `candidate` beats `best` by more than `min_delta` for this metric.
    pub fn improves(metric: &str, candidate: f64, best: f64, min_delta: f64) -> bool {
        if lower_is_better(metric) {
            candidate < best - min_delta
        } else {
            candidate > best + min_delta
        }
    }
}

/// Perplexity and negative log-likelihood fall as models improve; every other metric rises.
pub fn lower_is_better(metric: &str) -> bool {
    matches!(metric, "perplexity" | "nll")
}

/// Attention captured on one batch for the analysis.
pub struct Captured<B: Backend> {
    /// One entry per layer.
    pub layers: Vec<AttentionCapture<B>>,
    /// Real tokens per example (the rest is padding); `None` when nothing is padded.
    pub lengths: Option<Vec<usize>>,
    /// The first example's tokens as text, for the attention-map plots.
    pub tokens: Vec<String>,
    pub causal: bool,
}

/// Facts about a loaded task.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// How "ours" is described in tables (model and data).
    pub setting: String,
    /// Examples one epoch visits.
    pub train_examples: usize,
    /// Examples validation and analysis draw from.
    pub eval_examples: usize,
    /// Tokens (or patches) the model reads per example, for the throughput metric.
    pub tokens_per_example: usize,
    /// `Some("SST-2")` for GLUE runs.
    pub glue_task: Option<String>,
    /// One line on the data, printed when a run starts.
    pub describe: String,
}

/// A task the pipelines can train, distil, evaluate and analyse.
pub trait Task<B: AutodiffBackend>: Sync {
    /// Its inference twin is shared by the device threads as logit distillation's teacher.
    type Model: AutodiffModule<B, InnerModule: Sync>
        + Checkpoint<B>
        + AttentionLayers<B>
        + Send
        + 'static;

    fn info(&self) -> TaskInfo;

    /// The run's first model: a preset with random weights or pretrained weights, with the
    /// spec's attention (called after the backend RNG is seeded).
    fn build_model(&self, device: &B::Device) -> Result<Self::Model, RunError>;

    /// Mean task loss over `examples` (training indices); `seed` drives data augmentation.
    fn loss(
        &self,
        model: &Self::Model,
        examples: &[usize],
        seed: u64,
        device: &B::Device,
    ) -> Result<Tensor<B, 1>, RunError>;

    /// Every layer's attention on training `examples` for the distillation loss
    /// ([`distillation_loss`]), the model run in `mode` (`Distill`, `DistillOutputs` or
    /// `DistillOutputsOnly`, by what is weighed: see [`distill::distill_mode`]), with the padding of the query
    /// rows. `seed` as for [`Task::loss`].
    fn distill_batch(
        &self,
        model: &Self::Model,
        examples: &[usize],
        mode: AttentionMode,
        seed: u64,
        device: &B::Device,
    ) -> Result<DistillBatch<B>, RunError>;

    /// The frozen teacher of logit distillation: the run's pretrained model as loaded, with
    /// softmax attention in every layer. Only language modelling has one.
    fn teacher(&self, device: &B::Device) -> Result<Inner<B, Self::Model>, RunError> {
        let _ = device;
        Err(no_logit_distillation())
    }

    /// `weights.kl × KL(teacher ‖ model) + weights.lm × task loss` of the next-token
    /// distributions on training `examples` ([`logits::logit_distillation_loss`]).
    fn logit_distillation_loss(
        &self,
        model: &Self::Model,
        teacher: &Inner<B, Self::Model>,
        examples: &[usize],
        weights: &LogitDistillation,
        device: &B::Device,
    ) -> Result<DistillValue<B>, RunError> {
        let _ = (model, teacher, examples, weights, device);
        Err(no_logit_distillation())
    }

    /// The validation metrics.
    fn evaluate(
        &self,
        model: &Inner<B, Self::Model>,
        device: &B::Device,
    ) -> Result<Evaluation, RunError>;

    /// Every layer's attention on validation `examples`, with the layers run in `mode`
    /// (`Distill`: each layer's output is softmax's, so every layer sees the softmax model's
    /// hidden states).
    fn capture(
        &self,
        model: &Inner<B, Self::Model>,
        examples: &[usize],
        mode: AttentionMode,
        device: &B::Device,
    ) -> Result<Captured<B::InnerBackend>, RunError>;

    /// The model as a text generator, for evaluations that prompt it (the `passkey` stage);
    /// a task whose model does not write text says so.
    fn text_generator<'m>(
        &'m self,
        model: &'m Inner<B, Self::Model>,
        device: &'m B::Device,
    ) -> Result<TextGenerator<'m>, RunError> {
        let _ = (model, device);
        Err(RunError::Config(
            "this task's model does not generate text: passkey retrieval needs a \
             language_modeling task with a decoder (gpt2 or llama)"
                .into(),
        ))
    }
}

fn no_logit_distillation() -> RunError {
    RunError::Config(
        "logit distillation needs a language_modeling task (a decoder's next-token \
         distributions); remove `logit_distillation:` from this task's stages"
            .into(),
    )
}

/// Cross-entropy of `logits: [N, C]` against `targets` (class indices), averaged over the
/// entries whose target is not `ignore` (zoology's MQAR scores only the query positions).
pub fn masked_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[i64],
    ignore: i64,
    device: &B::Device,
) -> Result<Tensor<B, 1>, RunError> {
    let [n, classes] = logits.dims();
    if targets.len() != n {
        return Err(RunError::Config(format!(
            "{} targets for {n} rows of logits",
            targets.len()
        )));
    }
    let keep: Vec<f32> = targets.iter().map(|&t| f32::from(t != ignore)).collect();
    let count = keep.iter().sum::<f32>();
    if count == 0.0 {
        return Err(RunError::Config(
            "a batch without any scored position; use more examples per batch".into(),
        ));
    }
    let indices: Vec<i64> = targets
        .iter()
        .map(|&t| if t == ignore { 0 } else { t })
        .collect();
    if let Some(bad) = indices.iter().find(|&&t| t < 0 || t as usize >= classes) {
        return Err(RunError::Config(format!(
            "target {bad} is outside the model's {classes} classes"
        )));
    }
    let indices = Tensor::<B, 2, Int>::from_data(
        TensorData::new(indices, [n, 1]).convert::<B::IntElem>(),
        device,
    );
    let keep = Tensor::<B, 1>::from_data(TensorData::new(keep, [n]), device);
    let picked = activation::log_softmax(logits, 1)
        .gather(1, indices)
        .reshape([n]); // [N]
    Ok((picked * keep).sum().neg().div_scalar(count as f64))
}

/// Cross-entropy of class `logits: [N, C]` against one class index per row.
pub fn class_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    classes: Vec<i64>,
    device: &B::Device,
) -> Tensor<B, 1> {
    let n = classes.len();
    let targets = Tensor::<B, 1, Int>::from_data(
        TensorData::new(classes, [n]).convert::<B::IntElem>(),
        device,
    );
    burn::nn::loss::CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits, targets)
}

/// The index of the largest value in each row of `[N, C]` values (row-major).
pub fn argmax_rows(values: &[f32], classes: usize) -> Vec<usize> {
    values
        .chunks(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv { (i, v) } else { (bi, bv) }
                })
                .0
        })
        .collect()
}

/// A tensor's values as `f32`.
pub fn to_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>, RunError> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| RunError::Config(format!("reading a tensor: {e:?}")))
}

/// `[N, T]` token ids as an Int tensor.
pub fn int_tensor<B: Backend>(
    values: Vec<i64>,
    shape: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::from_data(
        TensorData::new(values, shape).convert::<B::IntElem>(),
        device,
    )
}

/// Each epoch visits every example once in a fresh seeded order; sample `p` of the stage is
/// `order(p / n)[p % n]`, so any step's batch is a pure function of (seed, step).
#[derive(Clone, Debug)]
pub struct EpochSampler {
    examples: usize,
    seed: u64,
}

impl EpochSampler {
    pub fn new(examples: usize, seed: u64) -> Self {
        Self { examples, seed }
    }

    fn order(&self, epoch: usize) -> Vec<usize> {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..self.examples).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        order.shuffle(&mut rng);
        order
    }

    /// Examples at stage sample positions `start..start + count`.
    pub fn take(&self, start: usize, count: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(count);
        let mut cached: Option<(usize, Vec<usize>)> = None;
        for position in start..start + count {
            let epoch = position / self.examples;
            if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                cached = Some((epoch, self.order(epoch)));
            }
            let (_, order) = cached.as_ref().expect("just filled");
            out.push(order[position % self.examples]);
        }
        out
    }
}

/// A seeded subset of `0..total` of size `limit` (all when `None` or larger), in index order.
pub fn subset(total: usize, limit: Option<usize>, seed: u64) -> Vec<usize> {
    match limit {
        Some(limit) if limit < total => {
            let mut chosen = EpochSampler::new(total, seed).take(0, limit);
            chosen.sort_unstable();
            chosen
        }
        _ => (0..total).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_visits_every_example_once_per_epoch() {
        let sampler = EpochSampler::new(7, 3);
        let mut first: Vec<usize> = sampler.take(0, 7);
        first.sort_unstable();
        assert_eq!(first, (0..7).collect::<Vec<_>>());
        assert_eq!(sampler.take(5, 4)[..2], sampler.take(0, 7)[5..]);
        assert_ne!(
            sampler.take(0, 7),
            sampler.take(7, 7),
            "a new order each epoch"
        );
    }

    #[test]
    fn argmax_picks_the_first_maximum() {
        assert_eq!(argmax_rows(&[0.1, 0.9, 0.9, 2.0, -1.0, 0.0], 3), vec![1, 0]);
    }
}
