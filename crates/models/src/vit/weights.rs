//! ViT's weight table: every parameter under its HF checkpoint name, and loading and
//! saving through [`crate::checkpoint`].

use std::path::Path;

use burn::tensor::backend::Backend;
use hedgehog_attention::AttentionConfig;

use super::Vit;
use super::config::VitConfig;
use crate::error::{ModelError, WeightError};
use crate::nn_weights::{map_layer_norm, map_linear};
use crate::weights::{Layout, SafetensorsLoader, WeightVisitor};

impl<B: Backend> Vit<B> {
    pub fn map_weights<V: WeightVisitor<B>>(
        mut self,
        visitor: &mut V,
        with_maps: bool,
    ) -> Result<Self, WeightError> {
        let e = "embeddings";
        self.cls_token = visitor.param(&format!("{e}.cls_token"), self.cls_token, Layout::AsIs)?;
        self.position_embeddings = visitor.param(
            &format!("{e}.position_embeddings"),
            self.position_embeddings,
            Layout::AsIs,
        )?;
        self.patch_projection = visitor.param(
            &format!("{e}.patch_embeddings.projection.weight"),
            self.patch_projection,
            Layout::AsIs,
        )?;
        self.patch_bias = visitor.param(
            &format!("{e}.patch_embeddings.projection.bias"),
            self.patch_bias,
            Layout::AsIs,
        )?;
        self.layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, mut layer)| {
                let p = format!("encoder.layer.{i}");
                let a = format!("{p}.attention.attention");
                layer.norm_before =
                    map_layer_norm(layer.norm_before, visitor, &format!("{p}.layernorm_before"))?;
                layer.attention = layer.attention.map_weights(
                    visitor,
                    [
                        &format!("{a}.query"),
                        &format!("{a}.key"),
                        &format!("{a}.value"),
                        &format!("{p}.attention.output.dense"),
                    ],
                    Layout::Transposed,
                    with_maps
                        .then_some(format!("{p}.attention.hedgehog"))
                        .as_deref(),
                )?;
                layer.norm_after =
                    map_layer_norm(layer.norm_after, visitor, &format!("{p}.layernorm_after"))?;
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
                Ok(layer)
            })
            .collect::<Result<_, WeightError>>()?;
        self.final_norm = map_layer_norm(self.final_norm, visitor, "layernorm")?;
        if let Some(classifier) = self.classifier.take() {
            self.classifier = Some(map_linear(
                classifier,
                visitor,
                "classifier",
                Layout::Transposed,
            )?);
        }
        Ok(self)
    }

    /// Loads an HF ViT checkpoint directory (or one saved by [`crate::checkpoint::save`]).
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        attention: Option<Vec<AttentionConfig>>,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        crate::checkpoint::load(dir.as_ref(), attention, device)
    }
}

impl<B: Backend> crate::checkpoint::Checkpoint<B> for Vit<B> {
    type Config = VitConfig;

    fn attention_of(config: &mut VitConfig) -> &mut Vec<AttentionConfig> {
        &mut config.attention
    }

    fn from_config(config: &VitConfig, device: &B::Device) -> Result<Self, ModelError> {
        config.init(device)
    }

    fn loader(loader: SafetensorsLoader<B>, _config: &VitConfig) -> SafetensorsLoader<B> {
        loader
            .with_prefix("vit.")
            .ignoring("pooler.dense.weight")
            .ignoring("pooler.dense.bias")
    }

    fn checkpoint_config(&self) -> &VitConfig {
        &self.config
    }

    fn checkpoint_config_mut(&mut self) -> &mut VitConfig {
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
