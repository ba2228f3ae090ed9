//! Llama hyper-parameters: the HF `config.json` fields and the presets.

use hedgehog_attention::AttentionConfig;
use serde::{Deserialize, Serialize};

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
}
