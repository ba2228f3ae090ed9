//! The `task:` section: language modelling, GLUE, image folders, associative recall.

use std::path::PathBuf;

use hedgehog_tasks::glue::GlueTask;
use hedgehog_tasks::images::ImageTransform;
use hedgehog_tasks::recall::RecallConfig;
use serde::{Deserialize, Serialize};

use super::model::Family;

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
    /// A GLUE task's official TSV files under `path/<task folder>/` (or the hub's parquet
    /// under `path/<hub folder>/`).
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

    /// The generator settings of an associative-recall task.
    pub fn recall_config(&self) -> Option<RecallConfig> {
        match *self {
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

    /// The longest sequence the task feeds the model, where the spec alone says it (images:
    /// the model's patch grid decides, so `None`).
    /// The folder the task reads its data from (none for the synthetic tasks).
    pub fn data_path(&self) -> Option<&std::path::Path> {
        match self {
            TaskSpec::LanguageModeling { path, .. }
            | TaskSpec::Glue { path, .. }
            | TaskSpec::Images { path, .. } => Some(path),
            TaskSpec::AssociativeRecall { .. } => None,
        }
    }

    pub fn sequence_len(&self) -> Option<usize> {
        match self {
            TaskSpec::LanguageModeling { context, .. } => Some(*context),
            TaskSpec::Glue { max_length, .. } => Some(*max_length),
            TaskSpec::AssociativeRecall { seq_len, .. } => Some(*seq_len),
            TaskSpec::Images { .. } => None,
        }
    }

    /// Sizes, and that the model `family` can run this task.
    pub(super) fn validate(&self, family: Family) -> Result<(), String> {
        let needs = |families: &[Family], what: &str| {
            if families.contains(&family) {
                Ok(())
            } else {
                Err(format!(
                    "task {}: needs a {what} model (family {}), got family {family:?}",
                    self.kind(),
                    families
                        .iter()
                        .map(|f| format!("{f:?}").to_lowercase())
                        .collect::<Vec<_>>()
                        .join(" or "),
                ))
            }
        };
        match self {
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
        Ok(())
    }
}
