//! Checkpoint directories in the HF layout: `config.json` + `model.safetensors`.
//!
//! A converted model is saved the same way, with its per-layer attention in the config under
//! `hedgehog_attention` and the feature-map tensors under `*.hedgehog.{query,key}_map.*` (a
//! windowed layer's factor logits under `*.hedgehog.window_factors`), so it loads back
//! bit-identically and stays readable by HF tools for the base weights.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;

use hedgehog_attention::AttentionConfig;

use crate::common::AttentionLayers;
use crate::error::{ModelError, WeightError};
use crate::io::{read_text, write_atomic};
use crate::weights::{SafetensorsLoader, TensorCollector, WeightVisitor};

/// Parses `dir/config.json` into a model config, naming the file and the field on error.
pub fn read_config<C: DeserializeOwned>(dir: &Path) -> Result<C, ModelError> {
    let path = dir.join("config.json");
    let text = read_text(&path)?;
    serde_json::from_str(&text).map_err(|e| {
        ModelError::Weights(WeightError::Config {
            path: path.clone(),
            reason: format!("{e}"),
        })
    })
}

/// A model that can be written as a checkpoint directory and read back from one.
pub trait Checkpoint<B: Backend>: AttentionLayers<B> + Clone + Sized {
    type Config: Serialize + DeserializeOwned;
    /// The config's per-layer attention (`hedgehog_attention` in `config.json`).
    fn attention_of(config: &mut Self::Config) -> &mut Vec<AttentionConfig>;
    fn from_config(config: &Self::Config, device: &B::Device) -> Result<Self, ModelError>;
    /// Head prefixes HF writes and stored tensors the model need not use.
    fn loader(loader: SafetensorsLoader<B>, config: &Self::Config) -> SafetensorsLoader<B>;
    fn checkpoint_config(&self) -> &Self::Config;
    /// For changes that keep the weights (the attention of some layers: [`keep_softmax`]).
    fn checkpoint_config_mut(&mut self) -> &mut Self::Config;
    /// The weight table; `with_maps` includes the feature maps.
    fn visit_weights<V: WeightVisitor<B>>(
        self,
        visitor: &mut V,
        with_maps: bool,
    ) -> Result<Self, WeightError>;
}

/// Writes `dir/config.json` and `dir/model.safetensors` (f32), each atomically.
///
/// The weight tables hold no LoRA adapters, so a model that still has them is refused rather
/// than saved without its update: merge them first ([`crate::lora::merge_lora`]).
pub fn save<B: Backend, M: Checkpoint<B>>(
    model: &M,
    dir: impl AsRef<Path>,
) -> Result<(), ModelError> {
    let dir = dir.as_ref();
    if model
        .attention_layers()
        .iter()
        .any(|layer| layer.lora.is_some())
    {
        return Err(ModelError::Config(format!(
            "{}: the model has unmerged LoRA adapters, which a checkpoint does not store; \
             call merge_lora before saving",
            dir.display()
        )));
    }
    let mut collector = TensorCollector::default();
    model.clone().visit_weights(&mut collector, true)?;
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    collector.write(dir.join("model.safetensors"), metadata)?;
    let config = serde_json::to_string_pretty(model.checkpoint_config())
        .map_err(|e| ModelError::Config(e.to_string()))?;
    write_atomic(&dir.join("config.json"), config.as_bytes())?;
    Ok(())
}

/// Gives `layers` (indices) softmax attention back, dropping their feature maps and windows;
/// every other layer keeps its attention and trained maps, and the model's config records the
/// change, so a checkpoint of the result restores it. LoRA adapters stay where they are.
pub fn keep_softmax<B: Backend, M: Checkpoint<B>>(
    model: M,
    layers: &[usize],
) -> Result<M, ModelError> {
    let count = model.attention_layers().len();
    if let Some(bad) = layers.iter().find(|&&layer| layer >= count) {
        return Err(ModelError::Config(format!(
            "layer {bad} cannot keep softmax attention: the model has {count} layers (0..{count})"
        )));
    }
    let mut index = 0;
    let mut model = model.map_attention_layers(&mut |mut layer| {
        if layers.contains(&index) {
            layer.linear = None;
        }
        index += 1;
        Ok(layer)
    })?;
    let attention = M::attention_of(model.checkpoint_config_mut());
    let mut per_layer = crate::common::per_layer(attention, count)?;
    for &layer in layers {
        per_layer[layer] = AttentionConfig::Softmax;
    }
    *attention = per_layer;
    Ok(model)
}

/// Loads `dir/config.json` + `dir/model.safetensors`: an HF checkpoint, or one written by
/// [`save`]. `attention` replaces the checkpoint's attention (its feature maps then start fresh,
/// and window factors at `window_factor`: how a pretrained softmax model gets a window);
/// `None` keeps it and loads the saved maps and window factors (missing ones are an error).
pub fn load<B: Backend, M: Checkpoint<B>>(
    dir: &Path,
    attention: Option<Vec<AttentionConfig>>,
    device: &B::Device,
) -> Result<M, ModelError> {
    let mut config: M::Config = read_config(dir)?;
    let current = M::attention_of(&mut config);
    let with_maps = attention.is_none() && current.iter().any(|a| a != &AttentionConfig::Softmax);
    if let Some(attention) = attention {
        *current = attention;
    }
    let model = M::from_config(&config, device)?;
    let mut loader = M::loader(
        SafetensorsLoader::<B>::open(dir.join("model.safetensors"), device)?,
        &config,
    );
    let model = model.visit_weights(&mut loader, with_maps)?;
    loader.finish()?;
    Ok(model)
}
