//! GPT-2's weight table: every parameter under its HF checkpoint name, and loading and
//! saving through [`crate::checkpoint`].

use std::path::Path;

use burn::tensor::backend::Backend;
use hedgehog_attention::AttentionConfig;

use super::Gpt2;
use super::config::Gpt2Config;
use crate::error::{ModelError, WeightError};
use crate::nn_weights::{map_embedding, map_layer_norm, map_linear};
use crate::weights::{Layout, SafetensorsLoader, WeightVisitor};

impl<B: Backend> Gpt2<B> {
    /// Every parameter under its HF name; with `with_maps`, the feature maps too.
    pub fn map_weights<V: WeightVisitor<B>>(
        mut self,
        visitor: &mut V,
        with_maps: bool,
    ) -> Result<Self, WeightError> {
        self.wte = map_embedding(self.wte, visitor, "wte")?;
        self.wpe = map_embedding(self.wpe, visitor, "wpe")?;
        self.blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, mut block)| {
                let p = format!("h.{i}");
                block.ln_1 = map_layer_norm(block.ln_1, visitor, &format!("{p}.ln_1"))?;
                // Conv1D stores [in, out] like burn's Linear: no transpose.
                block.attn = block
                    .attn
                    .map_fused_qkv(visitor, &format!("{p}.attn.c_attn"))?;
                block.attn.output = map_linear(
                    block.attn.output,
                    visitor,
                    &format!("{p}.attn.c_proj"),
                    Layout::AsIs,
                )?;
                if with_maps {
                    block.attn = block
                        .attn
                        .map_feature_maps(visitor, &format!("{p}.attn.hedgehog"))?;
                }
                block.ln_2 = map_layer_norm(block.ln_2, visitor, &format!("{p}.ln_2"))?;
                block.fc = map_linear(block.fc, visitor, &format!("{p}.mlp.c_fc"), Layout::AsIs)?;
                block.proj = map_linear(
                    block.proj,
                    visitor,
                    &format!("{p}.mlp.c_proj"),
                    Layout::AsIs,
                )?;
                Ok(block)
            })
            .collect::<Result<_, WeightError>>()?;
        self.ln_f = map_layer_norm(self.ln_f, visitor, "ln_f")?;
        Ok(self)
    }

    /// Loads an HF GPT-2 checkpoint directory (`config.json` + `model.safetensors`), or one
    /// saved by [`crate::checkpoint::save`]. `attention` overrides the checkpoint's attention.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        attention: Option<Vec<AttentionConfig>>,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        crate::checkpoint::load(dir.as_ref(), attention, device)
    }
}

impl<B: Backend> crate::checkpoint::Checkpoint<B> for Gpt2<B> {
    type Config = Gpt2Config;

    fn attention_of(config: &mut Gpt2Config) -> &mut Vec<AttentionConfig> {
        &mut config.attention
    }

    fn from_config(config: &Gpt2Config, device: &B::Device) -> Result<Self, ModelError> {
        config.init(device)
    }

    fn loader(loader: SafetensorsLoader<B>, _config: &Gpt2Config) -> SafetensorsLoader<B> {
        loader
            .with_prefix("transformer.")
            .ignoring(".attn.bias")
            .ignoring(".attn.masked_bias")
            .ignoring("lm_head.weight")
    }

    fn checkpoint_config(&self) -> &Gpt2Config {
        &self.config
    }

    fn checkpoint_config_mut(&mut self) -> &mut Gpt2Config {
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
