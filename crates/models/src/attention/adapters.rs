//! Attaching LoRA adapters to one layer's projections and folding them back in.

use burn::nn::Linear;
use burn::tensor::backend::Backend;

use super::SelfAttention;
use crate::error::ModelError;
use crate::lora_adapter::{Lora, LoraAdapters, LoraConfig, LoraTarget};

impl<B: Backend> SelfAttention<B> {
    /// Attaches fresh LoRA adapters (`A` Kaiming-uniform, `B = 0`: the outputs do not change)
    /// to the projections `config.targets` lists. Grouped key/value projections get adapters
    /// of their own width `num_kv_heads · head_dim`.
    pub fn attach_lora(
        mut self,
        config: &LoraConfig,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        if self.lora.is_some() {
            return Err(ModelError::Config(
                "this attention layer already has LoRA adapters: merge_lora before attaching new ones"
                    .into(),
            ));
        }
        self.lora = Some(LoraAdapters {
            query: config.adapter(LoraTarget::Query, &self.query, device),
            key: config.adapter(LoraTarget::Key, &self.key, device),
            value: config.adapter(LoraTarget::Value, &self.value, device),
            output: config.adapter(LoraTarget::Output, &self.output, device),
        });
        Ok(self)
    }

    /// Folds the adapters into the projections, `W ← W + (α / r) · A B`, and removes them; a
    /// layer without adapters is returned as it is.
    pub fn merge_lora(mut self) -> Self {
        let Some(adapters) = self.lora.take() else {
            return self;
        };
        let merge = |linear: Linear<B>, adapter: Option<Lora<B>>| match adapter {
            Some(adapter) => adapter.merge_into(linear),
            None => linear,
        };
        self.query = merge(self.query, adapters.query);
        self.key = merge(self.key, adapters.key);
        self.value = merge(self.value, adapters.value);
        self.output = merge(self.output, adapters.output);
        self
    }
}
