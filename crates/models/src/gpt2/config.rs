//! GPT-2 hyper-parameters: the HF `config.json` fields and the presets.

use hedgehog_attention::AttentionConfig;
use serde::{Deserialize, Serialize};

use crate::activation::Gelu;
use crate::error::ModelError;

fn default_epsilon() -> f64 {
    1e-5
}
fn default_dropout() -> f64 {
    0.1
}
fn default_activation() -> String {
    "gelu_new".into()
}

/// GPT-2 hyper-parameters, with HF `config.json` field names (other HF keys are ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; `None` = 4 · n_embd.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_dropout")]
    pub resid_pdrop: f64,
    #[serde(default = "default_dropout")]
    pub embd_pdrop: f64,
    #[serde(default = "default_dropout")]
    pub attn_pdrop: f64,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Attention per layer: empty = softmax everywhere, one = the same for all, else one each.
    #[serde(default, rename = "hedgehog_attention")]
    pub attention: Vec<AttentionConfig>,
}

impl Gpt2Config {
    /// GPT-2 small, 124M parameters (HF `gpt2`).
    pub fn gpt2() -> Self {
        Self::sized(12, 768, 12, 1024)
    }

    /// A 6-layer, 384-wide GPT for CPU experiments (context 512).
    pub fn gpt2_cpu_small() -> Self {
        Self::sized(6, 384, 6, 512)
    }

    /// A 2-layer, 128-wide GPT for tests and the quick start (context 256).
    pub fn gpt2_tiny() -> Self {
        Self::sized(2, 128, 4, 256)
    }

    fn sized(n_layer: usize, n_embd: usize, n_head: usize, n_positions: usize) -> Self {
        Self {
            vocab_size: 50257,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            layer_norm_epsilon: 1e-5,
            resid_pdrop: 0.1,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            activation_function: "gelu_new".into(),
            attention: Vec::new(),
        }
    }

    pub fn with_attention(mut self, attention: Vec<AttentionConfig>) -> Self {
        self.attention = attention;
        self
    }

    pub(super) fn gelu(&self) -> Result<Gelu, ModelError> {
        match self.activation_function.as_str() {
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Gelu::Tanh),
            "gelu" => Ok(Gelu::Exact),
            other => Err(ModelError::Config(format!(
                "GPT-2 activation_function `{other}` is not supported (gelu_new, gelu_pytorch_tanh, gelu)"
            ))),
        }
    }
}
