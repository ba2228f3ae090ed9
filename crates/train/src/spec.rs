//! Experiment specs: plain serde structs with `deny_unknown_fields` and documented defaults,
//! read from YAML (serde-saphyr: errors carry line and column and name the allowed keys), with
//! `--set dotted.key=value` overrides and `sweep:` grids that expand into one spec per point.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hedgehog_attention::AttentionConfig;
use hedgehog_models::lora::LoraConfig;
use hedgehog_tasks::glue::GlueTask;
use hedgehog_tasks::images::ImageTransform;
use hedgehog_tasks::recall::RecallConfig;
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

/// `device: cpu`, `device: cuda:1`, or a list of devices for data-parallel training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeviceSpec {
    One(String),
    Many(Vec<String>),
}

impl Default for DeviceSpec {
    fn default() -> Self {
        Self::One("cpu".into())
    }
}

impl DeviceSpec {
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
    /// `cpu`, `cuda`, `cuda:N` (CUDA needs the `cuda` build feature), or a list of them: the
    /// batch of every step is split across the devices and their gradients summed.
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
    /// A grid of dotted keys, each with a list of values; every combination is one run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sweep: BTreeMap<String, Vec<serde_json::Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Gpt2,
    Bert,
    Vit,
    Llama,
}

/// Named sizes (see `hedgehog-models`' README for parameter counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// GPT-2 small, 124M.
    Gpt2,
    Gpt2CpuSmall,
    Gpt2Tiny,
    BertBaseUncased,
    #[serde(rename = "all_minilm_l6_v2")]
    AllMinilmL6V2,
    #[serde(rename = "vit_base_patch16_224")]
    VitBasePatch16_224,
    #[serde(rename = "vit_tiny_28")]
    VitTiny28,
    #[serde(rename = "smollm2_135m")]
    Smollm2_135m,
}

impl Preset {
    pub fn family(self) -> Family {
        match self {
            Self::Gpt2 | Self::Gpt2CpuSmall | Self::Gpt2Tiny => Family::Gpt2,
            Self::BertBaseUncased | Self::AllMinilmL6V2 => Family::Bert,
            Self::VitBasePatch16_224 | Self::VitTiny28 => Family::Vit,
            Self::Smollm2_135m => Family::Llama,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub family: Family,
    /// A named size to start from (random weights).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// Overrides of the preset's config, by its HF `config.json` key (`n_layer: 4`); a key the
    /// family's config does not have is an error.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Pretrained weights: an HF checkpoint directory (`config.json` + `model.safetensors`) for
    /// any family, or a llama.cpp `.gguf` file for `llama`.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Minimum context length (GPT-2 `n_positions`); the task's context is always covered.
    #[serde(default)]
    pub context: Option<usize>,
}

fn default_stride_divisor() -> usize {
    2
}
fn default_max_length() -> usize {
    128
}
fn default_workers() -> usize {
    2
}
fn default_power_a() -> f64 {
    0.01
}

/// Preprocessing of images: a named recipe or every field spelt out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformSpec {
    /// 28 × 28 grayscale, MNIST statistics.
    Mnist,
    /// 224 crops of 256-resized RGB images, ImageNet statistics.
    Imagenet,
    Custom(ImageTransform),
}

impl TransformSpec {
    pub fn resolve(&self) -> ImageTransform {
        match self {
            Self::Mnist => ImageTransform::mnist(),
            Self::Imagenet => ImageTransform::imagenet(),
            Self::Custom(transform) => transform.clone(),
        }
    }
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
        #[serde(default = "default_stride_divisor")]
        stride_divisor: usize,
        /// Where token caches go (default `data/cache`).
        #[serde(default)]
        cache: Option<PathBuf>,
        /// Score only the first N validation tokens (default: all).
        #[serde(default)]
        eval_tokens: Option<usize>,
        /// Keep the N − 1 most frequent training tokens and merge every other token into one
        /// id (N − 1): a small output layer for CPU-sized models. Perplexities are then over
        /// this vocabulary, not comparable with the full tokenizer's.
        #[serde(default)]
        vocab_limit: Option<usize>,
    },
    /// A GLUE task's official TSV files under `path/<task folder>/`.
    Glue {
        /// The GLUE root (holding `SST-2/`, `CoLA/`, ...).
        path: PathBuf,
        task: GlueTask,
        /// Longer encodings are cut to this many tokens (the final `[SEP]` kept).
        #[serde(default = "default_max_length")]
        max_length: usize,
        /// Train on a seeded random subset of this size (default: all).
        #[serde(default)]
        train_examples: Option<usize>,
        /// Evaluate on the first N dev examples (default: all).
        #[serde(default)]
        eval_examples: Option<usize>,
        /// `tokenizer.json` or `vocab.txt`; default: the one in the pretrained directory.
        #[serde(default)]
        tokenizer: Option<PathBuf>,
    },
    /// ImageNet-style class folders: `path/train/<class>/*`, `path/val/...`.
    Images {
        path: PathBuf,
        transform: TransformSpec,
        /// Random-resized-crop and flip while training (off for digits, where a flip changes
        /// the class).
        #[serde(default)]
        augment: bool,
        #[serde(default)]
        train_examples: Option<usize>,
        #[serde(default)]
        eval_examples: Option<usize>,
        /// Image-decoding threads.
        #[serde(default = "default_workers")]
        workers: usize,
    },
    /// Multi-query associative recall (zoology's MQAR), generated in memory.
    AssociativeRecall {
        vocab_size: usize,
        seq_len: usize,
        num_kv_pairs: usize,
        #[serde(default = "default_power_a")]
        power_a: f64,
        train_examples: usize,
        test_examples: usize,
        train_seed: u64,
        test_seed: u64,
    },
}

impl TaskSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LanguageModeling { .. } => "language_modeling",
            Self::Glue { .. } => "glue",
            Self::Images { .. } => "images",
            Self::AssociativeRecall { .. } => "associative_recall",
        }
    }
}

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

impl OptimizerSpec {
    /// The peak learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adamw { lr, .. } => *lr,
        }
    }
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

/// Stop a stage when its validation headline has not improved for `patience` evaluations.
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
    /// Fixed q·k range of the bins (so curves of different runs line up); default: the data's.
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

/// `key=value` with a dotted key (`stages.0.steps=10`); the value is parsed as YAML.
fn apply_override(root: &mut serde_json::Value, assignment: &str) -> Result<(), String> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set `{assignment}`: expected dotted.key=value"))?;
    let value: serde_json::Value = serde_saphyr::from_str(raw)
        .map_err(|e| format!("--set {key}: value `{raw}` is not valid YAML: {e}"))?;
    set_dotted(root, key, value).map_err(|e| format!("--set {e}"))
}

/// Sets `key` (dotted; numbers index lists) in `root` to `value`.
fn set_dotted(
    root: &mut serde_json::Value,
    key: &str,
    value: serde_json::Value,
) -> Result<(), String> {
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
                    .map_err(|_| format!("{key}: `{part}` indexes a list, use a number"))?;
                let len = items.len();
                let item = items.get_mut(index).ok_or_else(|| {
                    format!("{key}: index {index} is past the list's {len} entries")
                })?;
                if last {
                    *item = value;
                    return Ok(());
                }
                item
            }
            _ => {
                return Err(format!(
                    "{key}: `{part}` is below a value that is not a mapping or list"
                ));
            }
        };
    }
    Ok(())
}

/// One run of a spec: the spec with a sweep point applied (`point` is empty without a sweep).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub point: BTreeMap<String, serde_json::Value>,
    pub spec: Spec,
}

impl SweepPoint {
    /// `key=value, ...` for logs (values in compact JSON).
    pub fn describe(&self) -> String {
        self.point
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
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
        let invalid = |message: String| SpecError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        spec.validate().map_err(invalid)?;
        // Every point of a sweep must be a valid spec too.
        spec.expand().map_err(invalid)?;
        Ok(spec)
    }

    /// The runs of this spec: one per combination of the `sweep:` values (in key order, the
    /// last key varying fastest), or the spec itself.
    pub fn expand(&self) -> Result<Vec<SweepPoint>, String> {
        if self.sweep.is_empty() {
            return Ok(vec![SweepPoint {
                point: BTreeMap::new(),
                spec: self.clone(),
            }]);
        }
        let mut base = self.clone();
        base.sweep.clear();
        let tree = serde_json::to_value(&base).map_err(|e| e.to_string())?;
        let mut points: Vec<BTreeMap<String, serde_json::Value>> = vec![BTreeMap::new()];
        for (key, values) in &self.sweep {
            if values.is_empty() {
                return Err(format!("sweep.{key}: give at least one value"));
            }
            points = points
                .into_iter()
                .flat_map(|point| {
                    values.iter().map(move |value| {
                        let mut point = point.clone();
                        point.insert(key.clone(), value.clone());
                        point
                    })
                })
                .collect();
        }
        points
            .into_iter()
            .map(|point| {
                let mut tree = tree.clone();
                for (key, value) in &point {
                    set_dotted(&mut tree, key, value.clone()).map_err(|e| format!("sweep.{e}"))?;
                }
                let spec: Spec = serde_json::from_value(tree).map_err(|e| {
                    format!(
                        "sweep point {}: {e}",
                        serde_json::to_string(&point).unwrap_or_default()
                    )
                })?;
                spec.validate().map_err(|e| {
                    format!(
                        "sweep point {}: {e}",
                        serde_json::to_string(&point).unwrap_or_default()
                    )
                })?;
                Ok(SweepPoint { point, spec })
            })
            .collect()
    }

    /// The generator settings of an associative-recall task.
    pub fn recall_config(&self) -> Option<RecallConfig> {
        match self.task {
            TaskSpec::AssociativeRecall {
                vocab_size,
                seq_len,
                num_kv_pairs,
                power_a,
                train_examples,
                test_examples,
                train_seed,
                test_seed,
            } => Some(RecallConfig {
                vocab_size,
                seq_len,
                num_kv_pairs,
                power_a,
                train_examples,
                test_examples,
                train_seed,
                test_seed,
            }),
            _ => None,
        }
    }

    /// Checks what serde cannot: sizes, stage order, pairings of model and task.
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
            if device != "cpu" && device != "cuda" && !device.starts_with("cuda:") {
                return Err(format!("device `{device}`: expected cpu, cuda or cuda:N"));
            }
        }
        let model = &self.model;
        match (model.preset, &model.pretrained) {
            (None, None) => return Err("model: give a `preset` or a `pretrained` path".into()),
            (_, Some(_)) if !model.config.is_empty() => {
                return Err(
                    "model: `config` overrides a preset; a pretrained checkpoint brings its own config"
                        .into(),
                );
            }
            (Some(preset), _) if preset.family() != model.family => {
                return Err(format!(
                    "model: preset {preset:?} is a {:?} model, but family is {:?}",
                    preset.family(),
                    model.family
                ));
            }
            _ => {}
        }
        let needs = |family: &[Family], what: &str| {
            if family.contains(&model.family) {
                Ok(())
            } else {
                Err(format!(
                    "task {}: needs a {what} model (family {}), got family {:?}",
                    self.task.kind(),
                    family
                        .iter()
                        .map(|f| format!("{f:?}").to_lowercase())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    model.family
                ))
            }
        };
        match &self.task {
            TaskSpec::LanguageModeling {
                context,
                stride_divisor,
                vocab_limit,
                ..
            } => {
                needs(&[Family::Gpt2, Family::Llama], "causal language")?;
                if vocab_limit.is_some_and(|v| v < 2) {
                    return Err("task: vocab_limit must be at least 2".into());
                }
                if *context < 2 || *stride_divisor < 2 {
                    return Err(format!(
                        "task: need context ≥ 2 and stride_divisor ≥ 2, got {context} and {stride_divisor}"
                    ));
                }
            }
            TaskSpec::AssociativeRecall { .. } => {
                needs(&[Family::Gpt2, Family::Llama], "causal language")?;
                self.recall_config()
                    .expect("an associative-recall task")
                    .validate()
                    .map_err(|e| format!("task: {e}"))?;
            }
            TaskSpec::Glue { max_length, .. } => {
                needs(&[Family::Bert], "BERT")?;
                if *max_length < 3 {
                    return Err(format!("task: max_length {max_length} must be at least 3"));
                }
            }
            TaskSpec::Images { workers, .. } => {
                needs(&[Family::Vit], "ViT")?;
                if *workers == 0 {
                    return Err("task: workers must be at least 1".into());
                }
            }
        }
        if self.stages.is_empty() {
            return Err("stages: at least one stage is needed".into());
        }
        let mut current = &self.attention;
        for (i, stage) in self.stages.iter().enumerate() {
            let at = format!("stages.{i} ({})", stage.kind.name());
            if let Some(attention) = &stage.attention {
                current = attention;
            }
            if stage.batch_size == 0 {
                return Err(format!("{at}: batch_size must be positive"));
            }
            if stage.kind.trains() {
                let epochs_ok = stage.epochs.is_some_and(|e| e > 0.0 && e.is_finite());
                if (stage.steps == 0) == stage.epochs.is_none()
                    || (stage.epochs.is_some() && !epochs_ok)
                    || stage.grad_accumulation == 0
                {
                    return Err(format!(
                        "{at}: give positive steps or epochs (not both); batch_size and grad_accumulation must be positive"
                    ));
                }
            } else if stage.steps != 0 || stage.epochs.is_some() {
                return Err(format!(
                    "{at}: an {} stage does not train; remove steps/epochs",
                    stage.kind.name()
                ));
            }
            if stage.kind == StageKind::Distill
                && current.iter().all(|a| a == &AttentionConfig::Softmax)
            {
                return Err(format!(
                    "{at}: distillation needs a linear attention (set `attention:` on this or an earlier stage)"
                ));
            }
            if stage.kind == StageKind::Distill && stage.trainable != Trainable::All {
                return Err(format!(
                    "{at}: distill always trains the feature maps only; remove `trainable`"
                ));
            }
            if let Trainable::Lora(lora) = &stage.trainable
                && let Err(e) = lora.validate()
            {
                return Err(format!("{at}: {e}"));
            }
            if stage.analysis.is_some() && stage.kind != StageKind::Analyze {
                return Err(format!("{at}: `analysis:` belongs to an analyze stage"));
            }
            if let Some(early) = &stage.early_stopping {
                if !stage.kind.trains() || early.patience == 0 {
                    return Err(format!(
                        "{at}: early_stopping needs a training stage and patience ≥ 1"
                    ));
                }
                if stage.kind == StageKind::Distill {
                    return Err(format!(
                        "{at}: early_stopping watches the task metric, which distillation does not train"
                    ));
                }
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
