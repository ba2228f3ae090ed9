//! Experiment specs: plain serde structs with `deny_unknown_fields` and documented defaults,
//! read from YAML (serde-saphyr: errors carry line and column and name the allowed keys), with
//! `--set dotted.key=value` overrides.

use std::path::{Path, PathBuf};

use hedgehog_attention::AttentionConfig;
use serde::{Deserialize, Serialize};

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
fn default_device() -> String {
    "cpu".into()
}

/// A whole experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Run folders go to `results/<name>/<run-id>/`.
    pub name: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N` (CUDA needs the `cuda` build feature).
    #[serde(default = "default_device")]
    pub device: String,
    pub model: ModelSpec,
    /// The attention the model starts with (one for all layers, or one per layer).
    #[serde(default)]
    pub attention: Vec<AttentionConfig>,
    pub task: TaskSpec,
    pub stages: Vec<StageSpec>,
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Gpt2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// GPT-2 small, 124M.
    Gpt2,
    Gpt2CpuSmall,
    Gpt2Tiny,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub family: Family,
    /// A named size; ignored when `pretrained` is given.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// An HF checkpoint directory (`config.json` + `model.safetensors`) to start from.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Override of the preset's context length (GPT-2 `n_positions`).
    #[serde(default)]
    pub context: Option<usize>,
}

fn default_stride_fraction() -> usize {
    2
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskSpec {
    /// Next-token prediction on a WikiText-format corpus (`wiki.{train,valid,test}.tokens`).
    LanguageModeling {
        path: PathBuf,
        /// Tokens per training block and evaluation window.
        context: usize,
        /// Perplexity windows advance by `context / stride_divisor` tokens.
        #[serde(default = "default_stride_fraction")]
        stride_divisor: usize,
        /// Where GPT-2 token caches go (default `data/cache`).
        #[serde(default)]
        cache: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Next-token training of the parameters `trainable` selects.
    Train,
    /// Hedgehog stage 1: train only the feature maps on the softmax teacher's attention.
    Distill,
    /// Task training after conversion (same as `train`, named for the tables).
    Finetune,
    /// Perplexity on the validation split.
    Eval,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trainable {
    All,
    FeatureMaps,
}

fn default_lr() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerSpec {
    Adamw {
        #[serde(default = "default_lr")]
        lr: f64,
        #[serde(default = "default_weight_decay")]
        weight_decay: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
    },
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self::Adamw {
            lr: default_lr(),
            weight_decay: default_weight_decay(),
            beta1: default_beta1(),
            beta2: default_beta2(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleSpec {
    Constant {
        #[serde(default)]
        warmup_steps: usize,
    },
    /// Linear warm-up, then cosine decay to `min_ratio · lr` at the last step.
    Cosine {
        #[serde(default)]
        warmup_steps: usize,
        #[serde(default)]
        min_ratio: f64,
    },
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        Self::Constant { warmup_steps: 0 }
    }
}

impl ScheduleSpec {
    /// Learning-rate multiplier at `step` (0-based) of `total`.
    pub fn factor(&self, step: usize, total: usize) -> f64 {
        let (warmup, min_ratio, cosine) = match *self {
            Self::Constant { warmup_steps } => (warmup_steps, 1.0, false),
            Self::Cosine {
                warmup_steps,
                min_ratio,
            } => (warmup_steps, min_ratio, true),
        };
        if step < warmup {
            return (step + 1) as f64 / warmup as f64;
        }
        if !cosine || total <= warmup + 1 {
            return 1.0;
        }
        let progress = (step - warmup) as f64 / (total - warmup - 1) as f64;
        min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
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
    /// Optimiser steps (ignored by `eval`).
    #[serde(default)]
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_accumulation")]
    pub grad_accumulation: usize,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    #[serde(default)]
    pub schedule: ScheduleSpec,
    /// Clip the global gradient norm (none when absent).
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
    /// Validation perplexity every this many steps (and at the end); 0 = only at the end.
    #[serde(default)]
    pub eval_every: usize,
    /// A label for tables (defaults to the stage kind).
    #[serde(default)]
    pub label: Option<String>,
}

fn default_trainable() -> Trainable {
    Trainable::All
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

/// `key=value` with a dotted key (`stages.0.steps=10`); the value is parsed as YAML.
fn apply_override(root: &mut serde_json::Value, assignment: &str) -> Result<(), String> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set `{assignment}`: expected dotted.key=value"))?;
    let value: serde_json::Value = serde_saphyr::from_str(raw)
        .map_err(|e| format!("--set {key}: value `{raw}` is not valid YAML: {e}"))?;
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        node = match node {
            serde_json::Value::Object(map) => {
                if last {
                    map.insert(part.to_string(), value);
                    return Ok(());
                }
                map.entry(part.to_string())
                    .or_insert(serde_json::Value::Object(Default::default()))
            }
            serde_json::Value::Array(items) => {
                let index: usize = part
                    .parse()
                    .map_err(|_| format!("--set {key}: `{part}` indexes a list, use a number"))?;
                let len = items.len();
                let item = items.get_mut(index).ok_or_else(|| {
                    format!("--set {key}: index {index} is past the list's {len} entries")
                })?;
                if last {
                    *item = value;
                    return Ok(());
                }
                item
            }
            _ => {
                return Err(format!(
                    "--set {key}: `{part}` is below a value that is not a mapping or list"
                ));
            }
        };
    }
    Ok(())
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
                apply_override(&mut tree, assignment).map_err(parse_error)?;
            }
            spec = serde_json::from_value(tree)
                .map_err(|e| parse_error(format!("after --set: {e}")))?;
        }
        spec.validate().map_err(|message| SpecError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(spec)
    }

    /// Checks what serde cannot: sizes, stage order, paths.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains('/') {
            return Err(format!(
                "name `{}` must be non-empty and contain no `/`",
                self.name
            ));
        }
        if self.device != "cpu" && self.device != "cuda" && !self.device.starts_with("cuda:") {
            return Err(format!(
                "device `{}`: expected cpu, cuda or cuda:N",
                self.device
            ));
        }
        if self.model.preset.is_none() && self.model.pretrained.is_none() {
            return Err("model: give a `preset` or a `pretrained` directory".into());
        }
        if self.stages.is_empty() {
            return Err("stages: at least one stage is needed".into());
        }
        let TaskSpec::LanguageModeling {
            context,
            stride_divisor,
            ..
        } = &self.task;
        if *context < 2 || *stride_divisor < 2 {
            return Err(format!(
                "task: need context ≥ 2 and stride_divisor ≥ 2, got {context} and {stride_divisor}"
            ));
        }
        let mut current = &self.attention;
        for (i, stage) in self.stages.iter().enumerate() {
            let at = format!("stages.{i} ({:?})", stage.kind);
            if let Some(attention) = &stage.attention {
                current = attention;
            }
            if stage.kind != StageKind::Eval
                && (stage.steps == 0 || stage.batch_size == 0 || stage.grad_accumulation == 0)
            {
                return Err(format!(
                    "{at}: steps, batch_size and grad_accumulation must be positive"
                ));
            }
            if stage.kind == StageKind::Distill
                && current.iter().all(|a| a == &AttentionConfig::Softmax)
            {
                return Err(format!(
                    "{at}: distillation needs a linear attention (set `attention:` on this or an earlier stage)"
                ));
            }
            let OptimizerSpec::Adamw { lr, .. } = stage.optimizer;
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(format!("{at}: optimizer.lr must be positive, got {lr}"));
            }
        }
        if self.checkpoint.every == 0 || self.checkpoint.keep == 0 {
            return Err("checkpoint: every and keep must be positive".into());
        }
        Ok(())
    }
}
