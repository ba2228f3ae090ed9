//! BERT (Devlin et al. 2019): post-LayerNorm encoder with token-type embeddings, pooler, and
//! heads for GLUE (single sentences, pairs, regression for STS-B) and mean-pooled sentence
//! embeddings (sentence-transformers). Names follow HF `BertModel` /
//! `BertForSequenceClassification`.

mod config;
mod weights;

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, Linear, LinearConfig,
};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, activation};

use crate::activation::Gelu;
use crate::attention::{AttentionCapture, AttentionMode, SelfAttention, SelfAttentionConfig};
use crate::common::{
    AttentionLayers, check_tokens, classification_head, layer_norm, per_layer, refuse_windows,
};
use crate::error::ModelError;

pub use self::config::BertConfig;

// Building lives beside the model rather than in `config.rs`, so the config needs nothing of it.
impl BertConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Bert<B>, ModelError> {
        let (d, heads) = (self.hidden_size, self.num_attention_heads);
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(ModelError::Config(format!(
                "hidden_size {d} is not divisible by num_attention_heads {heads}"
            )));
        }
        let gelu = match self.hidden_act.as_str() {
            "gelu" => Gelu::Exact,
            "gelu_new" | "gelu_pytorch_tanh" => Gelu::Tanh,
            other => {
                return Err(ModelError::Config(format!(
                    "BERT hidden_act `{other}` is not supported (gelu, gelu_new)"
                )));
            }
        };
        let attention = per_layer(&self.attention, self.num_hidden_layers)?;
        refuse_windows(&attention, "BERT")?;
        let layers = attention
            .into_iter()
            .map(|attention| {
                Ok(BertLayer {
                    attention: SelfAttentionConfig {
                        model_dim: d,
                        num_heads: heads,
                        num_kv_heads: heads,
                        head_dim: d / heads,
                        bias: true,
                        causal: false,
                        dropout: self.attention_probs_dropout_prob,
                        rope_base: None,
                        attention,
                        initializer: None,
                    }
                    .init(device)?,
                    attention_norm: layer_norm(d, self.layer_norm_eps, device),
                    intermediate: LinearConfig::new(d, self.intermediate_size).init(device),
                    output: LinearConfig::new(self.intermediate_size, d).init(device),
                    output_norm: layer_norm(d, self.layer_norm_eps, device),
                    gelu,
                    dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let mut config = self.clone();
        config.num_labels = self.labels();
        Ok(Bert {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, d).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, d).init(device),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, d).init(device),
            embedding_norm: layer_norm(d, self.layer_norm_eps, device),
            layers,
            pooler: LinearConfig::new(d, d).init(device),
            classifier: config
                .num_labels
                .map(|n| LinearConfig::new(d, n).init(device)),
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            config,
        })
    }
}

#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    pub attention: SelfAttention<B>,
    pub attention_norm: LayerNorm<B>,
    pub intermediate: Linear<B>,
    pub output: Linear<B>,
    pub output_norm: LayerNorm<B>,
    pub gelu: Gelu,
    pub dropout: Dropout,
}

/// BERT encoder with pooler and optional classification head. Dropout is active exactly on an
/// autodiff backend; `model.valid()` is evaluation mode.
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    pub word_embeddings: Embedding<B>,
    pub position_embeddings: Embedding<B>,
    pub token_type_embeddings: Embedding<B>,
    pub embedding_norm: LayerNorm<B>,
    pub layers: Vec<BertLayer<B>>,
    pub pooler: Linear<B>,
    pub classifier: Option<Linear<B>>,
    pub dropout: Dropout,
    pub config: BertConfig,
}

/// Encoder outputs.
#[derive(Debug)]
pub struct BertOutput<B: Backend> {
    /// `[B, T, D]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// `tanh(W h_[CLS] + b)`: `[B, D]`.
    pub pooled: Tensor<B, 2>,
    /// One entry per layer when captured.
    pub attention: Vec<AttentionCapture<B>>,
}

impl<B: Backend> Bert<B> {
    /// `tokens, token_types: [B, T]`; `attention_mask: [B, T]` with true = real token (HF).
    pub fn encode(
        &self,
        tokens: Tensor<B, 2, Int>,
        token_types: Option<Tensor<B, 2, Int>>,
        attention_mask: Option<Tensor<B, 2, Bool>>,
        mode: AttentionMode,
        capture: bool,
    ) -> Result<BertOutput<B>, ModelError> {
        let [b, t] = tokens.dims();
        check_tokens(&tokens, self.config.vocab_size)?;
        if t > self.config.max_position_embeddings {
            return Err(ModelError::Input(format!(
                "{t} tokens exceed max_position_embeddings {}; truncate the input",
                self.config.max_position_embeddings
            )));
        }
        let device = tokens.device();
        let token_types = token_types.unwrap_or_else(|| Tensor::zeros([b, t], &device));
        check_tokens(&token_types, self.config.type_vocab_size)?;
        let positions = Tensor::<B, 1, Int>::arange(0..t as i64, &device)
            .reshape([1, t])
            .expand([b, t]);
        let embedded = self.word_embeddings.forward(tokens)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_types);
        let mut hidden = self.dropout.forward(self.embedding_norm.forward(embedded));
        let padding = attention_mask.map(|m| m.bool_not());
        let mut attention = Vec::new();
        for layer in &self.layers {
            let (y, captured) =
                layer
                    .attention
                    .forward(hidden.clone(), padding.as_ref(), mode, capture)?;
            hidden = layer
                .attention_norm
                .forward(hidden + layer.dropout.forward(y));
            let ffn = layer
                .output
                .forward(layer.gelu.apply(layer.intermediate.forward(hidden.clone())));
            hidden = layer
                .output_norm
                .forward(hidden + layer.dropout.forward(ffn));
            attention.extend(captured);
        }
        let d = self.config.hidden_size;
        let cls = hidden.clone().slice([0..b, 0..1]).reshape([b, d]);
        let pooled = activation::tanh(self.pooler.forward(cls));
        Ok(BertOutput {
            last_hidden_state: hidden,
            pooled,
            attention,
        })
    }

    /// Replaces the classification head (or adds one to an encoder such as all-MiniLM-L6-v2)
    /// with a fresh `num_labels`-way head initialised as HF's `BertPreTrainedModel` does
    /// (`N(0, 0.02)` weights, zero bias), and records `num_labels` in the config so that
    /// [`crate::checkpoint::save`] writes the head and [`Bert::from_pretrained`] reads it back.
    pub fn with_classifier(mut self, num_labels: usize, device: &B::Device) -> Self {
        self.classifier = Some(classification_head(
            self.config.hidden_size,
            num_labels,
            device,
        ));
        self.config.num_labels = Some(num_labels);
        // HF's label names describe the old head.
        self.config.id2label = None;
        self
    }

    /// Classification (or regression, 1 label) logits `[B, labels]` from the pooled output.
    pub fn classify(&self, output: &BertOutput<B>) -> Result<Tensor<B, 2>, ModelError> {
        let classifier = self.classifier.as_ref().ok_or_else(|| {
            ModelError::Config(
                "this BERT has no classification head: set num_labels in its config".into(),
            )
        })?;
        Ok(classifier.forward(self.dropout.forward(output.pooled.clone())))
    }

    /// Sentence embeddings by masked mean pooling (sentence-transformers `Pooling(mean)`): `[B, D]`.
    pub fn mean_pool(
        hidden: Tensor<B, 3>,
        attention_mask: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 2> {
        let [b, t, d] = hidden.dims();
        match attention_mask {
            Some(mask) => {
                let keep = mask.float().reshape([b, t, 1]);
                let counts = keep.clone().sum_dim(1).clamp_min(1e-9); // [B, 1, 1]
                ((hidden * keep).sum_dim(1) / counts).reshape([b, d])
            }
            None => hidden.mean_dim(1).reshape([b, d]),
        }
    }
}

impl<B: Backend> AttentionLayers<B> for Bert<B> {
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
