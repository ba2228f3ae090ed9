//! Checkpoint directories in the HF layout: `config.json` + `model.safetensors`.
//!
//! A converted model is saved the same way, with its per-layer attention in the config under
//! `hedgehog_attention` and the feature-map tensors under `*.hedgehog.{query,key}_map.*`, so it
//! loads back bit-identically and stays readable by HF tools for the base weights.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::common::ModelError;
use crate::io::{read_text, write_atomic};
use crate::weights::{TensorCollector, WeightError, WeightVisitor};

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

/// A model that can be written as a checkpoint directory.
pub trait Checkpoint<B: Backend>: Clone + Sized {
    type Config: Serialize;
    fn checkpoint_config(&self) -> &Self::Config;
    /// The weight table; `with_maps` includes the feature maps.
    fn visit_weights<V: WeightVisitor<B>>(
        self,
        visitor: &mut V,
        with_maps: bool,
    ) -> Result<Self, WeightError>;
}

/// Writes `dir/config.json` and `dir/model.safetensors` (f32), each atomically.
pub fn save<B: Backend, M: Checkpoint<B>>(
    model: &M,
    dir: impl AsRef<Path>,
) -> Result<(), ModelError> {
    let dir = dir.as_ref();
    let mut collector = TensorCollector::default();
    model.clone().visit_weights(&mut collector, true)?;
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    collector.write(dir.join("model.safetensors"), metadata)?;
    let config = serde_json::to_string_pretty(model.checkpoint_config())
        .map_err(|e| ModelError::Config(e.to_string()))?;
    write_atomic(&dir.join("config.json"), config.as_bytes())?;
    Ok(())
}
