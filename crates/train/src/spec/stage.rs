//! The `stages:` list: what each stage does, what it trains, and its settings.

use hedgehog_attention::AttentionConfig;
use hedgehog_models::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::loss::{DistillLoss, LogitDistillation};
use super::optimizer::{OptimizerSpec, ScheduleSpec};
use super::passkey::{self, PasskeySpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Task training of the parameters `trainable` selects.
    Train,
    /// Hedgehog stage 1: train only the feature maps on the softmax teacher's attention.
    Distill,
    /// Task training after conversion (same as `train`, named for the tables).
    Finetune,
    /// The task metric on the validation split.
    Eval,
    /// Attention entropy, monotonicity and fidelity on validation batches (`analysis/`).
    Analyze,
    /// Passkey retrieval against context length, and decoding speed and memory (`analysis/`).
    Passkey,
}

impl StageKind {
    pub fn trains(self) -> bool {
        matches!(self, Self::Train | Self::Distill | Self::Finetune)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Distill => "distill",
            Self::Finetune => "finetune",
            Self::Eval => "eval",
            Self::Analyze => "analyze",
            Self::Passkey => "passkey",
        }
    }
}

/// Which parameters a stage trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trainable {
    All,
    FeatureMaps,
    /// Low-rank adapters on the attention projections, merged into the weights when the stage
    /// ends: `{lora: {rank: 8, alpha: 16, targets: [query, key, value, output]}}`.
    Lora(LoraConfig),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

fn default_analysis_batches() -> usize {
    4
}
fn default_bins() -> usize {
    40
}

/// Where each layer's input comes from while an `analyze` stage measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerInputs {
    /// The model as it runs: each layer reads what the layers below it computed.
    #[default]
    Model,
    /// Teacher forcing, as in distillation: every layer's output is its softmax attention's, so
    /// every map is measured on the softmax model's own queries and keys.
    Softmax,
}

/// What an `analyze` stage measures on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSpec {
    #[serde(default)]
    pub layer_inputs: LayerInputs,
    /// Validation batches (of the stage's `batch_size`) to measure.
    #[serde(default = "default_analysis_batches")]
    pub batches: usize,
    /// Bins of the monotonicity curves.
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// Fixed x range of the monotonicity curve's bins (so curves of different runs line up);
    /// default: the data's. x is q·k/√d minus its row's maximum, never above 0, so `[lo, hi]`
    /// bins `[lo, min(hi, 0)]` (`[-12, 12]` bins `[-12, 0]`); see `AnalysisConfig::score_range`.
    #[serde(default)]
    pub score_range: Option<(f64, f64)>,
    /// The layer and head whose attention map of the first example is kept for the plots.
    #[serde(default)]
    pub example_layer: usize,
    #[serde(default)]
    pub example_head: usize,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            layer_inputs: LayerInputs::default(),
            batches: default_analysis_batches(),
            bins: default_bins(),
            score_range: None,
            example_layer: 0,
            example_head: 0,
        }
    }
}

fn default_selection_batches() -> usize {
    4
}

/// `keep_softmax: {layers: 2}` on a distill stage: when its steps are done, the stage measures
/// every layer's distillation loss (its `loss:`) on `batches` training batches and gives the
/// `layers` with the highest loss their softmax attention back (the fla-org hybrid recipe);
/// the measurements and the choice go to `softmax_layers.json` in the run folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepSoftmax {
    pub layers: usize,
    #[serde(default = "default_selection_batches")]
    pub batches: usize,
}

fn default_batch() -> usize {
    8
}
fn default_accumulation() -> usize {
    1
}
fn default_log_every() -> usize {
    10
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub kind: StageKind,
    /// Optimiser steps (training stages give `steps` or `epochs`).
    #[serde(default)]
    pub steps: usize,
    /// Passes over the training examples, rounded up to whole steps.
    #[serde(default)]
    pub epochs: Option<f64>,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_accumulation")]
    pub grad_accumulation: usize,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    #[serde(default)]
    pub schedule: ScheduleSpec,
    /// Clip each parameter's gradient to this L2 norm (burn's `GradientClipping::Norm`).
    #[serde(default)]
    pub clip: Option<f64>,
    /// Parameters that train; `distill` always trains the feature maps only.
    #[serde(default = "default_trainable")]
    pub trainable: Trainable,
    /// Switch the model to this attention when the stage starts (feature maps freshly
    /// initialised, every other weight kept): how a softmax model is converted.
    #[serde(default)]
    pub attention: Option<Vec<AttentionConfig>>,
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Evaluate every this many steps (and at the end); 0 = only at the end.
    #[serde(default)]
    pub eval_every: usize,
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// Settings of an `analyze` stage.
    #[serde(default)]
    pub analysis: Option<AnalysisSpec>,
    /// A label for logs and tables (defaults to the stage kind).
    #[serde(default)]
    pub label: Option<String>,
    /// This stage's result is a row of the spec's report table, under this name.
    #[serde(default)]
    pub row: Option<String>,
    /// Settings of a `passkey` stage.
    #[serde(default)]
    pub passkey: Option<PasskeySpec>,
    /// A distill stage's losses and their weights; absent: `weight_ce: 1`. Left out of the
    /// resolved `spec.yaml` when absent, so runs from before the key keep their saved spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<DistillLoss>,
    /// A train or finetune stage's loss against the frozen softmax model's next-token
    /// distributions, instead of the task's alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_distillation: Option<LogitDistillation>,
    /// A distill stage's choice of layers that go back to softmax when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_softmax: Option<KeepSoftmax>,
}

fn default_trainable() -> Trainable {
    Trainable::All
}

impl StageSpec {
    pub fn label(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| self.kind.name().to_string())
    }

    /// What a distill stage minimises: its `loss:`, or Hedgehog's soft cross-entropy.
    pub fn distill_loss(&self) -> DistillLoss {
        self.loss.unwrap_or_default()
    }

    /// Steps or epochs for training stages only, and the kind's other rules; `index` and
    /// `attention` (what the model runs when the stage starts) are for the messages and the
    /// distillation check.
    pub(super) fn validate(
        &self,
        index: usize,
        attention: &[AttentionConfig],
    ) -> Result<(), String> {
        let at = format!("stages.{index} ({})", self.kind.name());
        if self.batch_size == 0 {
            return Err(format!("{at}: batch_size must be positive"));
        }
        if self.kind.trains() {
            let epochs_ok = self.epochs.is_some_and(|e| e > 0.0 && e.is_finite());
            if (self.steps == 0) == self.epochs.is_none()
                || (self.epochs.is_some() && !epochs_ok)
                || self.grad_accumulation == 0
            {
                return Err(format!(
                    "{at}: give positive steps or epochs (not both); batch_size and grad_accumulation must be positive"
                ));
            }
        } else if self.steps != 0 || self.epochs.is_some() {
            return Err(format!(
                "{at}: an {} stage does not train; remove steps/epochs",
                self.kind.name()
            ));
        }
        if self.kind == StageKind::Distill
            && attention.iter().all(|a| a == &AttentionConfig::Softmax)
        {
            return Err(format!(
                "{at}: distillation needs a linear attention (set `attention:` on this or an earlier stage)"
            ));
        }
        if self.kind == StageKind::Distill && self.trainable != Trainable::All {
            return Err(format!(
                "{at}: distill always trains the feature maps only; remove `trainable`"
            ));
        }
        if let Trainable::Lora(lora) = &self.trainable
            && let Err(e) = lora.validate()
        {
            return Err(format!("{at}: {e}"));
        }
        passkey::validate_stage(self, &at)?;
        if let Some(loss) = &self.loss {
            if self.kind != StageKind::Distill {
                return Err(format!(
                    "{at}: `loss:` weighs the distillation losses and belongs to a distill \
                     stage; a {} stage trains on the task's loss",
                    self.kind.name()
                ));
            }
            loss.validate(&at)?;
        }
        if let Some(logits) = &self.logit_distillation {
            if !matches!(self.kind, StageKind::Train | StageKind::Finetune) {
                return Err(format!(
                    "{at}: `logit_distillation:` is a train or finetune stage's loss; a distill \
                     stage weighs the attention with `loss:`"
                ));
            }
            logits.validate(&at)?;
        }
        if let Some(keep) = &self.keep_softmax {
            if self.kind != StageKind::Distill {
                return Err(format!(
                    "{at}: `keep_softmax:` chooses layers by their distillation loss and belongs \
                     to a distill stage"
                ));
            }
            if keep.layers == 0 || keep.batches == 0 {
                return Err(format!(
                    "{at}: keep_softmax needs layers ≥ 1 and batches ≥ 1 (remove it to keep \
                     every layer linear)"
                ));
            }
        }
        if self.analysis.is_some() && self.kind != StageKind::Analyze {
            return Err(format!("{at}: `analysis:` belongs to an analyze stage"));
        }
        if let Some(early) = &self.early_stopping {
            if !self.kind.trains() || early.patience == 0 {
                return Err(format!(
                    "{at}: early_stopping needs a training stage and patience ≥ 1"
                ));
            }
            if self.kind == StageKind::Distill {
                return Err(format!(
                    "{at}: early_stopping watches the task metric, which distillation does not train"
                ));
            }
        }
        self.optimizer.validate(&at)
    }
}
