//! BERT's weight table: every parameter under its HF checkpoint name, and loading and
//! saving through [`crate::checkpoint`].

use std::path::Path;

use burn::tensor::backend::Backend;
use hedgehog_attention::AttentionConfig;

use super::Bert;
use super::config::BertConfig;
use crate::error::{ModelError, WeightError};
use crate::nn_weights::{map_embedding, map_layer_norm, map_linear};
use crate::weights::{Layout, SafetensorsLoader, WeightVisitor};

impl<B: Backend> Bert<B> {
    pub fn map_weights<V: WeightVisitor<B>>(
        mut self,
        visitor: &mut V,
        with_maps: bool,
    ) -> Result<Self, WeightError> {
        self.word_embeddings =
            map_embedding(self.word_embeddings, visitor, "embeddings.word_embeddings")?;
        self.position_embeddings = map_embedding(
            self.position_embeddings,
            visitor,
            "embeddings.position_embeddings",
        )?;
        self.token_type_embeddings = map_embedding(
            self.token_type_embeddings,
            visitor,
            "embeddings.token_type_embeddings",
        )?;
        self.embedding_norm = map_layer_norm(self.embedding_norm, visitor, "embeddings.LayerNorm")?;
        self.layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, mut layer)| {
                let p = format!("encoder.layer.{i}");
                let s = format!("{p}.attention.self");
                layer.attention = layer.attention.map_weights(
                    visitor,
                    [
                        &format!("{s}.query"),
                        &format!("{s}.key"),
                        &format!("{s}.value"),
                        &format!("{p}.attention.output.dense"),
                    ],
                    Layout::Transposed,
                    with_maps
                        .then_some(format!("{p}.attention.hedgehog"))
                        .as_deref(),
                )?;
                layer.attention_norm = map_layer_norm(
                    layer.attention_norm,
                    visitor,
                    &format!("{p}.attention.output.LayerNorm"),
                )?;
                layer.intermediate = map_linear(
                    layer.intermediate,
                    visitor,
                    &format!("{p}.intermediate.dense"),
                    Layout::Transposed,
                )?;
                layer.output = map_linear(
                    layer.output,
                    visitor,
                    &format!("{p}.output.dense"),
                    Layout::Transposed,
                )?;
                layer.output_norm =
                    map_layer_norm(layer.output_norm, visitor, &format!("{p}.output.LayerNorm"))?;
                Ok(layer)
            })
            .collect::<Result<_, WeightError>>()?;
        self.pooler = map_linear(self.pooler, visitor, "pooler.dense", Layout::Transposed)?;
        if let Some(classifier) = self.classifier.take() {
            // The head sits outside the `bert.` namespace in HF checkpoints.
            self.classifier = Some(map_linear(
                classifier,
                visitor,
                "classifier",
                Layout::Transposed,
            )?);
        }
        Ok(self)
    }

    /// Loads an HF BERT checkpoint directory (or one saved by [`crate::checkpoint::save`]).
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        attention: Option<Vec<AttentionConfig>>,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        crate::checkpoint::load(dir.as_ref(), attention, device)
    }
}

impl<B: Backend> crate::checkpoint::Checkpoint<B> for Bert<B> {
    type Config = BertConfig;

    fn attention_of(config: &mut BertConfig) -> &mut Vec<AttentionConfig> {
        &mut config.attention
    }

    fn from_config(config: &BertConfig, device: &B::Device) -> Result<Self, ModelError> {
        config.init(device)
    }

    fn loader(loader: SafetensorsLoader<B>, _config: &BertConfig) -> SafetensorsLoader<B> {
        loader
            .with_prefix("bert.")
            .ignoring("embeddings.position_ids")
    }

    fn checkpoint_config(&self) -> &BertConfig {
        &self.config
    }

    fn checkpoint_config_mut(&mut self) -> &mut BertConfig {
        &mut self.config
    }

    fn visit_weights<V: WeightVisitor<B>>(
        self,
        visitor: &mut V,
        with_maps: bool,
    ) -> Result<Self, WeightError> {
        self.map_weights(visitor, with_maps)
    }
}
