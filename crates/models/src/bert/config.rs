//! BERT hyper-parameters: the HF `config.json` fields and the presets.

use hedgehog_attention::AttentionConfig;
use serde::{Deserialize, Serialize};

fn default_epsilon() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_activation() -> String {
    "gelu".into()
}

/// BERT hyper-parameters with HF `config.json` names (other HF keys are ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_epsilon")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_activation")]
    pub hidden_act: String,
    /// Classification labels (1 = regression, as for STS-B); `None` = encoder only.
    #[serde(default)]
    pub num_labels: Option<usize>,
    /// HF writes the labels as `id2label`; its size is the number of labels.
    #[serde(default, skip_serializing)]
    pub(super) id2label: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, rename = "hedgehog_attention")]
    pub attention: Vec<AttentionConfig>,
}

impl BertConfig {
    /// BERT-base uncased, 110M parameters (HF `bert-base-uncased`).
    pub fn bert_base_uncased() -> Self {
        Self::sized(30522, 12, 768, 12, 3072)
    }

    /// all-MiniLM-L6-v2: a 6-layer, 384-wide BERT, 22.7M parameters.
    pub fn all_minilm_l6_v2() -> Self {
        Self::sized(30522, 6, 384, 12, 1536)
    }

    fn sized(
        vocab_size: usize,
        layers: usize,
        hidden: usize,
        heads: usize,
        intermediate: usize,
    ) -> Self {
        Self {
            vocab_size,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: intermediate,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            hidden_act: "gelu".into(),
            num_labels: None,
            id2label: None,
            attention: Vec::new(),
        }
    }

    pub fn with_labels(mut self, num_labels: usize) -> Self {
        self.num_labels = Some(num_labels);
        self
    }

    pub fn with_attention(mut self, attention: Vec<AttentionConfig>) -> Self {
        self.attention = attention;
        self
    }

    pub(super) fn labels(&self) -> Option<usize> {
        self.num_labels.or(self.id2label.as_ref().map(|m| m.len()))
    }
}
