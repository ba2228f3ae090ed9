//! Pieces every model shares: outputs, the per-layer attention list, norms and heads, token
//! checks, and the traits for decoding and for changing every attention layer alike.

use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use hedgehog_attention::AttentionConfig;

use crate::attention::{AttentionCapture, LayerCache, SelfAttention};
pub use crate::error::ModelError;
pub use crate::nn_weights::{map_embedding, map_layer_norm};

/// What a forward pass returns: the model output and, on request, each layer's attention.
#[derive(Debug)]
pub struct ModelOutput<B: Backend> {
    /// Logits `[B, T, V]` for language models, `[B, C]` heads are returned separately.
    pub output: Tensor<B, 3>,
    /// One entry per layer when captured, else empty.
    pub attention: Vec<AttentionCapture<B>>,
}

/// The attention of every layer: one config repeated, or one per layer.
pub fn per_layer(
    attention: &[AttentionConfig],
    layers: usize,
) -> Result<Vec<AttentionConfig>, ModelError> {
    match attention.len() {
        0 => Ok(vec![AttentionConfig::Softmax; layers]),
        1 => Ok(vec![attention[0].clone(); layers]),
        n if n == layers => Ok(attention.to_vec()),
        n => Err(ModelError::Config(format!(
            "{n} attention configs for {layers} layers: give one for all layers or exactly one per layer"
        ))),
    }
}

/// Refuses sliding windows in a bidirectional encoder (`model`: "BERT", "ViT") when it is
/// built rather than at its first forward: the window form is causal only.
pub fn refuse_windows(attention: &[AttentionConfig], model: &str) -> Result<(), ModelError> {
    let windowed = attention.iter().enumerate().find_map(|(layer, a)| match a {
        AttentionConfig::Linear { window, .. } if *window > 0 => Some((layer, *window)),
        _ => None,
    });
    match windowed {
        None => Ok(()),
        Some((layer, window)) => Err(ModelError::Config(format!(
            "{model} layer {layer}: hedgehog_attention has window {window}, but sliding windows \
             are causal only and {model}'s attention is bidirectional; use window 0 (or leave \
             it out) for {model}"
        ))),
    }
}

pub fn layer_norm<B: Backend>(dim: usize, epsilon: f64, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(dim).with_epsilon(epsilon).init(device)
}

/// A fresh `[dim → num_labels]` classification head as HF initialises one
/// (`_init_weights` with `initializer_range` 0.02): `N(0, 0.02)` weights, zero bias.
pub fn classification_head<B: Backend>(
    dim: usize,
    num_labels: usize,
    device: &B::Device,
) -> Linear<B> {
    let mut head = LinearConfig::new(dim, num_labels)
        .with_bias(false)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        })
        .init(device);
    // burn's initializer draws the bias from the weight's distribution too.
    head.bias = Some(Param::from_tensor(Tensor::zeros([num_labels], device)));
    head
}

/// Token ids must lie in the vocabulary; burn's gather would otherwise read out of bounds.
pub fn check_tokens<B: Backend>(
    tokens: &Tensor<B, 2, Int>,
    vocab_size: usize,
) -> Result<(), ModelError> {
    let max = tokens.clone().max().into_scalar();
    let min = tokens.clone().min().into_scalar();
    let (max, min): (i64, i64) = (
        burn::tensor::ElementConversion::elem(max),
        burn::tensor::ElementConversion::elem(min),
    );
    if min < 0 || max as usize >= vocab_size {
        return Err(ModelError::Input(format!(
            "token ids must be in 0..{vocab_size}, got values from {min} to {max}"
        )));
    }
    Ok(())
}

/// Logits `[B, T, V]` of a head tied to the embedding `[V, d]`: `h · Eᵀ`. burn-ndarray's matmul
/// copies its operands on every call, and `Eᵀ` (113 MB for SmolLM2) is copied element by
/// element in strided order (see `weights::laid_out`), so with fewer rows than `d` (decoding
/// one token) it computes `(E · hᵀ)ᵀ`, where `E` is copied as one block and only the small
/// `hᵀ` is strided.
pub fn tied_logits<B: Backend>(hidden: Tensor<B, 3>, embedding: Tensor<B, 2>) -> Tensor<B, 3> {
    let [b, t, d] = hidden.dims();
    let vocab = embedding.dims()[0];
    let rows = hidden.reshape([b * t, d]);
    let logits = if b * t < d {
        embedding.matmul(rows.transpose()).transpose()
    } else {
        rows.matmul(embedding.transpose())
    };
    logits.reshape([b, t, vocab])
}

/// A decoder that can run incrementally with per-layer caches (generation).
pub trait CausalLm<B: Backend> {
    fn num_layers(&self) -> usize;
    fn vocab_size(&self) -> usize;
    /// Longest sequence the position encoding supports (`None`: unbounded, e.g. RoPE).
    fn max_positions(&self) -> Option<usize>;
    /// Logits `[B, t, V]` for `tokens: [B, t]` at positions `start..start+t`, extending `caches`.
    fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        caches: Vec<LayerCache<B>>,
        start: usize,
    ) -> Result<(Tensor<B, 3>, Vec<LayerCache<B>>), ModelError>;
}

/// Every self-attention layer of a model, in order, for changes that apply to all of them
/// alike (attaching or merging LoRA adapters, inspecting the per-layer attention).
pub trait AttentionLayers<B: Backend>: Sized {
    fn attention_layers(&self) -> Vec<&SelfAttention<B>>;
    /// Replaces each layer by `f(layer)`, stopping at the first error.
    fn map_attention_layers(
        self,
        f: &mut dyn FnMut(SelfAttention<B>) -> Result<SelfAttention<B>, ModelError>,
    ) -> Result<Self, ModelError>;
}

/// Number of parameters of a module (what the presets table reports).
pub fn parameter_count<B: Backend, M: Module<B>>(module: &M) -> usize {
    module.num_params()
}
