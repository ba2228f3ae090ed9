//! GPT-2 (Radford et al. 2019): pre-LayerNorm decoder, learned positions, tied LM head.
//! Shapes and names follow HF `transformers` `GPT2LMHeadModel`; nanoGPT is the readable
//! reference for the forward pass.

mod config;
mod weights;

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, Linear,
    LinearConfig,
};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use hedgehog_attention::lm_head;

use crate::activation::Gelu;
use crate::attention::{AttentionMode, LayerCache, SelfAttention, SelfAttentionConfig};
use crate::common::{AttentionLayers, CausalLm, ModelOutput, check_tokens, layer_norm, per_layer};
use crate::error::ModelError;

pub use self::config::Gpt2Config;

// Building lives beside the model rather than in `config.rs`, so the config needs nothing of it.
impl Gpt2Config {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Gpt2<B>, ModelError> {
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(ModelError::Config(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            )));
        }
        let attention = per_layer(&self.attention, self.n_layer)?;
        let gelu = self.gelu()?;
        let inner = self.n_inner.unwrap_or(4 * self.n_embd);
        // GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/√(2·layers).
        let normal = |std: f64| Initializer::Normal { mean: 0.0, std };
        let residual = normal(0.02 / (2.0 * self.n_layer as f64).sqrt());
        let blocks = attention
            .into_iter()
            .map(|attention| {
                Ok(Gpt2Block {
                    ln_1: layer_norm(self.n_embd, self.layer_norm_epsilon, device),
                    attn: SelfAttentionConfig {
                        model_dim: self.n_embd,
                        num_heads: self.n_head,
                        num_kv_heads: self.n_head,
                        head_dim: self.n_embd / self.n_head,
                        bias: true,
                        causal: true,
                        dropout: self.attn_pdrop,
                        rope_base: None,
                        attention,
                        initializer: Some(normal(0.02)),
                    }
                    .init(device)?,
                    ln_2: layer_norm(self.n_embd, self.layer_norm_epsilon, device),
                    fc: LinearConfig::new(self.n_embd, inner)
                        .with_initializer(normal(0.02))
                        .init(device),
                    proj: LinearConfig::new(inner, self.n_embd)
                        .with_initializer(residual.clone())
                        .init(device),
                    gelu,
                    dropout: DropoutConfig::new(self.resid_pdrop).init(),
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Gpt2 {
            wte: EmbeddingConfig::new(self.vocab_size, self.n_embd)
                .with_initializer(normal(0.02))
                .init(device),
            wpe: EmbeddingConfig::new(self.n_positions, self.n_embd)
                .with_initializer(normal(0.01))
                .init(device),
            blocks,
            ln_f: layer_norm(self.n_embd, self.layer_norm_epsilon, device),
            dropout: DropoutConfig::new(self.embd_pdrop).init(),
            config: self.clone(),
        })
    }
}

#[derive(Module, Debug)]
pub struct Gpt2Block<B: Backend> {
    pub ln_1: LayerNorm<B>,
    pub attn: SelfAttention<B>,
    pub ln_2: LayerNorm<B>,
    pub fc: Linear<B>,
    pub proj: Linear<B>,
    pub gelu: Gelu,
    pub dropout: Dropout,
}

impl<B: Backend> Gpt2Block<B> {
    fn mlp(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.dropout.forward(
            self.proj
                .forward(self.gelu.apply(self.fc.forward(self.ln_2.forward(x)))),
        )
    }
}

/// GPT-2 language model. Dropout is active exactly when it runs on an autodiff backend
/// (training); `model.valid()` is evaluation mode.
#[derive(Module, Debug)]
pub struct Gpt2<B: Backend> {
    pub wte: Embedding<B>,
    pub wpe: Embedding<B>,
    pub blocks: Vec<Gpt2Block<B>>,
    pub ln_f: LayerNorm<B>,
    pub dropout: Dropout,
    pub config: Gpt2Config,
}

impl<B: Backend> Gpt2<B> {
    fn embed(&self, tokens: Tensor<B, 2, Int>, start: usize) -> Result<Tensor<B, 3>, ModelError> {
        let [b, t] = tokens.dims();
        check_tokens(&tokens, self.config.vocab_size)?;
        if start + t > self.config.n_positions {
            return Err(ModelError::Input(format!(
                "sequence reaches position {}, GPT-2 has {} positions (n_positions)",
                start + t,
                self.config.n_positions
            )));
        }
        let positions =
            Tensor::<B, 1, Int>::arange(start as i64..(start + t) as i64, &tokens.device())
                .reshape([1, t])
                .expand([b, t]);
        Ok(self
            .dropout
            .forward(self.wte.forward(tokens) + self.wpe.forward(positions)))
    }

    /// Tied LM head on normalised hidden states: `h · wteᵀ`.
    fn head(&self, normed: Tensor<B, 3>) -> Tensor<B, 3> {
        crate::common::tied_logits(normed, self.wte.weight.val())
    }

    /// The hidden states after `ln_f`, `[B, T, d]`, and each layer's captured attention.
    fn final_hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        mode: AttentionMode,
        capture: bool,
    ) -> Result<(Tensor<B, 3>, Vec<crate::AttentionCapture<B>>), ModelError> {
        let mut hidden = self.embed(tokens, 0)?;
        let mut attention = Vec::new();
        for block in &self.blocks {
            let (y, captured) = block.attn.forward(
                block.ln_1.forward(hidden.clone()),
                key_padding,
                mode,
                capture,
            )?;
            hidden = hidden + block.dropout.forward(y);
            hidden = hidden.clone() + block.mlp(hidden);
            attention.extend(captured);
        }
        Ok((self.ln_f.forward(hidden), attention))
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
            output: self.head(hidden),
            attention,
        })
    }

    /// Mean next-token cross-entropy over the positions whose target (row-major over
    /// `[B, T]`) is `Some`, through the tied head without forming the `[B, T, V]` logits
    /// (`hedgehog_attention::lm_head`).
    pub fn lm_loss(
        &self,
        tokens: Tensor<B, 2, Int>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        targets: &[Option<usize>],
        mode: AttentionMode,
    ) -> Result<Tensor<B, 1>, ModelError> {
        let (hidden, _) = self.final_hidden(tokens, key_padding, mode, false)?;
        let [b, t, d] = hidden.dims();
        Ok(lm_head::cross_entropy(
            hidden.reshape([b * t, d]),
            self.wte.weight.val(),
            targets,
        )?)
    }

    /// Each position's negative log-likelihood of its target (0 where `None`), no gradient.
    pub fn token_nll(
        &self,
        tokens: Tensor<B, 2, Int>,
        targets: &[Option<usize>],
    ) -> Result<Vec<f32>, ModelError> {
        let (hidden, _) = self.final_hidden(tokens, None, AttentionMode::Configured, false)?;
        let [b, t, d] = hidden.dims();
        Ok(lm_head::nll(
            hidden.reshape([b * t, d]),
            self.wte.weight.val(),
            targets,
        )?)
    }
}

impl<B: Backend> CausalLm<B> for Gpt2<B> {
    fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn max_positions(&self) -> Option<usize> {
        Some(self.config.n_positions)
    }

    fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        caches: Vec<LayerCache<B>>,
        start: usize,
    ) -> Result<(Tensor<B, 3>, Vec<LayerCache<B>>), ModelError> {
        let mut hidden = self.embed(tokens, start)?;
        let mut next = Vec::with_capacity(self.blocks.len());
        for (block, cache) in self.blocks.iter().zip(caches) {
            let (y, cache) =
                block
                    .attn
                    .forward_cached(block.ln_1.forward(hidden.clone()), cache, start)?;
            hidden = hidden + block.dropout.forward(y);
            hidden = hidden.clone() + block.mlp(hidden);
            next.push(cache);
        }
        Ok((self.head(self.ln_f.forward(hidden)), next))
    }
}

impl<B: Backend> AttentionLayers<B> for Gpt2<B> {
    fn attention_layers(&self) -> Vec<&SelfAttention<B>> {
        self.blocks.iter().map(|block| &block.attn).collect()
    }

    fn map_attention_layers(
        mut self,
        f: &mut dyn FnMut(SelfAttention<B>) -> Result<SelfAttention<B>, ModelError>,
    ) -> Result<Self, ModelError> {
        self.blocks = self
            .blocks
            .into_iter()
            .map(|mut block| {
                block.attn = f(block.attn)?;
                Ok(block)
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(self)
    }
}
