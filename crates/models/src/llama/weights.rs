//! Llama's weight table: every parameter under its HF checkpoint name, and loading and
//! saving through [`crate::checkpoint`].

use std::path::Path;

use burn::tensor::backend::Backend;
use hedgehog_attention::AttentionConfig;

use super::Llama;
use super::config::LlamaConfig;
use crate::error::{ModelError, WeightError};
use crate::nn_weights::{map_embedding, map_linear};
use crate::weights::{Layout, SafetensorsLoader, WeightVisitor};

impl<B: Backend> Llama<B> {
    pub fn map_weights<V: WeightVisitor<B>>(
        mut self,
        visitor: &mut V,
        with_maps: bool,
    ) -> Result<Self, WeightError> {
        self.embed_tokens = map_embedding(self.embed_tokens, visitor, "model.embed_tokens")?;
        self.layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, mut layer)| {
                let p = format!("model.layers.{i}");
                let a = format!("{p}.self_attn");
                layer.input_norm.gamma = visitor.param(
                    &format!("{p}.input_layernorm.weight"),
                    layer.input_norm.gamma,
                    Layout::AsIs,
                )?;
                layer.attention = layer.attention.map_weights(
                    visitor,
                    [
                        &format!("{a}.q_proj"),
                        &format!("{a}.k_proj"),
                        &format!("{a}.v_proj"),
                        &format!("{a}.o_proj"),
                    ],
                    Layout::Transposed,
                    with_maps.then_some(format!("{a}.hedgehog")).as_deref(),
                )?;
                layer.post_attention_norm.gamma = visitor.param(
                    &format!("{p}.post_attention_layernorm.weight"),
                    layer.post_attention_norm.gamma,
                    Layout::AsIs,
                )?;
                layer.gate = map_linear(
                    layer.gate,
                    visitor,
                    &format!("{p}.mlp.gate_proj"),
                    Layout::Transposed,
                )?;
                layer.up = map_linear(
                    layer.up,
                    visitor,
                    &format!("{p}.mlp.up_proj"),
                    Layout::Transposed,
                )?;
                layer.down = map_linear(
                    layer.down,
                    visitor,
                    &format!("{p}.mlp.down_proj"),
                    Layout::Transposed,
                )?;
                Ok(layer)
            })
            .collect::<Result<_, WeightError>>()?;
        self.norm.gamma = visitor.param("model.norm.weight", self.norm.gamma, Layout::AsIs)?;
        if let Some(head) = self.lm_head.take() {
            self.lm_head = Some(map_linear(head, visitor, "lm_head", Layout::Transposed)?);
        }
        Ok(self)
    }

    /// Loads an HF Llama checkpoint directory (or one saved by [`crate::checkpoint::save`]).
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        attention: Option<Vec<AttentionConfig>>,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        crate::checkpoint::load(dir.as_ref(), attention, device)
    }
}

impl<B: Backend> crate::checkpoint::Checkpoint<B> for Llama<B> {
    type Config = LlamaConfig;

    fn attention_of(config: &mut LlamaConfig) -> &mut Vec<AttentionConfig> {
        &mut config.attention
    }

    fn from_config(config: &LlamaConfig, device: &B::Device) -> Result<Self, ModelError> {
        config.init(device)
    }

    fn loader(loader: SafetensorsLoader<B>, config: &LlamaConfig) -> SafetensorsLoader<B> {
        if config.tie_word_embeddings {
            loader.ignoring("lm_head.weight")
        } else {
            loader
        }
    }

    fn checkpoint_config(&self) -> &LlamaConfig {
        &self.config
    }

    fn checkpoint_config_mut(&mut self) -> &mut LlamaConfig {
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
