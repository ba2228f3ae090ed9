//! SmolLM2 and other llama.cpp `llama` models from a GGUF file: config from the metadata,
//! weights dequantised to f32 under the HF names, and the byte-level BPE tokenizer.

use std::collections::BTreeSet;
use std::path::Path;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use hedgehog_attention::AttentionConfig;

use super::Llama;
use super::config::LlamaConfig;
use super::tokenizer::gguf_tokenizer;
use crate::error::{ModelError, WeightError};
use crate::gguf::GgufFile;
use crate::tokenizer::TextTokenizer;
use crate::weights::{Layout, WeightVisitor, in_model_layout, replace, stored_dims};

/// The GGUF name of an HF Llama tensor.
fn gguf_name(hf: &str) -> Option<String> {
    let simple = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = simple.iter().find(|(h, _)| *h == hf) {
        return Some(g.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    let part = match tail {
        "input_layernorm.weight" => "attn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{part}"))
}

/// Undoes llama.cpp's row permutation of `attn_q`/`attn_k` (made for ggml's adjacent-pair
/// RoPE; `convert_hf_to_gguf.py`, `LlamaModel.permute`): HF row `h·d + s·d/2 + j` is GGUF row
/// `h·d + 2j + s`.
fn unpermute_rows(values: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0.0; values.len()];
    for h in 0..heads {
        for s in 0..2 {
            for j in 0..half {
                let hf = h * head_dim + s * half + j;
                let gguf = h * head_dim + 2 * j + s;
                out[hf * cols..(hf + 1) * cols]
                    .copy_from_slice(&values[gguf * cols..(gguf + 1) * cols]);
            }
        }
    }
    out
}

struct GgufLoader<'a, B: Backend> {
    file: &'a GgufFile,
    used: BTreeSet<String>,
    heads: usize,
    kv_heads: usize,
    device: B::Device,
}

impl<B: Backend> GgufLoader<'_, B> {
    fn load<const D: usize>(
        &mut self,
        hf: &str,
        expected: Vec<usize>,
    ) -> Result<Tensor<B, D>, WeightError> {
        let name = gguf_name(hf).ok_or_else(|| WeightError::Config {
            path: self.file.path().to_path_buf(),
            reason: format!("no GGUF name for `{hf}`"),
        })?;
        let (shape, mut values) = self.file.tensor_f32(&name)?;
        if shape != expected {
            return Err(WeightError::ShapeMismatch {
                path: self.file.path().to_path_buf(),
                name,
                expected,
                found: shape,
            });
        }
        if hf.ends_with("q_proj.weight") || hf.ends_with("k_proj.weight") {
            let heads = if hf.ends_with("q_proj.weight") {
                self.heads
            } else {
                self.kv_heads
            };
            values = unpermute_rows(&values, shape[0], shape[1], heads);
        }
        self.used.insert(name);
        Ok(Tensor::from_data(
            TensorData::new(values, shape).convert::<B::FloatElem>(),
            &self.device,
        ))
    }
}

impl<B: Backend> WeightVisitor<B> for GgufLoader<'_, B> {
    fn param<const D: usize>(
        &mut self,
        name: &str,
        param: Param<Tensor<B, D>>,
        layout: Layout,
    ) -> Result<Param<Tensor<B, D>>, WeightError> {
        // GGUF matrices are [out, in] like torch's: the same layout rule as HF.
        let loaded = self.load::<D>(name, stored_dims(param.dims(), layout))?;
        Ok(replace(param, in_model_layout(loaded, layout)))
    }

    fn constant<const D: usize>(
        &mut self,
        name: &str,
        tensor: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, WeightError> {
        self.load(name, tensor.dims().to_vec())
    }

    fn fused<const D: usize>(
        &mut self,
        name: &str,
        _params: Vec<Param<Tensor<B, D>>>,
        _axis: usize,
    ) -> Result<Vec<Param<Tensor<B, D>>>, WeightError> {
        Err(WeightError::Config {
            path: self.file.path().to_path_buf(),
            reason: format!("GGUF Llama has no fused tensor `{name}`"),
        })
    }
}

fn metadata_usize(file: &GgufFile, key: &str) -> Result<usize, ModelError> {
    file.get(key)?.as_u64().map(|v| v as usize).ok_or_else(|| {
        ModelError::Config(format!(
            "{}: `{key}` is not an integer",
            file.path().display()
        ))
    })
}

fn metadata_f64(file: &GgufFile, key: &str) -> Result<f64, ModelError> {
    file.get(key)?.as_f64().ok_or_else(|| {
        ModelError::Config(format!(
            "{}: `{key}` is not a number",
            file.path().display()
        ))
    })
}

impl LlamaConfig {
    /// The config of a llama.cpp `llama` GGUF file, from its metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let architecture = file
            .get("general.architecture")?
            .as_str()
            .unwrap_or_default();
        if architecture != "llama" {
            return Err(ModelError::Config(format!(
                "{}: architecture `{architecture}` is not supported (llama)",
                file.path().display()
            )));
        }
        let vocab = file
            .get("tokenizer.ggml.tokens")?
            .as_strings()
            .ok_or_else(|| {
                ModelError::Config("tokenizer.ggml.tokens is not a list of strings".into())
            })?
            .len();
        // f32 in the file: 1e-5 reads back as 9.99999975e-6; round to the value it encodes.
        let epsilon = metadata_f64(file, "llama.attention.layer_norm_rms_epsilon")? as f32 as f64;
        Ok(Self {
            vocab_size: vocab,
            hidden_size: metadata_usize(file, "llama.embedding_length")?,
            intermediate_size: metadata_usize(file, "llama.feed_forward_length")?,
            num_hidden_layers: metadata_usize(file, "llama.block_count")?,
            num_attention_heads: metadata_usize(file, "llama.attention.head_count")?,
            num_key_value_heads: Some(metadata_usize(file, "llama.attention.head_count_kv")?),
            head_dim: None,
            rope_theta: metadata_f64(file, "llama.rope.freq_base")?,
            rms_norm_eps: epsilon,
            max_position_embeddings: Some(metadata_usize(file, "llama.context_length")?),
            tie_word_embeddings: !file.tensors.contains_key("output.weight"),
            hidden_act: "silu".into(),
            rope_scaling: None,
            rope_parameters: None,
            attention: Vec::new(),
        })
    }
}

impl<B: Backend> Llama<B> {
    /// Loads a llama.cpp GGUF model (e.g. SmolLM2-135M's Q4_1 file) and its tokenizer;
    /// quantised blocks are dequantised to f32. `attention` sets each layer's attention.
    pub fn from_gguf(
        path: impl AsRef<Path>,
        attention: Vec<AttentionConfig>,
        device: &B::Device,
    ) -> Result<(Self, TextTokenizer), ModelError> {
        let file = GgufFile::open(path)?;
        let config = LlamaConfig::from_gguf(&file)?.with_attention(attention);
        let mut loader = GgufLoader::<B> {
            file: &file,
            used: BTreeSet::new(),
            heads: config.num_attention_heads,
            kv_heads: config.kv_heads(),
            device: device.clone(),
        };
        let model = config.init::<B>(device)?.map_weights(&mut loader, false)?;
        let unused: Vec<String> = file
            .tensors
            .keys()
            .filter(|k| !loader.used.contains(*k))
            .cloned()
            .collect();
        if !unused.is_empty() {
            return Err(WeightError::Unused {
                path: file.path().to_path_buf(),
                count: unused.len(),
                examples: unused.into_iter().take(8).collect(),
            }
            .into());
        }
        Ok((model, gguf_tokenizer(&file)?))
    }
}
