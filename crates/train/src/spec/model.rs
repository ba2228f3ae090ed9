//! The `model:` section: family, preset, config overrides, pretrained weights.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Gpt2,
    Bert,
    Vit,
    Llama,
}

/// Named sizes (see `hedgehog-models`' README for parameter counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// GPT-2 small, 124M.
    Gpt2,
    Gpt2CpuSmall,
    Gpt2Tiny,
    BertBaseUncased,
    #[serde(rename = "all_minilm_l6_v2")]
    AllMinilmL6V2,
    #[serde(rename = "vit_base_patch16_224")]
    VitBasePatch16_224,
    #[serde(rename = "vit_tiny_28")]
    VitTiny28,
    #[serde(rename = "smollm2_135m")]
    Smollm2_135m,
}

impl Preset {
    pub fn family(self) -> Family {
        match self {
            Self::Gpt2 | Self::Gpt2CpuSmall | Self::Gpt2Tiny => Family::Gpt2,
            Self::BertBaseUncased | Self::AllMinilmL6V2 => Family::Bert,
            Self::VitBasePatch16_224 | Self::VitTiny28 => Family::Vit,
            Self::Smollm2_135m => Family::Llama,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub family: Family,
    /// A named size to start from (random weights).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// Overrides of the preset's config, by its HF `config.json` key (`n_layer: 4`); a key the
    /// family's config does not have is an error.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Pretrained weights: an HF checkpoint directory (`config.json` + `model.safetensors`) for
    /// any family, or a llama.cpp `.gguf` file for `llama`.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Minimum context length (GPT-2 `n_positions`); the task's context is always covered.
    #[serde(default)]
    pub context: Option<usize>,
}

impl ModelSpec {
    /// A preset or a pretrained checkpoint, never both with `config`; the preset's family.
    pub(super) fn validate(&self) -> Result<(), String> {
        match (self.preset, &self.pretrained) {
            (None, None) => Err("model: give a `preset` or a `pretrained` path".into()),
            (_, Some(_)) if !self.config.is_empty() => Err(
                "model: `config` overrides a preset; a pretrained checkpoint brings its own config"
                    .into(),
            ),
            (Some(preset), _) if preset.family() != self.family => Err(format!(
                "model: preset {preset:?} is a {:?} model, but family is {:?}",
                preset.family(),
                self.family
            )),
            _ => Ok(()),
        }
    }
}
