//! Llama-style decoder (Touvron et al. 2023): RMSNorm, rotary embeddings, grouped-query
//! attention and a SwiGLU MLP. Names follow HF `LlamaForCausalLM`; SmolLM2-135M is the preset.
//! Feature maps of a linear attention apply after RoPE (LoLCATs' convention).

mod gguf;
pub use gguf::gguf_tokenizer;

use std::path::Path;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, activation};
use hedgehog_attention::{AttentionConfig, lm_head};
use serde::{Deserialize, Serialize};

use crate::attention::{AttentionMode, LayerCache, SelfAttention, SelfAttentionConfig};
use crate::common::{AttentionLayers, CausalLm, ModelOutput, check_tokens, per_layer};
use crate::error::{ModelError, WeightError};
use crate::nn_weights::{map_embedding, map_linear};
use crate::weights::{Layout, SafetensorsLoader, WeightVisitor};

fn default_rope_theta() -> f64 {
    10000.0
}
fn default_epsilon() -> f64 {
    1e-5
}
fn default_activation() -> String {
    "silu".into()
}

fn default_rope_type() -> String {
    "default".into()
}

/// RoPE settings as transformers ≥ 5 writes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    pub rope_theta: f64,
    #[serde(default = "default_rope_type")]
    pub rope_type: String,
}

/// Llama hyper-parameters with HF `config.json` names (other HF keys are ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// `None` = as many as query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// `None` = hidden_size / num_attention_heads.
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_epsilon")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_activation")]
    pub hidden_act: String,
    /// Must be absent: scaled RoPE variants are not implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers ≥ 5 writes `rope_theta` here (`{rope_theta, rope_type}`) instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default, rename = "hedgehog_attention")]
    pub attention: Vec<AttentionConfig>,
}

impl LlamaConfig {
    /// SmolLM2-135M: 30 blocks, d 576, 9 query / 3 key-value heads, rope base 1e5, vocab 49152.
    pub fn smollm2_135m() -> Self {
        Self {
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: Some(3),
            head_dim: None,
            rope_theta: 100000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: Some(8192),
            tie_word_embeddings: true,
            hidden_act: "silu".into(),
            rope_scaling: None,
            rope_parameters: None,
            attention: Vec::new(),
        }
    }

    pub fn with_attention(mut self, attention: Vec<AttentionConfig>) -> Self {
        self.attention = attention;
        self
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_size(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The RoPE base, from `rope_parameters` when present.
    pub fn rope_base(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .map_or(self.rope_theta, |p| p.rope_theta)
    }

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
            None => {
                let [b, t, d] = hidden.dims();
                hidden
                    .reshape([b * t, d])
                    .matmul(self.embed_tokens.weight.val().transpose())
                    .reshape([b, t, self.config.vocab_size])
            }
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

    fn visit_weights<V: WeightVisitor<B>>(
        self,
        visitor: &mut V,
        with_maps: bool,
    ) -> Result<Self, WeightError> {
        self.map_weights(visitor, with_maps)
    }
}
