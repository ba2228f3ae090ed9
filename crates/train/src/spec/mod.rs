//! Experiment specs: plain serde structs with `deny_unknown_fields` and documented defaults,
//! read from YAML (serde-saphyr: errors carry line and column and name the allowed keys), with
//! `--set dotted.key=value` overrides and `sweep:` grids that expand into one spec per point.
//!
//! One file per section, each validating itself next to its definition: `model`, `task`,
//! `stage`, `passkey` (a passkey stage's settings), `optimizer`, `loss` (a distill stage's
//! losses), and `sweep` (overrides and grids); this file holds the whole spec, its small
//! sections (device, checkpoint, report) and `load`.

mod distributed;
mod loss;
mod model;
mod optimizer;
mod passkey;
mod stage;
mod sweep;
mod task;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hedgehog_attention::{AttentionConfig, FeatureMapConfig};
use hedgehog_tasks::recall::RecallConfig;
use serde::{Deserialize, Serialize};

pub use distributed::DistributedSpec;
pub use loss::{DistillComponent, DistillLoss, LogitDistillation};
pub use model::{Family, ModelSpec, Preset};
pub use optimizer::{OptimizerSpec, ScheduleSpec};
pub use passkey::PasskeySpec;
pub use stage::{
    AnalysisSpec, EarlyStopping, KeepSoftmax, LayerInputs, StageKind, StageSpec, Trainable,
};
pub use sweep::SweepPoint;
pub use task::{TaskSpec, TransformSpec};

/// Everything that can be wrong with a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn default_seed() -> u64 {
    0
}

/// `device: auto` (the default: CUDA when the build has it and a GPU is visible, else the
/// CPU), `device: cpu`, `device: cuda:1`, or a list of devices for data-parallel training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeviceSpec {
    One(String),
    Many(Vec<String>),
}

impl Default for DeviceSpec {
    fn default() -> Self {
        Self::One(AUTO_DEVICE.into())
    }
}

/// The device name that the program resolves at start-up.
pub const AUTO_DEVICE: &str = "auto";

impl DeviceSpec {
    /// `device: auto`: the program picks.
    pub fn is_auto(&self) -> bool {
        self.names() == [AUTO_DEVICE]
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            Self::One(name) => vec![name.clone()],
            Self::Many(names) => names.clone(),
        }
    }
}

/// A whole experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Run folders go to `results/<name>/run-NNN/`.
    pub name: String,
    /// Model initialisation, data order and dropout are functions of the seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `auto` (default), `cpu`, `cuda`, `cuda:N` (CUDA needs the `cuda` build feature), or a
    /// list of them: the batch of every step is split across the devices and their gradients
    /// summed.
    #[serde(default)]
    pub device: DeviceSpec,
    pub model: ModelSpec,
    /// The attention the model starts with (one for all layers, or one per layer; empty =
    /// softmax, or what a pretrained checkpoint says).
    #[serde(default)]
    pub attention: Vec<AttentionConfig>,
    pub task: TaskSpec,
    pub stages: Vec<StageSpec>,
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
    /// Which paper table the run's rows belong to (`hedgehog tables`).
    #[serde(default)]
    pub report: Option<ReportSpec>,
    /// Describes "ours" in the tables; derived from the model and task when absent.
    #[serde(default)]
    pub setting: Option<String>,
    /// A smaller spec of the same experiment sized for a CPU, suggested when this one's cost
    /// estimate asks for `--yes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_scale: Option<PathBuf>,
    /// This process's rank of a run split over several processes (burn-collective; the
    /// binary's `collective` feature). Absent: one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<DistributedSpec>,
    /// A grid of dotted keys, each with a list of values; every combination is one run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sweep: BTreeMap<String, Vec<serde_json::Value>>,
}

fn default_checkpoint_every() -> usize {
    100
}
fn default_keep() -> usize {
    2
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Save every this many optimiser steps (and at the end of each stage).
    #[serde(default = "default_checkpoint_every")]
    pub every: usize,
    /// How many checkpoints to keep.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        Self {
            every: default_checkpoint_every(),
            keep: default_keep(),
        }
    }
}

/// The paper tables `hedgehog tables` builds (method.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableId {
    /// Table 1: BERT finetuned conversion (CoLA) per feature map.
    FinetunedConversion,
    /// Table 2: associative recall per feature map.
    Recall,
    /// GLUE finetuned conversion of BERT-base.
    Glue,
    /// ViT-B/16 on ImageNet.
    Vit,
    /// GPT-2 125M pretrained conversion on WikiText-103.
    Gpt2Conversion,
    /// Language modelling from scratch (the paper's table is not available).
    LmScratch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    pub table: TableId,
}

impl Spec {
    /// Reads and checks a spec file, then applies `overrides` (`dotted.key=value`).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_error = |message: String| SpecError::Parse {
            path: path.to_path_buf(),
            message,
        };
        // Parsed straight into the structs first, so errors carry the line and column.
        let mut spec: Spec =
            serde_saphyr::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        if !overrides.is_empty() {
            let mut tree: serde_json::Value =
                serde_saphyr::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
            for assignment in overrides {
                sweep::apply_override(&mut tree, assignment).map_err(parse_error)?;
            }
            spec = serde_json::from_value(tree)
                .map_err(|e| parse_error(format!("after --set: {e}")))?;
        }
        let invalid = |message: String| SpecError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        spec.validate().map_err(invalid)?;
        // Every point of a sweep must be a valid spec too.
        spec.expand().map_err(invalid)?;
        Ok(spec)
    }

    /// Every distillation loss some distill stage of the spec weighs, in
    /// [`DistillComponent::ALL`]'s order: the run's log columns, fixed from its start.
    pub fn distill_components(&self) -> Vec<DistillComponent> {
        let mut used: Vec<DistillComponent> = self
            .stages
            .iter()
            .flat_map(|stage| match stage.kind {
                StageKind::Distill => stage.distill_loss().components(),
                _ => stage
                    .logit_distillation
                    .map(|logits| logits.components())
                    .unwrap_or_default(),
            })
            .map(|(component, _)| component)
            .collect();
        used.sort();
        used.dedup();
        used
    }

    /// The generator settings of an associative-recall task.
    pub fn recall_config(&self) -> Option<RecallConfig> {
        self.task.recall_config()
    }

    /// Checks what serde cannot: sizes, stage order, pairings of model and task, maps that
    /// cannot cover the task's positions.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains('/') {
            return Err(format!(
                "name `{}` must be non-empty and contain no `/`",
                self.name
            ));
        }
        let devices = self.device.names();
        if devices.is_empty() {
            return Err("device: give at least one device".into());
        }
        for device in &devices {
            if device == AUTO_DEVICE && devices.len() > 1 {
                return Err(
                    "device: `auto` picks one device; list cpu or cuda:N devices \
                            to split batches"
                        .into(),
                );
            }
            if device != AUTO_DEVICE
                && device != "cpu"
                && device != "cuda"
                && !device.starts_with("cuda:")
            {
                return Err(format!(
                    "device `{device}`: expected auto, cpu, cuda or cuda:N"
                ));
            }
        }
        self.model.validate()?;
        self.task.validate(self.model.family)?;
        if self.stages.is_empty() {
            return Err("stages: at least one stage is needed".into());
        }
        check_positions("attention", &self.attention, self.task.sequence_len())?;
        let mut current = &self.attention;
        for (i, stage) in self.stages.iter().enumerate() {
            if let Some(attention) = &stage.attention {
                current = attention;
                let at = format!("stages.{i}.attention");
                check_positions(&at, attention, self.task.sequence_len())?;
            }
            stage.validate(i, current)?;
            if stage.logit_distillation.is_some() && self.model.pretrained.is_none() {
                return Err(format!(
                    "stages.{i} ({}): logit distillation's teacher is the pretrained model with \
                     softmax attention, but model has no `pretrained` weights; give \
                     model.pretrained, or remove `logit_distillation:`",
                    stage.kind.name()
                ));
            }
        }
        passkey::validate_task(&self.stages, &self.task)?;
        if let Some(distributed) = &self.distributed {
            distributed.validate(&self.stages, devices.len())?;
        }
        if self.checkpoint.every == 0 || self.checkpoint.keep == 0 {
            return Err("checkpoint: every and keep must be positive".into());
        }
        Ok(())
    }
}

/// cosFormer's reweighting is defined up to its `max_len` positions; a task whose sequences
/// are longer would fail at its first long batch, after the run folder exists.
fn check_positions(
    at: &str,
    attention: &[AttentionConfig],
    sequence_len: Option<usize>,
) -> Result<(), String> {
    let Some(len) = sequence_len else {
        return Ok(());
    };
    for (layer, config) in attention.iter().enumerate() {
        if let AttentionConfig::Linear {
            feature_map: FeatureMapConfig::Cosformer { max_len },
            ..
        } = config
            && *max_len < len
        {
            return Err(format!(
                "{at}.{layer}: cosformer max_len {max_len} is shorter than the task's \
                 {len}-token sequences (positions past max_len are undefined for its \
                 reweighting); set max_len to at least {len}"
            ));
        }
    }
    Ok(())
}
