//! The model zoo: GPT-2, BERT, ViT and a Llama-style decoder, each with any attention of
//! `hedgehog-attention` per layer, HF safetensors weights in and out, and generation.
//!
//! - [`gpt2`], [`bert`], [`vit`], [`llama`]: one folder a model (config, model, weight names).
//! - [`attention`]: the shared self-attention layer (RoPE, grouped-query heads, conversion mode).
//! - [`weights`], [`checkpoint`]: name-mapped weight IO; saving converted models.
//! - [`generation`]: greedy, top-k and top-p decoding with constant-memory linear layers.
//! - [`lora`]: LoRA adapters on q, k, v, o of every layer ([`AttentionLayers`]), and merging.
//! - [`common`]: what every model shares (outputs, norms, heads, the decoding and per-layer traits).
//!
//! Each module imports only the ones below it; the order is in the crate's README.

mod activation;
pub mod attention;
pub mod bert;
pub mod checkpoint;
pub mod common;
mod error;
pub mod feature_maps;
pub mod generation;
pub mod gguf;
pub mod gpt2;
mod io;
pub mod llama;
pub mod lora;
mod lora_adapter;
mod nn_weights;
pub mod tokenizer;
pub mod vit;
pub mod weights;

pub use attention::{AttentionCapture, AttentionMode, LayerCache};
pub use common::{AttentionLayers, CausalLm, ModelOutput};
pub use error::ModelError;
pub use lora::{LoraConfig, LoraTarget, attach_lora, lora_param_ids, merge_lora};
