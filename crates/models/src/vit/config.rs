//! ViT hyper-parameters: the HF `config.json` fields and the presets.

use hedgehog_attention::AttentionConfig;
use serde::{Deserialize, Serialize};

fn default_epsilon() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.0
}
fn default_true() -> bool {
    true
}
fn default_activation() -> String {
    "gelu".into()
}

/// ViT hyper-parameters with HF `config.json` names (other HF keys are ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_epsilon")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    #[serde(default = "default_activation")]
    pub hidden_act: String,
    #[serde(default)]
    pub num_labels: Option<usize>,
    #[serde(default, skip_serializing)]
    pub(super) id2label: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, rename = "hedgehog_attention")]
    pub attention: Vec<AttentionConfig>,
}

impl VitConfig {
    /// ViT-B/16 at 224×224 with the ImageNet-1k head, 86.6M parameters.
    pub fn vit_base_patch16_224() -> Self {
        Self::sized(224, 16, 3, 768, 12, 12, 3072, 1000)
    }

    /// A 4-layer, 128-wide ViT on 28×28 single-channel images (MNIST), patch 7.
    pub fn vit_tiny_28() -> Self {
        Self::sized(28, 7, 1, 128, 4, 4, 256, 10)
    }

    #[allow(clippy::too_many_arguments)]
    fn sized(
        image_size: usize,
        patch_size: usize,
        num_channels: usize,
        hidden: usize,
        layers: usize,
        heads: usize,
        intermediate: usize,
        labels: usize,
    ) -> Self {
        Self {
            image_size,
            patch_size,
            num_channels,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: intermediate,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            qkv_bias: true,
            hidden_act: "gelu".into(),
            num_labels: Some(labels),
            id2label: None,
            attention: Vec::new(),
        }
    }

    pub fn with_attention(mut self, attention: Vec<AttentionConfig>) -> Self {
        self.attention = attention;
        self
    }

    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }
}
