//! ViT (Dosovitskiy et al. 2021): patch embedding, [CLS] token, learned positions, pre-LN
//! encoder, classifier on the final [CLS]. Names follow HF `ViTForImageClassification`.

mod config;
mod weights;

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

use crate::activation::Gelu;
use crate::attention::{AttentionCapture, AttentionMode, SelfAttention, SelfAttentionConfig};
use crate::common::{AttentionLayers, classification_head, layer_norm, per_layer, refuse_windows};
use crate::error::ModelError;

pub use self::config::VitConfig;

// Building lives beside the model rather than in `config.rs`, so the config needs nothing of it.
impl VitConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Vit<B>, ModelError> {
        let (d, heads) = (self.hidden_size, self.num_attention_heads);
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(ModelError::Config(format!(
                "hidden_size {d} is not divisible by num_attention_heads {heads}"
            )));
        }
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(ModelError::Config(format!(
                "image_size {} is not a multiple of patch_size {}",
                self.image_size, self.patch_size
            )));
        }
        let gelu = match self.hidden_act.as_str() {
            "gelu" => Gelu::Exact,
            "gelu_new" | "gelu_pytorch_tanh" => Gelu::Tanh,
            other => {
                return Err(ModelError::Config(format!(
                    "ViT hidden_act `{other}` is not supported (gelu, gelu_new)"
                )));
            }
        };
        let attention = per_layer(&self.attention, self.num_hidden_layers)?;
        refuse_windows(&attention, "ViT")?;
        let layers = attention
            .into_iter()
            .map(|attention| {
                Ok(VitLayer {
                    norm_before: layer_norm(d, self.layer_norm_eps, device),
                    attention: SelfAttentionConfig {
                        model_dim: d,
                        num_heads: heads,
                        num_kv_heads: heads,
                        head_dim: d / heads,
                        bias: self.qkv_bias,
                        causal: false,
                        dropout: self.attention_probs_dropout_prob,
                        rope_base: None,
                        attention,
                        initializer: None,
                    }
                    .init(device)?,
                    norm_after: layer_norm(d, self.layer_norm_eps, device),
                    intermediate: LinearConfig::new(d, self.intermediate_size).init(device),
                    output: LinearConfig::new(self.intermediate_size, d).init(device),
                    gelu,
                    dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let mut config = self.clone();
        config.num_labels = self.num_labels.or(self.id2label.as_ref().map(|m| m.len()));
        let p = self.patch_size;
        let init = Distribution::Normal(0.0, 0.02);
        Ok(Vit {
            patch_projection: Param::from_tensor(Tensor::random(
                [d, self.num_channels, p, p],
                init,
                device,
            )),
            patch_bias: Param::from_tensor(Tensor::zeros([d], device)),
            cls_token: Param::from_tensor(Tensor::random([1, 1, d], init, device)),
            position_embeddings: Param::from_tensor(Tensor::random(
                [1, self.num_patches() + 1, d],
                init,
                device,
            )),
            layers,
            final_norm: layer_norm(d, self.layer_norm_eps, device),
            classifier: config
                .num_labels
                .map(|n| LinearConfig::new(d, n).init(device)),
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            config,
        })
    }
}

#[derive(Module, Debug)]
pub struct VitLayer<B: Backend> {
    pub norm_before: LayerNorm<B>,
    pub attention: SelfAttention<B>,
    pub norm_after: LayerNorm<B>,
    pub intermediate: Linear<B>,
    pub output: Linear<B>,
    pub gelu: Gelu,
    pub dropout: Dropout,
}

/// Vision Transformer classifier. Dropout is active exactly on an autodiff backend.
#[derive(Module, Debug)]
pub struct Vit<B: Backend> {
    /// The patch convolution, HF layout `[D, C, p, p]`.
    pub patch_projection: Param<Tensor<B, 4>>,
    pub patch_bias: Param<Tensor<B, 1>>,
    pub cls_token: Param<Tensor<B, 3>>,
    pub position_embeddings: Param<Tensor<B, 3>>,
    pub layers: Vec<VitLayer<B>>,
    pub final_norm: LayerNorm<B>,
    pub classifier: Option<Linear<B>>,
    pub dropout: Dropout,
    pub config: VitConfig,
}

/// ViT outputs.
#[derive(Debug)]
pub struct VitOutput<B: Backend> {
    /// Encoder output before the final LayerNorm: `[B, 1 + N, D]`.
    pub encoder_output: Tensor<B, 3>,
    /// Class logits `[B, labels]` (when the model has a head).
    pub logits: Option<Tensor<B, 2>>,
    pub attention: Vec<AttentionCapture<B>>,
}

impl<B: Backend> Vit<B> {
    /// Non-overlapping `p × p` patches, flattened in the convolution's `(c, i, j)` order:
    /// `[B, C, H, W]` → `[B, N, C·p·p]`.
    fn patches(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, c, h, w] = images.dims();
        let p = self.config.patch_size;
        let (gh, gw) = (h / p, w / p);
        images
            .reshape([b, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5]) // [B, gh, gw, C, p, p]
            .reshape([b, gh * gw, c * p * p])
    }

    /// Replaces the classification head (or adds one to a headless encoder) with a fresh
    /// `num_labels`-way head, `N(0, 0.02)` weights and zero bias (HF `ViTPreTrainedModel` draws
    /// a truncated normal with the same σ), and records `num_labels` in the config so that
    /// [`crate::checkpoint::save`] writes the head and [`Vit::from_pretrained`] reads it back.
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

    /// `images: [B, C, H, W]` (already normalised).
    pub fn forward(
        &self,
        images: Tensor<B, 4>,
        mode: AttentionMode,
        capture: bool,
    ) -> Result<VitOutput<B>, ModelError> {
        let [b, c, h, w] = images.dims();
        let cfg = &self.config;
        if c != cfg.num_channels || h != cfg.image_size || w != cfg.image_size {
            return Err(ModelError::Input(format!(
                "images must be [B, {}, {}, {}], got [{b}, {c}, {h}, {w}]",
                cfg.num_channels, cfg.image_size, cfg.image_size
            )));
        }
        let d = cfg.hidden_size;
        let p = cfg.patch_size;
        let kernel = self
            .patch_projection
            .val()
            .reshape([d, c * p * p])
            .transpose(); // [C·p·p, D]
        let n = cfg.num_patches();
        let patches = self
            .patches(images)
            .reshape([b * n, c * p * p])
            .matmul(kernel)
            .reshape([b, n, d])
            + self.patch_bias.val().reshape([1, 1, d]);
        let cls = self.cls_token.val().expand([b, 1, d]);
        let mut hidden = self
            .dropout
            .forward(Tensor::cat(vec![cls, patches], 1) + self.position_embeddings.val());
        let mut attention = Vec::new();
        for layer in &self.layers {
            let (y, captured) = layer.attention.forward(
                layer.norm_before.forward(hidden.clone()),
                None,
                mode,
                capture,
            )?;
            hidden = hidden + layer.dropout.forward(y);
            let ffn = layer.output.forward(
                layer.gelu.apply(
                    layer
                        .intermediate
                        .forward(layer.norm_after.forward(hidden.clone())),
                ),
            );
            hidden = hidden + layer.dropout.forward(ffn);
            attention.extend(captured);
        }
        let logits = self.classifier.as_ref().map(|classifier| {
            let cls = self
                .final_norm
                .forward(hidden.clone())
                .slice([0..b, 0..1])
                .reshape([b, d]);
            classifier.forward(cls)
        });
        Ok(VitOutput {
            encoder_output: hidden,
            logits,
            attention,
        })
    }
}

impl<B: Backend> AttentionLayers<B> for Vit<B> {
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
