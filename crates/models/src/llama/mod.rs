//! Llama-style decoder (Touvron et al. 2023): RMSNorm, rotary embeddings, grouped-query
//! attention and a SwiGLU MLP. Names follow HF `LlamaForCausalLM`; SmolLM2-135M is the preset.
//! Feature maps of a linear attention apply after RoPE (LoLCATs' convention).

mod config;
mod gguf;
mod tokenizer;
mod weights;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, activation};
use hedgehog_attention::lm_head;

use crate::attention::{AttentionMode, LayerCache, SelfAttention, SelfAttentionConfig};
use crate::common::{AttentionLayers, CausalLm, ModelOutput, check_tokens, per_layer};
use crate::error::ModelError;

pub use self::config::{LlamaConfig, RopeParameters};
pub use self::tokenizer::gguf_tokenizer;

// Building lives beside the model rather than in `config.rs`, so the config needs nothing of it.
impl LlamaConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Llama<B>, ModelError> {
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ModelError::Config(
                "rope_scaling is set; scaled RoPE is not supported".into(),
            ));
        }
        if let Some(p) = &self.rope_parameters
            && p.rope_type != "default"
        {
            return Err(ModelError::Config(format!(
                "rope_type `{}` is not supported (default)",
                p.rope_type
            )));
        }
        if self.hidden_act != "silu" {
            return Err(ModelError::Config(format!(
                "Llama hidden_act `{}` is not supported (silu)",
                self.hidden_act
            )));
        }
        if self.num_attention_heads == 0 || self.kv_heads() == 0 {
            return Err(ModelError::Config(
                "num_attention_heads and num_key_value_heads must be positive".into(),
            ));
        }
        let d = self.hidden_size;
        let layers = per_layer(&self.attention, self.num_hidden_layers)?
            .into_iter()
            .map(|attention| {
                Ok(LlamaLayer {
                    input_norm: RmsNormConfig::new(d)
                        .with_epsilon(self.rms_norm_eps)
                        .init(device),
                    attention: SelfAttentionConfig {
                        model_dim: d,
                        num_heads: self.num_attention_heads,
                        num_kv_heads: self.kv_heads(),
                        head_dim: self.head_size(),
                        bias: false,
                        causal: true,
                        dropout: 0.0,
                        rope_base: Some(self.rope_base()),
                        attention,
                        initializer: None,
                    }
                    .init(device)?,
                    post_attention_norm: RmsNormConfig::new(d)
                        .with_epsilon(self.rms_norm_eps)
                        .init(device),
                    gate: LinearConfig::new(d, self.intermediate_size)
                        .with_bias(false)
                        .init(device),
                    up: LinearConfig::new(d, self.intermediate_size)
                        .with_bias(false)
                        .init(device),
                    down: LinearConfig::new(self.intermediate_size, d)
                        .with_bias(false)
                        .init(device),
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Llama {
            embed_tokens: EmbeddingConfig::new(self.vocab_size, d).init(device),
            layers,
            norm: RmsNormConfig::new(d)
                .with_epsilon(self.rms_norm_eps)
                .init(device),
            lm_head: (!self.tie_word_embeddings).then(|| {
                LinearConfig::new(d, self.vocab_size)
                    .with_bias(false)
                    .init(device)
            }),
            config: self.clone(),
        })
    }
}

#[derive(Module, Debug)]
pub struct LlamaLayer<B: Backend> {
    pub input_norm: RmsNorm<B>,
    pub attention: SelfAttention<B>,
    pub post_attention_norm: RmsNorm<B>,
    pub gate: Linear<B>,
    pub up: Linear<B>,
    pub down: Linear<B>,
}

impl<B: Backend> LlamaLayer<B> {
    /// SwiGLU: `down(silu(gate(x)) ⊙ up(x))`.
    fn mlp(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = self.post_attention_norm.forward(x);
        self.down
            .forward(activation::silu(self.gate.forward(x.clone())) * self.up.forward(x))
    }
}

/// Llama-style causal language model (no dropout, as in the reference).
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<LlamaLayer<B>>,
    pub norm: RmsNorm<B>,
    /// `None`: tied to the embedding.
    pub lm_head: Option<Linear<B>>,
    pub config: LlamaConfig,
}

impl<B: Backend> Llama<B> {
    fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let hidden = self.norm.forward(hidden);
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => crate::common::tied_logits(hidden, self.embed_tokens.weight.val()),
        }
    }

    /// The hidden states before the final norm, `[B, T, d]`, and the captured attention.
    fn final_hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        mode: AttentionMode,
        capture: bool,
    ) -> Result<(Tensor<B, 3>, Vec<crate::AttentionCapture<B>>), ModelError> {
        check_tokens(&tokens, self.config.vocab_size)?;
        let mut hidden = self.embed_tokens.forward(tokens);
        let mut attention = Vec::new();
        for layer in &self.layers {
            let (y, captured) = layer.attention.forward(
                layer.input_norm.forward(hidden.clone()),
                key_padding,
                mode,
                capture,
            )?;
            hidden = hidden + y;
            hidden = hidden.clone() + layer.mlp(hidden);
            attention.extend(captured);
        }
        Ok((hidden, attention))
    }

    /// Each layer's captured attention for `tokens: [B, T]`, without the LM head: what a
    /// distillation step needs (the head is a fifth of SmolLM2's multiply-adds, a third of
    /// GPT-2's).
    pub fn captures(
        &self,
        tokens: Tensor<B, 2, Int>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        mode: AttentionMode,
    ) -> Result<Vec<crate::AttentionCapture<B>>, ModelError> {
        Ok(self.final_hidden(tokens, key_padding, mode, true)?.1)
    }

    /// Logits `[B, T, V]` for `tokens: [B, T]`; `key_padding: [B, T]` (true = padding).
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        mode: AttentionMode,
        capture: bool,
    ) -> Result<ModelOutput<B>, ModelError> {
        let (hidden, attention) = self.final_hidden(tokens, key_padding, mode, capture)?;
        Ok(ModelOutput {
            output: self.logits(hidden),
            attention,
        })
    }

    /// The normalised hidden states `[B·T, d]` and the head's weight `[V, d]` (the tied
    /// embedding, or the `lm_head` Linear's `[d, V]` transposed), when the head has no bias.
    fn head_inputs(&self, hidden: Tensor<B, 3>) -> Option<(Tensor<B, 2>, Tensor<B, 2>)> {
        let [b, t, d] = hidden.dims();
        let normed = self.norm.forward(hidden).reshape([b * t, d]);
        match &self.lm_head {
            None => Some((normed, self.embed_tokens.weight.val())),
            Some(head) if head.bias.is_none() => Some((normed, head.weight.val().transpose())),
            Some(_) => None,
        }
    }

    /// Mean next-token cross-entropy over the positions whose target (row-major over
    /// `[B, T]`) is `Some`, without forming the `[B, T, V]` logits where the head allows it.
    pub fn lm_loss(
        &self,
        tokens: Tensor<B, 2, Int>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        targets: &[Option<usize>],
        mode: AttentionMode,
    ) -> Result<Tensor<B, 1>, ModelError> {
        let (hidden, _) = self.final_hidden(tokens, key_padding, mode, false)?;
        match self.head_inputs(hidden.clone()) {
            Some((normed, weight)) => Ok(lm_head::cross_entropy(normed, weight, targets)?),
            None => {
                let logits = self.logits(hidden);
                let [b, t, v] = logits.dims();
                Ok(lm_head::logits_cross_entropy(
                    logits.reshape([b * t, v]),
                    targets,
                )?)
            }
        }
    }

    /// Each position's negative log-likelihood of its target (0 where `None`), no gradient.
    pub fn token_nll(
        &self,
        tokens: Tensor<B, 2, Int>,
        targets: &[Option<usize>],
    ) -> Result<Vec<f32>, ModelError> {
        let (hidden, _) = self.final_hidden(tokens, None, AttentionMode::Configured, false)?;
        let (normed, weight) = self
            .head_inputs(hidden)
            .ok_or_else(|| ModelError::Config("token_nll needs an LM head without bias".into()))?;
        Ok(lm_head::nll(normed, weight, targets)?)
    }
}

impl<B: Backend> CausalLm<B> for Llama<B> {
    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn max_positions(&self) -> Option<usize> {
        self.config.max_position_embeddings
    }

    fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        caches: Vec<LayerCache<B>>,
        start: usize,
    ) -> Result<(Tensor<B, 3>, Vec<LayerCache<B>>), ModelError> {
        check_tokens(&tokens, self.config.vocab_size)?;
        let mut hidden = self.embed_tokens.forward(tokens);
        let mut next = Vec::with_capacity(self.layers.len());
        for (layer, cache) in self.layers.iter().zip(caches) {
            let (y, cache) = layer.attention.forward_cached(
                layer.input_norm.forward(hidden.clone()),
                cache,
                start,
            )?;
            hidden = hidden + y;
            hidden = hidden.clone() + layer.mlp(hidden);
            next.push(cache);
        }
        Ok((self.logits(hidden), next))
    }
}

impl<B: Backend> AttentionLayers<B> for Llama<B> {
    fn attention_layers(&self) -> Vec<&SelfAttention<B>> {
        self.layers.iter().map(|layer| &layer.attention).collect()
    }

    fn map_attention_layers(
        mut self,
        f: &mut dyn FnMut(SelfAttention<B>) -> Result<SelfAttention<B>, ModelError>,
    ) -> Result<Self, ModelError> {
        self.layers = self
            .layers
            .into_iter()
            .map(|mut layer| {
                layer.attention = f(layer.attention)?;
                Ok(layer)
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(self)
    }
}
