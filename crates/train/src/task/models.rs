//! Building a run's first model from `model:` in the spec: a preset (with `config:` overrides)
//! or pretrained weights, with the spec's attention.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use hedgehog_attention::AttentionConfig;
use hedgehog_models::bert::{Bert, BertConfig};
use hedgehog_models::gpt2::{Gpt2, Gpt2Config};
use hedgehog_models::llama::{Llama, LlamaConfig};
use hedgehog_models::tokenizer::TextTokenizer;
use hedgehog_models::vit::{Vit, VitConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::RunError;
use crate::spec::{ModelSpec, Preset, Spec};

/// The preset's config with `overrides` applied by key; a key the config does not have is an
/// error listing the keys it has.
pub fn with_overrides<C: Serialize + DeserializeOwned>(
    config: C,
    overrides: &BTreeMap<String, serde_json::Value>,
) -> Result<C, RunError> {
    if overrides.is_empty() {
        return Ok(config);
    }
    let mut tree = serde_json::to_value(config).map_err(|e| RunError::Config(e.to_string()))?;
    let object = tree
        .as_object_mut()
        .expect("model configs serialise to objects");
    for (key, value) in overrides {
        if !object.contains_key(key) {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            return Err(RunError::Config(format!(
                "model.config.{key}: not a key of this model's config; allowed: {}",
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        object.insert(key.clone(), value.clone());
    }
    serde_json::from_value(tree).map_err(|e| RunError::Config(format!("model.config: {e}")))
}

/// The attention to load a pretrained checkpoint with: the spec's, or (when the spec gives
/// none) the checkpoint's own.
fn pretrained_attention(spec: &Spec) -> Option<Vec<AttentionConfig>> {
    (!spec.attention.is_empty()).then(|| spec.attention.clone())
}

fn check_pretrained_dir(path: &Path) -> Result<(), RunError> {
    if !path.join("config.json").exists() || !path.join("model.safetensors").exists() {
        return Err(RunError::File {
            path: path.to_path_buf(),
            message: "expected an HF checkpoint directory with config.json and model.safetensors: \
                      `just fetch-weights` fetches the stand-ins into data/weights/; a \
                      results/<spec>/latest/final model appears when that spec has run"
                .into(),
        });
    }
    Ok(())
}

fn preset_of(model: &ModelSpec) -> Result<Preset, RunError> {
    model
        .preset
        .ok_or_else(|| RunError::Config("model: give a `preset` or a `pretrained` path".into()))
}

/// A GPT-2 covering at least `context` positions and `vocab` tokens.
pub fn gpt2<B: Backend>(
    spec: &Spec,
    context: usize,
    vocab: usize,
    device: &B::Device,
) -> Result<Gpt2<B>, RunError> {
    let model = match &spec.model.pretrained {
        Some(dir) => {
            check_pretrained_dir(dir)?;
            Gpt2::from_pretrained(dir, pretrained_attention(spec), device)?
        }
        None => {
            let mut config = match preset_of(&spec.model)? {
                Preset::Gpt2 => Gpt2Config::gpt2(),
                Preset::Gpt2CpuSmall => Gpt2Config::gpt2_cpu_small(),
                Preset::Gpt2Tiny => Gpt2Config::gpt2_tiny(),
                other => unreachable!("validated: {other:?} is not a GPT-2 preset"),
            };
            config = with_overrides(config, &spec.model.config)?;
            config.n_positions = config
                .n_positions
                .max(spec.model.context.unwrap_or(0))
                .max(context);
            config.with_attention(spec.attention.clone()).init(device)?
        }
    };
    if model.config.n_positions < context || model.config.vocab_size < vocab {
        return Err(RunError::Config(format!(
            "the model has {} positions and {} tokens; the task needs {context} and {vocab}",
            model.config.n_positions, model.config.vocab_size
        )));
    }
    Ok(model)
}

/// A Llama-style decoder and, for a GGUF file, its tokenizer.
pub fn llama<B: Backend>(
    spec: &Spec,
    vocab: usize,
    device: &B::Device,
) -> Result<(Llama<B>, Option<TextTokenizer>), RunError> {
    let (model, tokenizer) = match &spec.model.pretrained {
        Some(path) if path.extension().is_some_and(|e| e == "gguf") => {
            if !path.exists() {
                return Err(RunError::File {
                    path: path.clone(),
                    message: "not found; `just fetch-weights` fetches SmolLM2-135M-Instruct".into(),
                });
            }
            let (model, tokenizer) = Llama::from_gguf(path, spec.attention.clone(), device)?;
            (model, Some(tokenizer))
        }
        Some(dir) => {
            check_pretrained_dir(dir)?;
            (
                Llama::from_pretrained(dir, pretrained_attention(spec), device)?,
                None,
            )
        }
        None => {
            let config = match preset_of(&spec.model)? {
                Preset::Smollm2_135m => LlamaConfig::smollm2_135m(),
                other => unreachable!("validated: {other:?} is not a Llama preset"),
            };
            let config = with_overrides(config, &spec.model.config)?;
            (
                config.with_attention(spec.attention.clone()).init(device)?,
                None,
            )
        }
    };
    if model.config.vocab_size < vocab {
        return Err(RunError::Config(format!(
            "the model has {} tokens; the task needs {vocab}",
            model.config.vocab_size
        )));
    }
    Ok((model, tokenizer))
}

/// A BERT with a `num_labels`-way head (a fresh head when the checkpoint has none or another size).
pub fn bert<B: Backend>(
    spec: &Spec,
    num_labels: usize,
    device: &B::Device,
) -> Result<Bert<B>, RunError> {
    let model = match &spec.model.pretrained {
        Some(dir) => {
            check_pretrained_dir(dir)?;
            Bert::from_pretrained(dir, pretrained_attention(spec), device)?
        }
        None => {
            let config = match preset_of(&spec.model)? {
                Preset::BertBaseUncased => BertConfig::bert_base_uncased(),
                Preset::AllMinilmL6V2 => BertConfig::all_minilm_l6_v2(),
                other => unreachable!("validated: {other:?} is not a BERT preset"),
            };
            with_overrides(config, &spec.model.config)?
                .with_labels(num_labels)
                .with_attention(spec.attention.clone())
                .init(device)?
        }
    };
    Ok(if model.config.num_labels == Some(num_labels) {
        model
    } else {
        model.with_classifier(num_labels, device)
    })
}

/// The ViT config a spec describes (read from `config.json` for pretrained weights).
pub fn vit_config(spec: &Spec) -> Result<VitConfig, RunError> {
    match &spec.model.pretrained {
        Some(dir) => {
            check_pretrained_dir(dir)?;
            Ok(hedgehog_models::checkpoint::read_config(dir)?)
        }
        None => {
            let config = match preset_of(&spec.model)? {
                Preset::VitBasePatch16_224 => VitConfig::vit_base_patch16_224(),
                Preset::VitTiny28 => VitConfig::vit_tiny_28(),
                other => unreachable!("validated: {other:?} is not a ViT preset"),
            };
            with_overrides(config, &spec.model.config)
        }
    }
}

/// A ViT with a `num_labels`-way head.
pub fn vit<B: Backend>(
    spec: &Spec,
    num_labels: usize,
    device: &B::Device,
) -> Result<Vit<B>, RunError> {
    let model = match &spec.model.pretrained {
        Some(dir) => Vit::from_pretrained(dir, pretrained_attention(spec), device)?,
        None => {
            let mut config = vit_config(spec)?;
            config.num_labels = Some(num_labels);
            config.with_attention(spec.attention.clone()).init(device)?
        }
    };
    Ok(if model.config.num_labels == Some(num_labels) {
        model
    } else {
        model.with_classifier(num_labels, device)
    })
}

/// "GPT-2 tiny (random init)" or "pretrained data/weights/all-MiniLM-L6-v2".
pub fn describe(model: &ModelSpec) -> String {
    match (&model.pretrained, model.preset) {
        (Some(path), _) => format!("pretrained {}", path.display()),
        (None, Some(preset)) => {
            let name = serde_json::to_value(preset)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let overrides = if model.config.is_empty() {
                String::new()
            } else {
                format!(
                    " with {}",
                    model
                        .config
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!("{name}{overrides} from scratch")
        }
        (None, None) => "no model".into(),
    }
}
